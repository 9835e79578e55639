//! Arrow schemas of the rlox record kinds, and a shape comparison that ignores the names Parquet
//! gives list elements.

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use std::sync::Arc;

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("element", item, true)))
}

/// TRL's standard preference format: `prompt, chosen, rejected` (strings).
pub fn preference_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![utf8("prompt", false), utf8("chosen", false), utf8("rejected", false)]))
}

/// Prompt-only datasets (GRPO, online DPO): `prompt` and an optional reference `answer` that rule-based
/// reward functions compare against.
pub fn prompt_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![utf8("prompt", false), utf8("answer", true)]))
}

/// The struct of one completion: `text, num_tokens, rewards: struct<one f64 per reward function>,
/// reward (the weighted total), advantage`. Without reward functions the `rewards` field is left out
/// (Parquet has no empty groups).
pub fn completion_fields(reward_names: &[String]) -> Fields {
    let mut fields = vec![Field::new("text", DataType::Utf8, false), Field::new("num_tokens", DataType::Int64, false)];
    if !reward_names.is_empty() {
        let per_fn: Fields = reward_names.iter().map(|n| Field::new(n, DataType::Float64, true)).collect();
        fields.push(Field::new("rewards", DataType::Struct(per_fn), false));
    }
    fields.push(Field::new("reward", DataType::Float64, false));
    fields.push(Field::new("advantage", DataType::Float64, false));
    fields.into()
}

/// GRPO rollouts, one row per prompt group: `[run, step,] prompt, completions: list<completion>`.
/// `with_partition_columns = false` drops `run` and `step`, which then live in the Hive partition
/// directories (`run=<name>/step=<n>/`).
pub fn rollout_schema(reward_names: &[String], with_partition_columns: bool) -> SchemaRef {
    let mut fields = Vec::new();
    if with_partition_columns {
        fields.push(utf8("run", false));
        fields.push(Field::new("step", DataType::Int64, false));
    }
    fields.push(utf8("prompt", false));
    fields.push(Field::new("completions", list_of(DataType::Struct(completion_fields(reward_names))), false));
    Arc::new(Schema::new(fields))
}

/// The struct of one transition: `t, obs: list<f64>, action: list<f64>, reward`.
pub fn transition_fields() -> Fields {
    vec![
        Field::new("t", DataType::Int64, false),
        Field::new("obs", list_of(DataType::Float64), false),
        Field::new("action", list_of(DataType::Float64), false),
        Field::new("reward", DataType::Float64, false),
    ]
    .into()
}

/// RL episodes, one row per episode: `run, episode, return, length, terminated, truncated,
/// transitions: list<transition>`.
pub fn episode_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("run", false),
        Field::new("episode", DataType::Int64, false),
        Field::new("return", DataType::Float64, false),
        Field::new("length", DataType::Int64, false),
        Field::new("terminated", DataType::Boolean, false),
        Field::new("truncated", DataType::Boolean, false),
        Field::new("transitions", list_of(DataType::Struct(transition_fields())), false),
    ]))
}

/// Training metrics in long format (like `metrics.csv`): `run, step, wall_time_us, name, value`.
/// `wall_time_us` is epoch microseconds as a plain INT64; a non-finite value is NULL.
pub fn metrics_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("run", false),
        Field::new("step", DataType::Int64, false),
        Field::new("wall_time_us", DataType::Int64, false),
        utf8("name", false),
        Field::new("value", DataType::Float64, true),
    ]))
}

/// Whether two types have the same shape: equal, up to the names of list elements (Parquet readers
/// call them `element`, `item` or `array`), string/large-string and nullability.
pub fn same_shape(a: &DataType, b: &DataType) -> bool {
    use DataType::*;
    match (a, b) {
        (List(x) | LargeList(x), List(y) | LargeList(y)) => same_shape(x.data_type(), y.data_type()),
        (Struct(x), Struct(y)) => {
            x.len() == y.len()
                && x.iter().zip(y.iter()).all(|(f, g)| f.name() == g.name() && same_shape(f.data_type(), g.data_type()))
        }
        (Utf8 | LargeUtf8 | Utf8View, Utf8 | LargeUtf8 | Utf8View) => true,
        _ => a == b,
    }
}

/// A short, SQL-like rendering of a type for error messages (`list<struct<text: string, ..>>`).
pub fn type_name(t: &DataType) -> String {
    use DataType::*;
    match t {
        Utf8 | LargeUtf8 | Utf8View => "string".into(),
        Int64 => "bigint".into(),
        Int32 => "int".into(),
        Float64 => "double".into(),
        Float32 => "float".into(),
        Boolean => "boolean".into(),
        List(f) | LargeList(f) => format!("list<{}>", type_name(f.data_type())),
        Struct(fs) => {
            let inner: Vec<String> = fs.iter().map(|f| format!("{}: {}", f.name(), type_name(f.data_type()))).collect();
            format!("struct<{}>", inner.join(", "))
        }
        other => format!("{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_ignore_list_element_names() {
        let a = DataType::List(Arc::new(Field::new("item", DataType::Int64, true)));
        let b = DataType::List(Arc::new(Field::new("element", DataType::Int64, false)));
        assert!(same_shape(&a, &b));
        assert!(!same_shape(&a, &DataType::Int64));
        let names = vec!["accuracy".to_string(), "format".to_string()];
        let s = rollout_schema(&names, true);
        assert_eq!(
            type_name(s.field_with_name("completions").unwrap().data_type()),
            "list<struct<text: string, num_tokens: bigint, rewards: struct<accuracy: double, format: double>, reward: double, advantage: double>>"
        );
    }
}
