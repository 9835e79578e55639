//! Throughput of a randomly initialised decoder: prompt (prefill) tokens/s, decode tokens/s with the
//! KV cache, and one training step (forward + backward + AdamW) in seconds. Prints one JSON line.
//!
//! `RAYON_NUM_THREADS=1 cargo run --release -p rlox-lm --example lm_bench -- CONFIG.json PROMPT_LEN NEW_TOKENS TRAIN_BATCH`

use rlox_lm::generate::{generate, GenerationConfig};
use rlox_lm::{CausalLm, LmConfig};
use rlox_nn::burn::tensor::activation::log_softmax;
use rlox_nn::{Int, OptimizerConfig, Tensor, TensorData};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let config = LmConfig::from_file(&args[1])?;
    let prompt_len: usize = args.get(2).map_or(Ok(128), |s| s.parse())?;
    let new_tokens: usize = args.get(3).map_or(Ok(64), |s| s.parse())?;
    let batch: usize = args.get(4).map_or(Ok(4), |s| s.parse())?;
    let v = config.vocab_size as u32;
    let prompt: Vec<u32> = (0..prompt_len as u32).map(|i| (i * 7919 + 13) % v).collect();

    let device = rlox_nn::cpu_device()?;
    device.seed(0);
    let model = CausalLm::init(&config, 0.02, &device);
    let params = rlox_nn::Module::num_params(&model);
    // Prefill: best of 3.
    let mut prefill = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let _ = model.forward_ids(std::slice::from_ref(&prompt))?.logits.into_data();
        prefill = prefill.min(t.elapsed().as_secs_f64());
    }
    // Decode: generate new_tokens greedily after the prompt; subtract one prefill.
    let cfg = GenerationConfig { max_new_tokens: new_tokens, ..Default::default() };
    let t = Instant::now();
    let out = generate(&model, std::slice::from_ref(&prompt), &cfg, None)?;
    let decode = (t.elapsed().as_secs_f64() - prefill).max(1e-9);
    assert_eq!(out[0].token_ids.len(), new_tokens);

    // Train step: next-token loss on [batch, prompt_len], AdamW. Best of 3 after a warm-up.
    let tdev = rlox_nn::train_device(rlox_nn::DeviceKind::Cpu, 0)?;
    let mut model = CausalLm::init(&config, 0.02, &tdev);
    let mut opt = OptimizerConfig::adamw().build();
    let rows: Vec<Vec<u32>> = (0..batch).map(|b| prompt.iter().map(|&x| (x + b as u32) % v).collect()).collect();
    let inputs: Vec<Vec<u32>> = rows.iter().map(|r| r[..prompt_len - 1].to_vec()).collect();
    let targets: Vec<i64> = rows.iter().flat_map(|r| r[1..].iter().map(|&x| x as i64)).collect();
    let mut step = f64::MAX;
    for i in 0..4 {
        let t = Instant::now();
        let logits = model.forward_ids(&inputs)?.logits;
        let tg = Tensor::<3, Int>::from_data(TensorData::new(targets.clone(), [batch, prompt_len - 1, 1]), &tdev);
        let loss = log_softmax(logits, 2).gather(2, tg).mean().neg();
        let grads = rlox_nn::backward(&loss, &model);
        model = opt.step(1e-4, model, grads);
        let _ = rlox_nn::Module::num_params(&model);
        let _ = model.model.norm.weight.val().into_data();
        if i > 0 {
            step = step.min(t.elapsed().as_secs_f64());
        }
    }
    println!(
        "{}",
        serde_json::json!({
            "impl": "rlox", "params": params, "prompt_len": prompt_len, "new_tokens": new_tokens, "train_batch": batch,
            "prefill_tokens_per_s": prompt_len as f64 / prefill,
            "decode_tokens_per_s": new_tokens as f64 / decode,
            "train_step_s": step,
        })
    );
    Ok(())
}
