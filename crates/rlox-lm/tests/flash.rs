//! The flash-attention kernel in the decoder: a training step (loss and the gradient of every
//! parameter) and KV-cache decoding give the same numbers as eager attention on the tiny fixtures.
//! Run in release: `cargo test --release -p rlox-lm --test flash`.
//!
//! Tolerance: losses within 1e-5 relative; each parameter's gradient within
//! `1e-4 · max |eager gradient| + 1e-7` elementwise (f32 throughout; the two paths sum the same
//! terms in different orders).

use rlox_lm::hf::load_model;
use rlox_lm::{AttentionKernel, AttentionMask, CausalLm, EagerAttention, FlashAttention, ForwardInput, KvCache};
use rlox_nn::burn::module::{ModuleVisitor, Param};
use rlox_nn::burn::tensor::activation::log_softmax;
use rlox_nn::{Grads, Int, Module, Tensor, TensorData};
use std::path::{Path, PathBuf};

const FIXTURES: [&str; 3] = ["qwen2_tied", "llama_untied", "qwen2_moe"];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

struct Collect<'a> {
    grads: &'a Grads,
    path: Vec<String>,
    out: Vec<(String, Vec<f32>)>,
}

impl ModuleVisitor for Collect<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let g = self.grads.get::<D>(param.id).map(|g| g.into_data().try_into_vec_as::<f32>().unwrap());
        self.out.push((self.path.join("."), g.unwrap_or_default()));
    }
}

/// Loss and all parameter gradients of one next-token training step on `input` (loss over valid
/// target positions only).
fn train_step(model: &CausalLm, input: &ForwardInput, kernel: &dyn AttentionKernel) -> (f32, Vec<(String, Vec<f32>)>) {
    let device = model.device();
    let (b, t) = (input.ids.len(), input.ids[0].len());
    let out = model.forward_with(input, None, kernel).unwrap();
    let targets: Vec<i64> = input.ids.iter().flat_map(|r| r[1..].iter().map(|&x| x as i64)).collect();
    let targets = Tensor::<3, Int>::from_data(TensorData::new(targets, [b, t - 1, 1]), &device);
    let weight: Vec<f32> = input.valid.iter().flat_map(|r| r[..t - 1].iter().map(|&v| v as u8 as f32)).collect();
    let count: f32 = weight.iter().sum();
    let weight = Tensor::<3>::from_data(TensorData::new(weight, [b, t - 1, 1]), &device);
    let logp = log_softmax(out.logits.narrow(1, 0, t - 1), 2).gather(2, targets);
    let mut loss = (logp * weight).sum().div_scalar(count).neg();
    // The MoE load-balancing loss counts every position, padding included, and padding rows differ
    // by design (zero output under flash, a uniform average under eager): add it for unpadded input only.
    if let (Some(aux), true) = (out.aux_loss, input.valid.iter().flatten().all(|&v| v)) {
        loss = loss + aux;
    }
    let value = loss.clone().into_data().try_into_vec_as::<f32>().unwrap()[0];
    let grads = rlox_nn::backward(&loss, model);
    let mut c = Collect { grads: &grads, path: Vec::new(), out: Vec::new() };
    model.visit(&mut c);
    (value, c.out)
}

fn inputs() -> Vec<ForwardInput> {
    let seq = |n: usize, salt: u32| (0..n as u32).map(|i| (i * 37 + salt * 11 + 5) % 290 + 3).collect::<Vec<u32>>();
    vec![
        // Two full sequences, longer than the sliding window of qwen2_tied.
        ForwardInput::dense(vec![seq(23, 1), seq(23, 2)]),
        // Left padding: rows that see no key at all.
        ForwardInput::left_padded(&[seq(19, 3), seq(7, 4), seq(12, 5)], 0),
    ]
}

#[test]
fn training_step_matches_eager_attention() {
    for name in FIXTURES {
        for (i, input) in inputs().iter().enumerate() {
            let device = rlox_nn::train_device(rlox_nn::DeviceKind::Cpu, 0).unwrap();
            let model = load_model(fixture(name), &device).unwrap();
            // The flash path really runs (no silent fall-back): the mask converts.
            let mask = AttentionMask::causal(input.valid.clone(), 0, input.ids[0].len(), None, &device);
            let q = Tensor::<4>::zeros([1, 1, 1, 1], &device);
            assert!(FlashAttention::applies(&q, &mask), "{name}: the flash kernel does not apply");
            let (lf, gf) = train_step(&model, input, &FlashAttention::default());
            let (le, ge) = train_step(&model, input, &EagerAttention);
            assert!(lf.is_finite() && (lf - le).abs() <= 1e-5 * le.abs(), "{name} input {i}: loss {lf} vs eager {le}");
            assert_eq!(gf.len(), ge.len());
            for ((path, f), (_, e)) in gf.iter().zip(&ge) {
                assert_eq!(f.len(), e.len(), "{name} input {i}: {path} gradient missing on one path");
                assert!(!e.is_empty(), "{name} input {i}: {path} has no gradient");
                let top = e.iter().fold(0.0f32, |a, x| a.max(x.abs()));
                let tol = 1e-4 * top + 1e-7;
                let worst = f.iter().zip(e).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
                assert!(worst <= tol, "{name} input {i}: {path} gradient differs by {worst:e} (tolerance {tol:e})");
            }
        }
    }
}

#[test]
fn cached_decoding_matches_eager_attention() {
    let device = rlox_nn::cpu_device().unwrap();
    for name in FIXTURES {
        let model = load_model(fixture(name), &device).unwrap();
        let prompts = [vec![5u32, 9, 44, 7, 100, 3, 8, 21, 60], vec![12u32, 13, 14]];
        let run = |kernel: &dyn AttentionKernel| {
            let mut cache = KvCache::new(&model.config, 2);
            let input = ForwardInput::left_padded(&prompts, 0);
            let mut logits = vec![model.forward_with(&input, Some(&mut cache), kernel).unwrap().logits];
            // Three single-token steps: queries sit after `past` cached keys.
            for step in 0..3u32 {
                let t = cache.len();
                let input = ForwardInput {
                    ids: vec![vec![40 + step], vec![50 + step]],
                    positions: vec![vec![t], vec![t - 6]],
                    valid: vec![vec![true], vec![true]],
                };
                logits.push(model.forward_with(&input, Some(&mut cache), kernel).unwrap().logits);
            }
            logits
        };
        let flash = run(&FlashAttention::default());
        let eager = run(&EagerAttention);
        for (step, (f, e)) in flash.into_iter().zip(eager).enumerate() {
            // Skip the padded positions of the prompt (they attend to nothing under flash).
            let (f, e) = if step == 0 {
                (f.slice([0..1, 0..9]).into_data(), e.slice([0..1, 0..9]).into_data())
            } else {
                (f.into_data(), e.into_data())
            };
            let (f, e) = (f.try_into_vec_as::<f32>().unwrap(), e.try_into_vec_as::<f32>().unwrap());
            let worst = f.iter().zip(&e).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-4, "{name} step {step}: logits differ by {worst}");
        }
    }
}
