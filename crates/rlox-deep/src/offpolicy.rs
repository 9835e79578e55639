//! What DDPG, TD3 and SAC share: a replay buffer of continuous actions, the environment loop,
//! evaluation, and resumable checkpoints. Each algorithm ([`crate::ddpg`], [`crate::td3`],
//! [`crate::sac`]) supplies its networks and its gradient step through [`OffPolicyAgent`].
//!
//! The loop follows Stable-Baselines3's `OffPolicyAlgorithm` (`train_freq` in steps):
//!
//! 1. the first `learning_starts` steps act uniformly at random in `[-1, 1]^d`; afterwards the agent
//!    acts (with its exploration: noise for DDPG/TD3, a policy sample for SAC);
//! 2. the action is mapped to the env's bounds ([`ActionScale::to_env`]); the *scaled* action goes to
//!    the replay buffer with `done = terminated`: a time-limit truncation is not terminal and
//!    bootstraps, and its true final observation is stored as `next_obs`;
//! 3. every `train_freq` env steps once past `learning_starts`: `gradient_steps` updates on uniformly
//!    sampled batches;
//! 4. every `eval_freq` env steps: `eval_episodes` deterministic episodes on a second env, logged
//!    as `eval/mean_reward`, and a checkpoint if `checkpoint_dir` is set.
//!
//! **Randomness** comes from ChaCha streams derived from the one seed: the action noise of env step
//! `t` from stream `(ACT, t)`, the batch indices and noise of gradient step `n` from `(UPDATE, n)`,
//! and episode `k` is reset with seed `(EPISODE, k)`. Nothing random is carried from one step to
//! the next except the OU noise state, so a checkpoint holds everything needed to continue.
//!
//! **Checkpoints** are directories `step-<N>/` under `checkpoint_dir`, written as `.step-<N>.tmp/`
//! and renamed, then named in the file `latest` (written atomically), then older ones are removed:
//! a crash at any point leaves a complete checkpoint. One holds the networks and target networks
//! (`*.safetensors`), `state.safetensors` (the replay buffer's stored transitions and the Adam
//! moments) and `state.json` (counters, SAC's `log_alpha` and its Adam state, OU noise state,
//! recent episode returns, the config). SB3 saves the replay buffer only on request
//! (`save_replay_buffer`); here it is saved unless `save_replay = false`, and without it a resumed
//! run restarts with an empty buffer (no longer identical to an uninterrupted one).
//! Resuming starts a fresh episode: a checkpoint taken mid-episode drops the rest of that episode
//! (the environment's state is not saved), so resumed numbers equal an uninterrupted run's exactly
//! when the checkpoint falls on an episode boundary (Pendulum: every 200 steps).
//!
//! **Divergence**: a non-finite loss stops the run with an error naming the algorithm, the loss
//! and the gradient step; checkpoints refuse non-finite parameters, so the last one on disk is good.

use crate::continuous::ActionScale;
use rand::Rng as _;
use rlox_core::logger::Logger;
use rlox_core::seeding::{derive_seed, rng_from_seed, Rng};
use rlox_core::{Error, Result};
use rlox_envs::registry::{AnyAction, ControlEnv};
use rlox_nn::{Module, Optimizer};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Instant;

const STREAM_ACT: u64 = 1 << 40;
const STREAM_UPDATE: u64 = 2 << 40;
const STREAM_EPISODE: u64 = 3 << 40;
const STREAM_EVAL: u64 = 4 << 40;
const STREAM_ROLLOUT: u64 = 5 << 40;

// ---------------------------------------------------------------------------------------------
// Replay buffer
// ---------------------------------------------------------------------------------------------

/// A sampled mini-batch of continuous-action transitions (row-major arrays).
#[derive(Debug, Clone, Default)]
pub struct ContinuousBatch {
    /// `[batch, obs_dim]`.
    pub obs: Vec<f32>,
    /// Scaled actions `[batch, act_dim]`.
    pub actions: Vec<f32>,
    /// `[batch]`.
    pub rewards: Vec<f32>,
    /// `[batch, obs_dim]`.
    pub next_obs: Vec<f32>,
    /// 1.0 where the transition terminated the MDP, else 0.0 (truncations bootstrap).
    pub dones: Vec<f32>,
}

impl ContinuousBatch {
    /// Number of transitions.
    pub fn len(&self) -> usize {
        self.rewards.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.rewards.is_empty()
    }
}

/// A ring buffer of `(obs, scaled action, reward, next_obs, terminated)` with uniform sampling
/// (with replacement, like SB3's `ReplayBuffer`).
#[derive(Debug, Clone, PartialEq)]
pub struct ContinuousReplay {
    capacity: usize,
    obs_dim: usize,
    act_dim: usize,
    obs: Vec<f32>,
    next_obs: Vec<f32>,
    actions: Vec<f32>,
    rewards: Vec<f32>,
    dones: Vec<f32>,
    pos: usize,
    len: usize,
}

impl ContinuousReplay {
    /// An empty buffer.
    pub fn new(capacity: usize, obs_dim: usize, act_dim: usize) -> Result<Self> {
        if capacity == 0 || obs_dim == 0 || act_dim == 0 {
            return Err(Error::invalid(
                "replay buffer",
                format!("capacity ({capacity}), obs_dim ({obs_dim}) and act_dim ({act_dim}) must be > 0"),
            ));
        }
        Ok(ContinuousReplay {
            capacity,
            obs_dim,
            act_dim,
            obs: vec![0.0; capacity * obs_dim],
            next_obs: vec![0.0; capacity * obs_dim],
            actions: vec![0.0; capacity * act_dim],
            rewards: vec![0.0; capacity],
            dones: vec![0.0; capacity],
            pos: 0,
            len: 0,
        })
    }

    /// Stored transitions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Store a transition, overwriting the oldest once full.
    pub fn push(&mut self, obs: &[f32], action: &[f32], reward: f32, next_obs: &[f32], terminated: bool) {
        let (d, a, i) = (self.obs_dim, self.act_dim, self.pos);
        assert!(obs.len() == d && next_obs.len() == d && action.len() == a, "transition sizes do not match the buffer");
        self.obs[i * d..(i + 1) * d].copy_from_slice(obs);
        self.next_obs[i * d..(i + 1) * d].copy_from_slice(next_obs);
        self.actions[i * a..(i + 1) * a].copy_from_slice(action);
        self.rewards[i] = reward;
        self.dones[i] = if terminated { 1.0 } else { 0.0 };
        self.pos = (self.pos + 1) % self.capacity;
        self.len = (self.len + 1).min(self.capacity);
    }

    /// `batch_size` transitions drawn uniformly with replacement.
    pub fn sample_into(&self, batch_size: usize, rng: &mut Rng, batch: &mut ContinuousBatch) {
        assert!(self.len > 0, "sampling from an empty replay buffer");
        let (d, a) = (self.obs_dim, self.act_dim);
        batch.obs.clear();
        batch.next_obs.clear();
        batch.actions.clear();
        batch.rewards.clear();
        batch.dones.clear();
        for _ in 0..batch_size {
            let i = rng.random_range(0..self.len);
            batch.obs.extend_from_slice(&self.obs[i * d..(i + 1) * d]);
            batch.next_obs.extend_from_slice(&self.next_obs[i * d..(i + 1) * d]);
            batch.actions.extend_from_slice(&self.actions[i * a..(i + 1) * a]);
            batch.rewards.push(self.rewards[i]);
            batch.dones.push(self.dones[i]);
        }
    }

    fn save(&self, blobs: &mut Blobs) -> Value {
        let (n, d, a) = (self.len, self.obs_dim, self.act_dim);
        if n > 0 {
            blobs.insert("replay.obs".into(), (vec![n, d], self.obs[..n * d].to_vec()));
            blobs.insert("replay.next_obs".into(), (vec![n, d], self.next_obs[..n * d].to_vec()));
            blobs.insert("replay.actions".into(), (vec![n, a], self.actions[..n * a].to_vec()));
            blobs.insert("replay.rewards".into(), (vec![n], self.rewards[..n].to_vec()));
            blobs.insert("replay.dones".into(), (vec![n], self.dones[..n].to_vec()));
        }
        json!({"capacity": self.capacity, "len": n, "pos": self.pos})
    }

    fn load(&mut self, blobs: &Blobs, meta: &Value) -> Result<()> {
        let n = meta["len"].as_u64().unwrap_or(0) as usize;
        let pos = meta["pos"].as_u64().unwrap_or(0) as usize;
        if n > self.capacity || pos >= self.capacity {
            return Err(Error::invalid(
                "checkpoint replay buffer",
                format!("{n} transitions (position {pos}) do not fit a buffer of {}", self.capacity),
            ));
        }
        let (d, a) = (self.obs_dim, self.act_dim);
        if n > 0 {
            let get = |name: &str, want: usize| -> Result<&Vec<f32>> {
                match blobs.get(name) {
                    Some((_, v)) if v.len() == want => Ok(v),
                    Some((_, v)) => Err(Error::invalid(
                        "checkpoint replay buffer",
                        format!("{name} has {} values, expected {want}", v.len()),
                    )),
                    None => Err(Error::invalid("checkpoint replay buffer", format!("{name} is missing"))),
                }
            };
            self.obs[..n * d].copy_from_slice(get("replay.obs", n * d)?);
            self.next_obs[..n * d].copy_from_slice(get("replay.next_obs", n * d)?);
            self.actions[..n * a].copy_from_slice(get("replay.actions", n * a)?);
            self.rewards[..n].copy_from_slice(get("replay.rewards", n)?);
            self.dones[..n].copy_from_slice(get("replay.dones", n)?);
        }
        self.len = n;
        self.pos = pos;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The agent interface and checkpoint helpers
// ---------------------------------------------------------------------------------------------

/// Named `f32` arrays (name -> (shape, values)) stored in a checkpoint's `state.safetensors`.
pub type Blobs = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// What the shared loop needs from DDPG, TD3 or SAC.
pub trait OffPolicyAgent {
    /// `ddpg`, `td3` or `sac`.
    fn algo(&self) -> &'static str;
    /// An action in `[-1, 1]^d` for `obs`: exploratory (noise or a policy sample drawn from `rng`) or deterministic.
    fn act(&mut self, obs: &[f32], explore: bool, rng: &mut Rng) -> Vec<f32>;
    /// The training episode ended (resets OU noise).
    fn episode_end(&mut self) {}
    /// A round of `train_freq` env steps begins (SAC's gSDE draws its exploration matrix here).
    fn begin_rollout(&mut self, _rng: &mut Rng) {}
    /// One gradient step; returns the metrics to average over the round. A non-finite loss is an error.
    fn update(&mut self, batch: &ContinuousBatch, lr: f64, rng: &mut Rng) -> Result<Vec<(&'static str, f64)>>;
    /// Refresh the acting copy of the policy after a training round.
    fn refresh_policy(&mut self);
    /// Gradient steps taken.
    fn n_updates(&self) -> u64;
    /// Whether every parameter is finite (checkpoints refuse otherwise).
    fn all_finite(&self) -> bool;
    /// Write the networks into `dir` and their optimizer state into `blobs`; returns the JSON state.
    fn save(&self, dir: &Path, blobs: &mut Blobs) -> Result<Value>;
    /// Restore what [`OffPolicyAgent::save`] wrote.
    fn load(&mut self, dir: &Path, blobs: &Blobs, state: &Value) -> Result<()>;
}

/// Save `module` as `dir/<name>.safetensors`.
pub(crate) fn save_module<M: Module>(module: &M, dir: &Path, name: &str) -> Result<()> {
    rlox_nn::save_safetensors(module, dir.join(format!("{name}.safetensors")), &BTreeMap::new())
}

/// Load `dir/<name>.safetensors` into `module`.
pub(crate) fn load_module<M: Module>(module: M, dir: &Path, name: &str) -> Result<M> {
    rlox_nn::load_safetensors(module, dir.join(format!("{name}.safetensors")))
}

/// Put `opt`'s Adam moments for `module` into `blobs` under `prefix`; returns the step counts.
pub(crate) fn save_optimizer<M: Module>(opt: &Optimizer, module: &M, prefix: &str, blobs: &mut Blobs) -> Value {
    match opt.export_state(module) {
        None => json!(null),
        Some(state) => {
            let mut counts = Vec::with_capacity(state.params.len());
            for (k, p) in state.params.into_iter().enumerate() {
                counts.push(p.steps);
                if p.steps > 0 {
                    for (j, b) in p.buffers.into_iter().enumerate() {
                        blobs.insert(format!("{prefix}.{k}.{j}"), (vec![b.len()], b));
                    }
                }
            }
            json!({"steps": opt.steps(), "t": counts})
        }
    }
}

/// Restore what [`save_optimizer`] wrote (a `null` state leaves the optimizer fresh).
pub(crate) fn load_optimizer<M: Module>(
    opt: &mut Optimizer,
    module: &M,
    prefix: &str,
    blobs: &Blobs,
    meta: &Value,
) -> Result<()> {
    if meta.is_null() {
        return Ok(());
    }
    let counts: Vec<i32> = serde_json::from_value(meta["t"].clone())
        .map_err(|e| Error::invalid("checkpoint optimizer state", format!("{prefix}: {e}")))?;
    let mut state = Vec::with_capacity(counts.len());
    for (k, t) in counts.into_iter().enumerate() {
        if t == 0 {
            state.push(rlox_nn::ParamState::default());
            continue;
        }
        let get = |s: &str| {
            blobs
                .get(&format!("{prefix}.{k}.{s}"))
                .map(|(_, v)| v.clone())
                .ok_or_else(|| Error::invalid("checkpoint optimizer state", format!("{prefix}.{k}.{s} is missing")))
        };
        state.push(rlox_nn::ParamState { buffers: vec![get("0")?, get("1")?], steps: t });
    }
    opt.import_state(module, rlox_nn::OptimizerState { params: state, steps: meta["steps"].as_u64().unwrap_or(0) })
}

fn write_blobs(path: &Path, blobs: &Blobs) -> Result<()> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = blobs
        .iter()
        .map(|(name, (shape, values))| {
            (name.clone(), shape.clone(), values.iter().flat_map(|v| v.to_le_bytes()).collect())
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, shape, data)| {
            TensorView::new(Dtype::F32, shape.clone(), data)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::invalid("checkpoint state", format!("{name}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let out = safetensors::serialize(views, None)
        .map_err(|e| Error::invalid("checkpoint state", format!("cannot serialise: {e}")))?;
    rlox_core::checkpoint::atomic_write(path, &out)
}

fn read_blobs(path: &Path) -> Result<Blobs> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::invalid(format!("checkpoint {}", path.display()), format!("not readable: {e}")))?;
    let mut blobs = Blobs::new();
    for (name, view) in file.tensors() {
        let values = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        blobs.insert(name, (view.shape().to_vec(), values));
    }
    Ok(blobs)
}

/// The checkpoint directory that `path` names: a `step-<N>` directory itself, a checkpoint root with
/// a `latest` file, or a run directory whose `checkpoints/` has one.
pub fn resolve_checkpoint(path: &Path) -> Result<PathBuf> {
    if path.join("state.json").is_file() {
        return Ok(path.to_path_buf());
    }
    for root in [path.to_path_buf(), path.join("checkpoints")] {
        let latest = root.join("latest");
        if latest.is_file() {
            let name = std::fs::read_to_string(&latest).map_err(|e| Error::io(&latest, e))?;
            return Ok(root.join(name.trim()));
        }
    }
    Err(Error::invalid(
        "resume",
        format!("{} is not a checkpoint: expected a step-<N> directory with state.json, or a directory with a 'latest' file (or checkpoints/latest)", path.display()),
    ))
}

// ---------------------------------------------------------------------------------------------
// The loop
// ---------------------------------------------------------------------------------------------

/// The loop's settings, taken from an algorithm's config.
#[derive(Debug, Clone, PartialEq)]
pub struct LoopSettings {
    /// Env steps to train for (in all, counting the steps before a resume).
    pub total_timesteps: u64,
    /// Random-action steps before training starts.
    pub learning_starts: u64,
    /// Train every this many env steps.
    pub train_freq: u64,
    /// Gradient steps per training round.
    pub gradient_steps: u64,
    /// Transitions per gradient step.
    pub batch_size: usize,
    /// Replay capacity.
    pub buffer_size: usize,
    /// Constant learning rate of every optimizer.
    pub learning_rate: f64,
    /// Evaluate (and checkpoint) every this many env steps (0: only at the end).
    pub eval_freq: u64,
    /// Episodes per periodic evaluation.
    pub eval_episodes: usize,
    /// Episodes of the final evaluation.
    pub final_eval_episodes: usize,
    /// The run seed.
    pub seed: u64,
    /// Where checkpoints go (none: no checkpoints).
    pub checkpoint_dir: Option<PathBuf>,
    /// Save the replay buffer in checkpoints.
    pub save_replay: bool,
    /// The algorithm's config, stored in checkpoints' `state.json`.
    pub config_json: Value,
}

/// What a DDPG/TD3/SAC run reports (the same keys as [`crate::DqnSummary`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OffPolicySummary {
    /// Mean return of the final deterministic evaluation.
    pub eval_return_mean: f64,
    /// Standard deviation (population) of those returns.
    pub eval_return_std: f64,
    /// Environment steps taken in training (including those before a resume).
    pub env_steps: u64,
    /// Env steps of this session / `wall_seconds`.
    pub steps_per_second: f64,
    /// Wall time of this session's training loop (periodic evaluations included, the final one not).
    pub wall_seconds: f64,
    /// Training episodes completed.
    pub episodes: u64,
    /// Gradient steps taken.
    pub n_updates: u64,
    /// The env step of the checkpoint this run resumed from, if any.
    pub resumed_from: Option<u64>,
    /// `(env step, mean return)` of each periodic evaluation of this session.
    pub eval_history: Vec<(u64, f64)>,
}

/// `episodes` deterministic episodes of `agent` on `env` (episode `k` of round `round` seeded from
/// the run seed); returns (mean, std) of the returns.
pub fn evaluate<A: OffPolicyAgent + ?Sized>(
    agent: &mut A,
    env: &mut dyn ControlEnv,
    scale: &ActionScale,
    episodes: usize,
    seed: u64,
    round: u64,
) -> Result<(f64, f64)> {
    const MAX_STEPS: u64 = 1_000_000;
    let mut rng = rng_from_seed(0);
    let mut returns = Vec::with_capacity(episodes);
    for k in 0..episodes {
        let episode_seed = derive_seed(seed, STREAM_EVAL + round.wrapping_mul(10_000).wrapping_add(k as u64));
        let (mut obs, _) = env.reset(Some(episode_seed))?;
        let mut total = 0.0;
        for t in 0.. {
            if t == MAX_STEPS {
                return Err(Error::invalid(
                    "evaluation",
                    format!(
                        "an episode of {} ran {MAX_STEPS} steps without ending; wrap the env in a TimeLimit",
                        env.id()
                    ),
                ));
            }
            let a = agent.act(&obs, false, &mut rng);
            let s = env.step(&AnyAction::Continuous(scale.to_env(&a)))?;
            total += s.reward;
            obs = s.obs;
            if s.terminated || s.truncated {
                break;
            }
        }
        returns.push(total);
    }
    let n = returns.len().max(1) as f64;
    let mean = returns.iter().sum::<f64>() / n;
    let var = returns.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    Ok((mean, var.sqrt()))
}

struct LoopState {
    env_steps: u64,
    episodes: u64,
    recent: VecDeque<f64>,
    n_evals: u64,
}

fn save_checkpoint<A: OffPolicyAgent + ?Sized>(
    root: &Path,
    agent: &A,
    replay: &ContinuousReplay,
    s: &LoopSettings,
    st: &LoopState,
    eval_mean: f64,
) -> Result<PathBuf> {
    if !agent.all_finite() {
        return Err(Error::invalid(
            format!("{} checkpoint", agent.algo()),
            "the networks have non-finite parameters; the last good checkpoint is kept",
        ));
    }
    std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
    let name = format!("step-{:012}", st.env_steps);
    let tmp = root.join(format!(".{name}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut blobs = Blobs::new();
    let agent_state = agent.save(&tmp, &mut blobs)?;
    let replay_meta = if s.save_replay { replay.save(&mut blobs) } else { json!(null) };
    write_blobs(&tmp.join("state.safetensors"), &blobs)?;
    let state = json!({
        "algorithm": agent.algo(),
        "env_steps": st.env_steps,
        "episodes": st.episodes,
        "n_evals": st.n_evals,
        "n_updates": agent.n_updates(),
        "recent_returns": st.recent.iter().collect::<Vec<_>>(),
        "eval_return_mean": eval_mean,
        "replay": replay_meta,
        "agent": agent_state,
        "config": s.config_json,
    });
    let text = serde_json::to_string_pretty(&state).map_err(|e| Error::invalid("checkpoint state", e.to_string()))?;
    rlox_core::checkpoint::atomic_write(tmp.join("state.json"), text.as_bytes())?;
    let dest = root.join(&name);
    if dest.exists() {
        std::fs::remove_dir_all(&dest).map_err(|e| Error::io(&dest, e))?;
    }
    std::fs::rename(&tmp, &dest).map_err(|e| Error::io(&dest, e))?;
    rlox_core::checkpoint::atomic_write(root.join("latest"), name.as_bytes())?;
    // Older checkpoints go only once `latest` names the new one.
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("step-") && n != name {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(dest)
}

fn load_checkpoint<A: OffPolicyAgent + ?Sized>(
    path: &Path,
    agent: &mut A,
    replay: &mut ContinuousReplay,
) -> Result<LoopState> {
    let dir = resolve_checkpoint(path)?;
    let json_path = dir.join("state.json");
    let text = std::fs::read_to_string(&json_path).map_err(|e| Error::io(&json_path, e))?;
    let state: Value = serde_json::from_str(&text)
        .map_err(|e| Error::invalid(format!("checkpoint {}", json_path.display()), e.to_string()))?;
    let algo = state["algorithm"].as_str().unwrap_or("?");
    if algo != agent.algo() {
        return Err(Error::invalid(
            "resume",
            format!("{} is a {algo} checkpoint; this run trains {}", dir.display(), agent.algo()),
        ));
    }
    let blobs = read_blobs(&dir.join("state.safetensors"))?;
    agent.load(&dir, &blobs, &state["agent"])?;
    if !state["replay"].is_null() {
        replay.load(&blobs, &state["replay"])?;
    }
    agent.refresh_policy();
    let recent: Vec<f64> = serde_json::from_value(state["recent_returns"].clone()).unwrap_or_default();
    Ok(LoopState {
        env_steps: state["env_steps"].as_u64().unwrap_or(0),
        episodes: state["episodes"].as_u64().unwrap_or(0),
        recent: recent.into(),
        n_evals: state["n_evals"].as_u64().unwrap_or(0),
    })
}

/// Train `agent` on `env` (evaluating on `eval_env`) until `s.total_timesteps` env steps, starting
/// from the checkpoint at `resume` if given (see the module docs).
pub fn run<A: OffPolicyAgent + ?Sized>(
    agent: &mut A,
    s: &LoopSettings,
    env: &mut dyn ControlEnv,
    eval_env: &mut dyn ControlEnv,
    scale: &ActionScale,
    logger: &mut dyn Logger,
    resume: Option<&Path>,
) -> Result<OffPolicySummary> {
    let algo = agent.algo();
    let obs_dim = env.observation_space().flat_dim();
    let act_dim = scale.dim();
    let mut replay = ContinuousReplay::new(s.buffer_size, obs_dim, act_dim)?;
    let mut st = LoopState { env_steps: 0, episodes: 0, recent: VecDeque::with_capacity(100), n_evals: 0 };
    let mut resumed_from = None;
    if let Some(path) = resume {
        st = load_checkpoint(path, agent, &mut replay)?;
        resumed_from = Some(st.env_steps);
    }
    let start = Instant::now();
    let first_step = st.env_steps + 1;
    let (mut obs, _) = env.reset(Some(derive_seed(s.seed, STREAM_EPISODE + st.episodes)))?;
    let (mut ep_return, mut ep_len) = (0.0, 0u64);
    let mut batch = ContinuousBatch::default();
    let mut eval_history = Vec::new();
    let mut last_eval = f64::NAN;

    for step in first_step..=s.total_timesteps {
        st.env_steps = step;
        let mut rng = rng_from_seed(derive_seed(s.seed, STREAM_ACT + step));
        if (step - 1).is_multiple_of(s.train_freq) {
            agent.begin_rollout(&mut rng_from_seed(derive_seed(s.seed, STREAM_ROLLOUT + step)));
        }

        // 1. Act: uniform during warm-up, then the agent's exploratory action.
        let action: Vec<f32> = if step <= s.learning_starts {
            (0..act_dim).map(|_| rng.random_range(-1.0f32..=1.0)).collect()
        } else {
            agent.act(&obs, true, &mut rng)
        };

        // 2. Step; store the scaled action with done = terminated (truncation bootstraps).
        let out = env.step(&AnyAction::Continuous(scale.to_env(&action)))?;
        replay.push(&obs, &action, out.reward as f32, &out.obs, out.terminated);
        ep_return += out.reward;
        ep_len += 1;
        if out.terminated || out.truncated {
            st.episodes += 1;
            if st.recent.len() == 100 {
                st.recent.pop_front();
            }
            st.recent.push_back(ep_return);
            let mean100 = st.recent.iter().sum::<f64>() / st.recent.len() as f64;
            logger.log(
                step,
                &[
                    ("rollout/ep_return", ep_return),
                    ("rollout/ep_length", ep_len as f64),
                    ("rollout/ep_rew_mean", mean100),
                ],
            )?;
            agent.episode_end();
            obs = env.reset(Some(derive_seed(s.seed, STREAM_EPISODE + st.episodes)))?.0;
            ep_return = 0.0;
            ep_len = 0;
        } else {
            obs = out.obs;
        }

        // 3. Train.
        if step > s.learning_starts && step % s.train_freq == 0 {
            let mut sums: Vec<(&'static str, f64)> = Vec::new();
            for _ in 0..s.gradient_steps {
                let mut rng = rng_from_seed(derive_seed(s.seed, STREAM_UPDATE + agent.n_updates()));
                replay.sample_into(s.batch_size, &mut rng, &mut batch);
                let stats = agent.update(&batch, s.learning_rate, &mut rng).map_err(|e| {
                    Error::invalid(algo, format!("{e} (env step {step}); the last checkpoint on disk is kept"))
                })?;
                for (k, v) in stats {
                    match sums.iter_mut().find(|(n, _)| *n == k) {
                        Some(entry) => entry.1 += v,
                        None => sums.push((k, v)),
                    }
                }
            }
            agent.refresh_policy();
            let n = s.gradient_steps.max(1) as f64;
            let mut metrics: Vec<(&str, f64)> = sums.iter().map(|(k, v)| (*k, v / n)).collect();
            let secs = start.elapsed().as_secs_f64();
            metrics.push(("train/learning_rate", s.learning_rate));
            metrics.push(("train/n_updates", agent.n_updates() as f64));
            metrics.push(("time/fps", (step + 1 - first_step) as f64 / secs.max(1e-9)));
            logger.log(step, &metrics)?;
        }

        // 4. Evaluate and checkpoint.
        if s.eval_freq > 0 && step % s.eval_freq == 0 {
            let (mean, std) = evaluate(agent, eval_env, scale, s.eval_episodes, s.seed, st.n_evals)?;
            st.n_evals += 1;
            last_eval = mean;
            eval_history.push((step, mean));
            logger.log(step, &[("eval/mean_reward", mean), ("eval/std_reward", std)])?;
            if let Some(dir) = &s.checkpoint_dir {
                save_checkpoint(dir, agent, &replay, s, &st, mean)?;
            }
        }
    }
    let wall_seconds = start.elapsed().as_secs_f64();
    let session_steps = s.total_timesteps.saturating_sub(first_step - 1);

    let (mean, std) = evaluate(agent, eval_env, scale, s.final_eval_episodes, s.seed, u64::MAX / 20_000)?;
    logger.log(s.total_timesteps, &[("eval/final_mean_reward", mean), ("eval/final_std_reward", std)])?;
    if let Some(dir) = &s.checkpoint_dir {
        st.env_steps = s.total_timesteps.max(st.env_steps);
        save_checkpoint(dir, agent, &replay, s, &st, mean)?;
    }
    let _ = last_eval;
    logger.flush()?;
    Ok(OffPolicySummary {
        eval_return_mean: mean,
        eval_return_std: std,
        env_steps: st.env_steps,
        steps_per_second: session_steps as f64 / wall_seconds.max(1e-9),
        wall_seconds,
        episodes: st.episodes,
        n_updates: agent.n_updates(),
        resumed_from,
        eval_history,
    })
}

/// A training env, an evaluation env and the scale of their action space.
pub type TrainEvalEnvs = (Box<dyn ControlEnv>, Box<dyn ControlEnv>, ActionScale);

/// Make two copies of env `env_id` (training and evaluation) and the scale of its action space, or a
/// clear error naming `algo` and the env's action space when it is not a bounded `Box`.
pub fn make_envs(algo: &str, env_id: &str) -> Result<TrainEvalEnvs> {
    use rlox_envs::registry::{make, AnyEnv, EnvOptions};
    let build = || -> Result<Box<dyn ControlEnv>> {
        match make(env_id, EnvOptions::new())? {
            AnyEnv::Control(e) => Ok(e),
            AnyEnv::Tabular(e) => Err(Error::invalid(
                "env",
                format!("{algo} needs a continuous (Box) action space; {env_id} is tabular with {}", e.action_space()),
            )),
        }
    };
    let env = build()?;
    let scale = ActionScale::for_space(algo, env_id, &env.action_space())?;
    Ok((env, build()?, scale))
}

/// The gradient steps per round: `-1` means as many as env steps per round (`train_freq`).
pub(crate) fn gradient_steps(gradient_steps: i64, train_freq: u64) -> u64 {
    if gradient_steps < 0 {
        train_freq
    } else {
        gradient_steps as u64
    }
}

/// A finite loss, or an error naming the algorithm, the loss and the gradient step.
pub(crate) fn check_finite(algo: &str, what: &str, value: f64, update: u64) -> Result<f64> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(Error::invalid(
            algo,
            format!("the {what} became {value} at gradient step {update}; check rewards and observations for NaN/inf, or lower learning_rate"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_stores_samples_and_round_trips() {
        let mut r = ContinuousReplay::new(5, 2, 1).unwrap();
        for k in 0..7 {
            let o = [k as f32, 0.0];
            r.push(&o, &[k as f32 / 10.0], k as f32, &[k as f32 + 0.5, 1.0], k == 3);
        }
        assert_eq!(r.len(), 5);
        let mut b = ContinuousBatch::default();
        r.sample_into(50, &mut rng_from_seed(1), &mut b);
        for j in 0..50 {
            let k = b.obs[2 * j];
            assert!((2.0..7.0).contains(&k), "{k}");
            assert_eq!(b.next_obs[2 * j], k + 0.5);
            assert_eq!(b.actions[j], k / 10.0);
            assert_eq!(b.rewards[j], k);
            assert_eq!(b.dones[j], if k == 3.0 { 1.0 } else { 0.0 });
        }
        let mut blobs = Blobs::new();
        let meta = r.save(&mut blobs);
        let mut back = ContinuousReplay::new(5, 2, 1).unwrap();
        back.load(&blobs, &meta).unwrap();
        assert_eq!(back, r);
        let dir = tempfile::tempdir().unwrap();
        write_blobs(&dir.path().join("s.safetensors"), &blobs).unwrap();
        assert_eq!(read_blobs(&dir.path().join("s.safetensors")).unwrap(), blobs);
        let mut small = ContinuousReplay::new(3, 2, 1).unwrap();
        assert!(small.load(&blobs, &meta).is_err());
    }

    #[test]
    fn discrete_env_is_refused_naming_algo_and_space() {
        for algo in ["ddpg", "td3", "sac"] {
            let e = make_envs(algo, "CartPole-v1").err().unwrap().to_string();
            assert!(e.contains(algo) && e.contains("CartPole-v1") && e.contains("Discrete(2)"), "{e}");
        }
        let e = make_envs("sac", "FrozenLake-v1").err().unwrap().to_string();
        assert!(e.contains("sac") && e.contains("FrozenLake-v1"), "{e}");
    }
}
