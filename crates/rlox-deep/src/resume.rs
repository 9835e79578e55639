//! Checkpoints of the on-policy trainers that resume **exactly**.
//!
//! A checkpoint is taken between two rollouts and holds everything the next rollout depends on:
//!
//! * `policy-<update>.safetensors`: the actor-critic's parameters ([`rlox_nn::save_safetensors`]);
//! * `optimizer-<update>.bpk`: the optimizer's state (burn's record: Adam moments or RMSprop averages);
//! * `trainer.json`, written **last**: the update and env-step counters, the RNG streams (seed and
//!   ChaCha word position), the env batch's state ([`crate::rollout::VecEnvState`]), the episode
//!   statistics, the parameter ids that key the optimizer state, and the config.
//!
//! Every file is written atomically (temp file + rename) and `trainer.json` names the files of its
//! update, so a kill at any moment leaves the previous complete checkpoint readable; files of older
//! updates are deleted only after the new `trainer.json` is in place.

use crate::rollout::{EpisodeStats, VecEnvState};
use rlox_core::checkpoint::atomic_write;
use rlox_core::seeding::{rng_from_seed, Rng};
use rlox_core::{Error, Result};
use rlox_nn::burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use rlox_nn::burn::optim::ModuleOptimizer;
use rlox_nn::burn::tensor::Bytes;
use rlox_nn::Tensor;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A ChaCha stream's position: re-seed with `seed`, then jump to `word_pos`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RngState {
    /// The seed the stream was created from.
    pub seed: u64,
    /// `get_word_pos()` as a decimal string (a u128 does not fit JSON numbers).
    pub word_pos: String,
}

/// A seeded stream that remembers its seed, so its position can be saved.
#[derive(Debug, Clone)]
pub struct SeededRng {
    seed: u64,
    /// The stream.
    pub rng: Rng,
}

impl SeededRng {
    /// A fresh stream.
    pub fn new(seed: u64) -> Self {
        SeededRng { seed, rng: rng_from_seed(seed) }
    }

    /// Its position.
    pub fn state(&self) -> RngState {
        RngState { seed: self.seed, word_pos: self.rng.get_word_pos().to_string() }
    }

    /// Back at a saved position.
    pub fn from_state(s: &RngState) -> Result<Self> {
        let pos: u128 = s
            .word_pos
            .parse()
            .map_err(|_| Error::invalid("checkpoint rng.word_pos", format!("'{}' is not a number", s.word_pos)))?;
        let mut rng = rng_from_seed(s.seed);
        rng.set_word_pos(pos);
        Ok(SeededRng { seed: s.seed, rng })
    }
}

/// The sidecar `trainer.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// `ppo`, `a2c` or `reinforce`.
    pub algorithm: String,
    /// Updates done.
    pub n_updates: u64,
    /// Gradient steps done.
    pub gradient_steps: u64,
    /// Episode statistics and env-step counter.
    pub stats: EpisodeStats,
    /// The env batch (None when the trainer resets the envs at every update, as REINFORCE does).
    pub env_state: Option<VecEnvState>,
    /// The trainer's random streams, in the trainer's order.
    pub rngs: Vec<RngState>,
    /// Parameter path to burn parameter id (the optimizer state is keyed by id).
    pub param_ids: BTreeMap<String, u64>,
    /// Parameters file, relative to the checkpoint directory.
    pub policy_file: String,
    /// Optimizer-state file, relative to the checkpoint directory.
    pub optimizer_file: String,
    /// The trainer's config (for reference; resuming takes the config it is given).
    pub config: serde_json::Value,
}

struct Ids {
    path: Vec<String>,
    out: BTreeMap<String, u64>,
}

impl ModuleVisitor for Ids {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.out.insert(self.path.join("."), param.id.val());
    }
}

/// Parameter path to id.
pub fn param_ids<M: Module>(module: &M) -> BTreeMap<String, u64> {
    let mut v = Ids { path: Vec::new(), out: BTreeMap::new() };
    module.visit(&mut v);
    v.out
}

struct SetIds<'a> {
    path: Vec<String>,
    ids: &'a BTreeMap<String, u64>,
    missing: Vec<String>,
}

impl ModuleMapper for SetIds<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let name = self.path.join(".");
        match self.ids.get(&name) {
            Some(&id) => {
                let (_, tensor, mapper) = param.consume();
                Param::from_mapped_value(ParamId::from(id), tensor, mapper)
            }
            None => {
                self.missing.push(name);
                param
            }
        }
    }
}

/// Give `module`'s parameters the ids of `ids` (by path), so that a saved optimizer state applies.
pub fn set_param_ids<M: Module>(module: M, ids: &BTreeMap<String, u64>) -> Result<M> {
    let mut m = SetIds { path: Vec::new(), ids, missing: Vec::new() };
    let out = module.map(&mut m);
    if !m.missing.is_empty() {
        return Err(Error::invalid("checkpoint param_ids", format!("no id for parameters {:?}", m.missing)));
    }
    Ok(out)
}

/// Write a checkpoint of `module` + `optimizer` + `state` (whose file names and ids are filled in) into `dir`.
pub fn save<M: Module>(
    dir: &Path,
    module: &M,
    optimizer: &ModuleOptimizer,
    mut state: TrainerState,
    metadata: BTreeMap<String, String>,
) -> Result<PathBuf> {
    if !rlox_nn::all_finite(module) {
        return Err(Error::invalid(
            format!("{} checkpoint", state.algorithm),
            "the network has non-finite parameters; the last good checkpoint is kept",
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let previous = read_state(dir).ok();
    state.policy_file = format!("policy-{:06}.safetensors", state.n_updates);
    state.optimizer_file = format!("optimizer-{:06}.bpk", state.n_updates);
    state.param_ids = param_ids(module);
    rlox_nn::save_safetensors(module, dir.join(&state.policy_file), &metadata)?;
    let bytes = optimizer
        .into_bytes()
        .map_err(|e| Error::invalid("checkpoint optimizer", format!("cannot serialise the optimizer state: {e:?}")))?;
    atomic_write(dir.join(&state.optimizer_file), &bytes)?;
    let text = serde_json::to_string_pretty(&state).map_err(|e| Error::invalid("checkpoint sidecar", e.to_string()))?;
    let sidecar = dir.join("trainer.json");
    atomic_write(&sidecar, text.as_bytes())?;
    if let Some(p) = previous {
        for f in [p.policy_file, p.optimizer_file] {
            if f != state.policy_file && f != state.optimizer_file {
                let _ = std::fs::remove_file(dir.join(f));
            }
        }
    }
    Ok(sidecar)
}

/// Read `dir/trainer.json`.
pub fn read_state(dir: &Path) -> Result<TrainerState> {
    let path = dir.join("trainer.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::invalid(path.display().to_string(), e.to_string()))
}

/// Load the checkpoint in `dir` into `module` (fresh, same architecture) and `optimizer`; returns the sidecar.
pub fn load<M: Module>(
    dir: &Path,
    module: M,
    optimizer: ModuleOptimizer,
) -> Result<(M, ModuleOptimizer, TrainerState)> {
    let state = read_state(dir)?;
    let module = set_param_ids(module, &state.param_ids)?;
    let module = rlox_nn::load_safetensors(module, dir.join(&state.policy_file))?;
    let path = dir.join(&state.optimizer_file);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let optimizer = optimizer
        .from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(|e| Error::invalid(path.display().to_string(), format!("unreadable optimizer state: {e:?}")))?;
    Ok((module, optimizer, state))
}
