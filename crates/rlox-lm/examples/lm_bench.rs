//! The rlox side of `bench/lm_bench.py`: one model directory, one process, one JSON line.
//!
//! ```text
//! RAYON_NUM_THREADS=1 cargo run --release -p rlox-lm --example lm_bench -- DIR [key=value ...]
//! ```
//!
//! Keys (defaults): `phases=load,forward,train,generate` (any subset, in that order), `batch=1`
//! and `seq=128` (forward and forward+backward on `[batch, seq]` tokens), `prompt=32` and `new=64`
//! (greedy generation, batch 1), `reps=3` (best of), `ckpt=0` (gradient checkpointing in the
//! training phase), `dtype=f32|bf16` (compute dtype).
//!
//! * `load`: seconds to build the model from the directory, and the resident memory it added.
//! * `forward`: logits of every position (`[batch, seq, vocab]`), no gradients.
//! * `train`: forward + backward of the mean next-token cross-entropy (the LM head and the loss in
//!   chunks, [`rlox_lm::CausalLm::token_logprobs`]), gradients of every parameter; no optimizer step.
//!   Its peak resident memory is measured from a reset high-water mark (`/proc/self/clear_refs`).
//! * `generate`: prefill tokens/s (the prompt's forward) and decode tokens/s (the new tokens), with
//!   the generated ids so that the script can check they equal transformers'.
//!
//! Token ids are `(i * 7919 + 13) % vocab`, as in the script.

use rlox_lm::generate::{generate, GenerationConfig};
use rlox_lm::hf::{load_model_with, LoadOptions};
use rlox_lm::{CausalLm, ForwardInput};
use rlox_nn::burn::tensor::FloatDType;
use serde_json::{json, Map, Value};
use std::time::Instant;

fn status_kib(key: &str) -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

fn rss_mib() -> f64 {
    status_kib("VmRSS:") / 1024.0
}

fn peak_mib() -> f64 {
    status_kib("VmHWM:") / 1024.0
}

/// Reset the resident-memory high-water mark (Linux: write 5 to clear_refs).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn tokens(n: usize, vocab: usize, offset: usize) -> Vec<u32> {
    (0..n).map(|i| (((i + offset) * 7919 + 13) % vocab) as u32).collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(1).ok_or("usage: lm_bench DIR [key=value ...]")?);
    let mut opt: std::collections::HashMap<String, String> = [
        ("phases", "load,forward,train,generate"),
        ("batch", "1"),
        ("seq", "128"),
        ("prompt", "32"),
        ("new", "64"),
        ("reps", "3"),
        ("ckpt", "0"),
        ("dtype", "f32"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for a in &args[2..] {
        let (k, v) = a.split_once('=').ok_or_else(|| format!("'{a}': expected key=value"))?;
        if !opt.contains_key(k) {
            return Err(format!("unknown key '{k}'").into());
        }
        opt.insert(k.to_string(), v.to_string());
    }
    let num = |k: &str| -> usize { opt[k].parse().unwrap_or_else(|_| panic!("{k} must be a number")) };
    let phases: Vec<String> = opt["phases"].split(',').map(str::to_string).collect();
    let (batch, seq, prompt_len, new, reps) = (num("batch"), num("seq"), num("prompt"), num("new"), num("reps").max(1));
    let compute = match opt["dtype"].as_str() {
        "f32" => None,
        "bf16" => Some(FloatDType::BF16),
        other => return Err(format!("dtype '{other}': f32 or bf16").into()),
    };
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into());
    let mut out = Map::new();
    out.insert("impl".into(), "rlox".into());
    out.insert("threads".into(), threads.into());
    out.insert("dtype".into(), opt["dtype"].clone().into());

    let device = rlox_nn::cpu_device()?;
    let rss0 = rss_mib();
    let t = Instant::now();
    let model: CausalLm = load_model_with(&dir, &device, LoadOptions { compute })?;
    let load_s = t.elapsed().as_secs_f64();
    let vocab = model.config.vocab_size;
    out.insert(
        "load".into(),
        json!({"seconds": load_s, "rss_added_mib": rss_mib() - rss0, "peak_mib": peak_mib(),
               "params": rlox_nn::Module::num_params(&model)}),
    );

    if phases.iter().any(|p| p == "forward") {
        let ids: Vec<Vec<u32>> = (0..batch).map(|b| tokens(seq, vocab, b)).collect();
        let mut best = f64::MAX;
        for _ in 0..reps {
            let t = Instant::now();
            let logits = model.forward(&ForwardInput::dense(ids.clone()), None)?.logits;
            let _ = logits.narrow(1, seq - 1, 1).into_data();
            best = best.min(t.elapsed().as_secs_f64());
        }
        out.insert(
            "forward".into(),
            json!({"batch": batch, "seq": seq, "seconds": best, "tokens_per_s": (batch * seq) as f64 / best}),
        );
    }

    if phases.iter().any(|p| p == "generate") {
        let prompt = tokens(prompt_len, vocab, 0);
        let mut prefill = f64::MAX;
        for _ in 0..reps {
            let t = Instant::now();
            let _ = model.next_token_logits(&ForwardInput::dense(vec![prompt.clone()]), None)?.into_data();
            prefill = prefill.min(t.elapsed().as_secs_f64());
        }
        let cfg = GenerationConfig { max_new_tokens: new, ..Default::default() };
        let mut total = f64::MAX;
        let mut ids = Vec::new();
        for _ in 0..reps.min(2) {
            let t = Instant::now();
            let g = generate(&model, std::slice::from_ref(&prompt), &cfg, None)?;
            total = total.min(t.elapsed().as_secs_f64());
            ids = g[0].token_ids.clone();
        }
        // The first new token comes from the prefill; the other new - 1 from decode steps.
        let decode = (total - prefill).max(1e-9);
        out.insert(
            "generate".into(),
            json!({"prompt": prompt_len, "new": new, "prefill_seconds": prefill,
                   "prefill_tokens_per_s": prompt_len as f64 / prefill, "decode_seconds": decode,
                   "decode_tokens_per_s": (new - 1) as f64 / decode, "ids": ids}),
        );
    }

    if phases.iter().any(|p| p == "train") {
        drop(model);
        let tdev = rlox_nn::train_device(rlox_nn::DeviceKind::Cpu, 0)?;
        let mut model = load_model_with(&dir, &tdev, LoadOptions { compute })?;
        model.memory.gradient_checkpointing = num("ckpt") != 0;
        let ids: Vec<Vec<u32>> = (0..batch).map(|b| tokens(seq + 1, vocab, b)).collect();
        let inputs: Vec<Vec<u32>> = ids.iter().map(|r| r[..seq].to_vec()).collect();
        let targets: Vec<u32> = ids.iter().flat_map(|r| r[1..].to_vec()).collect();
        let base = rss_mib();
        let mut best = f64::MAX;
        let mut peak = 0.0f64;
        let mut loss_value = 0.0;
        for _ in 0..reps {
            reset_peak();
            let t = Instant::now();
            let hidden = model.hidden_states(&ForwardInput::dense(inputs.clone()), None)?.hidden;
            let h = hidden.dims()[2];
            let lp = model.token_logprobs(hidden.reshape([batch * seq, h]), &targets, 1.0)?;
            let loss = lp.mean().neg();
            let grads = rlox_nn::backward(&loss, &model);
            loss_value = loss.into_scalar::<f32>();
            best = best.min(t.elapsed().as_secs_f64());
            peak = peak.max(peak_mib());
            drop(grads);
        }
        out.insert(
            "train".into(),
            json!({"batch": batch, "seq": seq, "seconds": best, "tokens_per_s": (batch * seq) as f64 / best,
                   "gradient_checkpointing": model.memory.gradient_checkpointing, "loss": loss_value,
                   "rss_before_mib": base, "peak_mib": peak, "peak_over_model_mib": peak - base}),
        );
    }
    println!("{}", Value::Object(out));
    Ok(())
}
