//! The checkpoints of every post-training run: one format, loadable by `transformers` and resumable
//! exactly.
//!
//! ```text
//! <run dir>/checkpoints/
//!   latest                        the newest complete checkpoint's name
//!   step-000000000040/
//!     config.json                 the model in Hugging Face layout (`from_pretrained` loads the
//!     model.safetensors           directory as it is)
//!     tokenizer.json, tokenizer_config.json, ...
//!     score.safetensors           (reward models: the scalar head)
//!     optimizer.safetensors       the optimizer's moments (`optimizer.<param>.<buffer>`)
//!     trainer_state.json          a [`TrainerState`]: step, data order, counters, metric records,
//!                                 the optimizer's step counts, the method's state
//! ```
//!
//! Checkpoints are written into a temporary directory and published by renaming it and then rewriting
//! `latest` ([`rlox_core::checkpoint::CheckpointDir`]): a process killed at any moment leaves `latest`
//! naming a complete checkpoint. Only the newest is kept. Loading checks every file it reads; a missing,
//! truncated or corrupted one is an [`Error::Checkpoint`] naming it, never a panic and never a silent
//! fresh start.
//!
//! For tests, `RLOX_TEST_PAUSE_IN_CHECKPOINT=N` makes the process stop while it writes the checkpoint of
//! step `N` (after the weights, before publishing), with a file `paused` in the temporary directory, so
//! that a test can kill it there.

use crate::policy::PolicyModel;
use crate::trainer::{MethodKind, Metrics};
use crate::{Error, Result};
use rlox_core::checkpoint::{read_file, CheckpointDir, TRAINER_STATE};
use rlox_lm::CausalLm;
use rlox_nn::state::{
    arrays_from_safetensors_bytes, arrays_to_safetensors_bytes, import_optimizer, Arrays, OptimizerMeta,
};
use rlox_nn::{Device, Module, Optimizer};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The optimizer's file in a checkpoint (without `.safetensors`), and the prefix of its arrays.
pub const OPTIMIZER: &str = "optimizer";

/// The typed `trainer_state.json` of a post-training checkpoint; `S` is the method's own state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainerState<S> {
    /// The method that wrote it (a checkpoint of another method is refused).
    pub method: MethodKind,
    /// Optimizer steps done.
    pub step: u64,
    /// Metric records logged before this checkpoint (a resumed run keeps these and drops the rest).
    pub records: u64,
    /// Byte lengths of the append-only files (`samples.jsonl`, `eval_samples.jsonl`) at this checkpoint.
    pub appended: BTreeMap<String, u64>,
    /// The optimizer's step counts (its moments are in `optimizer.safetensors`).
    pub optimizer: OptimizerMeta,
    /// The last step's metrics (for the summary).
    pub last: Vec<(String, JsonF64)>,
    /// The first evaluation's metrics.
    pub first_eval: Option<Vec<(String, JsonF64)>>,
    /// The latest evaluation's metrics.
    pub last_eval: Option<Vec<(String, JsonF64)>>,
    /// The method's state (data order, counters).
    pub method_state: S,
}

/// An `f64` that survives JSON exactly: a number when finite, else `"NaN"`, `"inf"` or `"-inf"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JsonF64 {
    /// A finite value.
    Finite(f64),
    /// A non-finite value by name.
    Named(String),
}

impl From<f64> for JsonF64 {
    fn from(v: f64) -> Self {
        if v.is_finite() {
            JsonF64::Finite(v)
        } else {
            JsonF64::Named(
                if v.is_nan() {
                    "NaN"
                } else if v > 0.0 {
                    "inf"
                } else {
                    "-inf"
                }
                .into(),
            )
        }
    }
}

impl From<&JsonF64> for f64 {
    fn from(v: &JsonF64) -> f64 {
        match v {
            JsonF64::Finite(x) => *x,
            JsonF64::Named(s) if s == "inf" => f64::INFINITY,
            JsonF64::Named(s) if s == "-inf" => f64::NEG_INFINITY,
            JsonF64::Named(_) => f64::NAN,
        }
    }
}

/// Metrics for a [`TrainerState`].
pub fn to_json_metrics(m: &[(String, f64)]) -> Vec<(String, JsonF64)> {
    m.iter().map(|(k, v)| (k.clone(), (*v).into())).collect()
}

/// Metrics from a [`TrainerState`].
pub fn from_json_metrics(m: Vec<(String, JsonF64)>) -> Metrics {
    m.into_iter().map(|(k, v)| (k, f64::from(&v))).collect()
}

/// A module the loop trains and checkpoints.
pub trait TrainedModel: Module + Clone {
    /// Write the model's files into checkpoint directory `dir` (tokenizer files from `tokenizer_dir`).
    fn save(&self, dir: &Path, tokenizer_dir: &Path) -> Result<()>;
    /// This model with the weights of checkpoint `dir` (same architecture), on `device`.
    fn load(&self, dir: &Path, device: &Device) -> Result<Self>;
}

/// `e` as a checkpoint error about `path` (without repeating a path the message already has).
pub fn checkpoint_error(path: &Path, e: Error) -> Error {
    match e {
        Error::Invalid { why, .. } => Error::checkpoint(path, why),
        Error::Checkpoint { why, .. } => Error::checkpoint(path, why),
        Error::Config { message, .. } => Error::checkpoint(path, message),
        Error::Io { source, .. } => Error::checkpoint(path, source.to_string()),
        other => Error::checkpoint(path, other.to_string()),
    }
}

impl TrainedModel for CausalLm {
    fn save(&self, dir: &Path, tokenizer_dir: &Path) -> Result<()> {
        rlox_lm::save_model(self, dir, Some(tokenizer_dir))
    }

    fn load(&self, dir: &Path, device: &Device) -> Result<Self> {
        // config.json is what transformers reads: check it parses, although the weights are loaded
        // with the run's own config.
        let json = dir.join("config.json");
        rlox_lm::LmConfig::from_file(&json).map_err(|e| checkpoint_error(&json, e))?;
        let file = dir.join("model.safetensors");
        let bytes = read_file(dir, "model.safetensors")?;
        let files = rlox_lm::weights::WeightFiles::from_bytes(vec![(file.display().to_string(), bytes)])
            .map_err(|e| checkpoint_error(&file, e))?;
        let mut model = rlox_lm::hf::load_weights(&self.config, &files, device, Default::default())
            .map_err(|e| checkpoint_error(&file, e))?;
        model.memory = self.memory;
        Ok(model)
    }
}

impl TrainedModel for PolicyModel {
    fn save(&self, dir: &Path, tokenizer_dir: &Path) -> Result<()> {
        match self {
            PolicyModel::Text(m) => m.save(dir, tokenizer_dir),
            PolicyModel::Vision(m) => rlox_vlm::save_kimi_vl(
                m,
                dir,
                Some(tokenizer_dir),
                rlox_lm::StorageDtype::F32,
                rlox_lm::hf::DEFAULT_SHARD_BYTES,
            ),
        }
    }

    fn load(&self, dir: &Path, device: &Device) -> Result<Self> {
        match self {
            PolicyModel::Text(m) => Ok(PolicyModel::Text(m.load(dir, device)?)),
            PolicyModel::Vision(m) => {
                let files = rlox_lm::WeightFiles::open_dir(dir).map_err(|e| checkpoint_error(dir, e))?;
                let model = rlox_vlm::hf::load_kimi_vl_weights(&m.config, &files, device)
                    .map_err(|e| checkpoint_error(dir, e))?;
                Ok(PolicyModel::Vision(model))
            }
        }
    }
}

/// Write checkpoint `state.step` of the run in `run_dir` (see the module docs); returns its directory.
pub fn save<S: Serialize, M: TrainedModel>(
    run_dir: &Path,
    state: &TrainerState<S>,
    model: &M,
    optimizer: &Arrays,
    tokenizer_dir: &Path,
) -> Result<PathBuf> {
    if !rlox_nn::all_finite(model) {
        return Err(Error::diverged(state.method.name(), "parameters", f64::NAN, "step", state.step));
    }
    let optimizer = arrays_to_safetensors_bytes(optimizer)?;
    CheckpointDir::new(run_dir.join("checkpoints")).save(state.step, state, |w| {
        model.save(w.dir(), tokenizer_dir)?;
        w.write(&format!("{OPTIMIZER}.safetensors"), &optimizer)?;
        pause_for_tests(state.step, w.dir());
        Ok(())
    })
}

/// The test hook of the module docs.
fn pause_for_tests(step: u64, dir: &Path) {
    let Ok(at) = std::env::var("RLOX_TEST_PAUSE_IN_CHECKPOINT") else { return };
    if at.parse() == Ok(step) {
        let _ = std::fs::write(dir.join("paused"), b"");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

/// The newest checkpoint directory of the run in `run_dir`.
pub fn latest(run_dir: &Path) -> Result<PathBuf> {
    CheckpointDir::new(run_dir.join("checkpoints")).latest()
}

/// The method that wrote the latest checkpoint of the run in `run_dir`.
pub fn method_of_run(run_dir: &Path) -> Result<MethodKind> {
    #[derive(Deserialize)]
    struct Header {
        method: MethodKind,
    }
    let dir = latest(run_dir)?;
    Ok(rlox_core::checkpoint::read_state::<Header>(&dir)?.method)
}

/// The latest checkpoint's directory and state; a checkpoint of another method is refused.
pub fn load_state<S: DeserializeOwned>(run_dir: &Path, method: MethodKind) -> Result<(PathBuf, TrainerState<S>)> {
    let found = method_of_run(run_dir)?;
    let dir = latest(run_dir)?;
    if found != method {
        return Err(Error::checkpoint(&dir, format!("a {found} checkpoint; this command trains {method}")));
    }
    let state: TrainerState<S> = rlox_core::checkpoint::read_state(&dir)?;
    Ok((dir, state))
}

/// Restore `optimizer`'s state for `model` from checkpoint `dir`.
pub fn load_optimizer<M: Module>(dir: &Path, optimizer: &mut Optimizer, model: &M, meta: &OptimizerMeta) -> Result<()> {
    let name = format!("{OPTIMIZER}.safetensors");
    let path = dir.join(&name);
    let arrays = arrays_from_safetensors_bytes(&read_file(dir, &name)?, &path)?;
    import_optimizer(optimizer, model, OPTIMIZER, &arrays, meta, &path)
}

/// Where a trainer state is read, for errors about its contents.
pub fn state_file(dir: &Path) -> PathBuf {
    dir.join(TRAINER_STATE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_metrics_survive_json() {
        let m = vec![("a".to_string(), 0.1), ("b".into(), f64::NAN), ("c".into(), f64::NEG_INFINITY)];
        let text = serde_json::to_string(&to_json_metrics(&m)).unwrap();
        let back = from_json_metrics(serde_json::from_str(&text).unwrap());
        assert_eq!(back[0], m[0]);
        assert!(back[1].1.is_nan() && back[2].1 == f64::NEG_INFINITY, "{text}");
    }
}
