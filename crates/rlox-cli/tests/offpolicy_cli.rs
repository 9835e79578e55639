//! `rlox train --algo {ddpg,td3,sac}` end to end on Pendulum-v1: the JSON summary, the run
//! directory (checkpoints, metrics, the recorded training episodes as Parquet), `--resume`, and the
//! discrete-env refusal. Short runs with small networks so that they fit CI time.

use arrow::array::{Array, BooleanArray, Int64Array};
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

/// A config for `algo` with 600 steps, learning from step 200, tiny networks and one-episode evaluations,
/// plus the `extra` lines in its table.
fn small_config(dir: &Path, algo: &str, extra: &str) -> String {
    let path = dir.join(format!("{algo}{}.toml", if extra.is_empty() { "" } else { "-extra" }));
    let text = format!(
        "name = \"{algo}-small\"\nseed = 5\nruns_dir = \"{runs}\"\n\n[env]\nid = \"Pendulum-v1\"\n\n[{algo}]\n\
         total_timesteps = 600\nlearning_starts = 200\nbatch_size = 32\nnet_arch = [32, 32]\n\
         eval_freq = 300\neval_episodes = 1\nfinal_eval_episodes = 1\n{extra}",
        runs = dir.join("runs").display()
    );
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn int_column(batches: &[arrow::record_batch::RecordBatch], name: &str) -> Vec<i64> {
    let mut out = Vec::new();
    for b in batches {
        let col = b.column_by_name(name).unwrap();
        out.extend(col.as_any().downcast_ref::<Int64Array>().unwrap().values().iter().copied());
    }
    out
}

#[test]
fn each_offpolicy_algo_trains_records_episodes_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    // The last run is SAC with gSDE (its exploration weights and matrix are checkpointed too).
    for (algo, extra) in [
        ("ddpg", ""),
        ("td3", ""),
        ("sac", ""),
        ("sac", "use_sde = true\nlog_std_init = -2.0\ntrain_freq = 8\ngradient_steps = 8\n"),
    ] {
        let config = small_config(dir.path(), algo, extra);
        let v = json_ok(&["train", &config, "--algo", algo, "--env", "Pendulum-v1", "--format", "json"]);
        for key in ["eval_return_mean", "eval_return_std", "env_steps", "steps_per_second", "wall_seconds"] {
            assert!(v[key].is_number(), "{algo}: {key} in {v}");
        }
        assert_eq!(v["env_steps"], 600, "{algo}: {v}");
        assert!(v["n_updates"].as_u64().unwrap() > 0, "{algo} trained after learning_starts: {v}");
        assert_eq!((v["algo"].as_str(), v["seed"].as_u64()), (Some(algo), Some(5)));
        let run = Path::new(v["run_dir"].as_str().unwrap()).to_path_buf();
        assert!(run.join("config.toml").exists() && run.join("metrics.parquet").exists());
        assert!(run.join("checkpoints").exists(), "{algo}: no checkpoints in {}", run.display());

        // Pendulum truncates at 200 steps: 600 training steps are exactly three recorded episodes.
        let (_, batches) = rlox_data::read::read_file(run.join("episodes/part-00000.parquet")).unwrap();
        assert_eq!(int_column(&batches, "length"), vec![200, 200, 200], "{algo}");
        assert_eq!(int_column(&batches, "episode"), vec![0, 1, 2], "{algo}");
        for b in &batches {
            let truncated = b.column_by_name("truncated").unwrap();
            let truncated = truncated.as_any().downcast_ref::<BooleanArray>().unwrap();
            assert!((0..truncated.len()).all(|i| truncated.value(i)), "{algo}: Pendulum episodes end by truncation");
        }

        // Resume from the finished run with a longer horizon: it continues from step 600.
        let resumed = json_ok(&[
            "train",
            &config,
            "--algo",
            algo,
            "--env",
            "Pendulum-v1",
            "--total-steps",
            "800",
            "--resume",
            run.to_str().unwrap(),
            "--format",
            "json",
        ]);
        assert_eq!(resumed["resumed_from"], 600, "{algo}: {resumed}");
        assert_eq!(resumed["env_steps"], 800, "{algo}: {resumed}");
    }

    // A discrete env is refused, naming the algorithm and the env.
    let out = rlox(&["train", "--algo", "sac", "--env", "CartPole-v1", "--runs-dir", dir.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && !stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("sac") && stderr.contains("CartPole-v1"), "{stderr}");
}
