//! The DeepSeek-V3 decoder against transformers' `DeepseekV3ForCausalLM` on the tiny fixtures made by
//! tools/kimi_vl_fixtures.py (`deepseek_v3`: MLA with a full query projection; `deepseek_v3_yarn`: query LoRA
//! and YaRN with `mscale_all_dim`; both with grouped sigmoid routing whose correction bias changes the
//! chosen experts), the latent cache against recomputation, flash against eager attention, batched against
//! one-by-one generation, gradients, save/load, the parameter count of DeepSeek-V3 itself, bad input.
//! Run in release: `cargo test --release -p rlox-lm --test deepseek_v3`.
//!
//! Tolerance: logits within 1e-4 absolute (f32 on both sides; the fixtures' logits are of order 1).

use rlox_lm::deepseek_v3::{DeepseekV3Config, DeepseekV3ForCausalLm, LatentCache};
use rlox_lm::generate::{generate, GenerationConfig};
use rlox_lm::hf::{hf_param_shapes, load_deepseek_v3, save_deepseek_v3};
use rlox_lm::{EagerAttention, FlashAttention, ForwardInput, Init};
use rlox_nn::burn::module::{ModuleVisitor, Param};
use rlox_nn::burn::tensor::activation::log_softmax;
use rlox_nn::{Int, Module, Tensor, TensorData};
use serde_json::Value;
use std::path::{Path, PathBuf};

const FIXTURES: [&str; 2] = ["deepseek_v3", "deepseek_v3_yarn"];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

struct Reference {
    prompts: Vec<Vec<u32>>,
    logits: Vec<Vec<f32>>,
    greedy: Vec<Vec<u32>>,
}

fn reference(name: &str) -> Reference {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture(name).join("reference.json")).unwrap()).unwrap();
    let ids = |k: &str| -> Vec<Vec<u32>> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect())
            .collect()
    };
    Reference {
        prompts: ids("prompts"),
        greedy: ids("greedy"),
        logits: v["logits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect())
            .collect(),
    }
}

fn cpu_model(dir: &Path) -> DeepseekV3ForCausalLm {
    load_deepseek_v3(dir, &rlox_nn::cpu_device().unwrap()).unwrap()
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn logits_match_transformers() {
    for name in FIXTURES {
        let model = cpu_model(&fixture(name));
        let r = reference(name);
        let mut worst = 0.0f32;
        for (ids, want) in r.prompts.iter().zip(&r.logits) {
            let got = to_vec(model.forward_ids(std::slice::from_ref(ids)).unwrap().logits);
            worst = worst.max(max_diff(&got, want));
        }
        println!("{name}: max |logit - transformers| = {worst:.2e}");
        assert!(worst < 1e-4, "{name}: {worst}");
    }
}

#[test]
fn greedy_matches_transformers_with_and_without_cache() {
    for name in FIXTURES {
        let model = cpu_model(&fixture(name));
        let r = reference(name);
        for use_cache in [true, false] {
            let cfg = GenerationConfig { max_new_tokens: 32, use_cache, ..Default::default() };
            for (p, want) in r.prompts.iter().zip(&r.greedy) {
                let out = generate(&model, std::slice::from_ref(p), &cfg, None).unwrap().remove(0);
                assert_eq!(&out.token_ids, want, "{name}, use_cache {use_cache}");
            }
        }
    }
}

#[test]
fn latent_cache_equals_recomputation() {
    // Feed the longest prompt in three chunks through the cache; every chunk's logits must equal the
    // corresponding rows of one full forward pass.
    for name in FIXTURES {
        let model = cpu_model(&fixture(name));
        let r = reference(name);
        let ids = &r.prompts[2];
        let full = to_vec(model.forward_ids(std::slice::from_ref(ids)).unwrap().logits);
        let v = model.config.vocab_size;
        let mut cache = LatentCache::new(&model.config, 1);
        let mut at = 0;
        let mut worst = 0.0f32;
        for len in [17, 1, ids.len() - 18] {
            let input = ForwardInput {
                ids: vec![ids[at..at + len].to_vec()],
                positions: vec![(at..at + len).collect()],
                valid: vec![vec![true; len]],
            };
            let got = to_vec(model.forward(&input, Some(&mut cache)).unwrap().logits);
            worst = worst.max(max_diff(&got, &full[at * v..(at + len) * v]));
            at += len;
        }
        assert_eq!(cache.len(), ids.len());
        println!("{name}: cached chunks vs one pass: {worst:.2e}");
        assert!(worst < 1e-5, "{name}: {worst}");
    }
}

#[test]
fn flash_equals_eager_and_batches_equal_single_runs() {
    for name in FIXTURES {
        let model = cpu_model(&fixture(name));
        let r = reference(name);
        let input = ForwardInput::left_padded(&r.prompts, 0);
        let flash = to_vec(model.forward_with(&input, None, &FlashAttention::default()).unwrap().logits);
        let eager = to_vec(model.forward_with(&input, None, &EagerAttention).unwrap().logits);
        // Compare real positions only (padding rows differ by design, see rlox_lm::attention).
        let (t, v) = (input.ids[0].len(), model.config.vocab_size);
        for (b, row) in input.valid.iter().enumerate() {
            for (i, &ok) in row.iter().enumerate() {
                if ok {
                    let at = (b * t + i) * v;
                    assert!(max_diff(&flash[at..at + v], &eager[at..at + v]) < 1e-5);
                }
            }
        }
        for temperature in [0.0f32, 0.9] {
            let cfg = GenerationConfig { max_new_tokens: 12, temperature, seed: 4, ..Default::default() };
            let batch = generate(&model, &r.prompts, &cfg, None).unwrap();
            for (i, p) in r.prompts.iter().enumerate() {
                let one = GenerationConfig { stream_offset: i as u64, ..cfg.clone() };
                let single = generate(&model, std::slice::from_ref(p), &one, None).unwrap().remove(0);
                assert_eq!(batch[i].token_ids, single.token_ids, "{name} T={temperature} prompt {i}");
            }
        }
    }
}

struct GradCheck<'a> {
    grads: &'a rlox_nn::Grads,
    path: Vec<String>,
    without: Vec<String>,
}

impl ModuleVisitor for GradCheck<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let g = self.grads.get::<D>(param.id).map(to_vec);
        if !g.is_some_and(|g| g.iter().all(|x| x.is_finite()) && g.iter().any(|&x| x != 0.0)) {
            self.without.push(self.path.join("."));
        }
    }
}

#[test]
fn every_trainable_parameter_gets_a_gradient() {
    let device = rlox_nn::train_device(rlox_nn::DeviceKind::Cpu, 0).unwrap();
    let model = load_deepseek_v3(fixture("deepseek_v3_yarn"), &device).unwrap();
    let r = reference("deepseek_v3_yarn");
    let mut ids = r.prompts[2].clone();
    ids.extend(&r.greedy[2]);
    let t = ids.len();
    let out = model.forward_ids(&[ids[..t - 1].to_vec()]).unwrap();
    let targets: Vec<i64> = ids[1..].iter().map(|&x| x as i64).collect();
    let targets = Tensor::<3, Int>::from_data(TensorData::new(targets, [1, t - 1, 1]), &device);
    let loss = log_softmax(out.logits, 2).gather(2, targets).mean().neg();
    let grads = rlox_nn::backward(&loss, &model);
    let mut check = GradCheck { grads: &grads, path: Vec::new(), without: Vec::new() };
    model.visit(&mut check);
    // The correction bias steers the choice only: it is a buffer, never differentiated.
    assert!(check.without.iter().all(|n| n.ends_with("e_score_correction_bias")), "{:?}", check.without);
    assert_eq!(check.without.len(), 2, "{:?}", check.without);
}

#[test]
fn save_and_reload_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    for name in FIXTURES {
        let model = cpu_model(&fixture(name));
        let out = dir.path().join(name);
        save_deepseek_v3(&model, &out, None, rlox_lm::StorageDtype::F32).unwrap();
        let again = cpu_model(&out);
        let r = reference(name);
        let got = to_vec(again.forward_ids(&r.prompts[..1]).unwrap().logits);
        assert!(max_diff(&got, &r.logits[0]) < 1e-4, "{name}");
        let saved = safetensors_names(&out.join("model.safetensors"));
        let original = safetensors_names(&fixture(name).join("model.safetensors"));
        assert_eq!(saved, original, "{name}: the saved tensor names differ from transformers'");
    }
}

fn safetensors_names(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    names
}

/// DeepSeek-V3's published `config.json` (the fields that set the shapes).
fn deepseek_v3_full() -> Value {
    serde_json::json!({
        "model_type": "deepseek_v3", "vocab_size": 129280, "hidden_size": 7168, "intermediate_size": 18432,
        "moe_intermediate_size": 2048, "num_hidden_layers": 61, "num_attention_heads": 128, "q_lora_rank": 1536,
        "kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
        "n_routed_experts": 256, "n_shared_experts": 1, "num_experts_per_tok": 8, "n_group": 8, "topk_group": 4,
        "topk_method": "noaux_tc", "scoring_func": "sigmoid", "first_k_dense_replace": 3, "moe_layer_freq": 1,
        "norm_topk_prob": true, "routed_scaling_factor": 2.5, "max_position_embeddings": 163840,
        "rope_theta": 10000, "rope_scaling": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096,
        "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0}, "tie_word_embeddings": false
    })
}

#[test]
fn full_size_deepseek_v3_shapes_without_weights() {
    // A lazy skeleton: shapes only, no tensor is allocated (671 billion f32 would need 2.7 TB).
    let config = DeepseekV3Config::from_hf_json(&deepseek_v3_full()).unwrap();
    let device = rlox_nn::cpu_device().unwrap();
    let model = DeepseekV3ForCausalLm::new(&config, Init::Lazy, &device);
    let shapes = hf_param_shapes(&model);
    let count = |f: &dyn Fn(&str) -> bool| -> u64 {
        shapes.iter().filter(|(n, _)| f(n)).map(|(_, s)| s.iter().product::<usize>() as u64).sum()
    };
    let total = count(&|_| true);
    let routed = count(&|n| n.contains(".mlp.experts."));
    let active = total - routed + routed / 256 * 8;
    println!("DeepSeek-V3: {total} parameters, {active} active per token ({} tensors)", shapes.len());
    // The published 671B (the 685B checkpoint adds the 14B multi-token-prediction module) and 37B active.
    assert_eq!(total, 671_026_419_200);
    assert!((36_000_000_000..38_000_000_000).contains(&active), "{active}");
    let find = |name: &str| shapes.iter().find(|(n, _)| n == name).map(|(_, s)| s.clone());
    assert_eq!(find("model.layers.5.self_attn.kv_a_proj_with_mqa.weight"), Some(vec![576, 7168]));
    assert_eq!(find("model.layers.5.self_attn.q_b_proj.weight"), Some(vec![128 * 192, 1536]));
    assert_eq!(find("model.layers.5.self_attn.kv_b_proj.weight"), Some(vec![128 * 256, 512]));
    assert_eq!(find("model.layers.5.mlp.gate.weight"), Some(vec![256, 7168]));
    assert_eq!(find("model.layers.5.mlp.shared_experts.down_proj.weight"), Some(vec![7168, 2048]));
    assert_eq!(find("model.layers.2.mlp.gate_proj.weight"), Some(vec![18432, 7168]));
    // The cache per token and layer: 576 floats (latent + rope key) against 128 * (192 + 128) expanded.
    assert_eq!(LatentCache::floats_per_position(&config), 576);
}

#[test]
fn bad_inputs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let device = rlox_nn::cpu_device().unwrap();
    let d = dir.path().join("m");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(fixture("deepseek_v3").join("model.safetensors"), d.join("model.safetensors")).unwrap();
    let config = std::fs::read_to_string(fixture("deepseek_v3").join("config.json")).unwrap();
    // An unsupported router.
    let mut v: Value = serde_json::from_str(&config).unwrap();
    v["topk_method"] = "group_limited_greedy".into();
    std::fs::write(d.join("config.json"), v.to_string()).unwrap();
    let e = load_deepseek_v3(&d, &device).unwrap_err().to_string();
    assert!(e.contains("topk_method") && e.contains("group_limited_greedy") && e.contains("config.json"), "{e}");
    // Weights of another shape: a wider latent.
    let mut v: Value = serde_json::from_str(&config).unwrap();
    v["kv_lora_rank"] = 20.into();
    std::fs::write(d.join("config.json"), v.to_string()).unwrap();
    let e = load_deepseek_v3(&d, &device).unwrap_err().to_string();
    assert!(e.contains("kv_a_proj_with_mqa.weight") && e.contains("[24, 32]") && e.contains("[28, 32]"), "{e}");
    // An id outside the vocabulary and a prompt beyond the context.
    let model = cpu_model(&fixture("deepseek_v3"));
    let e = model.forward_ids(&[vec![1, 500]]).unwrap_err().to_string();
    assert!(e.contains("500") && e.contains("vocabulary"), "{e}");
    let e = generate(&model, &[vec![3; 200]], &GenerationConfig::default(), None).unwrap_err().to_string();
    assert!(e.contains("200 tokens") && e.contains("128"), "{e}");
}

#[test]
fn lm_commands_score_deepseek_v3_directories() {
    // `rlox lm score`'s computation on the DeepSeek-V3 decoder chosen by model_type.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("m");
    std::fs::create_dir_all(&d).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture("deepseek_v3").join(f), d.join(f)).unwrap();
    }
    let e = rlox_lm::commands::load_dir(&d).err().expect("no tokenizer").to_string();
    assert!(e.contains("tokenizer.json"), "{e}");
    let model = rlox_lm::commands::AnyLm::DeepseekV3(cpu_model(&fixture("deepseek_v3")));
    let r = reference("deepseek_v3");
    let ids = &r.prompts[0];
    let lps = rlox_lm::commands::score_ids(&model, ids).unwrap();
    let v = 96;
    for (i, lp) in lps.iter().enumerate().skip(1) {
        let row = &r.logits[0][(i - 1) * v..i * v];
        let want = rlox_lm::generate::log_softmax_at(row, ids[i] as usize, 1.0);
        assert!((lp.unwrap() - want).abs() < 1e-4);
    }
}
