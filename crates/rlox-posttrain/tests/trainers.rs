//! The trainers on the tiny Qwen2 fixture of rlox-lm: step-0 identities, learning on a few steps, the
//! run directory's contents, and bad input.

use rlox_posttrain::common::ModelConfig;
use rlox_posttrain::datasets::{Dataset, Text, Truncation};
use rlox_posttrain::dpo::{tokenize_preferences, DpoConfig, DpoTrainer};
use rlox_posttrain::grpo::{GrpoConfig, GrpoTrainer};
use rlox_posttrain::losses::DpoLossType;
use rlox_posttrain::reward_model::{RewardConfig, RewardTrainer};
use rlox_posttrain::rewards::RewardSpec;
use rlox_posttrain::sft::{SftConfig, SftTrainer};
use std::path::{Path, PathBuf};

/// A fresh empty directory under the system temp dir (no `tempfile` dev-dependency: it would change
/// the feature set of shared dependencies and force a rebuild of burn for the tests).
fn tempdir() -> TmpDir {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let p = std::env::temp_dir().join(format!(
        "rlox-posttrain-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    TmpDir(p)
}

struct TmpDir(PathBuf);

impl TmpDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../rlox-lm/tests/fixtures/qwen2_tied")
}

fn write(dir: &Path, name: &str, lines: &[serde_json::Value]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, lines.iter().map(|l| l.to_string() + "\n").collect::<String>()).unwrap();
    p
}

fn prefs(dir: &Path) -> PathBuf {
    let rows: Vec<serde_json::Value> = (0..8)
        .map(|i| {
            serde_json::json!({
                "prompt": format!("Compute {i}+1."),
                "chosen": format!("<answer>{}</answer>", i + 1),
                "rejected": format!("no idea {i}"),
            })
        })
        .collect();
    write(dir, "prefs.jsonl", &rows)
}

fn dpo_config(dir: &Path, train: PathBuf) -> DpoConfig {
    DpoConfig {
        model: ModelConfig { path: fixture(), init: None },
        train_file: train,
        learning_rate: 1e-3,
        max_steps: 8,
        per_device_train_batch_size: 4,
        logging_steps: 1,
        output_dir: dir.join("runs"),
        ..Default::default()
    }
}

#[test]
fn dpo_starts_at_ln2_and_learns() {
    let dir = tempdir();
    let cfg = dpo_config(dir.path(), prefs(dir.path()));
    let mut t = DpoTrainer::new(&cfg).unwrap();
    let (_, s0) = t.compute_loss(&[0, 1, 2, 3]).unwrap();
    // The policy is its own reference at step 0: h = 0, loss = ln 2, implicit rewards 0.
    assert!((s0.loss - std::f64::consts::LN_2).abs() < 1e-6, "{}", s0.loss);
    assert!(s0.metrics.rewards_chosen.abs() < 1e-6 && s0.metrics.rewards_margins.abs() < 1e-6);
    assert!((s0.metrics.logps_chosen - s0.ref_logps.iter().map(|p| p.0).sum::<f64>() / 4.0).abs() < 1e-4);
    let summary = t.train().unwrap();
    let (_, s1) = t.compute_loss(&[0, 1, 2, 3]).unwrap();
    assert!(s1.loss < s0.loss - 0.05, "loss {} -> {}", s0.loss, s1.loss);
    assert!(s1.metrics.rewards_margins > 0.0);
    let run = PathBuf::from(summary["run_dir"].as_str().unwrap());
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    for name in [
        "rewards/chosen",
        "rewards/rejected",
        "rewards/accuracies",
        "rewards/margins",
        "logps/chosen",
        "logps/rejected",
    ] {
        assert!(metrics.contains(&format!("\"{name}\"")), "{name} missing");
    }
    let ckpt = run.join("checkpoints/final");
    assert!(ckpt.join("model.safetensors").exists() && ckpt.join("tokenizer.json").exists());
    let reloaded = rlox_lm::load_model(&ckpt, &rlox_nn::cpu_device().unwrap()).unwrap();
    assert_eq!(reloaded.config.vocab_size, 300);
}

#[test]
fn dpo_loss_types_and_precomputed_reference() {
    let dir = tempdir();
    let train = prefs(dir.path());
    let live = DpoTrainer::new(&dpo_config(dir.path(), train.clone())).unwrap();
    let pre = DpoTrainer::new(&DpoConfig { precompute_ref_log_probs: true, ..dpo_config(dir.path(), train.clone()) })
        .unwrap();
    let (_, a) = live.compute_loss(&[1, 2]).unwrap();
    let (_, b) = pre.compute_loss(&[1, 2]).unwrap();
    for (x, y) in a.ref_logps.iter().zip(&b.ref_logps) {
        assert!((x.0 - y.0).abs() < 1e-4 && (x.1 - y.1).abs() < 1e-4);
    }
    for (ty, want) in
        [(DpoLossType::Hinge, 1.0), (DpoLossType::Ipo, 25.0), (DpoLossType::Robust, std::f64::consts::LN_2)]
    {
        let t = DpoTrainer::new(&DpoConfig {
            loss_type: ty,
            label_smoothing: 0.1,
            ..dpo_config(dir.path(), train.clone())
        })
        .unwrap();
        let (_, s) = t.compute_loss(&[0, 1]).unwrap();
        // At step 0 (h = 0): hinge 1, IPO (1/(2 beta))^2 = 25, robust ln 2.
        assert!((s.loss - want).abs() < 1e-4, "{ty:?}: {}", s.loss);
    }
}

#[test]
fn grpo_trains_and_writes_rollouts() {
    let dir = tempdir();
    let rows: Vec<serde_json::Value> = (0..4)
        .map(|i| serde_json::json!({"prompt": format!("Compute {i}+2."), "answer": format!("{}", i + 2)}))
        .collect();
    let train = write(dir.path(), "prompts.jsonl", &rows);
    let cfg = GrpoConfig {
        model: ModelConfig { path: fixture(), init: None },
        train_file: train.clone(),
        eval_file: Some(train.clone()),
        eval_num_samples: 3,
        reward_funcs: vec![
            RewardSpec::Format { weight: 1.0 },
            RewardSpec::Arithmetic { weight: 1.0 },
            RewardSpec::Length { weight: 1.0, free_chars: 5, coef: 1.0 },
        ],
        num_generations: 4,
        prompts_per_step: 2,
        max_completion_length: 8,
        beta: 0.04,
        num_iterations: 2,
        mask_truncated_completions: false,
        learning_rate: 1e-3,
        max_steps: 4,
        output_dir: dir.path().join("runs"),
        ..Default::default()
    };
    let mut t = GrpoTrainer::new(&cfg).unwrap();
    assert!(t.has_reference());
    let summary = t.train().unwrap();
    let run = PathBuf::from(summary["run_dir"].as_str().unwrap());
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    for name in [
        "reward",
        "reward_std",
        "rewards/format/mean",
        "rewards/accuracy/mean",
        "rewards/length/mean",
        "frac_reward_zero_std",
        "completions/mean_length",
        "kl",
        "clip_ratio/region_mean",
        "eval/reward",
        "eval/accuracy",
        "eval/sampled/reward",
        "eval/sampled/accuracy",
    ] {
        assert!(metrics.contains(&format!("\"{name}\"")), "{name} missing from metrics.jsonl");
    }
    let (names, groups) = rlox_data::read::read_rollouts(run.join("rollouts")).unwrap();
    assert_eq!(names, vec!["format", "accuracy", "length"]);
    assert_eq!(groups.len(), 2 * 2, "two generation rounds of two prompts");
    assert!(groups.iter().all(|g| g.completions.len() == 4));
    assert!(std::fs::read_to_string(run.join("samples.jsonl")).unwrap().contains("\"completion\""));
    // Greedy eval completions: one row per eval prompt at the first and the last evaluation, with each
    // function's score; the logged eval/accuracy is their mean.
    let evals: Vec<serde_json::Value> = std::fs::read_to_string(run.join("eval_samples.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(evals.len(), 2 * rows.len());
    let last: Vec<&serde_json::Value> = evals.iter().filter(|r| r["step"] == 4).collect();
    assert_eq!(last.len(), rows.len());
    let mean = last.iter().map(|r| r["accuracy"].as_f64().unwrap()).sum::<f64>() / last.len() as f64;
    assert_eq!(summary["eval_final"]["eval/accuracy"].as_f64().unwrap(), mean);
    assert!(last.iter().all(|r| r["completion"].is_string() && r["format"].is_number()));
    // The length penalty is always negative for 8-token completions longer than 5 chars; the KL after
    // updates is positive.
    let kl: Vec<f64> = metrics
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?.get("kl")?.as_f64())
        .collect();
    assert!(kl.last().copied().unwrap_or(0.0) > 0.0, "{kl:?}");
    // beta = 0: no reference model.
    let t0 = GrpoTrainer::new(&GrpoConfig { beta: 0.0, ..cfg.clone() }).unwrap();
    assert!(!t0.has_reference());
    // mask_truncated_completions: completions that hit the length limit carry no loss.
    let tm =
        GrpoTrainer::new(&GrpoConfig { beta: 0.0, mask_truncated_completions: true, ignore_eos: true, ..cfg }).unwrap();
    let r = tm.generate_and_score(&[0], 1).unwrap();
    assert!(r.terminated.iter().all(|t| !t));
    let b = tm.rollout_batch(&r);
    assert!(b.completion_mask.iter().flatten().all(|&m| m == 0.0));
}

#[test]
fn sft_from_scratch_and_reward_model_learn() {
    let dir = tempdir();
    let rows: Vec<serde_json::Value> = (0..8)
        .map(|i| serde_json::json!({"prompt": format!("Compute {i}+1."), "completion": format!("<answer>{}</answer>", i + 1)}))
        .collect();
    let train = write(dir.path(), "sft.jsonl", &rows);
    let cfg = SftConfig {
        model: ModelConfig { path: fixture(), init: Some(Default::default()) },
        train_file: train.clone(),
        learning_rate: 3e-3,
        max_steps: 30,
        per_device_train_batch_size: 8,
        logging_steps: 1,
        output_dir: dir.path().join("runs"),
        ..Default::default()
    };
    let mut t = SftTrainer::new(&cfg).unwrap();
    // Completion-only loss: the prompt's tokens carry none.
    let s = &t.seqs[0];
    let ds = Dataset::load(&train).unwrap();
    let tok = rlox_lm::LmTokenizer::from_dir(fixture()).unwrap();
    let (p, _) = rlox_posttrain::datasets::tokenize_pair(
        &tok,
        &Text::Plain("Compute 0+1.".into()),
        &Text::Plain("<answer>1</answer>".into()),
        &Truncation::default(),
        "row 0",
        "completion",
    )
    .unwrap();
    assert!(ds.len() == 8 && s.loss[..p.len()].iter().all(|&l| !l) && s.loss[p.len()..].iter().all(|&l| l));
    let summary = t.train().unwrap();
    let run = PathBuf::from(summary["run_dir"].as_str().unwrap());
    let losses: Vec<f64> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?.get("loss")?.as_f64())
        .collect();
    assert!(losses.last().unwrap() < &(losses[0] * 0.5), "{losses:?}");

    let rm = RewardConfig {
        model: ModelConfig { path: fixture(), init: None },
        train_file: prefs(dir.path()),
        center_rewards_coefficient: Some(0.01),
        learning_rate: 1e-3,
        max_steps: 10,
        logging_steps: 1,
        output_dir: dir.path().join("runs"),
        ..Default::default()
    };
    let s = RewardTrainer::new(&rm).unwrap().train().unwrap();
    assert!(s["accuracy"].as_f64().unwrap() >= 0.75, "{s}");
    assert!(PathBuf::from(s["checkpoint"].as_str().unwrap()).join("score.safetensors").exists());
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempdir();
    let tok = rlox_lm::LmTokenizer::from_dir(fixture()).unwrap();
    // A row missing a column: the file, line and column are named.
    let p = write(
        dir.path(),
        "d.jsonl",
        &[
            serde_json::json!({"prompt": "a", "chosen": "b", "rejected": "c"}),
            serde_json::json!({"prompt": "a", "chosen": "b"}),
        ],
    );
    let e = tokenize_preferences(&Dataset::load(&p).unwrap(), &tok, &Truncation::default()).unwrap_err().to_string();
    assert!(e.contains("d.jsonl:2") && e.contains("`rejected`"), "{e}");
    // An empty completion.
    let p = write(dir.path(), "e.jsonl", &[serde_json::json!({"prompt": "a", "chosen": "", "rejected": "c"})]);
    let e = tokenize_preferences(&Dataset::load(&p).unwrap(), &tok, &Truncation::default()).unwrap_err().to_string();
    assert!(e.contains("e.jsonl:1") && e.contains("empty completion") && e.contains("`chosen`"), "{e}");
    // A conversational row with a tokenizer that has no chat template.
    let bare = rlox_lm::LmTokenizer::from_file(fixture().join("tokenizer.json")).unwrap();
    let msgs = |c: &str| serde_json::json!([{"role": "user", "content": "hi"}, {"role": "assistant", "content": c}]);
    let p = write(dir.path(), "c.jsonl", &[serde_json::json!({"chosen": msgs("yes"), "rejected": msgs("no")})]);
    let e = tokenize_preferences(&Dataset::load(&p).unwrap(), &bare, &Truncation::default()).unwrap_err().to_string();
    assert!(e.contains("c.jsonl:1") && e.contains("chat template"), "{e}");
    // The same row with the template works, with the implicit prompt (the shared user turn).
    let ok = tokenize_preferences(&Dataset::load(&p).unwrap(), &tok, &Truncation::default()).unwrap();
    assert_eq!(tok.decode(&ok[0].chosen, false).unwrap(), "yes<|im_end|>\n");
    // A GRPO dataset missing the column a reward function needs.
    let train = write(dir.path(), "g.jsonl", &[serde_json::json!({"prompt": "Compute 1+1."})]);
    let cfg = GrpoConfig {
        model: ModelConfig { path: fixture(), init: None },
        train_file: train,
        reward_funcs: vec![RewardSpec::Arithmetic { weight: 1.0 }],
        num_generations: 2,
        output_dir: dir.path().join("runs"),
        ..Default::default()
    };
    let e = GrpoTrainer::new(&cfg).err().unwrap().to_string();
    assert!(e.contains("g.jsonl:1") && e.contains("`answer`"), "{e}");
}

#[test]
fn parquet_datasets_read_like_jsonl() {
    let dir = tempdir();
    let rows =
        vec![rlox_data::records::Preference { prompt: "p ".into(), chosen: "yes".into(), rejected: "no".into() }];
    let batch = rlox_data::records::preferences_to_batch(&rows).unwrap();
    let path = dir.path().join("prefs.parquet");
    rlox_data::write::write_parquet(&path, batch.schema(), &[batch], &Default::default()).unwrap();
    let ds = Dataset::load(&path).unwrap();
    assert_eq!(ds.rows[0]["chosen"], "yes");
    assert!(ds.locations[0].ends_with("prefs.parquet row 0"));
    let e = ds.get(0, "margin").unwrap_err().to_string();
    assert!(e.contains("row 0") && e.contains("`margin`"), "{e}");
}

/// The whole tiny R1-Zero pipeline, a few steps of each stage: the run directory holds the data split,
/// both runs, the plot and a summary whose SFT-model eval is the GRPO run's first evaluation.
#[test]
fn r1_zero_pipeline_writes_its_run_directory() {
    use rlox_posttrain::common::InitConfig;
    use rlox_posttrain::r1_zero::{run_r1_zero, R1ZeroConfig};
    use rlox_posttrain::tasks::{StepStyle, TaskConfig, TaskKind};
    let dir = tempdir();
    let c = R1ZeroConfig {
        tokenizer_dir: fixture(),
        init: InitConfig { hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, ..Default::default() },
        task: TaskConfig {
            kind: TaskKind::Arithmetic,
            num_operands: 2,
            max_operand: 99,
            max_later_operand: Some(3),
            operators: "+-".into(),
            steps: StepStyle::Counting,
            ..Default::default()
        },
        sft_examples: 6,
        sft_format_examples: 4,
        sft_steps: 3,
        train_prompts: 8,
        eval_prompts: 5,
        grpo_steps: 2,
        prompts_per_step: 2,
        num_generations: 2,
        max_completion_length: 12,
        eval_steps: 1,
        eval_num_samples: 2,
        output_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    let summary = run_r1_zero(&c, None).unwrap();
    let run = PathBuf::from(summary["run_dir"].as_str().unwrap());
    let lines = |p: PathBuf| std::fs::read_to_string(p).unwrap().lines().count();
    assert_eq!(lines(run.join("data/sft.jsonl")), 10);
    assert_eq!(lines(run.join("data/train.jsonl")), 8);
    assert_eq!(lines(run.join("data/eval.jsonl")), 5);
    assert!(run.join("plots/r1_zero.png").is_file() && run.join("summary.json").is_file());
    assert_eq!(summary["grpo"]["steps"], 2);
    assert_eq!(summary["sft_model_eval"], summary["grpo"]["eval_first"]);
    for key in ["eval/format", "eval/accuracy", "eval/sampled/format", "eval/sampled/accuracy"] {
        let v = summary["final_eval"][key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{key} = {v}");
    }
}

/// The README's tiny R1-Zero (`configs/r1_zero_tiny.toml`), end to end: about 15 minutes on one core, so
/// ignored by default (`cargo test --workspace --release --test trainers -- --ignored`,
/// the workspace's feature set, so burn is not rebuilt). Seeded;
/// the margins are below what seeds 0 and 1 gave on this machine (sampled held-out accuracy 0.3175 ->
/// 0.5075 and 0.20 -> 0.4925): GRPO must raise the accuracy of the sampled policy on problems it never
/// trained on by at least 10 points and 1.3x, and keep the format reward near 1.
#[test]
#[ignore = "long training (about 15 minutes)"]
fn tiny_r1_zero_raises_held_out_accuracy() {
    use rlox_posttrain::r1_zero::{run_r1_zero, R1ZeroConfig};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut c: R1ZeroConfig = rlox_core::config::load_toml(root.join("configs/r1_zero_tiny.toml")).unwrap();
    let dir = tempdir();
    c.tokenizer_dir = fixture();
    c.output_dir = dir.path().to_path_buf();
    let s = run_r1_zero(&c, None).unwrap();
    let metric = |which: &str, key: &str| s[which][key].as_f64().unwrap();
    let (before, after) =
        (metric("sft_model_eval", "eval/sampled/accuracy"), metric("final_eval", "eval/sampled/accuracy"));
    assert!(after >= before + 0.10 && after >= 1.3 * before, "sampled held-out accuracy {before} -> {after}");
    assert!(metric("final_eval", "eval/accuracy") >= metric("sft_model_eval", "eval/accuracy") - 0.05);
    assert!(metric("final_eval", "eval/format") >= 0.95 && metric("final_eval", "eval/sampled/format") >= 0.95);
}
