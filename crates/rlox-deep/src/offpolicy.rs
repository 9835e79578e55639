//! The off-policy skeleton: what DQN, DDPG, TD3 and SAC share, written once, like Stable-Baselines3's
//! `OffPolicyAlgorithm`. Each algorithm ([`crate::dqn`], [`crate::ddpg`], [`crate::td3`], [`crate::sac`])
//! keeps its config, its networks and its gradient step, and plugs them in through [`OffPolicyAgent`].
//!
//! One env step `t` of [`OffPolicy::learn`] (SB3's order of events, `train_freq` in steps):
//!
//! 1. act: the first `learning_starts` steps uniformly at random (a uniform index for a discrete
//!    space, uniform in `[-1, 1]^d` for a continuous one); afterwards the agent's exploratory action
//!    (epsilon-greedy for DQN, noise for DDPG/TD3, a policy sample for SAC);
//! 2. step the env: a continuous action is mapped from `[-1, 1]^d` to the env's bounds; the replay buffer
//!    stores the raw action with `done = terminated` (a time-limit truncation bootstraps, and its true final
//!    observation is stored as `next_obs`); a finished episode is logged and its env reset at once;
//! 3. the agent's per-step hook (DQN's target-network update every `target_update_interval` steps);
//! 4. every `train_freq` steps once past `learning_starts`: `gradient_steps` updates on sampled batches
//!    (prioritised replay gets the TD errors back), then the acting copy of the policy is refreshed;
//! 5. evaluation when `t` is a multiple of `eval_every` (deterministic, one episode per evaluation env),
//!    a checkpoint when it is a multiple of `checkpoint_every`, and at the end.
//!
//! **Randomness** comes from ChaCha streams derived from the one seed: the action of env step `t` from
//! stream `(ACT, t)`, the batches of gradient step `n` from `(UPDATE, n)`, SAC's gSDE matrix of a round
//! from `(ROLLOUT, t)`; the env's episodes are seeded per episode by [`ResumableVecEnv`]. Nothing random
//! is carried from one step to the next except the agent's own state (OU noise), so a checkpoint (networks,
//! optimizers, replay buffer, the env's state mid-episode, counters) resumes exactly.
//!
//! [`ResumableVecEnv`]: crate::rollout::ResumableVecEnv

use crate::checkpoint::{self, Blobs, CheckpointDir, CheckpointWriter, OptimizerMeta, TrainerState};
use crate::continuous::ActionScale;
use crate::onpolicy::{crossed, eval_seed, Metrics};
use crate::policies::{ActionKind, PolicyAction};
use crate::replay::{Batch, PrioritizedConfig, ReplayBuffer, ReplayMeta};
use crate::rollout::{evaluate_with, EpisodeStats, Resumable, VecEnvState};
use crate::summary::TrainSummary;
use rand::Rng as _;
use rlox_core::logger::{Counted, Logger};
use rlox_core::run::RunSettings;
use rlox_core::seeding::{derive_seed, rng_from_seed, Rng};
use rlox_core::vec_env::VecEnv;
use rlox_core::{Error, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

const STREAM_ACT: u64 = 1 << 40;
const STREAM_UPDATE: u64 = 2 << 40;
const STREAM_ROLLOUT: u64 = 5 << 40;

/// The replay and training cadence an algorithm's config gives the loop.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplaySettings {
    /// Replay capacity in transitions.
    pub buffer_size: usize,
    /// Env steps of uniformly random actions (and no training) before learning.
    pub learning_starts: u64,
    /// Train every this many env steps.
    pub train_freq: u64,
    /// Gradient steps per training round.
    pub gradient_steps: u64,
    /// Transitions per gradient step.
    pub batch_size: usize,
    /// Prioritised replay (DQN's option); `None`: uniform.
    pub prioritized: Option<PrioritizedConfig>,
}

/// The gradient steps per round: `-1` means as many as env steps per round (`train_freq`).
pub fn gradient_steps(gradient_steps: i64, train_freq: u64) -> u64 {
    if gradient_steps < 0 {
        train_freq
    } else {
        gradient_steps as u64
    }
}

/// What one gradient step reports.
#[derive(Debug, Clone, Default)]
pub struct Update {
    /// Metrics averaged over the round (e.g. `train/critic_loss`).
    pub metrics: Metrics,
    /// TD errors of the batch, for prioritised replay.
    pub td_errors: Option<Vec<f32>>,
}

/// What DQN, DDPG, TD3 and SAC each supply to the shared loop. Actions are raw rows: a discrete action
/// is its index as one `f32`, a continuous one lies in `[-1, 1]^d` (the loop maps it to the env's bounds).
pub trait OffPolicyAgent {
    /// The algorithm's small state kept in checkpoints (SAC's entropy coefficient, the OU noise, ...).
    type State: Serialize + DeserializeOwned;
    /// `dqn`, `ddpg`, `td3` or `sac`.
    fn algo(&self) -> &'static str;
    /// The loop's replay and training cadence.
    fn replay_settings(&self) -> ReplaySettings;
    /// The exploratory (`explore`) or deterministic action for one observation, at training `progress`;
    /// any randomness is drawn from `rng`.
    fn act(&mut self, obs: &[f32], explore: bool, progress: f64, rng: &mut Rng) -> Vec<f32>;
    /// A training episode ended (resets OU noise).
    fn episode_end(&mut self) {}
    /// Extra metrics logged with each finished training episode (DQN's exploration rate).
    fn episode_metrics(&self, _progress: f64) -> Metrics {
        Vec::new()
    }
    /// A round of `train_freq` env steps begins (SAC's gSDE draws its exploration matrix here).
    fn begin_rollout(&mut self, _rng: &mut Rng) {}
    /// Env step `env_step` was taken (DQN updates its target network here).
    fn after_env_step(&mut self, _env_step: u64) {}
    /// The learning rate at training `progress`.
    fn learning_rate(&self, progress: f64) -> f64;
    /// One gradient step on `batch`. A non-finite loss is an error (and leaves the networks unchanged).
    fn update(&mut self, batch: &Batch, lr: f64, rng: &mut Rng) -> Result<Update>;
    /// Refresh the acting copy of the policy after a training round.
    fn refresh_policy(&mut self);
    /// Gradient steps taken.
    fn n_updates(&self) -> u64;
    /// Whether every parameter is finite (checkpoints refuse otherwise).
    fn all_finite(&self) -> bool;
    /// Write the networks into the checkpoint and the optimizers' state into `blobs`/`optimizers`.
    fn save(
        &self,
        w: &CheckpointWriter,
        blobs: &mut Blobs,
        optimizers: &mut BTreeMap<String, OptimizerMeta>,
    ) -> Result<Self::State>;
    /// Restore what [`OffPolicyAgent::save`] wrote from checkpoint `dir`.
    fn load(
        &mut self,
        dir: &Path,
        blobs: &Blobs,
        optimizers: &BTreeMap<String, OptimizerMeta>,
        state: Self::State,
    ) -> Result<()>;
}

/// The off-policy part of the trainer state: the agent's own state and the replay buffer's position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OffPolicyState<S> {
    /// The agent's state.
    pub agent: S,
    /// The replay buffer (its arrays are in the checkpoint's state file).
    pub replay: ReplayMeta,
    /// Training rounds done.
    pub rounds: u64,
}

/// The raw random action of the warm-up.
fn random_action(kind: &ActionKind, rng: &mut Rng) -> Vec<f32> {
    match kind {
        ActionKind::Discrete(n) => vec![rng.random_range(0..*n) as f32],
        ActionKind::Continuous { low, .. } => (0..low.len()).map(|_| rng.random_range(-1.0f32..=1.0)).collect(),
    }
}

/// The env action of a raw action: an index, or `[-1, 1]^d` mapped to the bounds.
fn env_action<A: PolicyAction>(kind: &ActionKind, scale: Option<&ActionScale>, raw: &[f32]) -> A {
    match scale {
        Some(s) => A::from_policy(kind, &s.to_env(raw)),
        None => A::from_policy(kind, raw),
    }
}

/// An off-policy trainer: an agent, the run settings, the replay buffer and the loop's state.
pub struct OffPolicy<A: OffPolicyAgent> {
    agent: A,
    run: RunSettings,
    kind: ActionKind,
    scale: Option<ActionScale>,
    replay: ReplayBuffer,
    obs_dim: usize,
    stats: EpisodeStats,
    rounds: u64,
    n_evals: u64,
    logged: u64,
    final_eval: Option<(f64, f64)>,
    resumed_from: Option<u64>,
    stop_after_steps: Option<u64>,
}

impl<A: OffPolicyAgent> OffPolicy<A> {
    /// A trainer for `agent` on observations of `obs_dim` and actions of `kind`.
    pub fn new(agent: A, run: &RunSettings, obs_dim: usize, kind: ActionKind) -> Result<Self> {
        if run.total_steps == 0 {
            return Err(Error::invalid("total_steps", "must be > 0"));
        }
        if run.eval_episodes == 0 {
            return Err(Error::invalid("eval_episodes", "must be > 0"));
        }
        let s = agent.replay_settings();
        let act_dim = kind.action_dim();
        let replay = match s.prioritized {
            Some(p) => ReplayBuffer::prioritized(s.buffer_size, obs_dim, act_dim, p)?,
            None => ReplayBuffer::new(s.buffer_size, obs_dim, act_dim)?,
        };
        let scale = match &kind {
            ActionKind::Continuous { low, high } => Some(ActionScale::new(low.clone(), high.clone())),
            ActionKind::Discrete(_) => None,
        };
        Ok(OffPolicy {
            agent,
            run: run.clone(),
            kind,
            scale,
            replay,
            obs_dim,
            stats: EpisodeStats::new(1),
            rounds: 0,
            n_evals: 0,
            logged: 0,
            final_eval: None,
            resumed_from: None,
            stop_after_steps: None,
        })
    }

    /// The agent.
    pub fn agent(&self) -> &A {
        &self.agent
    }

    /// Test hook: return from [`OffPolicy::learn`] right after env step `n`, as if killed.
    pub fn stop_after_steps(&mut self, n: u64) {
        self.stop_after_steps = Some(n);
    }

    /// Deterministic evaluation on `envs` (one episode per env), seeded with `seed`.
    pub fn evaluate<W>(&mut self, envs: &mut W, seed: u64) -> Result<(f64, f64)>
    where
        W: VecEnv,
        W::Action: PolicyAction,
    {
        let (kind, scale, d) = (self.kind.clone(), self.scale.clone(), self.obs_dim);
        let agent = &mut self.agent;
        let mut rng = rng_from_seed(0);
        evaluate_with(envs, seed, 1_000_000, |obs| {
            obs.chunks_exact(d)
                .map(|o| env_action(&kind, scale.as_ref(), &agent.act(o, false, 1.0, &mut rng)))
                .collect()
        })
    }

    /// Continue from the newest checkpoint in `checkpoints`; `envs` take its env state.
    pub fn resume<V: Resumable>(&mut self, checkpoints: &CheckpointDir, envs: &mut V) -> Result<()> {
        let loaded = checkpoints.load_latest::<TrainerState<OffPolicyState<A::State>>>()?;
        let (dir, st) = (loaded.dir, loaded.state);
        checkpoint::check_algorithm(&st.algorithm, self.agent.algo(), &dir)?;
        let blobs = checkpoint::read_blobs(&dir)?;
        self.agent.load(&dir, &blobs, &st.optimizers, st.algo.agent)?;
        self.replay.load(&blobs, &st.algo.replay, &dir)?;
        self.agent.refresh_policy();
        envs.load_state(&st.envs).map_err(|e| Error::checkpoint(&dir, e.to_string()))?;
        self.stats = st.episodes;
        self.rounds = st.algo.rounds;
        self.n_evals = st.n_evals;
        self.logged = st.logged;
        self.final_eval = st.final_eval;
        self.resumed_from = Some(self.stats.env_steps);
        Ok(())
    }

    /// Train on `envs` (one env) until `total_steps` env steps, evaluating on `eval_envs` (one episode per
    /// env), checkpointing into `checkpoints` if given (see the module docs).
    pub fn learn<V, W>(
        &mut self,
        envs: &mut V,
        eval_envs: &mut W,
        logger: &mut dyn Logger,
        checkpoints: Option<&CheckpointDir>,
    ) -> Result<TrainSummary>
    where
        V: VecEnv + Resumable,
        V::Action: PolicyAction,
        W: VecEnv<Action = V::Action>,
    {
        if envs.num_envs() != 1 {
            return Err(Error::invalid(
                self.agent.algo(),
                format!("trains on one env; the env batch has {}", envs.num_envs()),
            ));
        }
        let s = self.agent.replay_settings();
        let (total, seed) = (self.run.total_steps, self.run.seed);
        let mut log = Counted::new(logger, self.logged);
        let start = Instant::now();
        let first = self.stats.env_steps + 1;
        if self.resumed_from.is_none() {
            envs.reset(Some(seed))?;
        }
        let mut obs = envs.observations().to_vec();
        let mut batch = Batch::default();
        let mut eval_history = Vec::new();

        for t in first..=total {
            if self.final_eval.is_some() {
                break;
            }
            let progress = (t - 1) as f64 / total as f64;
            let mut rng = rng_from_seed(derive_seed(seed, STREAM_ACT + t));
            if (t - 1).is_multiple_of(s.train_freq) {
                self.agent.begin_rollout(&mut rng_from_seed(derive_seed(seed, STREAM_ROLLOUT + t)));
            }
            // 1. Act.
            let raw = if t <= s.learning_starts {
                random_action(&self.kind, &mut rng)
            } else {
                self.agent.act(&obs, true, progress, &mut rng)
            };
            // 2. Step, store, finish an episode.
            envs.step(&[env_action(&self.kind, self.scale.as_ref(), &raw)])?;
            let (reward, terminated, truncated) = (envs.rewards()[0], envs.terminated()[0], envs.truncated()[0]);
            self.replay.push(&obs, &raw, reward as f32, envs.observations(), terminated);
            self.stats.env_steps = t;
            self.stats.returns[0] += reward;
            self.stats.lengths[0] += 1;
            if terminated || truncated {
                let (ret, len) = (self.stats.returns[0], self.stats.lengths[0]);
                self.stats.finish(0);
                let mut m: Metrics = vec![
                    ("rollout/ep_return", ret),
                    ("rollout/ep_length", len as f64),
                    ("rollout/ep_rew_mean", self.stats.mean_return()),
                ];
                m.extend(self.agent.episode_metrics(progress));
                log.log(t, &m)?;
                self.agent.episode_end();
                envs.reset_finished()?;
            }
            obs.copy_from_slice(envs.observations());
            // 3. The agent's per-step hook.
            self.agent.after_env_step(t);
            // 4. Train.
            if t > s.learning_starts && t.is_multiple_of(s.train_freq) {
                let lr = self.agent.learning_rate(progress);
                let mut sums: Vec<(&'static str, f64)> = Vec::new();
                for _ in 0..s.gradient_steps {
                    let mut rng = rng_from_seed(derive_seed(seed, STREAM_UPDATE + self.agent.n_updates()));
                    self.replay.sample_into(s.batch_size, &mut rng, progress, &mut batch);
                    let u = self.agent.update(&batch, lr, &mut rng)?;
                    if let Some(td) = &u.td_errors {
                        self.replay.update_priorities(&batch.indices, td);
                    }
                    for (k, v) in u.metrics {
                        match sums.iter_mut().find(|(n, _)| *n == k) {
                            Some(entry) => entry.1 += v,
                            None => sums.push((k, v)),
                        }
                    }
                }
                self.agent.refresh_policy();
                self.rounds += 1;
                let n = s.gradient_steps.max(1) as f64;
                let mut m: Metrics = sums.iter().map(|(k, v)| (*k, v / n)).collect();
                let secs = start.elapsed().as_secs_f64();
                m.push(("train/learning_rate", lr));
                m.push(("train/n_updates", self.agent.n_updates() as f64));
                m.push(("time/fps", (t + 1 - first) as f64 / secs.max(1e-9)));
                log.log(t, &m)?;
            }
            // 5. Evaluate and checkpoint.
            if crossed(self.run.eval_every, t - 1, t) {
                let (mean, std) = self.evaluate(eval_envs, eval_seed(seed, self.n_evals))?;
                self.n_evals += 1;
                eval_history.push((t, mean));
                log.log(t, &[("eval/mean_reward", mean), ("eval/std_reward", std)])?;
            }
            if let Some(c) = checkpoints {
                if crossed(self.run.checkpoint_every, t - 1, t) || t == total {
                    log.flush()?;
                    self.logged = log.count;
                    self.write_checkpoint(c, envs.save_state())?;
                }
            }
            if self.stop_after_steps == Some(t) {
                self.logged = log.count;
                return Ok(self.summary(start, first, (f64::NAN, f64::NAN), eval_history));
            }
        }
        let wall = start.elapsed().as_secs_f64();
        let (mean, std) = match self.final_eval {
            Some(done) => done,
            None => {
                let e = self.evaluate(eval_envs, eval_seed(seed, u64::MAX))?;
                log.log(self.stats.env_steps, &[("eval/final_mean_reward", e.0), ("eval/final_std_reward", e.1)])?;
                self.final_eval = Some(e);
                if let Some(c) = checkpoints {
                    log.flush()?;
                    self.logged = log.count;
                    self.write_checkpoint(c, envs.save_state())?;
                }
                e
            }
        };
        log.flush()?;
        self.logged = log.count;
        let mut summary = self.summary(start, first, (mean, std), eval_history);
        summary.wall_seconds = wall;
        summary.steps_per_second = (self.stats.env_steps + 1 - first) as f64 / wall.max(1e-9);
        Ok(summary)
    }

    fn write_checkpoint(&self, checkpoints: &CheckpointDir, envs: VecEnvState) -> Result<()> {
        let algo = self.agent.algo();
        if !self.agent.all_finite() {
            return Err(Error::invalid(
                format!("{algo} checkpoint"),
                "the networks have non-finite parameters; the last good checkpoint is kept",
            ));
        }
        let mut blobs = Blobs::new();
        let replay = self.replay.save(&mut blobs);
        let mut optimizers = BTreeMap::new();
        let mut agent_state = None;
        checkpoints.save_with(self.stats.env_steps, |w| {
            agent_state = Some(self.agent.save(w, &mut blobs, &mut optimizers)?);
            checkpoint::write_blobs(w, &blobs)?;
            Ok(TrainerState {
                algorithm: algo.to_string(),
                env_steps: self.stats.env_steps,
                n_updates: self.rounds,
                gradient_steps: self.agent.n_updates(),
                n_evals: self.n_evals,
                logged: self.logged,
                episodes: self.stats.clone(),
                rngs: BTreeMap::new(),
                envs,
                optimizers: std::mem::take(&mut optimizers),
                final_eval: self.final_eval,
                algo: OffPolicyState { agent: agent_state.take().expect("saved"), replay, rounds: self.rounds },
            })
        })?;
        Ok(())
    }

    fn summary(&self, start: Instant, first: u64, eval: (f64, f64), history: Vec<(u64, f64)>) -> TrainSummary {
        let wall = start.elapsed().as_secs_f64();
        TrainSummary {
            eval_return_mean: eval.0,
            eval_return_std: eval.1,
            env_steps: self.stats.env_steps,
            steps_per_second: (self.stats.env_steps + 1 - first) as f64 / wall.max(1e-9),
            wall_seconds: wall,
            episodes: self.stats.episodes,
            n_updates: self.rounds,
            gradient_steps: self.agent.n_updates(),
            resumed_from: self.resumed_from,
            eval_history: history,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_actions_are_uniform_in_the_space() {
        let mut rng = rng_from_seed(1);
        for _ in 0..200 {
            let a = random_action(&ActionKind::Discrete(3), &mut rng);
            assert!(a.len() == 1 && (0.0..3.0).contains(&a[0]) && a[0].fract() == 0.0);
            let c = random_action(&ActionKind::Continuous { low: vec![-2.0; 2], high: vec![2.0; 2] }, &mut rng);
            assert!(c.len() == 2 && c.iter().all(|x| (-1.0..=1.0).contains(x)));
        }
        let scale = ActionScale::new(vec![-2.0], vec![2.0]);
        let kind = ActionKind::Continuous { low: vec![-2.0], high: vec![2.0] };
        assert_eq!(env_action::<Vec<f32>>(&kind, Some(&scale), &[0.5]), vec![1.0]);
        assert_eq!(env_action::<usize>(&ActionKind::Discrete(4), None, &[3.0]), 3);
    }
}
