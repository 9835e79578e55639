//! `rlox train` for every deep-RL algorithm: the JSON summary, the run directory (resolved config,
//! checkpoints, metrics, recorded episodes), the shipped configs, and clear errors.

use arrow::array::Int64Array;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn rlox(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rlox")).args(args).output().expect("the rlox binary runs")
}

fn json_ok(args: &[&str]) -> Value {
    let out = rlox(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "rlox {args:?} failed: {stderr}");
    serde_json::from_str(String::from_utf8(out.stdout).unwrap().trim()).unwrap()
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

fn int_column(batches: &[arrow::record_batch::RecordBatch], name: &str) -> Vec<i64> {
    let mut out = Vec::new();
    for b in batches {
        let col = b.column_by_name(name).unwrap();
        out.extend(col.as_any().downcast_ref::<Int64Array>().unwrap().values().iter().copied());
    }
    out
}

/// A small config for `algo` on `env`: `steps` env steps, small networks, 2 evaluation episodes.
pub fn small_config(dir: &Path, algo: &str, env: &str, steps: u64, extra: &str) -> String {
    let table = match algo {
        "ppo" => "n_epochs = 4\nbatch_size = 64\n",
        "a2c" | "reinforce" => "",
        "dqn" => "learning_starts = 200\ntrain_freq = 50\ngradient_steps = 10\nnet_arch = [32, 32]\n",
        _ => "learning_starts = 200\nbatch_size = 32\nnet_arch = [32, 32]\n",
    };
    let text = format!(
        "name = \"{algo}-small\"\nseed = 5\nprogress = false\ntotal_steps = {steps}\neval_every = 300\neval_episodes = 2\n\
         checkpoint_every = 100\nalgo = \"{algo}\"\n\n[env]\nid = \"{env}\"\n\n[{algo}]\n{table}{extra}"
    );
    let path = dir.join(format!("{algo}-{env}.toml"));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn every_algorithm_trains_checkpoints_and_records_episodes() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    for (algo, env, steps) in [
        ("dqn", "CartPole-v1", 600),
        ("reinforce", "CartPole-v1", 600),
        ("a2c", "Acrobot-v1", 800),
        ("ppo", "CartPole-v1", 600),
        ("ppo", "Pendulum-v1", 1700),
        ("ddpg", "Pendulum-v1", 600),
        ("td3", "Pendulum-v1", 600),
        ("sac", "Pendulum-v1", 600),
    ] {
        let cfg = small_config(dir.path(), algo, env, steps, "");
        let v = json_ok(&["train", &cfg, "--runs-dir", runs.to_str().unwrap(), "--format", "json"]);
        for key in
            ["eval_return_mean", "eval_return_std", "env_steps", "steps_per_second", "wall_seconds", "gradient_steps"]
        {
            assert!(v[key].is_number(), "{algo}: {key} in {v}");
        }
        assert!(v["env_steps"].as_u64().unwrap() >= steps, "{algo}: {v}");
        assert_eq!((v["algo"].as_str(), v["env"].as_str(), v["seed"].as_u64()), (Some(algo), Some(env), Some(5)));
        let run = Path::new(v["run_dir"].as_str().unwrap());
        assert!(run.join("config.toml").exists() && run.join("metrics.parquet").exists(), "{algo}");
        let latest = std::fs::read_to_string(run.join("checkpoints/latest")).unwrap();
        assert!(run.join("checkpoints").join(latest.trim()).join("trainer_state.json").exists(), "{algo}");
        // The resolved config names the algorithm and loads again as the same run.
        let resolved = std::fs::read_to_string(run.join("config.toml")).unwrap();
        assert!(resolved.contains(&format!("algo = \"{algo}\"")), "{resolved}");
        // Every trainer records its training episodes: each within the time limit, none beyond the run.
        let episodes = run.join("episodes/part-00000.parquet");
        if !episodes.exists() {
            assert_eq!(env, "Acrobot-v1", "{algo}: only A2C's short Acrobot run may finish no episode");
            continue;
        }
        let (_, batches) = rlox_data::read::read_file(episodes).unwrap();
        let lengths = int_column(&batches, "length");
        let limit = if env == "Pendulum-v1" { 200 } else { 500 };
        assert!(!lengths.is_empty() && lengths.iter().all(|&n| (1..=limit).contains(&n)), "{algo}: {lengths:?}");
        if env == "Pendulum-v1" {
            // Pendulum never terminates: every recorded episode was cut by the time limit.
            assert!(lengths.iter().all(|&n| n == 200), "{algo}: {lengths:?}");
        }
    }
}

#[test]
fn shipped_configs_run() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "dqn_cartpole.toml",
        "ppo_cartpole.toml",
        "a2c_cartpole.toml",
        "ppo_acrobot.toml",
        "ddpg_pendulum.toml",
        "td3_pendulum.toml",
        "sac_pendulum.toml",
        "sac_mountaincar_continuous.toml",
    ] {
        let v = json_ok(&[
            "train",
            root.join(name).to_str().unwrap(),
            "--total-steps",
            "300",
            "--runs-dir",
            dir.path().to_str().unwrap(),
            "--format",
            "json",
        ]);
        assert!(v["env_steps"].as_u64().unwrap() >= 300, "{name}: {v}");
    }
}

#[test]
fn bad_runs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().to_str().unwrap();
    fails_with(&["train", "--algo", "ppo", "--env", "FrozenLake-v1", "--runs-dir", runs], &["ppo", "FrozenLake-v1"]);
    fails_with(&["train", "--algo", "ppo", "--env", "Nope-v0", "--runs-dir", runs], &["Nope-v0"]);
    fails_with(&["train", "--algo", "trpo", "--runs-dir", runs], &["trpo", "dqn", "ppo"]);
    fails_with(
        &["train", "--algo", "sac", "--env", "CartPole-v1", "--runs-dir", runs],
        &["sac", "CartPole-v1", "Discrete(2)"],
    );
    fails_with(
        &["train", "--algo", "dqn", "--env", "Pendulum-v1", "--runs-dir", runs],
        &["dqn", "Pendulum-v1", "continuous"],
    );
    // The old layout (run settings inside the algorithm's table) is pointed out with its line.
    let cfg = dir.path().join("old.toml");
    std::fs::write(&cfg, "seed = 1\n[env]\nid = \"CartPole-v1\"\n[ppo]\nn_envs = 4\ntotal_timesteps = 500\n").unwrap();
    fails_with(&["train", cfg.to_str().unwrap()], &["old.toml", "line 6", "total_timesteps", "run setting"]);
    // --resume of a directory that is not a run, or has no checkpoint, names it.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    fails_with(&["train", "--resume", empty.to_str().unwrap()], &["empty"]);
    fails_with(&["train", "--resume", empty.to_str().unwrap(), "--seed", "3"], &["--seed"]);
}
