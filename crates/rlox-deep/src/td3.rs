//! TD3: Twin Delayed DDPG (Fujimoto, van Hoof & Meger 2018).
//!
//! A deterministic actor `mu(s)` and critics `Q(s, a)` learned off-policy from a replay buffer
//! (the loop is in [`crate::offpolicy`]). TD3 changes three things in DDPG:
//!
//! 1. **twin critics**: the TD target takes the smaller of two target critics;
//! 2. **target policy smoothing**: the target action is `clip(mu'(s') + clip(N(0, 0.2), -0.5, 0.5), -1, 1)`;
//! 3. **delayed policy updates**: the actor and the target networks move every `policy_delay = 2`
//!    critic updates.
//!
//! One gradient step (SB3's `TD3.train`, in this order):
//!
//! * `y = r + gamma (1 - terminated) min_i Q'_i(s', a')`, no gradient;
//! * critic loss `sum_i mean((Q_i(s, a) - y)^2)`, one Adam step on all critics;
//! * every `policy_delay`-th step: actor loss `-mean(Q_1(s, mu(s)))`, one Adam step on the actor,
//!   then `target <- tau * online + (1 - tau) * target` for the actor and the critics.
//!
//! The defaults are rl-baselines3-zoo's `Pendulum-v1` entry of `hyperparams/td3.yml` (marked *zoo*)
//! on top of Stable-Baselines3's `TD3` defaults (*SB3*). [`crate::ddpg`] is this config with one
//! critic, no smoothing and no delay, which is exactly SB3's `DDPG`.
//!
//! On the CPU the networks train on rlox-nn's fused small-MLP path ([`rlox_nn::fused`]): the critics
//! as one network of `n_critics` members (all evaluated in one pass), forward, backward and Adam in
//! preallocated buffers, the actor's gradient taken through the first critic's input gradient. Other
//! devices (and `fused = false`) train through burn; both start from the same weights and write the
//! same checkpoint files.

use crate::checkpoint::{self, Blobs, CheckpointWriter, OptimizerMeta};
use crate::continuous::{matrix, standard_normal, values, Critics, DeterministicActor, QCritic};
use crate::noise::{ActionNoise, NoiseConfig};
use crate::offpolicy::{self, OffPolicyAgent, ReplaySettings, Update};
use crate::replay::Batch;
use rlox_core::run::RunSettings;
use rlox_core::seeding::{derive_seed, Rng};
use rlox_core::{Error, Result};
use rlox_nn::fused::{FusedMlp, FusedOptimizer, Workspace};
use rlox_nn::{Activation, Device, Module, Optimizer, OptimizerConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// TD3 hyper-parameters. Defaults: rl-baselines3-zoo's `Pendulum-v1` (*zoo*), else SB3's `TD3` (*SB3*).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Td3Config {
    /// Adam learning rate of actor and critics. *zoo*: 1e-3.
    pub learning_rate: f64,
    /// Replay capacity. *zoo*: 200000.
    pub buffer_size: usize,
    /// Uniformly random steps before learning. *zoo*: 10000.
    pub learning_starts: u64,
    /// Transitions per gradient step. *SB3*: 256.
    pub batch_size: usize,
    /// Target-network coefficient. *SB3*: 0.005.
    pub tau: f64,
    /// Discount. *zoo*: 0.98.
    pub gamma: f64,
    /// Train every this many env steps. *zoo*: 1.
    pub train_freq: u64,
    /// Gradient steps per round (-1: `train_freq`). *zoo*: 1.
    pub gradient_steps: i64,
    /// Critics (twin Q). *SB3*: 2 (DDPG: 1).
    pub n_critics: usize,
    /// Actor and target updates every this many critic updates. *SB3*: 2.
    pub policy_delay: u64,
    /// Standard deviation of the target-policy smoothing noise. *SB3*: 0.2.
    pub target_policy_noise: f64,
    /// The smoothing noise is clipped to `±target_noise_clip`. *SB3*: 0.5.
    pub target_noise_clip: f64,
    /// Exploration noise. *zoo*: normal, sigma 0.1.
    pub action_noise: NoiseConfig,
    /// Hidden widths of actor and critics. *zoo*/*SB3*: `[400, 300]`.
    pub net_arch: Vec<usize>,
    /// Hidden activation. *SB3*: ReLU.
    pub activation: Activation,
    /// The optimizer. *SB3*: Adam with PyTorch's defaults.
    pub optimizer: OptimizerConfig,
    /// Train on the fused small-MLP path on the CPU (see the module docs).
    pub fused: bool,
}

impl Default for Td3Config {
    fn default() -> Self {
        Td3Config {
            learning_rate: 1e-3,
            buffer_size: 200_000,
            learning_starts: 10_000,
            batch_size: 256,
            tau: 0.005,
            gamma: 0.98,
            train_freq: 1,
            gradient_steps: 1,
            n_critics: 2,
            policy_delay: 2,
            target_policy_noise: 0.2,
            target_noise_clip: 0.5,
            action_noise: NoiseConfig::Normal { sigma: 0.1 },
            net_arch: vec![400, 300],
            activation: Activation::Relu,
            optimizer: OptimizerConfig::adam(),
            fused: true,
        }
    }
}

/// The run settings rl-baselines3-zoo uses for TD3 and DDPG on `Pendulum-v1` (20,000 steps, an
/// evaluation every 1,000 steps over 5 episodes, as SB3's `EvalCallback` is usually set).
pub fn pendulum_run_defaults(name: &str) -> RunSettings {
    RunSettings {
        name: name.into(),
        total_steps: 20_000,
        eval_every: 1000,
        eval_episodes: 5,
        checkpoint_every: 1000,
        ..RunSettings::default()
    }
}

impl Td3Config {
    /// Check the values; the error names the field (`<algo>.<field>`).
    pub fn validate_as(&self, algo: &str) -> Result<()> {
        let check = |ok: bool, what: &str, why: &str| {
            if ok {
                Ok(())
            } else {
                Err(Error::invalid(format!("{algo}.{what}"), why))
            }
        };
        check(
            self.learning_rate > 0.0 && self.learning_rate.is_finite(),
            "learning_rate",
            "must be a positive number",
        )?;
        check(self.buffer_size > 0, "buffer_size", "must be > 0")?;
        check(self.batch_size > 0, "batch_size", "must be > 0")?;
        check(self.tau > 0.0 && self.tau <= 1.0, "tau", "must be in (0, 1]")?;
        check((0.0..=1.0).contains(&self.gamma), "gamma", "must be in [0, 1]")?;
        check(self.train_freq > 0, "train_freq", "must be > 0")?;
        check(self.gradient_steps > 0 || self.gradient_steps == -1, "gradient_steps", "must be > 0 or -1")?;
        check(self.policy_delay > 0, "policy_delay", "must be > 0")?;
        check(self.n_critics > 0, "n_critics", "must be > 0")?;
        check(self.target_policy_noise >= 0.0, "target_policy_noise", "must be >= 0")?;
        check(self.target_noise_clip >= 0.0, "target_noise_clip", "must be >= 0")?;
        check(!self.net_arch.is_empty(), "net_arch", "needs at least one hidden layer")?;
        self.action_noise.validate(&format!("{algo}.action_noise"))
    }

    /// The loop's replay and training cadence.
    pub fn replay_settings(&self) -> ReplaySettings {
        ReplaySettings {
            buffer_size: self.buffer_size,
            learning_starts: self.learning_starts,
            train_freq: self.train_freq,
            gradient_steps: offpolicy::gradient_steps(self.gradient_steps, self.train_freq),
            batch_size: self.batch_size,
            prioritized: None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Target policy smoothing
// ---------------------------------------------------------------------------------------------

/// TD3's target-policy smoothing noise: `n` draws of `clip(N(0, std^2), -clip, clip)`.
pub fn smoothing_noise(rng: &mut Rng, n: usize, std: f64, clip: f64) -> Vec<f32> {
    let (std, clip) = (std as f32, clip as f32);
    standard_normal(rng, n).into_iter().map(|z| (z * std).clamp(-clip, clip)).collect()
}

// ---------------------------------------------------------------------------------------------
// The learner
// ---------------------------------------------------------------------------------------------

/// Actor and critics on burn: modules, autodiff, host optimizers.
struct BurnNets {
    actor: DeterministicActor,
    actor_target: DeterministicActor,
    /// `actor` without autodiff, refreshed after each training round (acting).
    policy: DeterministicActor,
    critics: Critics,
    critics_target: Critics,
    actor_opt: Optimizer,
    critic_opt: Optimizer,
}

/// Actor and critics on the fused path: flat parameters (the critics as one network of `n_critics`
/// members), optimizers over them, and every buffer a gradient step writes.
struct FusedNets {
    actor: FusedMlp,
    actor_target: FusedMlp,
    critics: FusedMlp,
    critics_target: FusedMlp,
    actor_opt: FusedOptimizer,
    critic_opt: FusedOptimizer,
    /// Workspaces: critics on `(s, a)`, target critics on `(s', a')`, the target actor, the actor,
    /// the critics on `(s, mu(s))` for the actor's loss, and acting.
    critic_ws: Workspace,
    target_critic_ws: Workspace,
    target_actor_ws: Workspace,
    actor_ws: Workspace,
    actor_critic_ws: Workspace,
    act_ws: Workspace,
    /// `[batch, obs + act]` critic inputs.
    input: Vec<f32>,
    /// `dL/dQ`, `[n_critics, batch]`.
    d_q: Vec<f32>,
    /// `dL/d(critic input)`, `[batch, obs + act]`.
    d_input: Vec<f32>,
    /// `dL/d(actor pre-tanh output)`, `[batch, act]`.
    d_actor: Vec<f32>,
    /// `tanh` of an actor's output, `[batch, act]`.
    actions: Vec<f32>,
    /// The TD targets `y`, `[batch]`.
    targets: Vec<f32>,
}

/// The networks on one of the two paths.
enum Nets {
    Burn(Box<BurnNets>),
    Fused(Box<FusedNets>),
}

/// A TD3 (or DDPG) learner: actor, critics, their targets and optimizers, the exploration noise.
pub struct Td3 {
    config: Td3Config,
    algo: &'static str,
    obs_dim: usize,
    act_dim: usize,
    device: Device,
    plain: Device,
    nets: Nets,
    noise: ActionNoise,
    n_updates: u64,
}

/// Rows `[obs | action]` of the critics' input.
pub(crate) fn concat_rows(obs: &[f32], actions: &[f32], od: usize, ad: usize, out: &mut Vec<f32>) {
    out.clear();
    for (o, a) in obs.chunks_exact(od).zip(actions.chunks_exact(ad)) {
        out.extend_from_slice(o);
        out.extend_from_slice(a);
    }
}

impl Td3 {
    /// A fresh TD3 learner (networks initialised from the run's seed, on its device).
    pub fn new(obs_dim: usize, act_dim: usize, config: &Td3Config, run: &RunSettings) -> Result<Self> {
        Self::build("td3", obs_dim, act_dim, config, run)
    }

    /// The learner reporting as `algo` (DDPG is this with [`crate::ddpg::ddpg_config`]'s settings).
    pub fn build(
        algo: &'static str,
        obs_dim: usize,
        act_dim: usize,
        config: &Td3Config,
        run: &RunSettings,
    ) -> Result<Self> {
        config.validate_as(algo)?;
        if obs_dim == 0 || act_dim == 0 {
            return Err(Error::invalid(algo, format!("obs_dim ({obs_dim}) and act_dim ({act_dim}) must be > 0")));
        }
        let n_critics = config.n_critics;
        let device = rlox_nn::train_device(run.device, derive_seed(run.seed, 3))?;
        let plain = device.clone().inner();
        let (arch, act) = (&config.net_arch, config.activation);
        let actor = DeterministicActor::new(obs_dim, act_dim, arch, act, &device);
        let critics = Critics::new(n_critics, obs_dim, act_dim, arch, act, &device);
        let nets = if config.fused && run.device == rlox_nn::DeviceKind::Cpu {
            let actor = FusedMlp::from_mlp(&actor.net);
            let widths: Vec<usize> =
                std::iter::once(obs_dim + act_dim).chain(arch.iter().copied()).chain(std::iter::once(1)).collect();
            let mut fused_critics = FusedMlp::zeros(&widths, act, n_critics);
            for (k, q) in critics.nets.iter().enumerate() {
                fused_critics.copy_from_mlp(k, &q.net);
            }
            let b = config.batch_size;
            Nets::Fused(Box::new(FusedNets {
                actor_target: actor.clone(),
                critics_target: fused_critics.clone(),
                actor_opt: FusedOptimizer::new(config.optimizer, actor.num_params()),
                critic_opt: FusedOptimizer::new(config.optimizer, fused_critics.num_params()),
                critic_ws: fused_critics.workspace(b),
                target_critic_ws: fused_critics.workspace(b),
                target_actor_ws: actor.workspace(b),
                actor_ws: actor.workspace(b),
                actor_critic_ws: fused_critics.workspace(b),
                act_ws: actor.workspace(1),
                input: Vec::with_capacity(b * (obs_dim + act_dim)),
                d_q: vec![0.0; n_critics * b],
                d_input: vec![0.0; b * (obs_dim + act_dim)],
                d_actor: vec![0.0; b * act_dim],
                actions: vec![0.0; b * act_dim],
                targets: vec![0.0; b],
                actor,
                critics: fused_critics,
            }))
        } else {
            Nets::Burn(Box::new(BurnNets {
                actor_target: actor.valid(),
                policy: actor.valid(),
                critics_target: critics.valid(),
                actor,
                critics,
                actor_opt: config.optimizer.build(),
                critic_opt: config.optimizer.build(),
            }))
        };
        Ok(Td3 {
            algo,
            obs_dim,
            act_dim,
            nets,
            noise: ActionNoise::new(config.action_noise, act_dim),
            n_updates: 0,
            device,
            plain,
            config: config.clone(),
        })
    }

    /// Whether this learner trains on the fused path.
    pub fn is_fused(&self) -> bool {
        matches!(self.nets, Nets::Fused(_))
    }

    /// The deterministic action `mu(obs)` in `[-1, 1]`.
    pub fn deterministic_action(&mut self, obs: &[f32]) -> Vec<f32> {
        match &mut self.nets {
            Nets::Burn(n) => values(n.policy.forward(matrix(obs.to_vec(), 1, self.obs_dim, &self.plain))),
            Nets::Fused(f) => f.actor.forward(obs, 1, &mut f.act_ws).iter().map(|u| u.tanh()).collect(),
        }
    }

    /// The actor, critics and their targets as burn modules (copies on the fused path), for checkpoints.
    fn modules(&self) -> (DeterministicActor, DeterministicActor, Critics, Critics) {
        match &self.nets {
            Nets::Burn(n) => (n.actor.clone(), n.actor_target.clone(), n.critics.clone(), n.critics_target.clone()),
            Nets::Fused(f) => {
                let actor = |net: &FusedMlp| DeterministicActor { net: net.to_mlp(0, &self.device) };
                let critics = |net: &FusedMlp| Critics {
                    nets: (0..net.members()).map(|k| QCritic { net: net.to_mlp(k, &self.device) }).collect(),
                };
                (actor(&f.actor), actor(&f.actor_target), critics(&f.critics), critics(&f.critics_target))
            }
        }
    }

    /// One gradient step through burn's autodiff.
    fn burn_update(&mut self, batch: &Batch, lr: f64, rng: &mut Rng) -> Result<Update> {
        let Nets::Burn(n) = &mut self.nets else { unreachable!("burn path") };
        let (b, od, ad) = (batch.len(), self.obs_dim, self.act_dim);
        let c = &self.config;
        let update = self.n_updates + 1;

        // TD target, no gradient: r + gamma (1 - done) min_i Q'_i(s', smoothed mu'(s')).
        let next_obs = matrix(batch.next_obs.clone(), b, od, &self.plain);
        let mut next_actions = n.actor_target.forward(next_obs.clone());
        if c.target_policy_noise > 0.0 {
            let noise = smoothing_noise(rng, b * ad, c.target_policy_noise, c.target_noise_clip);
            next_actions = (next_actions + matrix(noise, b, ad, &self.plain)).clamp(-1.0, 1.0);
        }
        let next_q = values(n.critics_target.min(next_obs, next_actions));
        let gamma = c.gamma as f32;
        let y: Vec<f32> = (0..b).map(|i| batch.rewards[i] + gamma * (1.0 - batch.dones[i]) * next_q[i]).collect();
        let y = matrix(y, b, 1, &self.device);

        // Critics: sum of the MSEs, one Adam step.
        let obs = matrix(batch.obs.clone(), b, od, &self.device);
        let actions = matrix(batch.actions.clone(), b, ad, &self.device);
        let critic_loss = n
            .critics
            .forward(obs.clone(), actions)
            .into_iter()
            .map(|q| (q - y.clone()).square().mean())
            .reduce(|a, b| a + b)
            .expect("at least one critic");
        let critic_value = finite(self.algo, "critic loss", critic_loss.clone().into_scalar::<f32>() as f64, update)?;
        let grads = rlox_nn::backward(&critic_loss, &n.critics);
        n.critics = n.critic_opt.step(lr, n.critics.clone(), grads);
        self.n_updates = update;
        let mut stats = vec![("train/critic_loss", critic_value)];

        // Delayed actor and target updates.
        if update.is_multiple_of(c.policy_delay) {
            let actor_loss = n.critics.nets[0].forward(obs.clone(), n.actor.forward(obs)).mean().neg();
            let actor_value = finite(self.algo, "actor loss", actor_loss.clone().into_scalar::<f32>() as f64, update)?;
            let grads = rlox_nn::backward(&actor_loss, &n.actor);
            n.actor = n.actor_opt.step(lr, n.actor.clone(), grads);
            n.actor_target = rlox_nn::polyak_update(n.actor_target.clone(), &n.actor, c.tau);
            n.critics_target = rlox_nn::polyak_update(n.critics_target.clone(), &n.critics, c.tau);
            stats.push(("train/actor_loss", actor_value));
        }
        Ok(Update { metrics: stats, td_errors: None })
    }

    /// [`Td3::burn_update`] on the fused path: the same losses, gradients by hand at the outputs.
    fn fused_update(&mut self, batch: &Batch, lr: f64, rng: &mut Rng) -> Result<Update> {
        let Nets::Fused(f) = &mut self.nets else { unreachable!("fused path") };
        let (b, od, ad) = (batch.len(), self.obs_dim, self.act_dim);
        let c = &self.config;
        let update = self.n_updates + 1;
        let m = f.critics.members();

        // TD target: r + gamma (1 - done) min_i Q'_i(s', clip(tanh(mu'(s')) + noise, -1, 1)).
        let next = f.actor_target.forward(&batch.next_obs, b, &mut f.target_actor_ws);
        f.actions.clear();
        f.actions.extend(next.iter().map(|u| u.tanh()));
        if c.target_policy_noise > 0.0 {
            let noise = smoothing_noise(rng, b * ad, c.target_policy_noise, c.target_noise_clip);
            for (a, z) in f.actions.iter_mut().zip(noise) {
                *a = (*a + z).clamp(-1.0, 1.0);
            }
        }
        concat_rows(&batch.next_obs, &f.actions, od, ad, &mut f.input);
        let next_q = f.critics_target.forward(&f.input, b, &mut f.target_critic_ws);
        let gamma = c.gamma as f32;
        f.targets.clear();
        f.targets.extend((0..b).map(|i| {
            let q_min = (0..m).map(|k| next_q[k * b + i]).fold(f32::INFINITY, f32::min);
            batch.rewards[i] + gamma * (1.0 - batch.dones[i]) * q_min
        }));

        // Critics: sum over critics of mean (Q_k - y)^2; dL/dQ_k = 2 (Q_k - y) / b.
        concat_rows(&batch.obs, &batch.actions, od, ad, &mut f.input);
        let q = f.critics.forward(&f.input, b, &mut f.critic_ws);
        let mut critic_loss = 0.0f64;
        f.d_q.resize(m * b, 0.0);
        for k in 0..m {
            let mut sq = 0.0f64;
            for i in 0..b {
                let e = q[k * b + i] - f.targets[i];
                sq += (e * e) as f64;
                f.d_q[k * b + i] = 2.0 * e / b as f32;
            }
            critic_loss += sq / b as f64;
        }
        let critic_value = finite(self.algo, "critic loss", critic_loss, update)?;
        f.critics.backward(&mut f.critic_ws, &f.d_q, true, None);
        f.critic_opt.step(lr, f.critics.params_mut(), f.critic_ws.grads());
        self.n_updates = update;
        let mut stats = vec![("train/critic_loss", critic_value)];

        // Delayed actor and target updates: actor loss -mean Q_1(s, tanh(mu(s))), its gradient through
        // the first critic's input gradient and the tanh.
        if update.is_multiple_of(c.policy_delay) {
            let u = f.actor.forward(&batch.obs, b, &mut f.actor_ws);
            f.actions.clear();
            f.actions.extend(u.iter().map(|u| u.tanh()));
            concat_rows(&batch.obs, &f.actions, od, ad, &mut f.input);
            let q = f.critics.forward(&f.input, b, &mut f.actor_critic_ws);
            let actor_value =
                finite(self.algo, "actor loss", -(q[..b].iter().map(|&x| x as f64).sum::<f64>()) / b as f64, update)?;
            f.d_q.iter_mut().enumerate().for_each(|(j, d)| *d = if j < b { -1.0 / b as f32 } else { 0.0 });
            f.d_input.resize(b * (od + ad), 0.0);
            f.critics.backward(&mut f.actor_critic_ws, &f.d_q, false, Some(&mut f.d_input));
            f.d_actor.clear();
            for i in 0..b {
                for j in 0..ad {
                    let a = f.actions[i * ad + j];
                    f.d_actor.push(f.d_input[i * (od + ad) + od + j] * (1.0 - a * a));
                }
            }
            f.actor.backward(&mut f.actor_ws, &f.d_actor, true, None);
            f.actor_opt.step(lr, f.actor.params_mut(), f.actor_ws.grads());
            rlox_nn::fused::polyak_update(f.actor_target.params_mut(), f.actor.params(), c.tau);
            rlox_nn::fused::polyak_update(f.critics_target.params_mut(), f.critics.params(), c.tau);
            stats.push(("train/actor_loss", actor_value));
        }
        Ok(Update { metrics: stats, td_errors: None })
    }
}

/// TD3's (and DDPG's) state beside its networks: the exploration noise (OU keeps one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Td3State {
    /// Gradient steps taken.
    pub n_updates: u64,
    /// The action noise's state.
    pub noise_state: Vec<f64>,
}

impl OffPolicyAgent for Td3 {
    type State = Td3State;

    fn algo(&self) -> &'static str {
        self.algo
    }

    fn replay_settings(&self) -> ReplaySettings {
        self.config.replay_settings()
    }

    fn learning_rate(&self, _progress: f64) -> f64 {
        self.config.learning_rate
    }

    fn act(&mut self, obs: &[f32], explore: bool, _progress: f64, rng: &mut Rng) -> Vec<f32> {
        let mut a = self.deterministic_action(obs);
        if explore {
            self.noise.perturb(&mut a, rng);
        }
        a
    }

    fn episode_end(&mut self) {
        self.noise.reset();
    }

    fn update(&mut self, batch: &Batch, lr: f64, rng: &mut Rng) -> Result<Update> {
        match self.nets {
            Nets::Burn(_) => self.burn_update(batch, lr, rng),
            Nets::Fused(_) => self.fused_update(batch, lr, rng),
        }
    }

    fn refresh_policy(&mut self) {
        if let Nets::Burn(n) = &mut self.nets {
            n.policy = n.actor.valid();
        }
    }

    fn n_updates(&self) -> u64 {
        self.n_updates
    }

    fn all_finite(&self) -> bool {
        match &self.nets {
            Nets::Burn(n) => rlox_nn::all_finite(&n.actor) && rlox_nn::all_finite(&n.critics),
            Nets::Fused(f) => f.actor.params().iter().chain(f.critics.params()).all(|x| x.is_finite()),
        }
    }

    fn save(
        &self,
        w: &CheckpointWriter,
        blobs: &mut Blobs,
        optimizers: &mut BTreeMap<String, OptimizerMeta>,
    ) -> Result<Td3State> {
        let (actor, actor_target, critics, critics_target) = self.modules();
        checkpoint::save_module(w, "actor", &actor)?;
        checkpoint::save_module(w, "actor_target", &actor_target)?;
        checkpoint::save_module(w, "critic", &critics)?;
        checkpoint::save_module(w, "critic_target", &critics_target)?;
        let (actor_meta, critic_meta) = match &self.nets {
            Nets::Burn(n) => (
                checkpoint::save_optimizer(&n.actor_opt, &n.actor, "actor_opt", blobs)?,
                checkpoint::save_optimizer(&n.critic_opt, &n.critics, "critic_opt", blobs)?,
            ),
            Nets::Fused(f) => (
                rlox_nn::state::export_fused_optimizer(&f.actor_opt, &f.actor, "actor_opt", blobs),
                rlox_nn::state::export_fused_optimizer(&f.critic_opt, &f.critics, "critic_opt", blobs),
            ),
        };
        optimizers.insert("actor_opt".into(), actor_meta);
        optimizers.insert("critic_opt".into(), critic_meta);
        Ok(Td3State { n_updates: self.n_updates, noise_state: self.noise.state.clone() })
    }

    fn load(
        &mut self,
        dir: &Path,
        blobs: &Blobs,
        optimizers: &BTreeMap<String, OptimizerMeta>,
        state: Td3State,
    ) -> Result<()> {
        let (actor, actor_target, critics, critics_target) = self.modules();
        let actor = checkpoint::load_module(dir, "actor", actor)?;
        let actor_target = checkpoint::load_module(dir, "actor_target", actor_target)?;
        let critics = checkpoint::load_module(dir, "critic", critics)?;
        let critics_target = checkpoint::load_module(dir, "critic_target", critics_target)?;
        let meta = |name: &str| {
            optimizers.get(name).ok_or_else(|| Error::checkpoint(dir, format!("no `{name}` optimizer state")))
        };
        match &mut self.nets {
            Nets::Burn(n) => {
                n.policy = actor.valid();
                n.actor = actor;
                n.actor_target = actor_target;
                n.critics = critics;
                n.critics_target = critics_target;
                checkpoint::load_optimizer(&mut n.actor_opt, &n.actor, "actor_opt", blobs, meta("actor_opt")?, dir)?;
                checkpoint::load_optimizer(
                    &mut n.critic_opt,
                    &n.critics,
                    "critic_opt",
                    blobs,
                    meta("critic_opt")?,
                    dir,
                )?;
            }
            Nets::Fused(f) => {
                f.actor.copy_from_mlp(0, &actor.net);
                f.actor_target.copy_from_mlp(0, &actor_target.net);
                for (k, (q, qt)) in critics.nets.iter().zip(&critics_target.nets).enumerate() {
                    f.critics.copy_from_mlp(k, &q.net);
                    f.critics_target.copy_from_mlp(k, &qt.net);
                }
                let origin = dir.join(checkpoint::STATE_FILE);
                let import = rlox_nn::state::import_fused_optimizer;
                import(&mut f.actor_opt, &f.actor, "actor_opt", blobs, meta("actor_opt")?, &origin)?;
                import(&mut f.critic_opt, &f.critics, "critic_opt", blobs, meta("critic_opt")?, &origin)?;
            }
        }
        if state.noise_state.len() != self.noise.state.len() {
            return Err(Error::checkpoint(dir, "the noise state has another action dimension"));
        }
        self.n_updates = state.n_updates;
        self.noise.state = state.noise_state;
        Ok(())
    }
}

/// A finite loss, or the divergence error naming the algorithm, the loss and the gradient step.
pub(crate) fn finite(algo: &str, what: &str, value: f64, update: u64) -> Result<f64> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(Error::diverged(algo, what, value, "gradient step", update))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rlox_core::seeding::rng_from_seed;

    #[test]
    fn defaults_are_the_zoo_pendulum_settings() {
        let c = Td3Config::default();
        assert_eq!((c.buffer_size, c.learning_starts, c.gamma, c.n_critics), (200_000, 10_000, 0.98, 2));
        assert_eq!((c.learning_rate, c.train_freq, c.gradient_steps, c.net_arch.clone()), (1e-3, 1, 1, vec![400, 300]));
        assert_eq!((c.policy_delay, c.target_policy_noise, c.target_noise_clip), (2, 0.2, 0.5));
        assert_eq!(c.action_noise, NoiseConfig::Normal { sigma: 0.1 });
        c.validate_as("td3").unwrap();
        let bad = Td3Config { policy_delay: 0, ..Default::default() };
        assert!(bad.validate_as("td3").unwrap_err().to_string().contains("td3.policy_delay"));
        let text = rlox_core::config::to_toml_string(&c).unwrap();
        let back: Td3Config = rlox_core::config::from_toml_str(&text, std::path::Path::new("td3.toml")).unwrap();
        assert_eq!(back, c);
    }

    /// 100000 draws with std 0.2 and clip 0.5: none beyond 0.5, and the clip is reached
    /// (P(|N(0, 0.2^2)| > 0.5) = 1.2%, so about 1200 draws sit exactly at ±0.5).
    #[test]
    fn target_smoothing_noise_is_clipped() {
        let n = smoothing_noise(&mut rng_from_seed(3), 100_000, 0.2, 0.5);
        assert!(n.iter().all(|x| x.abs() <= 0.5));
        let at_clip = n.iter().filter(|x| x.abs() == 0.5).count();
        assert!((900..1500).contains(&at_clip), "{at_clip}");
        // Unclipped part keeps the spread: the standard deviation is a bit below 0.2.
        let sd = (n.iter().map(|x| (x * x) as f64).sum::<f64>() / n.len() as f64).sqrt();
        assert!((0.19..0.2).contains(&sd), "{sd}");
    }

    #[test]
    fn one_update_moves_critics_every_step_and_actor_every_second() {
        let config = Td3Config { net_arch: vec![16, 16], ..Default::default() };
        let mut td3 = Td3::new(3, 1, &config, &RunSettings::default()).unwrap();
        let mut replay = crate::replay::ReplayBuffer::new(64, 3, 1).unwrap();
        let mut rng = rng_from_seed(1);
        for k in 0..64 {
            let o = [k as f32 / 64.0, 0.5, -0.5];
            replay.push(&o, &[0.1], -1.0, &o, false);
        }
        let mut batch = Batch::default();
        replay.sample_into(32, &mut rng, 0.0, &mut batch);
        let before = td3.deterministic_action(&[0.1, 0.2, 0.3]);
        let s1 = td3.update(&batch, 1e-3, &mut rng).unwrap().metrics;
        td3.refresh_policy();
        assert_eq!(s1.len(), 1, "no actor update at step 1");
        assert_eq!(td3.deterministic_action(&[0.1, 0.2, 0.3]), before);
        let s2 = td3.update(&batch, 1e-3, &mut rng).unwrap().metrics;
        td3.refresh_policy();
        assert_eq!(s2.iter().map(|x| x.0).collect::<Vec<_>>(), vec!["train/critic_loss", "train/actor_loss"]);
        assert_ne!(td3.deterministic_action(&[0.1, 0.2, 0.3]), before);
    }
}
