//! The LATERAL VIEW / explode rewrite against Hive semantics on small tables, windows over groups,
//! and errors (positions, bad files, table names) that never panic.

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, ListArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use rlox_data::records::{Completion, RolloutGroup};
use rlox_data::rollouts::RolloutStore;
use rlox_data::write::WriteOptions;
use rlox_sql::{Error, Session};
use std::sync::Arc;

type Row = Vec<Option<i64>>;

fn list(v: Vec<Option<Vec<i64>>>) -> ArrayRef {
    Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(
        v.into_iter().map(|o| o.map(|xs| xs.into_iter().map(Some).collect::<Vec<_>>())),
    ))
}

/// t(id, xs, ys): 1 [1,2] [10,20] | 2 [] [30] | 3 NULL [40] | 4 [3] []
fn session() -> Session {
    let mut s = Session::new(1).unwrap();
    let id: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3, 4]));
    let xs = list(vec![Some(vec![1, 2]), Some(vec![]), None, Some(vec![3])]);
    let ys = list(vec![Some(vec![10, 20]), Some(vec![30]), Some(vec![40]), Some(vec![])]);
    let b = RecordBatch::try_from_iter(vec![("id", id), ("xs", xs), ("ys", ys)]).unwrap();
    s.register_batches("t", "test", b.schema(), vec![b]).unwrap();
    s
}

fn rows(s: &Session, sql: &str) -> Vec<Row> {
    let out = s.query(sql).unwrap_or_else(|e| panic!("{sql}\n{e}\nrewritten: {:?}", rlox_sql::rewrite_to_string(sql)));
    let mut v = Vec::new();
    for b in &out.batches {
        let cols: Vec<ArrayRef> = b
            .columns()
            .iter()
            .map(|c| datafusion::arrow::compute::cast(c, &datafusion::arrow::datatypes::DataType::Int64).unwrap())
            .collect();
        for i in 0..b.num_rows() {
            v.push(
                cols.iter()
                    .map(|c| {
                        let c = c.as_any().downcast_ref::<Int64Array>().unwrap();
                        (!c.is_null(i)).then(|| c.value(i))
                    })
                    .collect(),
            );
        }
    }
    v
}

fn r(v: &[&[Option<i64>]]) -> Vec<Row> {
    v.iter().map(|x| x.to_vec()).collect()
}

const N: Option<i64> = None;
fn s(x: i64) -> Option<i64> {
    Some(x)
}

#[test]
fn single_lateral_view_drops_empty_and_null() {
    let s_ = session();
    let want = r(&[&[s(1), s(1)], &[s(1), s(2)], &[s(4), s(3)]]);
    assert_eq!(rows(&s_, "SELECT id, x FROM t LATERAL VIEW explode(xs) v AS x ORDER BY id, x"), want);
    // Qualified names: the base table's and the view's.
    assert_eq!(rows(&s_, "SELECT t.id, v.x FROM t LATERAL VIEW explode(t.xs) v AS x ORDER BY t.id, v.x"), want);
    // An aliased base table and a WHERE on the exploded column.
    assert_eq!(
        rows(&s_, "SELECT a.id, x FROM t a LATERAL VIEW explode(a.xs) v AS x WHERE v.x > 1 ORDER BY x"),
        r(&[&[s(1), s(2)], &[s(4), s(3)]])
    );
}

#[test]
fn outer_lateral_view_keeps_empty_and_null_as_null_rows() {
    let s_ = session();
    let want = r(&[&[s(1), s(1)], &[s(1), s(2)], &[s(2), N], &[s(3), N], &[s(4), s(3)]]);
    assert_eq!(rows(&s_, "SELECT id, x FROM t LATERAL VIEW OUTER explode(xs) v AS x ORDER BY id, x"), want);
    assert_eq!(rows(&s_, "SELECT id, explode_outer(xs) AS x FROM t ORDER BY id, x"), want);
}

#[test]
fn double_lateral_view_is_a_cartesian_product() {
    let s_ = session();
    let got = rows(
        &s_,
        "SELECT t.id, a.x, b.y FROM t LATERAL VIEW explode(xs) a AS x LATERAL VIEW explode(ys) b AS y ORDER BY 1, 2, 3",
    );
    assert_eq!(got, r(&[&[s(1), s(1), s(10)], &[s(1), s(1), s(20)], &[s(1), s(2), s(10)], &[s(1), s(2), s(20)]]));
    // OUTER on the second view keeps id 4 (ys empty); the first view still drops 2 and 3.
    let got = rows(
        &s_,
        "SELECT id, x, y FROM t LATERAL VIEW explode(xs) a AS x LATERAL VIEW OUTER explode(ys) b AS y ORDER BY 1, 2, 3",
    );
    assert_eq!(got.len(), 5);
    assert_eq!(got[4], vec![s(4), s(3), N]);
    // Unqualified count over the product.
    assert_eq!(
        rows(&s_, "SELECT count(*) FROM t LATERAL VIEW OUTER explode(xs) a AS x LATERAL VIEW OUTER explode(ys) b AS y"),
        r(&[&[s(2 * 2 + 1 + 1 + 1)]])
    );
}

#[test]
fn explode_in_select_and_posexplode() {
    let s_ = session();
    assert_eq!(
        rows(&s_, "SELECT id, explode(xs) AS x FROM t ORDER BY id, x"),
        r(&[&[s(1), s(1)], &[s(1), s(2)], &[s(4), s(3)]])
    );
    assert_eq!(rows(&s_, "SELECT explode(xs) FROM t ORDER BY col"), r(&[&[s(1)], &[s(2)], &[s(3)]]));
    assert_eq!(
        rows(&s_, "SELECT id, pos, x FROM t LATERAL VIEW posexplode(xs) p AS pos, x ORDER BY id, pos"),
        r(&[&[s(1), s(0), s(1)], &[s(1), s(1), s(2)], &[s(4), s(0), s(3)]])
    );
    assert_eq!(
        rows(&s_, "SELECT id, pos, x FROM t LATERAL VIEW OUTER posexplode(xs) p AS pos, x ORDER BY id, pos"),
        r(&[&[s(1), s(0), s(1)], &[s(1), s(1), s(2)], &[s(2), N, N], &[s(3), N, N], &[s(4), s(0), s(3)]])
    );
    // A lateral view inside a subquery and a CTE.
    assert_eq!(
        rows(&s_, "WITH e AS (SELECT id, x FROM t LATERAL VIEW explode(xs) v AS x) SELECT sum(x) FROM e"),
        r(&[&[s(6)]])
    );
}

fn grpo_store(dir: &std::path::Path) {
    let store = RolloutStore::new(dir, "exp", &["accuracy", "format"], WriteOptions::default()).unwrap();
    for step in 0..2 {
        let groups: Vec<RolloutGroup> = (0..2)
            .map(|g| RolloutGroup {
                step,
                prompt: format!("p{g}"),
                completions: (0..4)
                    .map(|k| {
                        let acc = ((k + g as usize + step as usize) % 2) as f64;
                        Completion {
                            text: format!("s{step} p{g} c{k}"),
                            num_tokens: 5 + k as i64,
                            rewards: vec![acc, 1.0],
                            reward: acc + 1.0,
                            advantage: 0.0,
                        }
                    })
                    .collect(),
            })
            .collect();
        store.write_step(step, &groups).unwrap();
    }
}

#[test]
fn grpo_group_advantages_with_window_functions() {
    let dir = tempfile::tempdir().unwrap();
    grpo_store(dir.path());
    let mut s_ = Session::new(1).unwrap();
    s_.register("rollouts", dir.path()).unwrap();
    // Partition columns from the directories, struct fields through the view's alias or the column.
    let out = s_
        .query(
            "SELECT run, step, prompt, c.reward - avg(c.reward) OVER (PARTITION BY step, prompt) AS adv, \
             v.c.rewards.accuracy AS acc \
             FROM rollouts LATERAL VIEW explode(completions) v AS c ORDER BY step, prompt, c.text",
        )
        .unwrap();
    assert_eq!(out.num_rows(), 16);
    let json = out.to_json_rows().unwrap();
    assert_eq!(json[0]["run"], "exp");
    assert_eq!(json[0]["step"], 0);
    // Each group has two accurate and two wrong completions: advantages are +-0.5.
    for row in &json {
        let adv = row["adv"].as_f64().unwrap();
        let acc = row["acc"].as_f64().unwrap();
        assert!((adv - (acc - 0.5)).abs() < 1e-12, "{row}");
    }
    // Group statistics per step.
    let out = s_
        .query(
            "SELECT step, count(*) AS n, avg(c.num_tokens) AS tokens, stddev_pop(c.reward) AS sd \
             FROM rollouts LATERAL VIEW explode(completions) v AS c GROUP BY step ORDER BY step",
        )
        .unwrap();
    let json = out.to_json_rows().unwrap();
    assert_eq!(json[1]["n"], 8);
    assert_eq!(json[1]["tokens"], 6.5);
    assert_eq!(json[1]["sd"], 0.5);
}

#[test]
fn output_columns_keep_the_select_order_and_spark_names() {
    let dir = tempfile::tempdir().unwrap();
    grpo_store(dir.path());
    let mut s_ = Session::new(1).unwrap();
    s_.register("rollouts", dir.path()).unwrap();
    let out = s_
        .query(
            "SELECT prompt, c.text, c.reward, rollouts.step FROM rollouts LATERAL VIEW explode(completions) v AS c \
             ORDER BY step, prompt, c.text LIMIT 2",
        )
        .unwrap();
    // Spark and Hive name a projected struct field (and a qualified column) by its last name.
    let names: Vec<&str> = out.schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["prompt", "text", "reward", "step"]);
    // JSON: every row's keys in that order (not sorted), NULLs written out.
    let json = out.to_json().unwrap();
    let first = json.split("},{").next().unwrap();
    let at = |k: &str| first.find(&format!("\"{k}\":")).unwrap_or_else(|| panic!("{k} missing in {first}"));
    assert!(at("prompt") < at("text") && at("text") < at("reward") && at("reward") < at("step"), "{json}");
    assert_eq!(out.to_json_rows().unwrap().len(), 2);
    // CSV header and the table's header line.
    assert!(out.to_csv().unwrap().starts_with("prompt,text,reward,step\n"), "{}", out.to_csv().unwrap());
    let table = out.to_table().unwrap();
    let header = table.lines().nth(1).unwrap();
    let cells: Vec<&str> = header.split('|').map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(cells, ["prompt", "text", "reward", "step"], "{table}");
    // A field whose last name another output column already has keeps DataFusion's name (no collision).
    let out = s_
        .query("SELECT c.num_tokens AS reward, c.reward FROM rollouts LATERAL VIEW explode(completions) v AS c LIMIT 1")
        .unwrap();
    assert_eq!(out.schema.field(0).name(), "reward");
    assert_ne!(out.schema.field(1).name(), "reward");
    // An explicit alias wins.
    let out = s_.query("SELECT c.text AS t FROM rollouts LATERAL VIEW explode(completions) v AS c LIMIT 1").unwrap();
    assert_eq!(out.schema.field(0).name(), "t");
}

fn err(s: &Session, sql: &str) -> String {
    match s.query(sql) {
        Ok(_) => panic!("{sql} should fail"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unsupported_sql_is_a_clear_error_with_position() {
    let s_ = session();
    let e = err(&s_, "SELECT id,\n  inline(xs) FROM t");
    assert!(e.contains("inline()") && e.contains("line 2, column 3"), "{e}");
    let e = err(&s_, "SELECT id FROM t LATERAL VIEW json_tuple(id, 'a') j AS a");
    assert!(e.contains("json_tuple()") && e.contains("column 31"), "{e}");
    let e = err(&s_, "SELECT id, explode(xs) + 1 FROM t");
    assert!(e.contains("inside an expression") && e.contains("column 12"), "{e}");
    let e = err(&s_, "SELECT * FROM t JOIN t u ON t.id = u.id LATERAL VIEW explode(t.xs) v AS x");
    assert!(e.contains("after a join"), "{e}");
    let e = err(&s_, "SELECT id FROM t LATERAL VIEW posexplode(xs) p AS x");
    assert!(e.contains("column aliases"), "{e}");
    let e = err(&s_, "SELEC id FROM t");
    assert!(e.contains("syntax error") && e.contains("Line: 1"), "{e}");
    let e = err(&s_, "SELECT nope FROM t");
    assert!(e.contains("nope"), "{e}");
    let e = err(&s_, "SELECT * FROM missing_table");
    assert!(e.contains("missing_table"), "{e}");
}

#[test]
fn bad_tables_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    grpo_store(&dir.path().join("r"));
    let mut s_ = Session::new(1).unwrap();
    // Does not exist.
    let e = s_.register("x", dir.path().join("nope")).unwrap_err().to_string();
    assert!(e.contains("nope") && e.contains("no such file"), "{e}");
    // Collides.
    s_.register("r", dir.path().join("r")).unwrap();
    let e = s_.register("r", dir.path().join("r")).unwrap_err().to_string();
    assert!(e.contains("table `r`") && e.contains("already registered"), "{e}");
    // Truncated file.
    let f = dir.path().join("r/run=exp/step=1/part-00000.parquet");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() - 20]).unwrap();
    let e = s_.register("r2", dir.path().join("r")).unwrap_err().to_string();
    assert!(e.contains("step=1/part-00000.parquet") && e.contains("not a readable Parquet file"), "{e}");
    // A file with another schema in the same directory.
    std::fs::write(&f, &bytes).unwrap();
    let b = rlox_data::records::preferences_to_batch(&[rlox_data::records::Preference {
        prompt: "p".into(),
        chosen: "a".into(),
        rejected: "b".into(),
    }])
    .unwrap();
    let odd = dir.path().join("r/run=exp/step=1/part-00001.parquet");
    rlox_data::write::write_parquet(&odd, b.schema(), &[b], &WriteOptions::default()).unwrap();
    let e = s_.register("r3", dir.path().join("r")).unwrap_err().to_string();
    assert!(e.contains("part-00001.parquet") && e.contains("different schema"), "{e}");
    assert!(matches!(s_.register("bad name", dir.path().join("r")), Err(Error::Table { .. })));
}

#[test]
fn run_directories_and_datasets_register_automatically() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("grpo-1");
    grpo_store(&run.join("rollouts"));
    std::fs::write(run.join("metrics.jsonl"), "{\"step\":1,\"wall_time\":1.0,\"loss\":0.5,\"kl\":0.1}\n").unwrap();
    let b = rlox_data::records::prompts_to_batch(&[rlox_data::records::Prompt { prompt: "p".into(), answer: None }])
        .unwrap();
    rlox_data::hf::write_hf_dataset(
        dir.path().join("ds"),
        "ds",
        b.schema(),
        &[("train", vec![b.clone()]), ("test", vec![b])],
        &WriteOptions::default(),
    )
    .unwrap();
    let mut s_ = Session::new(1).unwrap();
    assert_eq!(s_.register_auto(&run).unwrap(), ["metrics", "rollouts"]);
    assert_eq!(s_.register_auto(dir.path().join("ds")).unwrap(), ["test", "train"]);
    let out = s_.query("SELECT name, value FROM metrics ORDER BY name").unwrap();
    assert_eq!(out.to_csv().unwrap(), "name,value\nkl,0.1\nloss,0.5\n");
    assert_eq!(s_.query("SELECT count(*) AS n FROM train").unwrap().to_json_rows().unwrap()[0]["n"], 1);
    // A second run directory collides on `metrics`.
    let e = s_.register_auto(&run).unwrap_err().to_string();
    assert!(e.contains("already registered"), "{e}");
}
