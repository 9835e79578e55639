//! Gradient checkpointing and the chunked LM head + cross-entropy change what is kept for the
//! backward pass, never a value: losses and every parameter's gradient equal the plain graph's.

use rlox_lm::hf::load_model;
use rlox_lm::{CausalLm, ForwardInput, MemoryOptions};
use rlox_nn::burn::module::{ModuleVisitor, Param};
use rlox_nn::burn::tensor::activation::log_softmax;
use rlox_nn::{Grads, Int, Module, Tensor, TensorData};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// Every parameter's gradient, flattened, in visiting order.
fn all_grads(model: &CausalLm, grads: &Grads, what: &str) -> Vec<(String, Vec<f32>)> {
    struct V<'a>(&'a Grads, Vec<(String, Vec<f32>)>, usize, &'a str);
    impl ModuleVisitor for V<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.2 += 1;
            let g: Option<Tensor<D>> = self.0.get(p.id);
            let g = g.unwrap_or_else(|| panic!("{}: parameter #{} has no gradient", self.3, self.2));
            self.1.push((format!("#{}", self.2), g.into_data().try_into_vec_as::<f32>().unwrap()));
        }
    }
    let mut v = V(grads, Vec::new(), 0, what);
    model.visit(&mut v);
    v.1
}

/// A batch with left padding: three sequences of different lengths.
fn batch() -> (ForwardInput, Vec<Vec<u32>>) {
    let seqs: Vec<Vec<u32>> = vec![
        vec![5, 17, 42, 99, 7, 3, 250, 11, 8],
        vec![64, 12, 9, 200, 31],
        vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
    ];
    (ForwardInput::left_padded(&seqs, 0), seqs)
}

/// Mean next-token loss over the real tokens, through the full logits (the plain graph).
fn plain_loss(model: &CausalLm, input: &ForwardInput) -> Tensor<1> {
    let logits = model.forward(input, None).unwrap().logits;
    let [b, t, v] = logits.dims();
    let (targets, mask) = targets_and_mask(input);
    let device = logits.device();
    let idx = Tensor::<3, Int>::from_data(TensorData::new(targets, [b, t - 1, 1]), &device);
    let lp = log_softmax(logits.narrow(1, 0, t - 1), 2).gather(2, idx).reshape([b * (t - 1)]);
    let n: f32 = mask.iter().sum();
    let mask = Tensor::<1>::from_data(TensorData::new(mask, [b * (t - 1)]), &device);
    let _ = v;
    (lp * mask).sum().div_scalar(n as f64).neg()
}

fn targets_and_mask(input: &ForwardInput) -> (Vec<i64>, Vec<f32>) {
    let mut targets = Vec::new();
    let mut mask = Vec::new();
    for (ids, valid) in input.ids.iter().zip(&input.valid) {
        for t in 0..ids.len() - 1 {
            targets.push(ids[t + 1] as i64);
            mask.push(if valid[t] && valid[t + 1] { 1.0 } else { 0.0 });
        }
    }
    (targets, mask)
}

/// The same loss through `hidden_states` + `token_logprobs` (chunked LM head).
fn chunked_loss(model: &CausalLm, input: &ForwardInput) -> Tensor<1> {
    let hidden = model.hidden_states(input, None).unwrap().hidden;
    let [b, t, h] = hidden.dims();
    let (targets, mask) = targets_and_mask(input);
    let targets: Vec<u32> = targets.iter().map(|&x| x as u32).collect();
    let hid = hidden.narrow(1, 0, t - 1).reshape([b * (t - 1), h]);
    let lp = model.token_logprobs(hid, &targets, 1.0).unwrap();
    let n: f32 = mask.iter().sum();
    let mask = Tensor::<1>::from_data(TensorData::new(mask, [b * (t - 1)]), &lp.device());
    (lp * mask).sum().div_scalar(n as f64).neg()
}

fn compare(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)], what: &str) {
    assert_eq!(a.len(), b.len());
    for ((name, x), (_, y)) in a.iter().zip(b) {
        let scale = x.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
        let worst = x.iter().zip(y).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
        assert!(worst <= 1e-4 * scale.max(1.0), "{what}: parameter {name}: {worst} (scale {scale})");
    }
}

#[test]
fn checkpointing_and_chunked_head_give_the_plain_gradients() {
    for name in ["qwen2_tied", "llama_untied", "qwen2_moe"] {
        let device = rlox_nn::train_device(rlox_nn::DeviceKind::Cpu, 0).unwrap();
        let model = load_model(fixture(name), &device).unwrap();
        let (input, _) = batch();
        let plain = plain_loss(&model, &input);
        let reference = all_grads(&model, &rlox_nn::backward(&plain, &model), &format!("{name} plain"));
        let plain: f32 = plain.into_scalar();
        for (ckpt, rows) in [(true, 0), (false, 3), (true, 5)] {
            let mut m = model.clone();
            m.memory = MemoryOptions { gradient_checkpointing: ckpt, logits_chunk_rows: rows };
            let loss = if rows == 0 { plain_loss(&m, &input) } else { chunked_loss(&m, &input) };
            let grads =
                all_grads(&m, &rlox_nn::backward(&loss, &m), &format!("{name} checkpointing={ckpt} chunk={rows}"));
            let value: f32 = loss.into_scalar();
            assert!((value - plain).abs() < 1e-5, "{name}: loss {value} vs {plain}");
            compare(&reference, &grads, &format!("{name} checkpointing={ckpt} chunk={rows}"));
        }
        println!("{name}: checkpointed / chunked losses and gradients equal the plain graph's");
    }
}

#[test]
fn token_logprobs_equal_log_softmax_of_the_logits() {
    let device = rlox_nn::cpu_device().unwrap();
    let mut model = load_model(fixture("qwen2_tied"), &device).unwrap();
    let (input, _) = batch();
    let logits = model.forward(&input, None).unwrap().logits;
    let [b, t, v] = logits.dims();
    let hidden = model.hidden_states(&input, None).unwrap().hidden.reshape([b * t, 64]);
    let targets: Vec<u32> = (0..b * t).map(|i| (i * 37 % v) as u32).collect();
    let full: Vec<f32> =
        log_softmax(logits.reshape([b * t, v]).div_scalar(0.7), 1).into_data().try_into_vec_as().unwrap();
    for rows in [0, 1, 4, 100] {
        model.memory.logits_chunk_rows = rows;
        let lp: Vec<f32> =
            model.token_logprobs(hidden.clone(), &targets, 0.7).unwrap().into_data().try_into_vec_as().unwrap();
        for (i, &x) in lp.iter().enumerate() {
            let want = full[i * v + targets[i] as usize];
            assert!((x - want).abs() < 1e-5, "rows {rows}, position {i}: {x} vs {want}");
        }
    }
    let e = model.token_logprobs(hidden.clone(), &targets[1..], 1.0).unwrap_err().to_string();
    assert!(e.contains("targets"), "{e}");
    let mut bad = targets.clone();
    bad[0] = 300;
    assert!(model.token_logprobs(hidden, &bad, 1.0).unwrap_err().to_string().contains("300"));
}
