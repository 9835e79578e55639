//! `rlox train --algo {reinforce,a2c,ppo}`: the JSON summary, errors, and a run killed with SIGKILL
//! that resumes (`--resume RUN_DIR`) to the same numbers as an uninterrupted run.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn rlox(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rlox")).args(args).output().expect("the rlox binary runs")
}

fn json_ok(args: &[&str]) -> Value {
    let out = rlox(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "rlox {args:?} failed: {stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(stdout.trim()).unwrap()
}

fn fails_with(args: &[&str], needles: &[&str]) {
    let out = rlox(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "rlox {args:?} should fail");
    assert!(!stderr.contains("panicked"), "rlox {args:?} panicked: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "rlox {args:?}: '{n}' not in: {stderr}");
    }
}

#[test]
fn each_onpolicy_algo_reports_the_dqn_summary_keys() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().to_str().unwrap();
    // Pendulum runs 1,700 steps so that each of PPO's 8 envs finishes a 200-step episode.
    for (algo, env, steps) in [
        ("ppo", "CartPole-v1", "600"),
        ("a2c", "Acrobot-v1", "600"),
        ("reinforce", "CartPole-v1", "600"),
        ("ppo", "Pendulum-v1", "1700"),
    ] {
        let v = json_ok(&[
            "train",
            "--algo",
            algo,
            "--env",
            env,
            "--total-steps",
            steps,
            "--seed",
            "3",
            "--runs-dir",
            runs,
            "--format",
            "json",
        ]);
        for key in ["eval_return_mean", "eval_return_std", "env_steps", "steps_per_second", "wall_seconds"] {
            assert!(v[key].is_number(), "{algo}: {key} in {v}");
        }
        assert!(v["env_steps"].as_u64().unwrap() >= steps.parse().unwrap(), "{v}");
        assert_eq!((v["algo"].as_str(), v["env"].as_str(), v["seed"].as_u64()), (Some(algo), Some(env), Some(3)));
        let run = Path::new(v["run_dir"].as_str().unwrap());
        assert!(run.join("config.toml").exists() && run.join("checkpoints/trainer.json").exists());
        // The training episodes went to Parquet: each within the time limit, none longer than the run.
        // (600 steps over A2C's 8 Acrobot envs may finish no episode: then there is no file.)
        let episodes = run.join("episodes/part-00000.parquet");
        if env == "Acrobot-v1" && !episodes.exists() {
            continue;
        }
        let (_, batches) = rlox_data::read::read_file(episodes).unwrap();
        let mut lengths = Vec::new();
        for b in &batches {
            let col = b.column_by_name("length").unwrap();
            lengths.extend(col.as_any().downcast_ref::<arrow::array::Int64Array>().unwrap().values().iter().copied());
        }
        let limit = if env == "Pendulum-v1" { 200 } else { 500 };
        assert!(!lengths.is_empty() && lengths.iter().all(|&n| (1..=limit).contains(&n)), "{algo}: {lengths:?}");
        if algo != "reinforce" {
            // (REINFORCE also records episodes its update drops; see train_onpolicy.rs.)
            assert!(lengths.iter().sum::<i64>() <= v["env_steps"].as_i64().unwrap(), "{algo}: {lengths:?}");
        }
        if env == "Pendulum-v1" {
            // Pendulum never terminates: every recorded episode was truncated by the vector env's limit.
            assert_eq!(lengths, vec![200; 8]);
        }
    }
    fails_with(&["train", "--algo", "ppo", "--env", "FrozenLake-v1", "--runs-dir", runs], &["ppo", "FrozenLake-v1"]);
    fails_with(&["train", "--algo", "ppo", "--env", "Nope-v0", "--runs-dir", runs], &["Nope-v0"]);
}

#[test]
fn shipped_configs_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let dir = tempfile::tempdir().unwrap();
    for (name, from, to) in [
        ("ppo_cartpole.toml", "total_timesteps = 100000", "total_timesteps = 300"),
        ("a2c_cartpole.toml", "total_timesteps = 500000", "total_timesteps = 300"),
        ("ppo_acrobot.toml", "total_timesteps = 1000000", "total_timesteps = 300"),
    ] {
        let text = std::fs::read_to_string(root.join(name)).unwrap();
        assert!(text.contains(from), "{name}");
        let small = dir.path().join(name);
        std::fs::write(&small, text.replace(from, to)).unwrap();
        let v = json_ok(&[
            "train",
            small.to_str().unwrap(),
            "--runs-dir",
            dir.path().to_str().unwrap(),
            "--format",
            "json",
        ]);
        assert!(v["env_steps"].as_u64().unwrap() >= 300, "{name}: {v}");
    }
}

fn run_dirs(root: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(root).map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect()).unwrap_or_default()
}

/// Kill `rlox train --algo ppo` with SIGKILL after its first checkpoint, resume it, and compare with
/// an uninterrupted run of the same config and seed: same env steps, episodes, updates, evaluation
/// and the same final parameters, byte for byte.
#[cfg(unix)]
#[test]
fn sigkill_then_resume_matches_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ppo.toml");
    std::fs::write(
        &cfg,
        "seed = 5\nprogress = false\n[env]\nid = \"CartPole-v1\"\n[ppo]\ntotal_timesteps = 40960\nn_epochs = 10\ncheckpoint_every_updates = 4\n",
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let full_root = dir.path().join("full");
    let a = json_ok(&["train", cfg, "--runs-dir", full_root.to_str().unwrap(), "--format", "json"]);

    let killed_root = dir.path().join("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rlox"))
        .args(["train", cfg, "--runs-dir", killed_root.to_str().unwrap(), "--format", "json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let run = loop {
        if let Some(run) = run_dirs(&killed_root).into_iter().find(|r| r.join("checkpoints/trainer.json").exists()) {
            break run;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint appeared");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before its first checkpoint");
        std::thread::sleep(Duration::from_millis(5));
    };
    child.kill().unwrap(); // SIGKILL on unix
    child.wait().unwrap();
    assert!(!run.join("summary.json").exists(), "the run finished before it was killed; make it longer");
    let at_kill: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("checkpoints/trainer.json")).unwrap()).unwrap();
    assert!(at_kill["n_updates"].as_u64().unwrap() < a["n_updates"].as_u64().unwrap());

    // The algorithm comes from the run's checkpoint (`--algo ppo` may be given too).
    let b = json_ok(&["train", "--resume", run.to_str().unwrap(), "--format", "json"]);
    assert_eq!(b["resumed"], true);
    // The metrics written before the kill are kept next to the new ones.
    let done = at_kill["n_updates"].as_u64().unwrap();
    assert!(run.join(format!("metrics.before-resume-at-update-{done}.jsonl")).exists());
    assert!(run.join("metrics.jsonl").exists());
    for key in ["env_steps", "episodes", "n_updates", "gradient_steps", "eval_return_mean", "eval_return_std"] {
        assert_eq!(a[key], b[key], "{key}: uninterrupted {a} vs resumed {b}");
    }
    let final_params = |run: &Path| {
        let t: Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("checkpoints/trainer.json")).unwrap()).unwrap();
        let bytes = std::fs::read(run.join("checkpoints").join(t["policy_file"].as_str().unwrap())).unwrap();
        // The tensor data after the JSON header (whose metadata map has no fixed key order).
        let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        bytes[8 + header..].to_vec()
    };
    let (pa, pb) = (final_params(Path::new(a["run_dir"].as_str().unwrap())), final_params(&run));
    assert!(pa.len() > 1000 && pa == pb, "the resumed run's final parameters differ from the uninterrupted run's");
    // --resume of a directory without a checkpoint is an error naming it.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    fails_with(&["train", "--algo", "ppo", "--resume", empty.to_str().unwrap()], &["empty"]);
    fails_with(&["train", "--resume", empty.to_str().unwrap()], &["empty", "checkpoint"]);
}
