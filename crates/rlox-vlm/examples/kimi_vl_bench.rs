//! Throughput of a randomly initialised Kimi-VL: MoonViT + projector on one image (patches/s), and the
//! DeepSeek-V3 decoder's prompt (prefill) tokens/s and decode tokens/s with the latent cache. Prints one JSON line.
//!
//! `RAYON_NUM_THREADS=1 cargo run --release -p rlox-vlm --example kimi_vl_bench -- CONFIG.json GRID_H GRID_W PROMPT_LEN NEW_TOKENS`

use rlox_lm::generate::{generate, GenerationConfig};
use rlox_lm::Init;
use rlox_vlm::{KimiVl, KimiVlConfig, ProcessedImage};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let config = KimiVlConfig::from_file(&args[1])?;
    let (gh, gw): (usize, usize) = (args[2].parse()?, args[3].parse()?);
    let prompt_len: usize = args[4].parse()?;
    let new_tokens: usize = args[5].parse()?;
    let device = rlox_nn::cpu_device()?;
    device.seed(0);
    let model = KimiVl::new(&config, Init::Normal(0.02), &device);
    let params = rlox_nn::Module::num_params(&model);
    let p = config.vision.patch_size;
    let n = gh * gw * 3 * p * p;
    let pixels: Vec<f32> = (0..n).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect();
    let image = ProcessedImage { pixel_values: pixels, grid: (gh, gw) };
    // Vision: best of 3 (after one warm-up); KIMI_BENCH_VISION_REPEATS=N runs it N times (for profiling).
    let repeats: usize = std::env::var("KIMI_BENCH_VISION_REPEATS").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    let mut vision = f64::MAX;
    for i in 0..repeats.max(2) {
        let t = Instant::now();
        let _ = model.image_features(&[&image])?.into_data();
        if i > 0 {
            vision = vision.min(t.elapsed().as_secs_f64());
        }
    }
    let v = config.text.vocab_size as u32;
    let prompt: Vec<u32> = (0..prompt_len as u32).map(|i| (i * 7919 + 13) % v).collect();
    let lm = &model.language_model;
    let mut prefill = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let _ = lm.forward_ids(std::slice::from_ref(&prompt))?.logits.into_data();
        prefill = prefill.min(t.elapsed().as_secs_f64());
    }
    let cfg = GenerationConfig { max_new_tokens: new_tokens, ..Default::default() };
    let t = Instant::now();
    let out = generate(lm, std::slice::from_ref(&prompt), &cfg, None)?;
    let decode = (t.elapsed().as_secs_f64() - prefill).max(1e-9);
    assert_eq!(out[0].token_ids.len(), new_tokens);
    // The machine's single-thread matrix-product rate through the same backend: 1024^3, best of 3.
    let a = rlox_nn::Tensor::<2>::random([1024, 1024], rlox_nn::burn::tensor::Distribution::Default, &device);
    let b = rlox_nn::Tensor::<2>::random([1024, 1024], rlox_nn::burn::tensor::Distribution::Default, &device);
    let mut gemm = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let _ = a.clone().matmul(b.clone()).into_data();
        gemm = gemm.min(t.elapsed().as_secs_f64());
    }
    println!(
        "{}",
        serde_json::json!({
            "gemm_gflops": 2.0 * 1024f64.powi(3) / gemm / 1e9,
            "impl": "rlox", "params": params, "patches": gh * gw, "prompt_len": prompt_len, "new_tokens": new_tokens,
            "vision_patches_per_s": (gh * gw) as f64 / vision,
            "prefill_tokens_per_s": prompt_len as f64 / prefill,
            "decode_tokens_per_s": new_tokens as f64 / decode,
        })
    );
    Ok(())
}
