//! End-to-end tests of the `rlox` binary: JSON outputs, files written, and clear errors (never a panic).

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
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.trim().lines().count(), 1, "exactly one JSON object on stdout: {stdout}");
    serde_json::from_str(&stdout).unwrap()
}

/// The command fails with a non-zero exit, an error line that contains every `needle`, and no panic.
fn fails_with(args: &[&str], needles: &[&str]) {
    let out = rlox(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "rlox {args:?} should fail");
    assert!(!stderr.contains("panicked"), "rlox {args:?} panicked: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "rlox {args:?}: '{n}' not in: {stderr}");
    }
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

#[test]
fn solve_evaluate_reproduces_fig_2_7() {
    let v = json_ok(&[
        "solve",
        "--preset",
        "book-5x5",
        "--algo",
        "evaluate",
        "--policy",
        "RRRDD/UURDD/ULDRD/URSLD/URULL",
        "--format",
        "json",
    ]);
    let printed = [
        3.5, 3.9, 4.3, 4.8, 5.3, 3.1, 3.5, 4.8, 5.3, 5.9, 2.8, 2.5, 10.0, 5.9, 6.6, 2.5, 10.0, 10.0, 10.0, 7.3, 2.3,
        9.0, 10.0, 9.0, 8.1,
    ];
    for (got, want) in floats(&v["values"]).iter().zip(printed) {
        assert!((got - want).abs() <= 0.05, "{got} vs {want}");
    }
    assert_eq!(v["policy"], "RRRDD/UURDD/ULDRD/URSLD/URULL");
}

#[test]
fn solve_value_iteration_prints_the_optimal_policy_and_history() {
    let v = json_ok(&["solve", "--preset", "book-5x5", "--algo", "value-iteration", "--format", "json"]);
    assert_eq!(v["policy"], "DRDDD/DDDDD/RRDDD/RRSLL/URULL");
    let history = v["history"].as_array().unwrap();
    assert_eq!(history.len() as u64, v["iterations"].as_u64().unwrap());
    assert!(history.last().unwrap()["delta"].as_f64().unwrap() < 1e-10);
    assert!(history[0]["values"].as_array().unwrap().len() == 25 && history[0]["policy"].is_string());
    assert!(v["bellman_optimality_residual"].as_f64().unwrap() < 1e-9);
}

#[test]
fn solve_policy_iteration_and_truncated_pi_agree_with_value_iteration() {
    let vi = json_ok(&[
        "solve",
        "--preset",
        "book-5x5",
        "--r-forbidden",
        "-10",
        "--algo",
        "value-iteration",
        "--format",
        "json",
    ]);
    for extra in [
        vec!["--algo", "policy-iteration", "--initial-policy", "SSSSS/SSSSS/SSSSS/SSSSS/SSSSS"],
        vec!["--algo", "truncated-pi", "--sweeps", "3", "--track-error"],
    ] {
        let mut args = vec!["solve", "--preset", "book-5x5", "--r-forbidden", "-10", "--format", "json"];
        args.extend(extra);
        let r = json_ok(&args);
        for (a, b) in floats(&r["values"]).iter().zip(floats(&vi["values"])) {
            assert!((a - b).abs() < 1e-8);
        }
    }
}

#[test]
fn solve_on_frozen_lake_uses_gymnasiums_model() {
    let v = json_ok(&[
        "solve",
        "--env",
        "FrozenLake-v1",
        "--algo",
        "value-iteration",
        "--gamma",
        "0.99",
        "--format",
        "json",
    ]);
    assert_eq!(floats(&v["values"]).len(), 16);
    // The known optimal first action from the start of slippery 4x4 FrozenLake is LEFT (0).
    assert_eq!(v["policy"][0], 0);
}

#[test]
fn plots_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("grid.png");
    let svg = dir.path().join("opt.svg");
    json_ok(&["env", "show", "gridworld", "--preset", "book-5x5", "--plot", png.to_str().unwrap(), "--format", "json"]);
    json_ok(&[
        "solve",
        "--preset",
        "book-5x5",
        "--algo",
        "value-iteration",
        "--plot",
        svg.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(std::fs::metadata(&png).unwrap().len() > 1000);
    assert!(std::fs::read_to_string(&svg).unwrap().contains("10.0"));
}

#[test]
fn env_list_and_show() {
    let v = json_ok(&["env", "list", "--format", "json"]);
    let ids: Vec<&str> = v["envs"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    for id in ["gridworld", "FrozenLake-v1", "CliffWalking-v1", "Taxi-v4", "CartPole-v1", "Pendulum-v1"] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    let v = json_ok(&["env", "show", "Taxi-v4", "--format", "json"]);
    assert_eq!(v["n_states"], 500);
}

#[test]
fn learn_sarsa_path_finding_json() {
    let dir = tempfile::tempdir().unwrap();
    let v = json_ok(&[
        "learn",
        "--preset",
        "book-5x5",
        "--start",
        "1,1",
        "--terminate-at-target",
        "--r-target",
        "0",
        "--r-boundary",
        "-10",
        "--r-forbidden",
        "-10",
        "--r-other",
        "-1",
        "--algo",
        "q-learning",
        "--episodes",
        "500",
        "--eval-episodes",
        "1",
        "--plot",
        dir.path().to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(v["episodes"], 500);
    assert_eq!(v["eval"]["mean_return"], -10.0, "the greedy path costs -10");
    assert_eq!(v["eval"]["mean_length"], 11.0);
    assert!(v["history"]["episode_rewards"].as_array().unwrap().len() <= 1000);
    for f in ["reward_per_episode.png", "length_per_episode.png", "rmse.png", "policy_values.png"] {
        assert!(dir.path().join(f).exists(), "{f}");
    }
}

#[test]
fn learn_actor_critic_path_finding() {
    let v = json_ok(&[
        "learn",
        "--preset",
        "book-5x5",
        "--start",
        "1,1",
        "--terminate-at-target",
        "--r-target",
        "0",
        "--r-boundary",
        "-10",
        "--r-forbidden",
        "-10",
        "--r-other",
        "-1",
        "--algo",
        "a2c-tabular",
        "--eval-episodes",
        "1",
        "--format",
        "json",
    ]);
    assert_eq!(v["eval"]["mean_return"], -10.0, "A2C's greedy path is the 11-step one");
    assert_eq!(v["probabilities"].as_array().unwrap().len(), 125);
    fails_with(&["learn", "--algo", "qac", "--actor-alpha", "0"], &["actor_step_size", "0"]);
}

#[test]
fn undiscounted_learning_on_an_episodic_task() {
    // Sutton & Barto's example 6.6 as Gymnasium has it: gamma 1 is well defined on CliffWalking (the goal
    // is terminal), so learning runs and the RMSE is measured against undiscounted optimal values.
    let v = json_ok(&[
        "learn",
        "--env",
        "CliffWalking-v1",
        "--algo",
        "q-learning",
        "--gamma",
        "1",
        "--episodes",
        "500",
        "--seed",
        "3",
        "--format",
        "json",
    ]);
    assert_eq!(v["episodes"], 500);
    assert!(v["reference_note"].is_null(), "{}", v["reference_note"]);
    let rmse = v["final_rmse"].as_f64().expect("an RMSE against the undiscounted optimal values");
    assert!(rmse.is_finite());
    // Q-learning with epsilon 0.1 finds the path along the cliff: the greedy policy reaches the goal in 13 steps.
    assert_eq!(v["eval"]["mean_return"].as_f64().unwrap(), -13.0, "{}", v["eval"]);
    let solved = json_ok(&[
        "solve",
        "--env",
        "CliffWalking-v1",
        "--algo",
        "value-iteration",
        "--gamma",
        "1",
        "--format",
        "json",
    ]);
    assert_eq!(floats(&solved["values"])[36], -13.0);
    // A continuing task has no undiscounted values: learning still runs and says why there is no RMSE.
    let v = json_ok(&[
        "learn",
        "--preset",
        "book-5x5",
        "--algo",
        "sarsa",
        "--gamma",
        "1",
        "--episodes",
        "5",
        "--format",
        "json",
    ]);
    assert!(v["final_rmse"].is_null());
    assert!(v["reference_note"].as_str().unwrap().contains("no terminal state"), "{}", v["reference_note"]);
}

#[test]
fn rollout_replays_the_cartpole_trace_exactly() {
    let trace_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/CartPole-v1.json");
    let trace: Value = serde_json::from_str(&std::fs::read_to_string(&trace_path).unwrap()).unwrap();
    let init: Vec<String> = floats(&trace["initial_state"]).iter().map(|x| format!("{x:?}")).collect();
    let v = json_ok(&[
        "env",
        "rollout",
        "--env",
        "CartPole-v1",
        "--init-state",
        &init.join(","),
        "--actions",
        trace_path.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let steps = v["steps"].as_array().unwrap();
    let expected = trace["steps"].as_array().unwrap();
    assert_eq!(steps.len(), expected.len());
    for (got, want) in steps.iter().zip(expected) {
        assert_eq!(floats(&got["obs"]), floats(&want["obs"]), "t = {}", want["t"]);
        for k in ["reward", "terminated", "truncated"] {
            assert_eq!(got[k], want[k], "{k} at t = {}", want["t"]);
        }
    }
}

#[test]
fn train_writes_a_run_directory() {
    let dir = tempfile::tempdir().unwrap();
    let v = json_ok(&["train", "--runs-dir", dir.path().to_str().unwrap(), "--format", "json"]);
    let run = Path::new(v["run_dir"].as_str().unwrap());
    for f in [
        "config.toml",
        "metrics.jsonl",
        "metrics.csv",
        "metrics.parquet",
        "summary.json",
        "checkpoints/table.json",
        "plots/planned_policy_values.png",
        "plots/rmse.png",
    ] {
        assert!(run.join(f).exists(), "{f}");
    }
    assert_eq!(std::fs::read_dir(run.join("tb")).unwrap().count(), 1);
    assert_eq!(v["plan"]["policy"], "DRDDD/DDDDD/RRDDD/RRSLL/URULL");
    assert!(v["learn"]["final_rmse"].as_f64().unwrap() < 0.05);
    assert!(v["learn"]["value_gap_to_optimal"].as_f64().unwrap() < 1e-6);
    // Same seed, same numbers.
    let w = json_ok(&["train", "--runs-dir", dir.path().to_str().unwrap(), "--format", "json"]);
    assert_eq!(v["learn"]["final_rmse"], w["learn"]["final_rmse"]);
}

#[test]
fn bad_input_is_a_clear_error() {
    fails_with(&["solve", "--env", "NoSuchEnv-v0", "--algo", "value-iteration"], &["NoSuchEnv-v0", "gridworld"]);
    fails_with(&["solve", "--preset", "book-7x7", "--algo", "value-iteration"], &["book-7x7", "book-5x5"]);
    fails_with(&["solve", "--forbidden", "2,2;x", "--algo", "value-iteration"], &["cell list", "'x'"]);
    fails_with(&["solve", "--target", "2,2", "--algo", "value-iteration"], &["target", "forbidden"]);
    fails_with(&["solve", "--rows", "0", "--algo", "value-iteration"], &["0x5"]);
    fails_with(&["solve", "--algo", "evaluate", "--policy", "RRRDD/UURDD"], &["2 rows"]);
    fails_with(&["solve", "--algo", "evaluate", "--policy", "RRRDD/UURDD/ULDRD/URSLD/URULQ"], &["'Q'", "row 5"]);
    fails_with(
        &["solve", "--algo", "evaluate", "--policy", "RRRDD/UURDD/ULDRD/URSLD/URULL", "--gamma", "1"],
        &["gamma", "[0, 1)"],
    );
    fails_with(
        &[
            "solve",
            "--algo",
            "evaluate",
            "--method",
            "iterative",
            "--policy",
            "SSSSS/SSSSS/SSSSS/SSSSS/SSSSS",
            "--gamma",
            "1",
            "--max-iterations",
            "500",
        ],
        &["did not converge"],
    );
    fails_with(&["solve", "--env", "CartPole-v1", "--algo", "value-iteration"], &["CartPole-v1", "model"]);
    fails_with(
        &["solve", "--env", "Taxi-v4", "--opt", "rainy=true", "--algo", "value-iteration"],
        &["'rainy'", "is_rainy"],
    );
    fails_with(&["learn", "--algo", "sarsa", "--epsilon", "1.5"], &["epsilon", "1.5"]);
    fails_with(&["learn", "--algo", "sarsa", "--episode-length", "0"], &["episode length"]);
    fails_with(&["learn", "--algo", "mc-magic"], &["mc-magic", "sarsa"]);
    fails_with(&["learn", "--env", "Pendulum-v1", "--algo", "sarsa"], &["Pendulum-v1"]);
    fails_with(
        &["env", "rollout", "--env", "CartPole-v1", "--init-state", "0.1,0.2", "--actions", "/dev/null"],
        &["/dev/null"],
    );
}

#[test]
fn bad_configs_name_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "name = \"x\"\n[learn]\nalgo = \"sarsa\"\nepisodez = 10\n").unwrap();
    fails_with(
        &["train", cfg.to_str().unwrap(), "--runs-dir", dir.path().to_str().unwrap()],
        &["bad.toml", "episodez", "line 4"],
    );
    std::fs::write(&cfg, "name = \"x\"\n[plan]\ngamma = \"high\"\n").unwrap();
    fails_with(&["train", cfg.to_str().unwrap(), "--runs-dir", dir.path().to_str().unwrap()], &["bad.toml", "line 3"]);
    fails_with(&["train", dir.path().join("missing.toml").to_str().unwrap()], &["missing.toml"]);
}

#[test]
fn train_dqn_reports_the_summary_and_writes_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().to_str().unwrap();
    let v = json_ok(&[
        "train",
        "--algo",
        "dqn",
        "--env",
        "CartPole-v1",
        "--total-steps",
        "1500",
        "--runs-dir",
        runs,
        "--format",
        "json",
    ]);
    for key in ["eval_return_mean", "eval_return_std", "env_steps", "steps_per_second", "wall_seconds"] {
        assert!(v[key].is_number(), "{key} in {v}");
    }
    assert_eq!(v["env_steps"], 1500);
    let run = Path::new(v["run_dir"].as_str().unwrap());
    assert!(run.join("config.toml").exists() && run.join("metrics.jsonl").exists());
    // The training episodes and the metrics also went to Parquet through rlox-data.
    let (_, batches) = rlox_data::read::read_file(run.join("episodes/part-00000.parquet")).unwrap();
    let mut lengths = Vec::new();
    for b in &batches {
        let col = b.column_by_name("length").unwrap();
        let col = col.as_any().downcast_ref::<arrow::array::Int64Array>().unwrap();
        lengths.extend(col.values().iter().copied());
    }
    let recorded: i64 = lengths.iter().sum();
    // Every finished training episode is there; only the one still running at the end is not.
    assert!(lengths.len() >= 3 && recorded <= 1500 && recorded > 1500 - 500, "{lengths:?}");
    assert!(lengths.iter().all(|&n| (1..=500).contains(&n)), "{lengths:?}");
    let (_, metrics) = rlox_data::read::read_file(run.join("metrics.parquet")).unwrap();
    assert!(metrics.iter().map(|b| b.num_rows()).sum::<usize>() > 0);
    fails_with(
        &["train", "--algo", "dqn", "--env", "Pendulum-v1", "--runs-dir", runs],
        &["dqn", "Pendulum-v1", "continuous", "Box"],
    );
    fails_with(&["train", "--algo", "trpo", "--env", "CartPole-v1", "--runs-dir", runs], &["trpo", "dqn", "ppo"]);
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/dqn_cartpole.toml");
    let text = std::fs::read_to_string(&cfg).unwrap().replace("total_timesteps = 50000", "total_timesteps = 1200");
    let small = dir.path().join("dqn.toml");
    std::fs::write(&small, text).unwrap();
    let w = json_ok(&["train", small.to_str().unwrap(), "--runs-dir", runs, "--format", "json"]);
    assert_eq!(w["env_steps"], 1200);
    assert_eq!(w["env"], "CartPole-v1");
}

#[test]
fn lm_generate_and_score_on_the_tiny_fixture() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rlox-lm/tests/fixtures/qwen2_tied");
    let m = model.to_str().unwrap();
    let g = json_ok(&[
        "lm",
        "generate",
        "--model",
        m,
        "--prompt",
        "hello world",
        "--max-new-tokens",
        "8",
        "--format",
        "json",
    ]);
    assert!(g["token_ids"].as_array().unwrap().len() <= 8);
    assert_eq!(g["token_ids"].as_array().unwrap().len(), g["logprobs"].as_array().unwrap().len());
    let s = json_ok(&["lm", "score", "--model", m, "--text", "hello world", "--format", "json"]);
    let lps = s["logprobs"].as_array().unwrap();
    assert_eq!(lps.len(), s["token_ids"].as_array().unwrap().len());
    let total: f64 = lps.iter().filter_map(|x| x.as_f64()).sum();
    assert!((total - s["total_logprob"].as_f64().unwrap()).abs() < 1e-3 && total < 0.0);
    fails_with(&["lm", "score", "--model", "/no/such/model", "--text", "x"], &["/no/such/model"]);
}
