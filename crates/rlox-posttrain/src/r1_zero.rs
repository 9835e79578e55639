//! The tiny R1-Zero: one call that builds a task set, trains a small model from scratch with an SFT
//! warm-up on a few worked examples (the `<think>`/`<answer>` format plus some solutions), then runs
//! GRPO with the format and accuracy rewards on problems the SFT set did not contain, evaluating greedy
//! completions of held-out problems along the way, and draws the curves.
//!
//! Layout of its directory (`<output_dir>/r1-zero-<timestamp>/`): `data/{sft,train,eval}.jsonl`, the SFT
//! run `sft-*/`, the GRPO run `grpo-*/` (metrics, rollouts, samples, greedy eval completions, checkpoints),
//! `plots/r1_zero.{png,svg}` and `summary.json` (SFT-model and final eval scores).

use crate::config::{DataConfig, Optimization, RunConfig};
use crate::grpo::{GrpoConfig, GrpoTrainer};
use crate::losses::{GrpoLossType, ScaleRewards};
use crate::model::{InitConfig, ModelConfig};
use crate::rewards::RewardSpec;
use crate::sft::{SftConfig, SftTrainer};
use crate::tasks::{generate_tasks, to_jsonl, TaskConfig, TaskKind};
use crate::{Error, Result};
use rlox_core::checkpoint::atomic_write;
use rlox_core::plot::{LineChart, Series};
use rlox_core::run::{RunDir, RunSettings};
use rlox_nn::OptimizerConfig;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::PathBuf;

/// Settings of the whole pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct R1ZeroConfig {
    /// Directory with the tokenizer files (tokenizer.json, tokenizer_config.json).
    pub tokenizer_dir: PathBuf,
    /// The model shape (trained from scratch).
    pub init: InitConfig,
    /// The task.
    pub task: TaskConfig,
    /// Worked examples for the SFT warm-up.
    pub sft_examples: usize,
    /// Further SFT examples that show only the format (`<think>47+3</think><answer>50</answer>`, see
    /// [`crate::tasks::format_only`]). With both kinds the SFT model sometimes works a problem out and
    /// sometimes answers at once; GRPO's reward tells it which pays, and its completions grow longer, the
    /// shift DeepSeek-R1-Zero reported. Default 0.
    pub sft_format_examples: usize,
    /// SFT optimizer steps.
    pub sft_steps: u64,
    /// SFT batch size.
    pub sft_batch_size: usize,
    /// SFT learning rate.
    pub sft_learning_rate: f64,
    /// GRPO training prompts (disjoint from the SFT examples and the eval set).
    pub train_prompts: usize,
    /// Held-out eval prompts.
    pub eval_prompts: usize,
    /// GRPO optimizer steps.
    pub grpo_steps: u64,
    /// Prompts per GRPO step.
    pub prompts_per_step: usize,
    /// Completions per prompt.
    pub num_generations: usize,
    /// GRPO learning rate.
    pub grpo_learning_rate: f64,
    /// Completion tokens at most.
    pub max_completion_length: usize,
    /// Sampling temperature.
    pub temperature: f32,
    /// GRPO KL coefficient.
    pub beta: f64,
    /// GRPO loss reduction.
    pub loss_type: GrpoLossType,
    /// Evaluate every this many GRPO steps.
    pub eval_steps: u64,
    /// Sampled completions per eval prompt besides the greedy one (`eval/sampled/*`, see
    /// [`GrpoConfig::eval_num_samples`]).
    pub eval_num_samples: usize,
    /// Seed.
    pub seed: u64,
    /// Where the run directory goes.
    pub output_dir: PathBuf,
}

impl Default for R1ZeroConfig {
    fn default() -> Self {
        R1ZeroConfig {
            tokenizer_dir: PathBuf::from("crates/rlox-lm/tests/fixtures/qwen2_tied"),
            init: InitConfig { hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, ..Default::default() },
            task: TaskConfig {
                kind: TaskKind::Arithmetic,
                num_operands: 2,
                max_operand: 9,
                max_later_operand: None,
                max_target: 100,
                operators: "+-".into(),
                steps: crate::tasks::StepStyle::Direct,
            },
            sft_examples: 40,
            sft_format_examples: 0,
            sft_steps: 150,
            sft_batch_size: 16,
            sft_learning_rate: 3e-3,
            train_prompts: 200,
            eval_prompts: 64,
            grpo_steps: 100,
            prompts_per_step: 8,
            num_generations: 8,
            grpo_learning_rate: 5e-4,
            max_completion_length: 40,
            temperature: 1.0,
            beta: 0.0,
            loss_type: GrpoLossType::Dapo,
            eval_steps: 10,
            eval_num_samples: 4,
            seed: 0,
            output_dir: PathBuf::from("runs"),
        }
    }
}

/// Split generated problems into disjoint SFT / train / eval sets (by prompt text).
fn split_tasks(
    c: &R1ZeroConfig,
) -> Result<(Vec<crate::datasets::Row>, Vec<crate::datasets::Row>, Vec<crate::datasets::Row>)> {
    let n_sft = c.sft_examples + c.sft_format_examples;
    let want = n_sft + c.train_prompts + c.eval_prompts;
    let pool = generate_tasks(&c.task, want * 20, c.seed);
    let mut seen = HashSet::new();
    let unique: Vec<_> =
        pool.into_iter().filter(|r| seen.insert(r["prompt"].as_str().unwrap_or("").to_string())).collect();
    if unique.len() < n_sft + c.eval_prompts + 1 {
        return Err(Error::invalid(
            "r1_zero.task",
            format!("only {} distinct problems; widen max_operand or use fewer examples", unique.len()),
        ));
    }
    let eval: Vec<_> = unique[..c.eval_prompts].to_vec();
    let sft: Vec<_> = unique[c.eval_prompts..c.eval_prompts + n_sft]
        .iter()
        .enumerate()
        .map(|(i, r)| if i < c.sft_examples { r.clone() } else { crate::tasks::format_only(r) })
        .collect();
    let rest = &unique[c.eval_prompts + n_sft..];
    let train: Vec<_> = rest[..rest.len().min(c.train_prompts)].to_vec();
    Ok((sft, train, eval))
}

/// The rows of a `metrics.jsonl` (unreadable lines skipped: the chart is a convenience).
fn read_metrics(metrics: &std::path::Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(metrics).unwrap_or_default();
    text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// `(step, value)` of every row that has metric `name`.
fn series(rows: &[serde_json::Value], name: &str) -> Vec<(f64, f64)> {
    rows.iter().filter_map(|v| Some((v.get("step")?.as_f64()?, v.get(name)?.as_f64()?))).collect()
}

/// Trailing mean over `window` points: one GRPO step scores only 64 completions, too noisy to read.
fn trailing_mean(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    (0..points.len())
        .map(|i| {
            let w = &points[(i + 1).saturating_sub(window)..=i];
            (points[i].0, w.iter().map(|p| p.1).sum::<f64>() / w.len() as f64)
        })
        .collect()
}

/// Draw the curves of a GRPO run's `metrics.jsonl` (held-out format and accuracy, greedy and sampled;
/// training format and accuracy as trailing means) into `<plots_dir>/r1_zero.{png,svg}`; returns the
/// PNG's path. `examples/r1_zero_plot.rs` redraws a finished run with it.
pub fn draw_curves(metrics: &std::path::Path, kind: TaskKind, plots_dir: &std::path::Path) -> Result<PathBuf> {
    let acc_name = match kind {
        TaskKind::Arithmetic => "accuracy",
        TaskKind::Countdown => "countdown",
    };
    let rows = read_metrics(metrics);
    let chart = LineChart {
        title: format!("tiny R1-Zero ({kind:?}): GRPO after an SFT warm-up").to_lowercase(),
        x_label: "GRPO step".into(),
        y_label: "score".into(),
        series: vec![
            Series { name: "eval format (greedy, held-out)".into(), points: series(&rows, "eval/format") },
            Series {
                name: format!("eval {acc_name} (greedy, held-out)"),
                points: series(&rows, &format!("eval/{acc_name}")),
            },
            Series {
                name: format!("eval {acc_name} (sampled, held-out)"),
                points: series(&rows, &format!("eval/sampled/{acc_name}")),
            },
            Series {
                name: "train format (sampled, 25-step mean)".into(),
                points: trailing_mean(&series(&rows, "rewards/format/mean"), 25),
            },
            Series {
                name: format!("train {acc_name} (sampled, 25-step mean)"),
                points: trailing_mean(&series(&rows, &format!("rewards/{acc_name}/mean")), 25),
            },
        ],
    };
    for ext in ["png", "svg"] {
        chart.draw(&plots_dir.join(format!("r1_zero.{ext}")), 900, 500)?;
    }
    Ok(plots_dir.join("r1_zero.png"))
}

/// Run the whole pipeline; returns the summary.
pub fn run_r1_zero(c: &R1ZeroConfig, max_steps: Option<u64>) -> Result<serde_json::Value> {
    let dir = RunDir::create(&c.output_dir, "r1-zero")?;
    dir.write_config(c)?;
    let (sft_rows, train_rows, eval_rows) = split_tasks(c)?;
    let data = dir.path().join("data");
    for (name, rows) in [("sft", &sft_rows), ("train", &train_rows), ("eval", &eval_rows)] {
        atomic_write(data.join(format!("{name}.jsonl")), to_jsonl(rows).as_bytes())?;
    }
    let adamw = OptimizerConfig::AdamW { beta1: 0.9, beta2: 0.99, eps: 1e-8, weight_decay: 0.0 };
    let run = |name: &str, total_steps: u64, eval_every: u64, log_every: u64| RunSettings {
        name: name.into(),
        seed: c.seed,
        runs_dir: dir.path().to_path_buf(),
        total_steps,
        eval_every,
        log_every,
        ..Default::default()
    };
    let sft = RunConfig {
        run: run("sft", c.sft_steps, 0, 10),
        model: ModelConfig { path: c.tokenizer_dir.clone(), init: Some(c.init.clone()) },
        data: DataConfig { train_file: data.join("sft.jsonl"), ..Default::default() },
        optimization: Optimization {
            learning_rate: c.sft_learning_rate,
            warmup_steps: 10,
            optimizer: adamw,
            ..Default::default()
        },
        method: SftConfig {
            max_length: Some(c.init.max_position_embeddings),
            per_device_train_batch_size: c.sft_batch_size,
            ..Default::default()
        },
    };
    let sft_summary = SftTrainer::new(&sft)?.train()?;
    let sft_ckpt = PathBuf::from(sft_summary["checkpoint"].as_str().unwrap_or_default());
    let reward_funcs = match c.task.kind {
        TaskKind::Arithmetic => vec![RewardSpec::Format { weight: 1.0 }, RewardSpec::Arithmetic { weight: 1.0 }],
        TaskKind::Countdown => vec![RewardSpec::Format { weight: 1.0 }, RewardSpec::Countdown { weight: 1.0 }],
    };
    let grpo = RunConfig {
        run: run("grpo", max_steps.unwrap_or(c.grpo_steps), c.eval_steps, 1),
        model: ModelConfig { path: sft_ckpt, init: None },
        data: DataConfig {
            train_file: data.join("train.jsonl"),
            eval_file: Some(data.join("eval.jsonl")),
            ..Default::default()
        },
        optimization: Optimization {
            learning_rate: c.grpo_learning_rate,
            constant_lr: true,
            optimizer: adamw,
            ..Default::default()
        },
        method: GrpoConfig {
            eval_num_samples: c.eval_num_samples,
            reward_funcs,
            num_generations: c.num_generations,
            prompts_per_step: c.prompts_per_step,
            max_prompt_length: None,
            max_completion_length: c.max_completion_length,
            temperature: c.temperature,
            beta: c.beta,
            scale_rewards: ScaleRewards::Group,
            loss_type: c.loss_type,
            ..Default::default()
        },
    };
    let grpo_summary = GrpoTrainer::new(&grpo)?.train()?;
    let grpo_dir = PathBuf::from(grpo_summary["run_dir"].as_str().unwrap_or_default());
    let plot = draw_curves(&grpo_dir.join("metrics.jsonl"), c.task.kind, &dir.path().join("plots"))?;
    let summary = serde_json::json!({
        "method": "r1-zero",
        "run_dir": dir.path().display().to_string(),
        "task": c.task.kind,
        "sft": sft_summary,
        "grpo": grpo_summary,
        "sft_model_eval": grpo_summary["eval_first"],
        "final_eval": grpo_summary["eval_final"],
        "plot": plot.display().to_string(),
    });
    dir.write_summary(&summary)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_disjoint_and_mixes_format_only_examples() {
        let c = R1ZeroConfig {
            task: TaskConfig { max_operand: 99, max_later_operand: Some(3), ..R1ZeroConfig::default().task },
            sft_examples: 30,
            sft_format_examples: 20,
            train_prompts: 100,
            eval_prompts: 40,
            ..Default::default()
        };
        let (sft, train, eval) = split_tasks(&c).unwrap();
        assert_eq!((sft.len(), train.len(), eval.len()), (50, 100, 40));
        let prompts = |rows: &[crate::datasets::Row]| -> HashSet<String> {
            rows.iter().map(|r| r["prompt"].as_str().unwrap().to_string()).collect()
        };
        let (s, t, e) = (prompts(&sft), prompts(&train), prompts(&eval));
        assert!(s.is_disjoint(&t) && s.is_disjoint(&e) && t.is_disjoint(&e));
        let worked = sft.iter().filter(|r| r["completion"].as_str().unwrap().contains('=')).count();
        assert_eq!(worked, 30, "the first sft_examples keep their worked steps");
        // Later operands stay within max_later_operand.
        for r in sft.iter().chain(&train).chain(&eval) {
            let expr = r["prompt"].as_str().unwrap().trim_start_matches("Compute ").trim_end_matches('.');
            let b: i64 = expr[1..].split(['+', '-']).nth(1).unwrap().parse().unwrap();
            assert!((1..=3).contains(&b), "{expr}");
        }
        let smoothed = trailing_mean(&[(1.0, 0.0), (2.0, 1.0), (3.0, 2.0)], 2);
        assert_eq!(smoothed, vec![(1.0, 0.0), (2.0, 0.5), (3.0, 1.5)]);
        // Too few distinct problems is an error naming the task.
        let small = R1ZeroConfig { task: TaskConfig { max_operand: 3, ..c.task.clone() }, ..c };
        let err = split_tasks(&small).unwrap_err().to_string();
        assert!(err.contains("r1_zero.task"), "{err}");
    }
}
