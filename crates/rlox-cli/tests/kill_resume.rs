//! Fault tests of the one resume path, for every deep-RL trainer (DQN, REINFORCE, A2C, PPO, DDPG, TD3,
//! SAC): start `rlox train`, SIGKILL it at seeded random moments after its first checkpoint, resume with
//! `rlox train --resume RUN_DIR`, and compare with an uninterrupted run of the same seed: the metrics
//! (wall-clock ones aside) and the final weights must be identical, bit for bit. Also: a kill during a
//! checkpoint write leaves the previous checkpoint loadable, and a truncated or corrupted checkpoint is
//! a clear error naming the file (never a panic, never silently a fresh run).
#![cfg(unix)]

use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn rlox(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rlox")).args(args).output().expect("the rlox binary runs")
}

fn json_ok(args: &[&str]) -> Value {
    let out = rlox(args);
    assert!(out.status.success(), "rlox {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(String::from_utf8(out.stdout).unwrap().trim()).unwrap()
}

/// A config long enough to be killed in the middle (about a second or two), checkpointing often.
fn config(dir: &Path, algo: &str) -> PathBuf {
    let (env, steps, table) = match algo {
        "dqn" => {
            ("CartPole-v1", 4000, "learning_starts = 300\ntrain_freq = 64\ngradient_steps = 32\nnet_arch = [64, 64]\n")
        }
        "reinforce" => ("CartPole-v1", 6000, "n_envs = 4\n"),
        "a2c" => ("CartPole-v1", 6000, ""),
        "ppo" => ("CartPole-v1", 6144, "n_epochs = 4\nbatch_size = 64\n"),
        "ddpg" | "td3" => ("Pendulum-v1", 1500, "learning_starts = 200\nbatch_size = 64\nnet_arch = [64, 64]\n"),
        _ => ("Pendulum-v1", 1200, "learning_starts = 200\nbatch_size = 64\nnet_arch = [64, 64]\n"),
    };
    let text = format!(
        "seed = 7\nprogress = false\ntotal_steps = {steps}\neval_every = 500\neval_episodes = 2\ncheckpoint_every = 100\n\
         algo = \"{algo}\"\n\n[env]\nid = \"{env}\"\n\n[{algo}]\n{table}"
    );
    let path = dir.join(format!("{algo}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// The records of `metrics.jsonl` without the wall-clock fields (`wall_time`, `time/fps`).
fn metrics(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("wall_time");
            o.remove("time/fps");
            v
        })
        .collect()
}

/// The tensor bytes (after the JSON header) of every `.safetensors` file of the run's last checkpoint.
fn final_weights(run: &Path) -> Vec<(String, Vec<u8>)> {
    let ckpt = run.join("checkpoints");
    let latest = ckpt.join(std::fs::read_to_string(ckpt.join("latest")).unwrap().trim());
    let mut files: Vec<_> = std::fs::read_dir(&latest)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p).unwrap();
            let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
            (p.file_name().unwrap().to_string_lossy().into_owned(), bytes[8 + header..].to_vec())
        })
        .collect()
}

fn only_run(root: &Path) -> Option<PathBuf> {
    std::fs::read_dir(root).ok()?.filter_map(|e| e.ok()).map(|e| e.path()).find(|p| p.is_dir())
}

/// Start a run, wait for its first checkpoint, then SIGKILL it `delay` later; returns the run directory
/// and whether it was killed before finishing.
fn start_and_kill(cfg: &Path, root: &Path, delay: Duration) -> (PathBuf, bool) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rlox"))
        .args(["train", cfg.to_str().unwrap(), "--runs-dir", root.to_str().unwrap(), "--format", "json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let run = loop {
        if let Some(run) = only_run(root).filter(|r| r.join("checkpoints/latest").exists()) {
            break run;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint appeared");
        if child.try_wait().unwrap().is_some() {
            break only_run(root).expect("a run directory");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    std::thread::sleep(delay);
    let killed = child.try_wait().unwrap().is_none();
    child.kill().ok(); // SIGKILL on unix
    child.wait().unwrap();
    let finished = run.join("summary.json").exists();
    (run, killed && !finished)
}

fn check_trainer(algo: &str, kills: usize, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), algo);
    let full_root = dir.path().join("full");
    let full =
        json_ok(&["train", cfg.to_str().unwrap(), "--runs-dir", full_root.to_str().unwrap(), "--format", "json"]);
    let full_run = PathBuf::from(full["run_dir"].as_str().unwrap());
    let wall = full["wall_seconds"].as_f64().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut killed_any = false;
    for k in 0..kills {
        let root = dir.path().join(format!("killed-{k}"));
        let delay = Duration::from_secs_f64(rng.random_range(0.0..0.8) * wall);
        let (run, killed) = start_and_kill(&cfg, &root, delay);
        killed_any |= killed;
        let resumed = json_ok(&["train", "--resume", run.to_str().unwrap(), "--format", "json"]);
        assert_eq!(resumed["resumed"], true);
        for key in ["env_steps", "episodes", "n_updates", "gradient_steps", "eval_return_mean", "eval_return_std"] {
            assert_eq!(full[key], resumed[key], "{algo} kill {k} after {delay:?}: {key}");
        }
        assert_eq!(metrics(&run), metrics(&full_run), "{algo} kill {k} after {delay:?}: metrics differ");
        assert_eq!(final_weights(&run), final_weights(&full_run), "{algo} kill {k}: final weights differ");
    }
    assert!(killed_any, "{algo}: no run was killed before it finished; make the config longer");
}

#[test]
fn dqn_resumes_exactly_after_sigkill() {
    check_trainer("dqn", 2, 1);
}

#[test]
fn reinforce_resumes_exactly_after_sigkill() {
    check_trainer("reinforce", 2, 2);
}

#[test]
fn a2c_resumes_exactly_after_sigkill() {
    check_trainer("a2c", 2, 3);
}

#[test]
fn ppo_resumes_exactly_after_sigkill() {
    check_trainer("ppo", 2, 4);
}

#[test]
fn ddpg_resumes_exactly_after_sigkill() {
    check_trainer("ddpg", 2, 5);
}

#[test]
fn td3_resumes_exactly_after_sigkill() {
    check_trainer("td3", 2, 6);
}

#[test]
fn sac_resumes_exactly_after_sigkill() {
    check_trainer("sac", 2, 7);
}

/// A kill in the middle of writing a checkpoint leaves a `.step-N.tmp` directory and `latest` naming the
/// previous complete checkpoint: the run resumes from that one. A truncated or corrupted file of the
/// latest checkpoint is an error naming the file, and nothing is overwritten.
#[test]
fn interrupted_and_damaged_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "ppo");
    let root = dir.path().join("runs");
    let v = json_ok(&[
        "train",
        cfg.to_str().unwrap(),
        "--runs-dir",
        root.to_str().unwrap(),
        "--total-steps",
        "2048",
        "--format",
        "json",
    ]);
    let run = PathBuf::from(v["run_dir"].as_str().unwrap());
    let ckpt = run.join("checkpoints");
    let latest = std::fs::read_to_string(ckpt.join("latest")).unwrap();
    // A write killed half-way: a temp directory with a truncated weights file.
    let tmp = ckpt.join(".step-000000999999.tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(tmp.join("policy.safetensors"), b"\x10\x00\x00").unwrap();
    let out = rlox(&["train", "--resume", run.to_str().unwrap(), "--format", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(ckpt.join("latest")).unwrap(), latest);

    // Damage the latest checkpoint's files one at a time: each is an error naming the file.
    let step = ckpt.join(latest.trim());
    for (file, damage) in [
        ("trainer_state.json", b"{\"algorithm\": \"ppo\", \"env_st".to_vec()),
        ("policy.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{}junk".to_vec()),
        ("state.safetensors", Vec::new()),
    ] {
        let path = step.join(file);
        let good = std::fs::read(&path).unwrap();
        std::fs::write(&path, &damage).unwrap();
        let out = rlox(&["train", "--resume", run.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{file}: a damaged checkpoint must not resume");
        assert!(!err.contains("panicked"), "{file}: {err}");
        assert!(err.contains(file) && err.contains("checkpoint"), "{file}: {err}");
        std::fs::write(&path, good).unwrap();
    }
    // A run directory whose checkpoints are gone is an error too, never a fresh start.
    std::fs::remove_file(ckpt.join("latest")).unwrap();
    let out = rlox(&["train", "--resume", run.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("no checkpoint"), "{err}");
}
