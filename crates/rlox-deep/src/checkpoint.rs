//! The one checkpoint format of rlox's RL trainers (DQN, REINFORCE, A2C, PPO, DDPG, TD3, SAC).
//!
//! A checkpoint is a `step-<N>/` directory under `<run dir>/checkpoints/`, published atomically by
//! [`CheckpointDir`] (see `rlox_core::checkpoint`), holding:
//!
//! * `<network>.safetensors`: each network's weights in rlox-nn's safetensors layout (the file a user
//!   loads with `rlox_nn::load_safetensors` or `safetensors.torch.load_file`);
//! * `state.safetensors`: every other array: the optimizers' moments (`<optimizer>.<k>.<buffer>`), the
//!   replay buffer's transitions (`replay.*`), ...;
//! * `trainer_state.json`: a [`TrainerState`]: counters, the random streams' positions, the env batch's
//!   state, episode statistics, the optimizers' step counts, and the algorithm's own small state.
//!
//! Everything a run's next step depends on is in there, so a run killed at any moment and resumed from
//! its last checkpoint continues with the numbers an uninterrupted run would have produced.

use crate::rollout::{EpisodeStats, VecEnvState};
use rlox_core::{Error, Result};
use rlox_nn::burn::module::Module;
use rlox_nn::Optimizer;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub use rlox_core::checkpoint::{CheckpointDir, CheckpointWriter};

/// The file holding the arrays that are not network weights.
pub const STATE_FILE: &str = "state.safetensors";

/// Named `f32` arrays (name -> (shape, values)), stored in [`STATE_FILE`].
pub type Blobs = rlox_nn::state::Arrays;

/// The typed `trainer_state.json` of every RL trainer; `X` is the algorithm's own small state (SAC's
/// entropy coefficient, the OU noise, ...; `()` when there is none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainerState<X> {
    /// `dqn`, `ppo`, ... (a checkpoint of another algorithm is refused).
    pub algorithm: String,
    /// Environment steps (transitions) taken.
    pub env_steps: u64,
    /// Updates (on-policy: rollouts trained on; off-policy: training rounds).
    pub n_updates: u64,
    /// Gradient steps taken.
    pub gradient_steps: u64,
    /// Evaluations done (they are seeded by their index).
    pub n_evals: u64,
    /// Metric records logged before this checkpoint (a resumed run keeps exactly these).
    pub logged: u64,
    /// Episode statistics (returns so far, the last 100 returns, counts).
    pub episodes: EpisodeStats,
    /// The random streams by name.
    pub rngs: BTreeMap<String, RngState>,
    /// The training env batch.
    pub envs: VecEnvState,
    /// Each optimizer's step counts (its moments are in [`STATE_FILE`]).
    pub optimizers: BTreeMap<String, OptimizerMeta>,
    /// `(mean, std)` of the final evaluation, once done (a run resumed after it does not repeat it).
    pub final_eval: Option<(f64, f64)>,
    /// The algorithm's own state.
    pub algo: X,
}

pub use rlox_core::seeding::{RngState, SeededRng};
pub use rlox_nn::state::OptimizerMeta;

/// The stream `name` of a loaded state, or an error naming the checkpoint.
pub fn rng_named(rngs: &BTreeMap<String, RngState>, name: &str, dir: &Path) -> Result<SeededRng> {
    let s = rngs.get(name).ok_or_else(|| {
        Error::checkpoint(dir.join(rlox_core::checkpoint::TRAINER_STATE), format!("no `{name}` stream"))
    })?;
    SeededRng::from_state(s)
}

/// Write `module`'s weights as `<name>.safetensors` in the checkpoint being written.
pub fn save_module<M: Module>(w: &CheckpointWriter, name: &str, module: &M) -> Result<()> {
    let bytes = rlox_nn::to_safetensors_bytes(module, &BTreeMap::new())?;
    w.write(&format!("{name}.safetensors"), &bytes)
}

/// Read `<name>.safetensors` of checkpoint `dir` into `module` (same architecture); a missing,
/// truncated or mismatched file is an error naming it.
pub fn load_module<M: Module>(dir: &Path, name: &str, module: M) -> Result<M> {
    let file = format!("{name}.safetensors");
    let bytes = rlox_core::checkpoint::read_file(dir, &file)?;
    rlox_nn::checkpoint::load_safetensors_bytes(module, &bytes, &dir.join(&file).display().to_string())
        .map_err(|e| Error::checkpoint(dir.join(&file), e.to_string()))
}

/// Put `opt`'s state for `module` into `blobs` under `name`; returns its step counts (see
/// [`rlox_nn::state::export_optimizer`]).
pub fn save_optimizer<M: Module>(opt: &Optimizer, module: &M, name: &str, blobs: &mut Blobs) -> Result<OptimizerMeta> {
    rlox_nn::state::export_optimizer(opt, module, name, blobs)
}

/// Restore what [`save_optimizer`] wrote (checkpoint `dir` is named in errors).
pub fn load_optimizer<M: Module>(
    opt: &mut Optimizer,
    module: &M,
    name: &str,
    blobs: &Blobs,
    meta: &OptimizerMeta,
    dir: &Path,
) -> Result<()> {
    rlox_nn::state::import_optimizer(opt, module, name, blobs, meta, &dir.join(STATE_FILE))
}

/// Write `blobs` as [`STATE_FILE`] in the checkpoint being written.
pub fn write_blobs(w: &CheckpointWriter, blobs: &Blobs) -> Result<()> {
    w.write(STATE_FILE, &rlox_nn::state::arrays_to_safetensors_bytes(blobs)?)
}

/// Read [`STATE_FILE`] of checkpoint `dir`.
pub fn read_blobs(dir: &Path) -> Result<Blobs> {
    let bytes = rlox_core::checkpoint::read_file(dir, STATE_FILE)?;
    rlox_nn::state::arrays_from_safetensors_bytes(&bytes, &dir.join(STATE_FILE))
}

/// The array `name` of `blobs` with exactly `len` values, or an error naming the checkpoint file.
pub fn blob<'a>(blobs: &'a Blobs, name: &str, len: usize, dir: &Path) -> Result<&'a [f32]> {
    match blobs.get(name) {
        Some((_, v)) if v.len() == len => Ok(v),
        Some((_, v)) => {
            Err(Error::checkpoint(dir.join(STATE_FILE), format!("{name} has {} values, expected {len}", v.len())))
        }
        None => Err(Error::checkpoint(dir.join(STATE_FILE), format!("{name} is missing"))),
    }
}

/// Refuse a checkpoint of another algorithm.
pub fn check_algorithm(found: &str, expected: &str, dir: &Path) -> Result<()> {
    if found == expected {
        Ok(())
    } else {
        Err(Error::checkpoint(dir, format!("a {found} checkpoint; this run trains {expected}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_round_trip_and_corruption_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let c = CheckpointDir::new(dir.path());
        let mut blobs = Blobs::new();
        blobs.insert("a".into(), (vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]));
        blobs.insert("b.0.1".into(), (vec![1], vec![-0.5]));
        let p = c.save(3, &serde_json::json!({}), |w| write_blobs(w, &blobs)).unwrap();
        assert_eq!(read_blobs(&p).unwrap(), blobs);
        assert_eq!(blob(&blobs, "a", 4, &p).unwrap(), &[1.0, 2.0, 3.0, 4.0]);
        assert!(blob(&blobs, "a", 3, &p).unwrap_err().to_string().contains("expected 3"));
        // A truncated file is an error that names it, not a panic.
        let bytes = std::fs::read(p.join(STATE_FILE)).unwrap();
        std::fs::write(p.join(STATE_FILE), &bytes[..bytes.len() / 2]).unwrap();
        let e = read_blobs(&p).unwrap_err().to_string();
        assert!(e.contains(STATE_FILE) && e.contains("truncated"), "{e}");
    }

    #[test]
    fn rng_positions_resume() {
        use rand::Rng as _;
        let mut a = SeededRng::new(7);
        let _: u64 = a.rng.random();
        let s = a.state();
        let mut b = SeededRng::from_state(&s).unwrap();
        assert_eq!(a.rng.random::<u64>(), b.rng.random::<u64>());
    }
}
