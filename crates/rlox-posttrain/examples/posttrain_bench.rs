//! The rlox side of `bench/posttrain_trl.py`: parity values and timings on the batches that script
//! writes (`case.json`), printed as one JSON object.
//!
//! `cargo run --release -p rlox-posttrain --example posttrain_bench -- MODEL_DIR CASE.json [STEPS]`
//!
//! * `dpo_parity`: loss, TRL-named metrics and reference log-probs of step 0 on the case's pairs
//!   (token ids as TRL tokenised them), the policy being its own frozen reference.
//! * `grpo_parity`: per-token log-probs and the loss on the case's fixed rollout (token ids and
//!   advantages from the script) with `old = logp.detach()` and the reference = the initial model.
//! * `dpo_speed`, `grpo_speed`: seconds per optimizer step (median of STEPS after one warm-up step)
//!   and tokens per second, one thread; `peak_rss_mib`: the process's peak resident memory over the
//!   DPO steps (high-water mark reset before them).
//!
//! Optional case keys: `gradient_checkpointing` (the policy's `MemoryOptions`), `dpo_only` (DPO speed
//! and memory only; `memory_steps` steps, no warm-up), `grpo.speed_max_completion_length` and
//! `grpo.speed_beta` (the GRPO speed run's settings when they differ from the parity rollout's).

use rlox_nn::Module;
use rlox_posttrain::config::{DataConfig, Optimization, RunConfig};
use rlox_posttrain::datasets::PaddedBatch;
use rlox_posttrain::dpo::{Dpo, DpoConfig, TokenizedPair};
use rlox_posttrain::grpo::{GrpoConfig, GrpoTrainer};
use rlox_posttrain::logprobs::{completion_logps, mask_tensor, tensor2, to_f64};
use rlox_posttrain::losses::{grpo_aggregate, grpo_per_token_loss, GrpoLossSettings, GrpoLossType};
use rlox_posttrain::rewards::RewardSpec;
use rlox_posttrain::trainer::{optimizer_step, MethodKind};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Instant;

/// Large blocks on transparent huge pages (see `rlox_nn::alloc`), as rlox's binaries run.
#[global_allocator]
static ALLOC: rlox_nn::alloc::HugePageAlloc = rlox_nn::alloc::HugePageAlloc;

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().expect("array").iter().map(|x| x.as_u64().expect("id") as u32).collect()
}

fn status_mib(key: &str) -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> rlox_posttrain::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let model_dir = PathBuf::from(&args[1]);
    let case: Value = serde_json::from_str(&std::fs::read_to_string(&args[2]).expect("case.json")).expect("json");
    let steps: usize = args.get(3).map_or(5, |s| s.parse().expect("steps"));
    let device = rlox_nn::train_device(rlox_nn::DeviceKind::Cpu, 0)?;
    let tok = rlox_lm::LmTokenizer::from_dir(&model_dir)?;
    let mut out = serde_json::Map::new();

    // ---- DPO parity and speed
    let d = &case["dpo"];
    // TRL's collator cuts prompt + completion to `max_length` (keep_start); rlox's tokenizer does the
    // same with `dpo.max_length`, here applied to TRL's ids.
    let truncation = rlox_posttrain::datasets::Truncation {
        max_length: d["max_length"].as_u64().map(|n| n as usize),
        ..Default::default()
    };
    let pairs: Vec<TokenizedPair> = d["pairs"]
        .as_array()
        .expect("pairs")
        .iter()
        .map(|p| {
            let (mut prompt, mut chosen, mut rejected) = (ids(&p["prompt"]), ids(&p["chosen"]), ids(&p["rejected"]));
            let mut prompt_r = prompt.clone();
            truncation.apply(&mut prompt, &mut chosen);
            truncation.apply(&mut prompt_r, &mut rejected);
            TokenizedPair { prompt, chosen, rejected, margin: None }
        })
        .collect();
    if let Some(rows) = d["rows"].as_array() {
        let rows: Vec<rlox_posttrain::datasets::Row> =
            rows.iter().map(|r| r.as_object().expect("row").clone()).collect();
        let ds = rlox_posttrain::datasets::Dataset::from_rows(rows);
        let mine = rlox_posttrain::dpo::tokenize_preferences(&ds, &tok, &truncation)?;
        out.insert("tokenization_matches".into(), (mine == pairs).into());
    }
    let cfg = RunConfig {
        run: Default::default(),
        model: Default::default(),
        data: DataConfig::default(),
        optimization: Optimization::with_learning_rate(d["learning_rate"].as_f64().unwrap_or(1e-6)),
        method: DpoConfig {
            beta: d["beta"].as_f64().unwrap_or(0.1),
            per_device_train_batch_size: pairs.len(),
            ..Default::default()
        },
    };
    let mut model = rlox_lm::load_model(&model_dir, &device)?;
    model.memory.gradient_checkpointing = case["gradient_checkpointing"].as_bool().unwrap_or(false);
    let dpo = Dpo::new(&cfg, &model, None, pairs.clone(), Vec::new(), tok.pad_token_id)?;
    let all: Vec<usize> = (0..pairs.len()).collect();
    let mut opt = cfg.optimization.optimizer.build();
    if case["dpo_only"].as_bool().unwrap_or(false) {
        let steps = case["memory_steps"].as_u64().unwrap_or(1) as usize;
        let base = status_mib("VmRSS:");
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let t = Instant::now();
        let mut tokens = 0;
        for k in 0..steps {
            let (loss, st) = dpo.compute_loss(&model, &all)?;
            tokens = st.tokens;
            let lr = cfg.optimization.learning_rate;
            model = optimizer_step(model, &loss, &mut opt, lr, 1.0, MethodKind::Dpo, k as u64 + 1)?.0;
        }
        let s = t.elapsed().as_secs_f64() / steps as f64;
        out.insert(
            "dpo_speed".into(),
            json!({"seconds_per_step": s, "tokens_per_step": tokens, "peak_rss_mib": status_mib("VmHWM:"),
                   "rss_before_steps_mib": base,
                   "gradient_checkpointing": model.memory.gradient_checkpointing}),
        );
        println!("{}", Value::Object(out));
        return Ok(());
    }
    let (_, st) = dpo.compute_loss(&model, &all)?;
    let mut metrics = serde_json::Map::new();
    for (k, v) in st.metrics.named() {
        metrics.insert(k.to_string(), v.into());
    }
    out.insert(
        "dpo_parity".into(),
        json!({"loss": st.loss, "metrics": metrics, "ref_logps": st.ref_logps.iter().map(|(c, r)| vec![*c, *r]).collect::<Vec<_>>()}),
    );
    let mut times = Vec::new();
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    for k in 0..=steps {
        let t = Instant::now();
        let (loss, _) = dpo.compute_loss(&model, &all)?;
        let lr = cfg.optimization.learning_rate;
        model = optimizer_step(model, &loss, &mut opt, lr, 1.0, MethodKind::Dpo, k as u64 + 1)?.0;
        if k > 0 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    let s = median(times);
    out.insert(
        "dpo_speed".into(),
        json!({"seconds_per_step": s, "tokens_per_second": st.tokens as f64 / s, "tokens_per_step": st.tokens,
               "peak_rss_mib": status_mib("VmHWM:")}),
    );
    drop(dpo);

    // ---- GRPO parity on a fixed rollout
    let g = &case["grpo"];
    let prompts: Vec<Vec<u32>> = g["prompt_ids"].as_array().expect("prompt_ids").iter().map(ids).collect();
    let comps: Vec<Vec<u32>> = g["completion_ids"].as_array().expect("completion_ids").iter().map(ids).collect();
    let adv: Vec<f64> = g["advantages"].as_array().expect("advantages").iter().map(|x| x.as_f64().unwrap()).collect();
    let pairs_g: Vec<(Vec<u32>, Vec<u32>)> = prompts.iter().cloned().zip(comps.iter().cloned()).collect();
    let batch = PaddedBatch::new(&pairs_g, tok.pad_token_id);
    let model = rlox_lm::load_model(&model_dir, &device)?;
    let reference = model.valid();
    let temperature = g["temperature"].as_f64().unwrap_or(1.0);
    let logp = completion_logps(&model, &batch, &[], false, temperature)?;
    let refp = completion_logps(&reference, &batch, &[], false, temperature)?;
    let loss_type: GrpoLossType = serde_json::from_value(g["loss_type"].clone()).unwrap_or_default();
    let s = GrpoLossSettings {
        epsilon: g["epsilon"].as_f64().unwrap_or(0.2),
        epsilon_high: g["epsilon"].as_f64().unwrap_or(0.2),
        beta: g["beta"].as_f64().unwrap_or(0.0),
        loss_type,
        max_completion_length: g["max_completion_length"].as_u64().unwrap_or(batch.completion_len as u64) as usize,
    };
    let rows = adv.len();
    let (per_tok, _) =
        grpo_per_token_loss(logp.clone(), logp.clone().detach(), Some(refp.detach()), tensor2(&adv, rows, &device), &s);
    let loss = grpo_aggregate(per_tok, mask_tensor(&batch, &device), loss_type, s.max_completion_length, None);
    out.insert(
        "grpo_parity".into(),
        json!({"loss": loss.into_scalar::<f32>() as f64, "per_token_logps": to_f64(logp.detach()), "completion_len": batch.completion_len}),
    );

    // ---- GRPO speed: full steps (generation included) on the case's prompt texts
    let dir = std::env::temp_dir().join(format!("rlox-posttrain-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let data = dir.join("prompts.jsonl");
    let lines: String = g["prompt_texts"]
        .as_array()
        .expect("prompt_texts")
        .iter()
        .map(|p| json!({"prompt": p}).to_string() + "\n")
        .collect();
    std::fs::write(&data, lines).expect("write prompts");
    let gcfg = RunConfig {
        run: rlox_core::run::RunSettings { runs_dir: dir.join("runs"), total_steps: 1000, ..Default::default() },
        model: rlox_posttrain::model::ModelConfig { path: model_dir.clone(), init: None },
        data: DataConfig { train_file: data, ..Default::default() },
        optimization: Optimization::default(),
        method: GrpoConfig {
            reward_funcs: vec![RewardSpec::Length { weight: 1.0, free_chars: 10, coef: 1.0 }],
            num_generations: g["num_generations"].as_u64().unwrap_or(4) as usize,
            prompts_per_step: g["prompts_per_step"].as_u64().unwrap_or(2) as usize,
            max_completion_length: g["speed_max_completion_length"]
                .as_u64()
                .or(g["max_completion_length"].as_u64())
                .unwrap_or(48) as usize,
            ignore_eos: true,
            beta: g["speed_beta"].as_f64().unwrap_or(s.beta),
            write_rollouts: false,
            ..Default::default()
        },
    };
    let mut grpo = GrpoTrainer::new(&gcfg)?;
    let (mut gen_t, mut step_t) = (Vec::new(), Vec::new());
    let mut tokens = 0;
    for k in 0..=steps {
        let t = Instant::now();
        let idx: Vec<usize> = (0..gcfg.method.prompts_per_step).map(|i| i % grpo.method.prompts.len()).collect();
        let r = grpo.generate_and_score(&idx, k as u64)?;
        let b = grpo.rollout_batch(&r);
        let tg = t.elapsed().as_secs_f64();
        let (l, _) = grpo.compute_loss(&r, &b, None, None)?;
        let mut grads = rlox_nn::backward(&l, &grpo.model);
        rlox_nn::clip_grad_norm(&grpo.model, &mut grads, 1.0);
        let mut opt = rlox_nn::OptimizerConfig::adamw().build();
        grpo.model = opt.step(1e-6, grpo.model.clone(), grads);
        if k > 0 {
            gen_t.push(tg);
            step_t.push(t.elapsed().as_secs_f64());
            tokens = b.valid.iter().flatten().filter(|&&v| v).count();
        }
    }
    let s = median(step_t);
    out.insert(
        "grpo_speed".into(),
        json!({"seconds_per_step": s, "generation_seconds": median(gen_t), "tokens_per_second": tokens as f64 / s, "tokens_per_step": tokens}),
    );
    println!("{}", Value::Object(out));
    Ok(())
}
