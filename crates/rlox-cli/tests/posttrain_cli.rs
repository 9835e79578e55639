//! `rlox dpo` end to end with a config written in TRL's vocabulary, a dataset found by its Hub id in
//! the local Hugging Face cache, and the errors a new user meets first.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn rlox(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rlox"));
    c.args(args).current_dir(repo());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("the rlox binary runs")
}

#[test]
fn a_trl_named_dpo_config_runs_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    // A cached Hub dataset: `dataset_name = "org/prefs"` resolves to its snapshot's train split.
    let hub = dir.path().join("hub");
    let snapshot = hub.join("datasets--org--prefs/snapshots/0123abc");
    std::fs::create_dir_all(snapshot.join("data")).unwrap();
    std::fs::create_dir_all(hub.join("datasets--org--prefs/refs")).unwrap();
    std::fs::write(hub.join("datasets--org--prefs/refs/main"), "0123abc").unwrap();
    std::fs::copy(repo().join("configs/data/prefs_tiny.jsonl"), snapshot.join("data/train-00000-of-00001.jsonl"))
        .unwrap();
    let runs = dir.path().join("runs");
    let config = dir.path().join("dpo_trl.toml");
    std::fs::write(
        &config,
        format!(
            r#"# Keys as TRL's DPOConfig / ScriptArguments / ModelConfig spell them.
model_name_or_path = "crates/rlox-lm/tests/fixtures/qwen2_tied"
dataset_name = "org/prefs"
dataset_train_split = "train"
beta = 0.1
loss_type = "sigmoid"
learning_rate = 5e-4
lr_scheduler_type = "constant_with_warmup"
warmup_ratio = 0.5
optim = "adamw_torch"
adam_beta1 = 0.9
adam_beta2 = 0.999
adam_epsilon = 1e-8
weight_decay = 0.0
gradient_accumulation_steps = 1
per_device_train_batch_size = 4
max_length = 128
max_steps = 2
logging_steps = 1
seed = 42
output_dir = "{}"
run_name = "dpo-trl"
"#,
            runs.display()
        ),
    )
    .unwrap();
    let out = rlox(&["dpo", "--config", config.to_str().unwrap(), "--format", "json"], &[("HF_HUB_CACHE", &hub)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_str(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
    let run = PathBuf::from(summary["run_dir"].as_str().expect("run_dir in the summary"));
    // The resolved config says what the TRL names meant.
    let resolved = std::fs::read_to_string(run.join("config.toml")).unwrap();
    let v: toml::Table = toml::from_str(&resolved).unwrap();
    assert_eq!(v["model"]["path"].as_str(), Some("crates/rlox-lm/tests/fixtures/qwen2_tied"));
    assert_eq!(v["train_file"].as_str(), Some("org/prefs"));
    assert_eq!(v["constant_lr"].as_bool(), Some(true));
    assert_eq!(v["warmup_steps"].as_integer(), Some(1));
    assert_eq!(v["optimizer"]["kind"].as_str(), Some("adamw"));
    assert_eq!(v["optimizer"]["weight_decay"].as_float(), Some(0.0));
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert!(metrics.contains("rewards/margins"), "{metrics}");

    // A TRL key whose meaning rlox does not have is still an error naming the key and its line.
    std::fs::write(&config, "model_name_or_path = \"x\"\ngradient_checkpointing = true\n").unwrap();
    let out = rlox(&["dpo", "--config", config.to_str().unwrap()], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("gradient_checkpointing") && err.contains("line 2"), "{err}");
}

#[test]
fn missing_fields_and_files_are_named_once() {
    // An empty config: the first missing required key, not a tokenizer file deep inside.
    let out = rlox(&["dpo", "--config", "/dev/null"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && !err.contains("panicked"), "{err}");
    assert!(err.contains("/dev/null") && err.contains("missing required key `model_name_or_path"), "{err}");
    assert!(!err.contains("tokenizer.json"), "{err}");
    // A dataset that is neither a path nor cached says where it looked and that rlox does not download.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        "model_name_or_path = \"crates/rlox-lm/tests/fixtures/qwen2_tied\"\ndataset_name = \"nobody/nothing\"\n",
    )
    .unwrap();
    let out = rlox(&["dpo", "--config", config.to_str().unwrap()], &[("HF_HUB_CACHE", dir.path())]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nobody/nothing") && err.contains("does not download"), "{err}");
    // A missing file: the OS message once, with the path.
    let out = rlox(&["dpo", "--config", "/no/such/dir/dpo.toml"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/no/such/dir/dpo.toml"), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}
