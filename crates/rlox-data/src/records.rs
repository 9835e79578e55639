//! The record types and their conversion to and from Arrow record batches.

use crate::schema::{self, completion_fields, transition_fields};
use crate::{Error, Result};
use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, ListArray, RecordBatch, StringArray, StructArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, SchemaRef};
use std::sync::Arc;

/// One preference pair in TRL's standard format.
#[derive(Debug, Clone, PartialEq)]
pub struct Preference {
    /// The prompt.
    pub prompt: String,
    /// The preferred completion.
    pub chosen: String,
    /// The dispreferred completion.
    pub rejected: String,
}

/// One prompt of a prompt-only dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// The prompt.
    pub prompt: String,
    /// A reference answer for rule-based rewards, if any.
    pub answer: Option<String>,
}

/// One sampled completion of a GRPO group.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The decoded completion.
    pub text: String,
    /// Its length in tokens.
    pub num_tokens: i64,
    /// One reward per reward function, in the order of the store's reward names.
    pub rewards: Vec<f64>,
    /// The total (weighted) reward.
    pub reward: f64,
    /// The group-normalised advantage.
    pub advantage: f64,
}

/// The completions sampled for one prompt at one training step.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutGroup {
    /// Training step.
    pub step: i64,
    /// The prompt.
    pub prompt: String,
    /// The group's completions.
    pub completions: Vec<Completion>,
}

/// One environment transition.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The observation before the action (flattened).
    pub obs: Vec<f64>,
    /// The action (flattened; a discrete action is one number).
    pub action: Vec<f64>,
    /// The reward that followed.
    pub reward: f64,
}

/// One RL episode.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    /// Episode index within the run.
    pub episode: i64,
    /// The transitions in order.
    pub transitions: Vec<Transition>,
    /// Whether the MDP ended.
    pub terminated: bool,
    /// Whether a time limit cut it.
    pub truncated: bool,
}

fn strings<'a>(it: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(it))
}

fn list(item: DataType, lengths: impl Iterator<Item = usize>, values: ArrayRef) -> ArrayRef {
    let field = Arc::new(Field::new("element", item, true));
    Arc::new(ListArray::new(field, OffsetBuffer::from_lengths(lengths), values, None))
}

/// Preference pairs as a batch of [`schema::preference_schema`].
pub fn preferences_to_batch(rows: &[Preference]) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        schema::preference_schema(),
        vec![
            strings(rows.iter().map(|r| r.prompt.as_str())),
            strings(rows.iter().map(|r| r.chosen.as_str())),
            strings(rows.iter().map(|r| r.rejected.as_str())),
        ],
    )?)
}

/// Prompts as a batch of [`schema::prompt_schema`].
pub fn prompts_to_batch(rows: &[Prompt]) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        schema::prompt_schema(),
        vec![
            strings(rows.iter().map(|r| r.prompt.as_str())),
            Arc::new(rows.iter().map(|r| r.answer.as_deref()).collect::<StringArray>()),
        ],
    )?)
}

/// Rollout groups as a batch of [`schema::rollout_schema`]; `run` is `Some` to include the `run` and
/// `step` columns, `None` for files inside Hive partition directories.
pub fn rollouts_to_batch(run: Option<&str>, reward_names: &[String], groups: &[RolloutGroup]) -> Result<RecordBatch> {
    let all: Vec<&Completion> = groups.iter().flat_map(|g| g.completions.iter()).collect();
    for c in &all {
        if c.rewards.len() != reward_names.len() {
            return Err(Error::invalid(
                "completion rewards",
                format!("{} values for {} reward functions ({reward_names:?})", c.rewards.len(), reward_names.len()),
            ));
        }
    }
    let fields = completion_fields(reward_names);
    let mut cols: Vec<ArrayRef> = vec![
        strings(all.iter().map(|c| c.text.as_str())),
        Arc::new(Int64Array::from_iter_values(all.iter().map(|c| c.num_tokens))),
    ];
    if !reward_names.is_empty() {
        let DataType::Struct(per_fn) = fields[2].data_type().clone() else { unreachable!() };
        let arrays: Vec<ArrayRef> = (0..reward_names.len())
            .map(|k| Arc::new(Float64Array::from_iter_values(all.iter().map(|c| c.rewards[k]))) as ArrayRef)
            .collect();
        cols.push(Arc::new(StructArray::try_new(per_fn, arrays, None)?));
    }
    cols.push(Arc::new(Float64Array::from_iter_values(all.iter().map(|c| c.reward))));
    cols.push(Arc::new(Float64Array::from_iter_values(all.iter().map(|c| c.advantage))));
    let completions = StructArray::try_new(fields.clone(), cols, None)?;
    let mut columns: Vec<ArrayRef> = Vec::new();
    if let Some(run) = run {
        columns.push(strings(groups.iter().map(|_| run)));
        columns.push(Arc::new(Int64Array::from_iter_values(groups.iter().map(|g| g.step))));
    }
    columns.push(strings(groups.iter().map(|g| g.prompt.as_str())));
    columns.push(list(DataType::Struct(fields), groups.iter().map(|g| g.completions.len()), Arc::new(completions)));
    Ok(RecordBatch::try_new(schema::rollout_schema(reward_names, run.is_some()), columns)?)
}

/// Episodes as a batch of [`schema::episode_schema`].
pub fn episodes_to_batch(run: &str, episodes: &[Episode]) -> Result<RecordBatch> {
    let all: Vec<(usize, &Transition)> = episodes.iter().flat_map(|e| e.transitions.iter().enumerate()).collect();
    let obs_values = Float64Array::from_iter_values(all.iter().flat_map(|(_, t)| t.obs.iter().copied()));
    let act_values = Float64Array::from_iter_values(all.iter().flat_map(|(_, t)| t.action.iter().copied()));
    let transitions = StructArray::try_new(
        transition_fields(),
        vec![
            Arc::new(Int64Array::from_iter_values(all.iter().map(|(i, _)| *i as i64))),
            list(DataType::Float64, all.iter().map(|(_, t)| t.obs.len()), Arc::new(obs_values)),
            list(DataType::Float64, all.iter().map(|(_, t)| t.action.len()), Arc::new(act_values)),
            Arc::new(Float64Array::from_iter_values(all.iter().map(|(_, t)| t.reward))),
        ],
        None,
    )?;
    Ok(RecordBatch::try_new(
        schema::episode_schema(),
        vec![
            strings(episodes.iter().map(|_| run)),
            Arc::new(Int64Array::from_iter_values(episodes.iter().map(|e| e.episode))),
            Arc::new(Float64Array::from_iter_values(
                episodes.iter().map(|e| e.transitions.iter().map(|t| t.reward).sum::<f64>()),
            )),
            Arc::new(Int64Array::from_iter_values(episodes.iter().map(|e| e.transitions.len() as i64))),
            Arc::new(BooleanArray::from_iter(episodes.iter().map(|e| Some(e.terminated)))),
            Arc::new(BooleanArray::from_iter(episodes.iter().map(|e| Some(e.truncated)))),
            list(
                DataType::Struct(transition_fields()),
                episodes.iter().map(|e| e.transitions.len()),
                Arc::new(transitions),
            ),
        ],
    )?)
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch.column_by_name(name).ok_or_else(|| Error::invalid("batch", format!("no column {name}")))
}

fn string_values(a: &dyn Array) -> Vec<Option<String>> {
    let a = arrow::compute::cast(a, &DataType::Utf8).expect("strings cast to Utf8");
    a.as_string::<i32>().iter().map(|s| s.map(str::to_string)).collect()
}

/// Read preference pairs back from a batch (checked against the schema by the caller).
pub fn preferences_from_batch(batch: &RecordBatch) -> Result<Vec<Preference>> {
    let p = string_values(column(batch, "prompt")?);
    let c = string_values(column(batch, "chosen")?);
    let r = string_values(column(batch, "rejected")?);
    Ok((0..batch.num_rows())
        .map(|i| Preference {
            prompt: p[i].clone().unwrap_or_default(),
            chosen: c[i].clone().unwrap_or_default(),
            rejected: r[i].clone().unwrap_or_default(),
        })
        .collect())
}

/// Read prompts back from a batch; `answer` may be absent.
pub fn prompts_from_batch(batch: &RecordBatch) -> Result<Vec<Prompt>> {
    let p = string_values(column(batch, "prompt")?);
    let a = batch.column_by_name("answer").map(|c| string_values(c.as_ref()));
    Ok((0..batch.num_rows())
        .map(|i| Prompt { prompt: p[i].clone().unwrap_or_default(), answer: a.as_ref().and_then(|a| a[i].clone()) })
        .collect())
}

/// Read rollout groups back from a batch. `step` comes from the batch's `step` column or, for files
/// inside partition directories, from `step_default`. Returns the reward names too.
pub fn rollouts_from_batch(batch: &RecordBatch, step_default: i64) -> Result<(Vec<String>, Vec<RolloutGroup>)> {
    let prompts = string_values(column(batch, "prompt")?);
    let steps: Option<Vec<i64>> = batch.column_by_name("step").map(|c| {
        let c = arrow::compute::cast(c, &DataType::Int64).expect("step casts to Int64");
        c.as_primitive::<Int64Type>().iter().map(|v| v.unwrap_or(step_default)).collect()
    });
    let lists = column(batch, "completions")?.as_list::<i32>();
    let items = lists.values().as_struct();
    let texts = string_values(items.column_by_name("text").ok_or_else(|| Error::invalid("completions", "no text"))?);
    let get_f64 = |name: &str| -> Result<Vec<f64>> {
        let c = items.column_by_name(name).ok_or_else(|| Error::invalid("completions", format!("no {name}")))?;
        Ok(c.as_primitive::<Float64Type>().iter().map(|v| v.unwrap_or(f64::NAN)).collect())
    };
    let tokens: Vec<i64> = items
        .column_by_name("num_tokens")
        .ok_or_else(|| Error::invalid("completions", "no num_tokens"))?
        .as_primitive::<Int64Type>()
        .values()
        .to_vec();
    let reward = get_f64("reward")?;
    let advantage = get_f64("advantage")?;
    let (names, per_fn): (Vec<String>, Vec<Vec<f64>>) = match items.column_by_name("rewards") {
        Some(r) => {
            let r = r.as_struct();
            let names = r.fields().iter().map(|f| f.name().clone()).collect();
            let cols = r
                .columns()
                .iter()
                .map(|c| c.as_primitive::<Float64Type>().iter().map(|v| v.unwrap_or(f64::NAN)).collect())
                .collect();
            (names, cols)
        }
        None => (Vec::new(), Vec::new()),
    };
    let offsets = lists.value_offsets();
    let groups = (0..batch.num_rows())
        .map(|i| RolloutGroup {
            step: steps.as_ref().map_or(step_default, |s| s[i]),
            prompt: prompts[i].clone().unwrap_or_default(),
            completions: (offsets[i] as usize..offsets[i + 1] as usize)
                .map(|j| Completion {
                    text: texts[j].clone().unwrap_or_default(),
                    num_tokens: tokens[j],
                    rewards: per_fn.iter().map(|c| c[j]).collect(),
                    reward: reward[j],
                    advantage: advantage[j],
                })
                .collect(),
        })
        .collect();
    Ok((names, groups))
}

/// The schema of a record kind, for error messages and validation.
pub fn expected_schema(kind: &str) -> Option<SchemaRef> {
    match kind {
        "preference dataset" => Some(schema::preference_schema()),
        "prompt dataset" => Some(schema::prompt_schema()),
        "episodes" => Some(schema::episode_schema()),
        "metrics" => Some(schema::metrics_schema()),
        _ => None,
    }
}
