//! bf16 and f16 checkpoints: fixtures saved by transformers (`tools/lm_fixtures.py halves`: the
//! qwen2_tied model converted with `.to(torch.bfloat16)` / `.to(torch.float16)`) load to logits equal
//! to transformers' within 1e-4, rlox writes the same bytes transformers writes, and bf16 compute
//! stays close to transformers' own bf16 forward.

use rlox_lm::generate::{generate, GenerationConfig};
use rlox_lm::hf::{hf_weights, load_model, load_model_with, save_model_as, LoadOptions};
use rlox_lm::weights::{StorageDtype, WeightFiles};
use rlox_lm::CausalLm;
use rlox_nn::burn::tensor::{DType, FloatDType};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn reference(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name).join("reference.json")).unwrap()).unwrap()
}

fn rows_u32(v: &Value) -> Vec<Vec<u32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect())
        .collect()
}

fn rows_f32(v: &Value) -> Vec<Vec<f32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect())
        .collect()
}

fn logits(model: &CausalLm, ids: &[u32]) -> Vec<f32> {
    model.forward_ids(&[ids.to_vec()]).unwrap().logits.into_data().try_into_vec_as::<f32>().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn half_checkpoints_match_transformers_logits_and_greedy() {
    let device = rlox_nn::cpu_device().unwrap();
    for (name, dtype) in [("qwen2_bf16", "BF16"), ("qwen2_f16", "F16")] {
        let files = WeightFiles::open_dir(&fixture(name)).unwrap();
        for n in files.names() {
            assert_eq!(format!("{:?}", files.info(n).unwrap().dtype), dtype, "{name}: {n} is stored in {dtype}");
        }
        let model = load_model(fixture(name), &device).unwrap();
        assert_eq!(model.dtype(), DType::F32, "f32 compute by default");
        let r = reference(name);
        let mut worst = 0.0f32;
        for (ids, want) in rows_u32(&r["prompts"]).iter().zip(rows_f32(&r["logits"])) {
            worst = worst.max(max_diff(&logits(&model, ids), &want));
        }
        println!("{name}: max |logit - transformers| = {worst:.2e}");
        assert!(worst < 1e-4, "{name}: {worst}");
        let cfg = GenerationConfig { max_new_tokens: 32, ..Default::default() };
        for (p, want) in rows_u32(&r["prompts"]).iter().zip(rows_u32(&r["greedy"])) {
            assert_eq!(generate(&model, std::slice::from_ref(p), &cfg, None).unwrap()[0].token_ids, want, "{name}");
        }
    }
}

/// The raw bytes of every tensor of a safetensors file, by name.
fn tensor_bytes(path: &Path) -> Vec<(String, String, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, format!("{:?}", v.dtype()), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn saving_in_half_precision_writes_the_bytes_torch_writes() {
    let device = rlox_nn::cpu_device().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // f32 weights rounded by rlox (to nearest, ties to even) vs the same weights rounded by torch.
    let f32_model = load_model(fixture("qwen2_tied"), &device).unwrap();
    for (name, dtype) in [("qwen2_bf16", StorageDtype::BF16), ("qwen2_f16", StorageDtype::F16)] {
        let out = dir.path().join(name);
        save_model_as(&f32_model, &out, Some(&fixture(name)), dtype).unwrap();
        let ours = tensor_bytes(&out.join("model.safetensors"));
        let theirs = tensor_bytes(&fixture(name).join("model.safetensors"));
        assert_eq!(ours.len(), theirs.len());
        for (a, b) in ours.iter().zip(&theirs) {
            assert_eq!((&a.0, &a.1, &a.2), (&b.0, &b.1, &b.2), "{name}: name, dtype, shape");
            assert!(a.3 == b.3, "{name}: tensor {} differs from torch's rounding", a.0);
        }
        let config: Value = serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
        assert_eq!(config["dtype"], dtype.torch_name());
        // Half weights loaded and saved again: lossless.
        let half = load_model(fixture(name), &device).unwrap();
        let again = hf_weights(&half, dtype).to_bytes().unwrap();
        let path = dir.path().join(format!("{name}.again.safetensors"));
        std::fs::write(&path, again).unwrap();
        assert!(tensor_bytes(&path).iter().zip(&theirs).all(|(a, b)| a.3 == b.3), "{name}: round trip");
    }
}

#[test]
fn bf16_compute_is_close_to_transformers_bf16() {
    let device = rlox_nn::cpu_device().unwrap();
    let opts = LoadOptions { compute: Some(FloatDType::BF16) };
    let model = load_model_with(fixture("qwen2_bf16"), &device, opts).unwrap();
    assert_eq!(model.dtype(), DType::BF16);
    let r = reference("qwen2_bf16");
    // Mean and largest absolute differences: rlox bf16 vs f32, torch bf16 vs f32, rlox vs torch bf16.
    let (mut ours_f32, mut torch_f32, mut ours_torch) = ((0.0f64, 0.0f32), (0.0f64, 0.0f32), (0.0f64, 0.0f32));
    let mut n = 0usize;
    let acc = |d: &mut (f64, f32), a: &[f32], b: &[f32]| {
        for (x, y) in a.iter().zip(b) {
            d.0 += (x - y).abs() as f64;
            d.1 = d.1.max((x - y).abs());
        }
    };
    for ((ids, half), full) in
        rows_u32(&r["prompts"]).iter().zip(rows_f32(&r["logits_half"])).zip(rows_f32(&r["logits"]))
    {
        let ours = logits(&model, ids);
        acc(&mut ours_f32, &ours, &full);
        acc(&mut torch_f32, &half, &full);
        acc(&mut ours_torch, &ours, &half);
        n += ours.len();
    }
    let mean = |d: (f64, f32)| d.0 / n as f64;
    println!(
        "bf16 compute vs f32: rlox mean {:.4} max {:.3}, torch mean {:.4} max {:.3}; rlox vs torch bf16: mean {:.4} max {:.3}",
        mean(ours_f32), ours_f32.1, mean(torch_f32), torch_f32.1, mean(ours_torch), ours_torch.1
    );
    // Both bf16 computations round every intermediate to 8 significant bits; they round at
    // different places, so they agree with each other and with f32 to bf16's precision, not f32's:
    // rlox's error must be of torch's size.
    assert!(mean(ours_f32) < 1.5 * mean(torch_f32), "rlox bf16 is further from f32 than torch bf16");
    assert!(ours_f32.1 < 2.0 * torch_f32.1);
    // Greedy generation runs in bf16 end to end.
    let out = generate(
        &model,
        &rows_u32(&r["prompts"])[..1],
        &GenerationConfig { max_new_tokens: 8, ..Default::default() },
        None,
    )
    .unwrap();
    assert_eq!(out[0].token_ids.len(), 8);
    // An unsupported compute dtype is an error that names it.
    let e =
        load_model_with(fixture("qwen2_bf16"), &device, LoadOptions { compute: Some(FloatDType::F64) }).unwrap_err();
    assert!(e.to_string().contains("F64"), "{e}");
}
