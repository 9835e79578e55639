//! Round trips, the Hive-safe profile on disk, and bad input naming the file.

use parquet::file::reader::{FileReader, SerializedFileReader};
use rlox_core::logger::Logger;
use rlox_data::hf::{read_hf_split, write_hf_dataset};
use rlox_data::metrics::{metrics_from_jsonl, ParquetMetricsLogger};
use rlox_data::read::{file_schema, read_preferences, read_prompts, read_rollouts};
use rlox_data::records::*;
use rlox_data::rollouts::RolloutStore;
use rlox_data::schema::preference_schema;
use rlox_data::write::{check_hive_safe, write_parquet, Compression, WriteOptions};
use std::fs::File;

fn prefs() -> Vec<Preference> {
    (0..5)
        .map(|i| Preference { prompt: format!("q{i}"), chosen: format!("good {i}"), rejected: format!("bad {i}") })
        .collect()
}

fn groups(step: i64) -> Vec<RolloutGroup> {
    (0..3)
        .map(|g| RolloutGroup {
            step,
            prompt: format!("prompt {g}"),
            completions: (0..g + 1)
                .map(|k| Completion {
                    text: format!("c{g}{k}"),
                    num_tokens: 3 + k as i64,
                    rewards: vec![k as f64, 0.5],
                    reward: k as f64 + 0.5,
                    advantage: 0.0,
                })
                .collect(),
        })
        .collect()
}

#[test]
fn preferences_round_trip_with_both_codecs() {
    let dir = tempfile::tempdir().unwrap();
    for (name, c) in [("z.parquet", Compression::Zstd(3)), ("s.parquet", Compression::Snappy)] {
        let p = dir.path().join(name);
        let opts = WriteOptions { compression: c, ..Default::default() };
        write_parquet(&p, preference_schema(), &[preferences_to_batch(&prefs()).unwrap()], &opts).unwrap();
        assert_eq!(read_preferences(&p).unwrap(), prefs());
    }
}

#[test]
fn rollouts_partitioned_like_hive_and_lists_spec_compliant() {
    let dir = tempfile::tempdir().unwrap();
    let store = RolloutStore::new(dir.path(), "exp1", &["accuracy", "format"], WriteOptions::default()).unwrap();
    let f0 = store.write_step(0, &groups(0)).unwrap();
    store.write_step(1, &groups(1)).unwrap();
    assert!(f0.ends_with("run=exp1/step=0/part-00000.parquet"), "{}", f0.display());
    let (names, back) = read_rollouts(dir.path()).unwrap();
    assert_eq!(names, ["accuracy", "format"]);
    let mut expect = groups(0);
    expect.extend(groups(1));
    assert_eq!(back, expect);
    // The Parquet schema uses the three-level list with `list`/`element` and no partition columns.
    let reader = SerializedFileReader::new(File::open(&f0).unwrap()).unwrap();
    let mut text = Vec::new();
    parquet::schema::printer::print_schema(&mut text, reader.metadata().file_metadata().schema());
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("REPEATED group list") && text.contains("group element"), "{text}");
    assert!(!text.contains("item") && !text.contains(" step") && !text.contains("UINT"), "{text}");
}

#[test]
fn step_mismatch_and_bad_reward_names_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    assert!(RolloutStore::new(dir.path(), "r", &["bad name"], WriteOptions::default()).is_err());
    let store = RolloutStore::new(dir.path(), "r", &["a", "b"], WriteOptions::default()).unwrap();
    assert!(store.write_step(2, &groups(1)).unwrap_err().to_string().contains("step 1"));
}

#[test]
fn hive_profile_rejects_unsigned_and_timestamps() {
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    let s = Schema::new(vec![Field::new("n", DataType::UInt64, false)]);
    assert!(check_hive_safe(&s).unwrap_err().to_string().contains("unsigned"));
    let s = Schema::new(vec![Field::new("t", DataType::Timestamp(TimeUnit::Microsecond, None), false)]);
    assert!(check_hive_safe(&s).unwrap_err().to_string().contains("epoch microseconds"));
    check_hive_safe(&rlox_data::schema::episode_schema()).unwrap();
}

#[test]
fn episodes_and_metrics_write() {
    let dir = tempfile::tempdir().unwrap();
    let eps = vec![Episode {
        episode: 0,
        transitions: vec![
            Transition { obs: vec![0.1, 0.2], action: vec![1.0], reward: 1.0 },
            Transition { obs: vec![0.3, 0.4], action: vec![0.0], reward: 2.0 },
        ],
        terminated: true,
        truncated: false,
    }];
    let b = episodes_to_batch("r", &eps).unwrap();
    let p = write_parquet(dir.path().join("e.parquet"), b.schema(), &[b], &WriteOptions::default()).unwrap();
    let (_, back) = rlox_data::read::read_file(&p).unwrap();
    assert_eq!(back[0].num_rows(), 1);

    let mp = dir.path().join("metrics.parquet");
    {
        let mut log = ParquetMetricsLogger::new(&mp, "r", WriteOptions::default());
        log.log(1, &[("loss", 0.5), ("bad", f64::NAN)]).unwrap();
        log.log(2, &[("loss", 0.25)]).unwrap();
    }
    let (schema, batches) = rlox_data::read::read_file(&mp).unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
    assert!(schema.field_with_name("wall_time_us").is_ok());

    let jl = dir.path().join("metrics.jsonl");
    std::fs::write(
        &jl,
        "{\"step\":1,\"wall_time\":1.5,\"loss\":0.5,\"x\":null}\n{\"step\":2,\"wall_time\":2.0,\"loss\":0.25}\n",
    )
    .unwrap();
    let rows = metrics_from_jsonl(&jl).unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].wall_time_us, 1_500_000);
    std::fs::write(&jl, "{\"step\":1}\nnot json\n").unwrap();
    assert!(metrics_from_jsonl(&jl).unwrap_err().to_string().contains("metrics.jsonl:2"));
}

#[test]
fn hf_layout_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let b = preferences_to_batch(&prefs()).unwrap();
    let files = write_hf_dataset(
        dir.path(),
        "prefs",
        preference_schema(),
        &[("train", vec![b.clone()]), ("test", vec![b])],
        &WriteOptions::default(),
    )
    .unwrap();
    assert!(files[0].ends_with("data/train-00000-of-00001.parquet"));
    let readme = std::fs::read_to_string(dir.path().join("README.md")).unwrap();
    assert!(readme.starts_with("---\nconfigs:\n- config_name: default"), "{readme}");
    assert!(readme.contains("  - name: chosen\n    dtype: string\n"), "{readme}");
    assert_eq!(read_hf_split(dir.path(), "test").unwrap()[0].num_rows(), 5);
    assert_eq!(read_preferences(dir.path().join("data")).unwrap().len(), 10);
}

#[test]
fn bad_input_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("prefs.parquet");
    write_parquet(&p, preference_schema(), &[preferences_to_batch(&prefs()).unwrap()], &WriteOptions::default())
        .unwrap();
    // Truncated.
    let bytes = std::fs::read(&p).unwrap();
    let t = dir.path().join("truncated.parquet");
    std::fs::write(&t, &bytes[..bytes.len() / 2]).unwrap();
    let e = read_preferences(&t).unwrap_err().to_string();
    assert!(e.contains("truncated.parquet") && e.contains("not a readable Parquet file"), "{e}");
    // Wrong schema: a prompt dataset read as preferences.
    let q = dir.path().join("prompts.parquet");
    let pr = vec![Prompt { prompt: "p".into(), answer: None }];
    write_parquet(&q, rlox_data::schema::prompt_schema(), &[prompts_to_batch(&pr).unwrap()], &WriteOptions::default())
        .unwrap();
    let e = read_preferences(&q).unwrap_err().to_string();
    assert!(e.contains("prompts.parquet") && e.contains("missing column `chosen`"), "{e}");
    assert_eq!(read_prompts(&q).unwrap(), pr);
    // Missing path.
    let e = file_schema(dir.path().join("nope.parquet")).unwrap_err().to_string();
    assert!(e.contains("nope.parquet"), "{e}");
    // No temp files left behind.
    assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().starts_with('.')));
}
