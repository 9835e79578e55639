//! `rlox sql` end to end (the default `sql` feature): a training run's Parquet output queried with
//! Hive's LATERAL VIEW explode, and clear errors for bad tables and unsupported SQL.
#![cfg(feature = "sql")]

use serde_json::Value;
use std::process::{Command, Output};

fn rlox(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rlox")).args(args).output().expect("the rlox binary runs")
}

fn json_ok(args: &[&str]) -> Value {
    let out = rlox(args);
    assert!(out.status.success(), "rlox {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(String::from_utf8(out.stdout).unwrap().trim()).unwrap()
}

#[test]
fn a_dqn_run_is_queryable_with_lateral_view_explode() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().to_str().unwrap();
    let v = json_ok(&[
        "train",
        "--algo",
        "dqn",
        "--env",
        "CartPole-v1",
        "--total-steps",
        "1200",
        "--runs-dir",
        runs,
        "--format",
        "json",
    ]);
    let run = v["run_dir"].as_str().unwrap();
    // One row per episode, and one row per transition after the explode: the counts must agree.
    let per_episode = json_ok(&[
        "sql",
        "SELECT count(*) AS episodes, sum(length) AS steps, sum(\"return\") AS total FROM episodes",
        "--table",
        run,
        "--output",
        "json",
    ]);
    let exploded = json_ok(&[
        "sql",
        "SELECT count(*) AS steps, sum(t.reward) AS total FROM episodes LATERAL VIEW explode(transitions) x AS t",
        "--table",
        run,
        "--output",
        "json",
    ]);
    let e = &per_episode["rows"][0];
    let x = &exploded["rows"][0];
    assert!(e["episodes"].as_i64().unwrap() >= 2, "{per_episode}");
    assert_eq!(e["steps"].as_i64(), x["steps"].as_i64(), "{per_episode} vs {exploded}");
    assert!((e["total"].as_f64().unwrap() - x["total"].as_f64().unwrap()).abs() < 1e-9);
    // Output columns keep the SELECT's order and Hive's/Spark's names in every format.
    let q = "SELECT t.reward, episode, length FROM episodes LATERAL VIEW explode(transitions) x AS t LIMIT 3";
    let out = rlox(&["sql", q, "--table", run, "--output", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let v: Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["columns"], serde_json::json!(["reward", "episode", "length"]), "{text}");
    let row = &text[text.find("\"rows\":[{").expect("rows")..];
    let (r, e, l) =
        (row.find("\"reward\":").unwrap(), row.find("\"episode\":").unwrap(), row.find("\"length\":").unwrap());
    assert!(r < e && e < l, "keys out of SELECT order: {text}");
    let csv = rlox(&["sql", q, "--table", run, "--output", "csv"]);
    let csv = String::from_utf8(csv.stdout).unwrap();
    assert!(csv.starts_with("reward,episode,length\n"), "{csv}");
    let table = String::from_utf8(rlox(&["sql", q, "--table", run]).stdout).unwrap();
    let header: Vec<&str> = table.lines().nth(1).unwrap().split('|').map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(header, ["reward", "episode", "length"], "{table}");
    // The metrics table of the same run.
    let m = json_ok(&["sql", "SELECT count(DISTINCT name) AS names FROM metrics", "--table", run, "--output", "json"]);
    assert!(m["rows"][0]["names"].as_i64().unwrap() >= 2, "{m}");
}

#[test]
fn bad_tables_and_unsupported_sql_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.parquet");
    let out = rlox(&["sql", "SELECT 1", "--table", &format!("t={}", missing.display())]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("nope.parquet") && !err.contains("panicked"), "{err}");
    let out = rlox(&["sql", "SELECT inline(array(1)) AS x"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && !err.contains("panicked"), "{err}");
}
