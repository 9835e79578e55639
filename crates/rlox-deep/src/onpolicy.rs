//! The on-policy skeleton: what REINFORCE, A2C and PPO share, written once, like Stable-Baselines3's
//! `OnPolicyAlgorithm`. Each method ([`crate::ppo`], [`crate::a2c`], [`crate::reinforce`]) keeps its
//! config, its loss and its update, and plugs them in through [`OnPolicyMethod`].
//!
//! One iteration of [`OnPolicy::learn`]:
//!
//! 1. collect experience with a no-autodiff copy of the policy, as the method asks
//!    ([`Collection`]): `n_steps` calls of every env, episodes continuing across iterations, with
//!    GAE advantages (PPO, A2C); or one complete episode per env, the envs restarting together
//!    (REINFORCE);
//! 2. the method's update ([`OnPolicyMethod::update`]), at the training progress
//!    `env_steps / total_steps` (for its schedules);
//! 3. log the episode statistics (`rollout/ep_rew_mean`) and the update's metrics at the env step;
//! 4. evaluate when the env steps cross a multiple of `eval_every` (deterministic, one episode per
//!    evaluation env, seeded by the evaluation's index);
//! 5. checkpoint when they cross a multiple of `checkpoint_every`, and at the end.
//!
//! **Randomness**: the network is initialised from `derive_seed(seed, 3)`, actions are sampled from
//! the stream `act`, and the method's shuffling draws from `update`. The training envs are reset with
//! `seed` once (and per episode by [`crate::rollout::ResumableVecEnv`]). A checkpoint holds both
//! streams' positions, the env batch's whole state, the episode statistics, the network, the optimizer
//! state and the number of metric records logged: resuming from it continues exactly.

use crate::checkpoint::{self, Blobs, CheckpointDir, SeededRng, TrainerState};
use crate::fused_policy::FusedActorCritic;
use crate::gae::{explained_variance, RolloutBuffer};
use crate::policies::{ActionKind, ActorCritic, BatchActor, BurnActor, PolicyAction, PolicyConfig};
use crate::rollout::{collect_episodes, collect_rollout, evaluate, log_rollout, EpisodeStats, Episodes, Resumable};
use crate::summary::TrainSummary;
use rlox_core::logger::{Counted, Logger};
use rlox_core::run::RunSettings;
use rlox_core::seeding::{derive_seed, rng_from_seed, Rng};
use rlox_core::vec_env::VecEnv;
use rlox_core::{Error, Result};
use rlox_nn::burn::module::Module;
use rlox_nn::{Device, Optimizer, OptimizerConfig, Tensor};
use std::collections::BTreeMap;
use std::time::Instant;

/// Metrics an update reports (logged as they are named, e.g. `train/value_loss`).
pub type Metrics = Vec<(&'static str, f64)>;

/// How a method gathers experience before each update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Collection {
    /// `n_steps` calls of every env (episodes continue across updates); advantages and returns by
    /// GAE(`gamma`, `gae_lambda`), truncations bootstrapped from the final observation.
    Rollout {
        /// Calls per env per update.
        n_steps: usize,
        /// Discount.
        gamma: f64,
        /// GAE lambda.
        gae_lambda: f64,
    },
    /// One complete episode per env, the envs reset together before each update; discounted
    /// returns-to-go.
    Episodes {
        /// Discount.
        gamma: f64,
    },
}

/// The experience handed to an update.
pub enum Experience<'a> {
    /// A rollout whose advantages and returns are computed.
    Rollout(&'a RolloutBuffer),
    /// Complete episodes.
    Episodes(&'a Episodes),
}

/// The actor-critic and its optimizer: burn's autodiff, or rlox-nn's fused small-MLP path.
#[allow(clippy::large_enum_variant)] // one per trainer
pub enum Nets {
    /// Burn's autodiff (any architecture and device).
    Burn {
        /// The actor-critic (on the autodiff device).
        model: ActorCritic,
        /// Its optimizer.
        optimizer: Optimizer,
    },
    /// The fused path (separate networks, a state-independent log-std, the CPU).
    Fused(Box<FusedActorCritic>),
}

/// The network, its optimizer and the counters, as an update sees them.
pub struct Learner {
    /// The actor-critic and its optimizer.
    pub nets: Nets,
    /// The autodiff device.
    pub device: Device,
    /// Scalars per observation.
    pub obs_dim: usize,
    /// The action space.
    pub kind: ActionKind,
    /// Gradient steps taken so far.
    pub gradient_steps: u64,
    /// Updates completed before the current one.
    pub n_updates: u64,
    algo: &'static str,
}

impl Learner {
    /// An error unless `value` (the `quantity` of the current gradient step) is finite.
    pub fn check_finite(&self, quantity: &str, value: f64) -> Result<f64> {
        if value.is_finite() {
            Ok(value)
        } else {
            Err(Error::diverged(self.algo, quantity, value, "gradient step", self.gradient_steps + 1))
        }
    }

    /// The actor-critic as a burn module on the autodiff device (a copy on the fused path).
    pub fn model(&self) -> ActorCritic {
        match &self.nets {
            Nets::Burn { model, .. } => model.clone(),
            Nets::Fused(f) => f.to_model(&self.device),
        }
    }

    /// The burn module, on the burn path.
    pub fn burn_model(&self) -> Option<&ActorCritic> {
        match &self.nets {
            Nets::Burn { model, .. } => Some(model),
            Nets::Fused(_) => None,
        }
    }

    /// The fused actor-critic, on the fused path.
    pub fn fused_mut(&mut self) -> Option<&mut FusedActorCritic> {
        match &mut self.nets {
            Nets::Burn { .. } => None,
            Nets::Fused(f) => Some(f),
        }
    }

    /// One optimizer step on `loss` (burn path): backward, global-norm clip to `max_grad_norm`, step
    /// with `lr`. Returns the gradient norm before clipping; a non-finite loss or norm is an error
    /// and leaves the network as it was.
    pub fn step(&mut self, loss: &Tensor<1>, lr: f64, max_grad_norm: f64) -> Result<f64> {
        self.check_finite("loss", loss.clone().into_scalar::<f32>() as f64)?;
        let Nets::Burn { model, optimizer } = &mut self.nets else {
            return Err(Error::invalid(self.algo, "a burn loss given to the fused path"));
        };
        let mut grads = rlox_nn::backward(loss, model);
        let norm = rlox_nn::clip_grad_norm(model, &mut grads, max_grad_norm);
        if !norm.is_finite() {
            return Err(Error::diverged(self.algo, "gradient norm", norm, "gradient step", self.gradient_steps + 1));
        }
        *model = optimizer.step(lr, model.clone(), grads);
        self.gradient_steps += 1;
        Ok(norm)
    }

    /// One optimizer step on the fused path from the loss derivatives the method wrote into the
    /// [`crate::fused_policy::RowTerms`] of the last forward; as [`Learner::step`] otherwise.
    pub fn fused_step(&mut self, loss: f64, lr: f64, max_grad_norm: f64) -> Result<f64> {
        self.check_finite("loss", loss)?;
        let Nets::Fused(f) = &mut self.nets else {
            return Err(Error::invalid(self.algo, "a fused step asked of the burn path"));
        };
        let norm = f.backward_step(lr, max_grad_norm);
        self.check_finite("gradient norm", norm)?;
        self.gradient_steps += 1;
        Ok(norm)
    }
}

/// What PPO, A2C and REINFORCE each supply: their collection, network, optimizer and update.
pub trait OnPolicyMethod {
    /// `ppo`, `a2c` or `reinforce`.
    const NAME: &'static str;
    /// Check the hyper-parameters; the error names the field.
    fn validate(&self) -> Result<()>;
    /// Parallel envs.
    fn n_envs(&self) -> usize;
    /// How experience is gathered.
    fn collection(&self) -> Collection;
    /// The actor-critic's architecture.
    fn policy(&self) -> &PolicyConfig;
    /// The optimizer.
    fn optimizer(&self) -> OptimizerConfig;
    /// Train `learner` on `data` at training `progress` (0 at the start, 1 at `total_steps`), drawing
    /// any randomness (minibatch order) from `rng`; returns the metrics to log.
    fn update(&self, learner: &mut Learner, data: Experience<'_>, progress: f64, rng: &mut Rng) -> Result<Metrics>;
}

/// The seed of evaluation `round` (the final one is `u64::MAX`).
pub fn eval_seed(seed: u64, round: u64) -> u64 {
    derive_seed(seed, 1_000_000u64.wrapping_add(round))
}

/// Whether a cadence of `every` steps was crossed going from `before` to `after` steps.
pub fn crossed(every: u64, before: u64, after: u64) -> bool {
    every > 0 && before / every < after / every
}

/// An on-policy trainer: a method, the run settings, the learner and its state.
pub struct OnPolicy<M: OnPolicyMethod> {
    method: M,
    run: RunSettings,
    learner: Learner,
    plain: Device,
    stats: EpisodeStats,
    rng_act: SeededRng,
    rng_update: SeededRng,
    n_evals: u64,
    logged: u64,
    final_eval: Option<(f64, f64)>,
    resumed_from: Option<u64>,
    stop_after_updates: Option<u64>,
}

impl<M: OnPolicyMethod> OnPolicy<M> {
    /// A fresh trainer for `obs_dim`-dimensional observations and actions of `kind`.
    pub fn new(method: M, run: &RunSettings, obs_dim: usize, kind: ActionKind) -> Result<Self> {
        method.validate()?;
        if obs_dim == 0 {
            return Err(Error::invalid(M::NAME, "obs_dim must be > 0"));
        }
        if run.total_steps == 0 {
            return Err(Error::invalid("total_steps", "must be > 0"));
        }
        if run.eval_episodes == 0 {
            return Err(Error::invalid("eval_episodes", "must be > 0"));
        }
        let device = rlox_nn::train_device(run.device, derive_seed(run.seed, 3))?;
        let plain = device.clone().inner();
        let model =
            ActorCritic::new(obs_dim, &kind, method.policy(), &device, &mut rng_from_seed(derive_seed(run.seed, 3)));
        let fused = (method.policy().fused && run.device == rlox_nn::DeviceKind::Cpu)
            .then(|| FusedActorCritic::from_model(&model, method.optimizer()))
            .flatten();
        let nets = match fused {
            Some(f) => Nets::Fused(Box::new(f)),
            None => Nets::Burn { model, optimizer: method.optimizer().build() },
        };
        let learner = Learner { nets, device, obs_dim, kind, gradient_steps: 0, n_updates: 0, algo: M::NAME };
        Ok(OnPolicy {
            stats: EpisodeStats::new(method.n_envs()),
            method,
            run: run.clone(),
            learner,
            plain,
            rng_act: SeededRng::new(derive_seed(run.seed, 1)),
            rng_update: SeededRng::new(derive_seed(run.seed, 2)),
            n_evals: 0,
            logged: 0,
            final_eval: None,
            resumed_from: None,
            stop_after_updates: None,
        })
    }

    /// The method.
    pub fn method(&self) -> &M {
        &self.method
    }

    /// The actor-critic (a copy as a burn module on the fused path).
    pub fn model(&self) -> ActorCritic {
        self.learner.model()
    }

    /// Whether this trainer runs on the fused path.
    pub fn is_fused(&self) -> bool {
        matches!(self.learner.nets, Nets::Fused(_))
    }

    /// The network, optimizer and counters.
    pub fn learner(&self) -> &Learner {
        &self.learner
    }

    /// Updates done.
    pub fn n_updates(&self) -> u64 {
        self.learner.n_updates
    }

    /// Metric records logged so far (a checkpoint keeps the count).
    pub fn records_logged(&self) -> u64 {
        self.logged
    }

    /// Test hook: return from [`OnPolicy::learn`] right after the checkpoint of this update, as if killed.
    pub fn stop_after_updates(&mut self, n: u64) {
        self.stop_after_updates = Some(n);
    }

    /// Deterministic evaluation on `envs` (one episode per env), seeded with `seed`.
    pub fn evaluate<W>(&mut self, envs: &mut W, seed: u64) -> Result<(f64, f64)>
    where
        W: VecEnv,
        W::Action: PolicyAction,
    {
        let kind = &self.learner.kind;
        match &mut self.learner.nets {
            Nets::Burn { model, .. } => {
                let valid = model.valid();
                let mut actor = BurnActor { model: &valid, device: &self.plain, obs_dim: self.learner.obs_dim };
                evaluate(&mut actor, kind, envs, seed, 1_000_000)
            }
            Nets::Fused(f) => evaluate(&mut **f, kind, envs, seed, 1_000_000),
        }
    }

    /// Continue from the newest checkpoint in `checkpoints`; `envs` take its env state.
    pub fn resume<V: Resumable>(&mut self, checkpoints: &CheckpointDir, envs: &mut V) -> Result<()> {
        let loaded = checkpoints.load_latest::<TrainerState<()>>()?;
        let (dir, st) = (loaded.dir, loaded.state);
        checkpoint::check_algorithm(&st.algorithm, M::NAME, &dir)?;
        let fresh = ActorCritic::new(
            self.learner.obs_dim,
            &self.learner.kind,
            self.method.policy(),
            &self.learner.device,
            &mut rng_from_seed(0),
        );
        let loaded_model = checkpoint::load_module(&dir, "policy", fresh)?;
        let blobs = checkpoint::read_blobs(&dir)?;
        let meta = st
            .optimizers
            .get("optimizer")
            .ok_or_else(|| Error::checkpoint(dir.join("trainer_state.json"), "no optimizer state"))?;
        match &mut self.learner.nets {
            Nets::Burn { model, optimizer } => {
                *model = loaded_model;
                *optimizer = self.method.optimizer().build();
                checkpoint::load_optimizer(optimizer, model, "optimizer", &blobs, meta, &dir)?;
            }
            Nets::Fused(f) => {
                f.copy_from_model(&loaded_model);
                let origin = dir.join(checkpoint::STATE_FILE);
                let sizes = f.param_sizes();
                rlox_nn::state::import_flat_optimizer(f.optimizer_mut(), &sizes, "optimizer", &blobs, meta, &origin)?;
            }
        }
        envs.load_state(&st.envs).map_err(|e| Error::checkpoint(&dir, e.to_string()))?;
        self.learner.n_updates = st.n_updates;
        self.learner.gradient_steps = st.gradient_steps;
        self.stats = st.episodes;
        self.rng_act = checkpoint::rng_named(&st.rngs, "act", &dir)?;
        self.rng_update = checkpoint::rng_named(&st.rngs, "update", &dir)?;
        self.n_evals = st.n_evals;
        self.logged = st.logged;
        self.final_eval = st.final_eval;
        self.resumed_from = Some(self.stats.env_steps);
        Ok(())
    }

    fn save(&self, checkpoints: &CheckpointDir, env_state: crate::rollout::VecEnvState) -> Result<()> {
        let finite = match &self.learner.nets {
            Nets::Burn { model, .. } => rlox_nn::all_finite(model),
            Nets::Fused(f) => f.all_finite(),
        };
        if !finite {
            return Err(Error::invalid(
                format!("{} checkpoint", M::NAME),
                "the network has non-finite parameters; the last good checkpoint is kept",
            ));
        }
        let mut blobs = Blobs::new();
        let meta = match &self.learner.nets {
            Nets::Burn { model, optimizer } => checkpoint::save_optimizer(optimizer, model, "optimizer", &mut blobs)?,
            Nets::Fused(f) => {
                rlox_nn::state::export_flat_optimizer(f.optimizer(), &f.param_sizes(), "optimizer", &mut blobs)
            }
        };
        let model = self.learner.model();
        let state = TrainerState {
            algorithm: M::NAME.to_string(),
            env_steps: self.stats.env_steps,
            n_updates: self.learner.n_updates,
            gradient_steps: self.learner.gradient_steps,
            n_evals: self.n_evals,
            logged: self.logged,
            episodes: self.stats.clone(),
            rngs: BTreeMap::from([
                ("act".to_string(), self.rng_act.state()),
                ("update".to_string(), self.rng_update.state()),
            ]),
            envs: env_state,
            optimizers: BTreeMap::from([("optimizer".to_string(), meta)]),
            final_eval: self.final_eval,
            algo: (),
        };
        checkpoints.save(self.stats.env_steps, &state, |w| {
            checkpoint::save_module(w, "policy", &model)?;
            checkpoint::write_blobs(w, &blobs)
        })?;
        Ok(())
    }

    /// Train on `envs` (`n_envs` of them) until `total_steps` transitions, evaluating on `eval_envs`
    /// (one episode per env), checkpointing into `checkpoints` if given (see the module docs).
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
        let (n_envs, total) = (self.method.n_envs(), self.run.total_steps);
        if envs.num_envs() != n_envs {
            return Err(Error::invalid(
                format!("{}.n_envs", M::NAME),
                format!("{n_envs} but the env batch has {}", envs.num_envs()),
            ));
        }
        let mut log = Counted::new(logger, self.logged);
        let start = Instant::now();
        let steps_at_start = self.stats.env_steps;
        let (obs_dim, ad) = (self.learner.obs_dim, self.learner.kind.action_dim());
        let collection = self.method.collection();
        if self.resumed_from.is_none() {
            envs.reset(Some(self.run.seed))?;
        }
        let mut buf = match collection {
            Collection::Rollout { n_steps, .. } => RolloutBuffer::new(n_envs, n_steps, obs_dim, ad),
            Collection::Episodes { .. } => RolloutBuffer::default(),
        };
        let mut eval_history = Vec::new();

        while self.stats.env_steps < total && self.final_eval.is_none() {
            let before = self.stats.env_steps;
            // 1. Experience: the fused network, or a no-autodiff snapshot of the burn one.
            let snapshot;
            let mut burn_actor;
            let policy: &mut dyn BatchActor = match &mut self.learner.nets {
                Nets::Burn { model, .. } => {
                    snapshot = model.valid();
                    burn_actor = BurnActor { model: &snapshot, device: &self.plain, obs_dim };
                    &mut burn_actor
                }
                Nets::Fused(f) => &mut **f,
            };
            let kind = &self.learner.kind;
            let episodes;
            let data = match collection {
                Collection::Rollout { gamma, gae_lambda, .. } => {
                    let last = collect_rollout(policy, kind, envs, &mut buf, &mut self.stats, &mut self.rng_act.rng)?;
                    buf.compute_gae(&last, gamma as f32, gae_lambda as f32);
                    Experience::Rollout(&buf)
                }
                Collection::Episodes { gamma } => {
                    let seed = derive_seed(self.run.seed, 10 + self.learner.n_updates);
                    episodes =
                        collect_episodes(policy, kind, envs, seed, gamma, &mut self.stats, &mut self.rng_act.rng)?;
                    Experience::Episodes(&episodes)
                }
            };
            // 2. Update (SB3 sets the schedules from the progress after the rollout).
            let progress = self.stats.env_steps as f64 / total as f64;
            let mut metrics = self.method.update(&mut self.learner, data, progress, &mut self.rng_update.rng)?;
            self.learner.n_updates += 1;
            // 3. Log.
            if let Collection::Rollout { .. } = collection {
                let valid = buf.valid_indices();
                let (v, r): (Vec<f32>, Vec<f32>) = valid.iter().map(|&k| (buf.values[k], buf.returns[k])).unzip();
                metrics.push(("train/explained_variance", explained_variance(&v, &r)));
            }
            let mean_std = match &self.learner.nets {
                Nets::Burn { model, .. } => model.log_std.as_ref().map(|ls| {
                    let ls: Vec<f32> = ls.val().into_data().try_into_vec_as::<f32>().expect("f32");
                    ls.iter().map(|l| l.exp() as f64).sum::<f64>() / ls.len() as f64
                }),
                Nets::Fused(f) => f.mean_std(),
            };
            if let Some(std) = mean_std {
                metrics.push(("train/std", std));
            }
            metrics.push(("train/n_updates", self.learner.gradient_steps as f64));
            let secs = start.elapsed().as_secs_f64();
            metrics.push(("time/fps", (self.stats.env_steps - steps_at_start) as f64 / secs.max(1e-9)));
            log_rollout(&mut log, &self.stats)?;
            log.log(self.stats.env_steps, &metrics)?;
            // 4. Evaluate.
            if crossed(self.run.eval_every, before, self.stats.env_steps) {
                let (mean, std) = self.evaluate(eval_envs, eval_seed(self.run.seed, self.n_evals))?;
                self.n_evals += 1;
                eval_history.push((self.stats.env_steps, mean));
                log.log(self.stats.env_steps, &[("eval/mean_reward", mean), ("eval/std_reward", std)])?;
            }
            // 5. Checkpoint (between updates: resuming from here is exact).
            let done = self.stats.env_steps >= total;
            if let Some(c) = checkpoints {
                if crossed(self.run.checkpoint_every, before, self.stats.env_steps) || done {
                    log.flush()?;
                    self.logged = log.count;
                    self.save(c, envs.save_state())?;
                }
            }
            if self.stop_after_updates == Some(self.learner.n_updates) {
                self.logged = log.count;
                return Ok(self.summary(start, steps_at_start, (f64::NAN, f64::NAN), eval_history));
            }
        }
        let wall = start.elapsed();
        let (mean, std) = match self.final_eval {
            Some(done) => done,
            None => {
                let e = self.evaluate(eval_envs, eval_seed(self.run.seed, u64::MAX))?;
                log.log(self.stats.env_steps, &[("eval/final_mean_reward", e.0), ("eval/final_std_reward", e.1)])?;
                self.final_eval = Some(e);
                if let Some(c) = checkpoints {
                    log.flush()?;
                    self.logged = log.count;
                    self.save(c, envs.save_state())?;
                }
                e
            }
        };
        log.flush()?;
        self.logged = log.count;
        let mut s = self.summary(start, steps_at_start, (mean, std), eval_history);
        s.wall_seconds = wall.as_secs_f64();
        s.steps_per_second = (self.stats.env_steps - steps_at_start) as f64 / s.wall_seconds.max(1e-9);
        Ok(s)
    }

    fn summary(&self, start: Instant, steps_at_start: u64, eval: (f64, f64), history: Vec<(u64, f64)>) -> TrainSummary {
        let wall = start.elapsed().as_secs_f64();
        TrainSummary {
            eval_return_mean: eval.0,
            eval_return_std: eval.1,
            env_steps: self.stats.env_steps,
            steps_per_second: (self.stats.env_steps - steps_at_start) as f64 / wall.max(1e-9),
            wall_seconds: wall,
            episodes: self.stats.episodes,
            n_updates: self.learner.n_updates,
            gradient_steps: self.learner.gradient_steps,
            resumed_from: self.resumed_from,
            eval_history: history,
        }
    }
}
