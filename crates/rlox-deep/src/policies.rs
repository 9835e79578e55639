//! Stochastic policies for the on-policy algorithms ([`crate::reinforce`], [`crate::a2c`], [`crate::ppo`]).
//!
//! * a **categorical** policy over `Discrete(n)` actions: the network outputs `n` logits;
//! * a **diagonal Gaussian** over `Box` actions: the network outputs the mean, and the log standard
//!   deviation is either one learned parameter per action dimension, independent of the state
//!   (Stable-Baselines3's and CleanRL's default for PPO/A2C), or a second output of the network
//!   (`state_dependent_std`).
//!
//! [`ActorCritic`] holds the policy network, the value network and (for a state-independent
//! Gaussian) the log-std parameter. SB3's `MlpPolicy` for PPO/A2C uses two separate 64x64 tanh
//! networks with orthogonal initialisation (gain sqrt(2) on hidden layers, 0.01 on the policy head,
//! 1 on the value head, zero biases); that is the default here. `shared_trunk` puts one trunk under
//! both heads instead.
//!
//! Sampling happens on the host from a seeded ChaCha stream ([`rlox_core::seeding::Rng`]), never from
//! burn's generator, so a run repeats bit for bit and its RNG position can be checkpointed. The
//! differentiable `log_prob`/`entropy` used in the losses live on the tensor side ([`DistParams`]).
//!
//! Continuous actions are sampled from the unbounded Gaussian; the sample is stored as is (its
//! log-probability must be that of the stored value) and clipped to the env's `Box` bounds only when
//! sent to the env, as SB3 does for PPO and A2C.

use rand::Rng as _;
use rlox_core::seeding::Rng;
use rlox_core::spaces::Space;
use rlox_core::{Error, Result};
use rlox_nn::burn;
use rlox_nn::burn::module::{Module, Param};
use rlox_nn::burn::nn::{Initializer, LinearConfig};
use rlox_nn::burn::tensor::activation::log_softmax;
use rlox_nn::{Activation, Device, Int, Mlp, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// `ln(2 pi) / 2`.
pub(crate) const HALF_LN_2PI: f32 = 0.918_938_5;
/// Bounds of a state-dependent log-std (as SB3's SAC clamps it).
const LOG_STD_MIN: f32 = -20.0;
const LOG_STD_MAX: f32 = 2.0;

// ---------------------------------------------------------------------------------------------
// Action spaces
// ---------------------------------------------------------------------------------------------

/// The action space an on-policy learner acts in.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionKind {
    /// `Discrete(n)` starting at 0.
    Discrete(usize),
    /// `Box(low, high)` of `low.len()` dimensions.
    Continuous {
        /// Lower bounds.
        low: Vec<f32>,
        /// Upper bounds.
        high: Vec<f32>,
    },
}

impl ActionKind {
    /// From an env's action space; `algo` and `env_id` name the run in the error for other spaces.
    pub fn from_space(space: &Space, algo: &str, env_id: &str) -> Result<Self> {
        if let Some(d) = space.as_discrete() {
            if d.start == 0 && d.n > 0 {
                return Ok(ActionKind::Discrete(d.n));
            }
        }
        if let Some(b) = space.as_box() {
            if b.dim() > 0 {
                return Ok(ActionKind::Continuous { low: b.low.clone(), high: b.high.clone() });
            }
        }
        Err(Error::invalid("env", format!("{algo} needs a Discrete(n) or a Box action space; {env_id} has {space}")))
    }

    /// Scalars per stored action (1 for discrete: the index).
    pub fn action_dim(&self) -> usize {
        match self {
            ActionKind::Discrete(_) => 1,
            ActionKind::Continuous { low, .. } => low.len(),
        }
    }

    /// Outputs of the policy head (logits, or means).
    pub fn n_outputs(&self) -> usize {
        match self {
            ActionKind::Discrete(n) => *n,
            ActionKind::Continuous { low, .. } => low.len(),
        }
    }

    /// Whether actions are discrete.
    pub fn is_discrete(&self) -> bool {
        matches!(self, ActionKind::Discrete(_))
    }
}

/// An env action built from a policy's raw action (an index stored as `f32`, or an unclipped
/// Gaussian sample), so that one trainer serves `usize` and `Vec<f32>` envs.
pub trait PolicyAction: Clone {
    /// Convert (and for `Box` spaces clip to the bounds).
    fn from_policy(kind: &ActionKind, raw: &[f32]) -> Self;
}

impl PolicyAction for usize {
    fn from_policy(_kind: &ActionKind, raw: &[f32]) -> Self {
        raw[0] as usize
    }
}

impl PolicyAction for Vec<f32> {
    fn from_policy(kind: &ActionKind, raw: &[f32]) -> Self {
        match kind {
            ActionKind::Continuous { low, high } => {
                raw.iter().zip(low.iter().zip(high)).map(|(&a, (&l, &h))| a.clamp(l, h)).collect()
            }
            ActionKind::Discrete(_) => raw.to_vec(),
        }
    }
}

impl PolicyAction for i64 {
    fn from_policy(_kind: &ActionKind, raw: &[f32]) -> Self {
        raw[0] as i64
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// The actor-critic architecture. Defaults: SB3's `MlpPolicy` for PPO and A2C.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Hidden widths of the policy and the value networks. *SB3*: `[64, 64]`.
    pub net_arch: Vec<usize>,
    /// Hidden activation. *SB3*: tanh.
    pub activation: Activation,
    /// One trunk (`net_arch`) under both heads instead of two networks. *SB3*: separate.
    pub shared_trunk: bool,
    /// Orthogonal initialisation (gain sqrt 2 hidden, 0.01 policy head, 1 value head, zero biases).
    /// Off: PyTorch's default `nn.Linear` initialisation. *SB3*: on.
    pub ortho_init: bool,
    /// Initial log standard deviation of a Gaussian policy. *SB3*: 0.
    pub log_std_init: f64,
    /// The log-std is a second output of the policy network (clamped to [-20, 2]) instead of a
    /// free parameter. *SB3*: off.
    pub state_dependent_std: bool,
    /// Train on rlox-nn's fused small-MLP path ([`crate::fused_policy`]) when the architecture and
    /// device allow it (separate networks, a state-independent log-std, the CPU); `false` forces
    /// burn's autodiff, for comparison. The two take the same gradient steps.
    pub fused: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            net_arch: vec![64, 64],
            activation: Activation::Tanh,
            shared_trunk: false,
            ortho_init: true,
            log_std_init: 0.0,
            state_dependent_std: false,
            fused: true,
        }
    }
}

impl PolicyConfig {
    /// Check the values; `prefix` names the section (e.g. `ppo.policy`).
    pub fn validate(&self, prefix: &str) -> Result<()> {
        if self.shared_trunk && self.net_arch.is_empty() {
            return Err(Error::invalid(format!("{prefix}.net_arch"), "a shared trunk needs at least one hidden layer"));
        }
        if self.net_arch.contains(&0) {
            return Err(Error::invalid(format!("{prefix}.net_arch"), "widths must be > 0"));
        }
        if !self.log_std_init.is_finite() {
            return Err(Error::invalid(format!("{prefix}.log_std_init"), "must be finite"));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The network
// ---------------------------------------------------------------------------------------------

/// Policy network, value network and (state-independent Gaussian) log-std, as one module so that
/// one optimizer, one gradient clip and one checkpoint cover all parameters.
#[derive(Module, Debug)]
pub struct ActorCritic {
    /// Shared hidden layers (only with `shared_trunk`); its last layer is followed by the activation.
    pub trunk: Option<Mlp>,
    /// Policy network (or head on the trunk): logits, or means (and log-stds if state-dependent).
    pub pi: Mlp,
    /// Value network (or head on the trunk): one output.
    pub vf: Mlp,
    /// Log standard deviations of a state-independent Gaussian, one per action dimension.
    pub log_std: Option<Param<Tensor<1>>>,
    #[module(skip)]
    activation: Activation,
    /// Action dimensions (continuous) or number of actions (discrete).
    #[module(skip)]
    n_actions: usize,
    #[module(skip)]
    continuous: bool,
    #[module(skip)]
    state_dependent_std: bool,
}

/// Weights `[fan_in, fan_out]` (burn's layout) of PyTorch's `orthogonal_(gain)` on the `[fan_out, fan_in]`
/// matrix, drawn on the host: Gaussian entries, Gram-Schmidt on the columns of the taller orientation
/// (the QR of PyTorch with a positive diagonal), scaled by `gain`.
pub fn orthogonal_host(fan_in: usize, fan_out: usize, gain: f64, rng: &mut Rng) -> Vec<f32> {
    // Work on an m x n matrix with m >= n, stored column-major in `cols`.
    let (rows, cols_n) = (fan_out, fan_in); // PyTorch's weight is [out, in]
    let transpose = rows < cols_n;
    let (m, n) = if transpose { (cols_n, rows) } else { (rows, cols_n) };
    let mut cols: Vec<Vec<f64>> = (0..n).map(|_| (0..m).map(|_| standard_normal(rng) as f64).collect()).collect();
    for j in 0..n {
        for k in 0..j {
            let (head, tail) = cols.split_at_mut(j);
            let (cj, ck) = (&mut tail[0], &head[k]);
            let dot: f64 = cj.iter().zip(ck).map(|(a, b)| a * b).sum();
            cj.iter_mut().zip(ck).for_each(|(a, b)| *a -= dot * b);
        }
        let norm = cols[j].iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
        cols[j].iter_mut().for_each(|x| *x /= norm);
    }
    // q (m x n); PyTorch's weight W [out, in] is q (not transposed) or q^T. burn stores W^T: [in, out].
    let mut w = vec![0.0f32; fan_in * fan_out];
    for o in 0..fan_out {
        for i in 0..fan_in {
            let v = if transpose { cols[o][i] } else { cols[i][o] };
            w[i * fan_out + o] = (gain * v) as f32;
        }
    }
    w
}

/// One linear layer per width pair, initialised on the host from `rng` (never from burn's generator,
/// which is shared by every model in the process): orthogonal (gain sqrt 2 on hidden layers,
/// `last_gain` on the last) with zero biases when `ortho`, else PyTorch's `nn.Linear` default
/// (weights and biases uniform in `+-1/sqrt(fan_in)`).
fn build_mlp(
    widths: &[usize],
    activation: Activation,
    ortho: bool,
    last_gain: f64,
    device: &Device,
    rng: &mut Rng,
) -> Mlp {
    let n = widths.len() - 1;
    let layers = (0..n)
        .map(|i| {
            let (fan_in, fan_out) = (widths[i], widths[i + 1]);
            let mut layer = LinearConfig::new(fan_in, fan_out).with_initializer(Initializer::Zeros).init(device);
            let (w, b) = if ortho {
                let gain = if i + 1 < n { std::f64::consts::SQRT_2 } else { last_gain };
                (orthogonal_host(fan_in, fan_out, gain, rng), vec![0.0f32; fan_out])
            } else {
                let k = 1.0 / (fan_in as f64).sqrt();
                let mut u = |len: usize| -> Vec<f32> {
                    (0..len).map(|_| (rng.random::<f64>() * 2.0 - 1.0) * k).map(|x| x as f32).collect()
                };
                (u(fan_in * fan_out), u(fan_out))
            };
            let w = Tensor::<2>::from_data(TensorData::new(w, [fan_in, fan_out]), device).require_grad();
            let b = Tensor::<1>::from_data(TensorData::new(b, [fan_out]), device).require_grad();
            layer.weight = Param::from_tensor(w);
            layer.bias = Some(Param::from_tensor(b));
            layer
        })
        .collect();
    Mlp { layers, activation }
}

impl ActorCritic {
    /// A fresh network for `obs_dim` inputs on `device` (an autodiff device to train it), its
    /// parameters drawn from `rng`.
    pub fn new(obs_dim: usize, kind: &ActionKind, config: &PolicyConfig, device: &Device, rng: &mut Rng) -> Self {
        let continuous = !kind.is_discrete();
        let n_actions = kind.n_outputs();
        let sds = continuous && config.state_dependent_std;
        let pi_out = if sds { 2 * n_actions } else { n_actions };
        let arch = &config.net_arch;
        let ortho = config.ortho_init;
        let (trunk, pi, vf) = if config.shared_trunk {
            let mut widths = vec![obs_dim];
            widths.extend_from_slice(arch);
            let last = *arch.last().expect("validated: a shared trunk has hidden layers");
            // The trunk's layers are all hidden layers: sqrt(2) throughout.
            let trunk = build_mlp(&widths, config.activation, ortho, std::f64::consts::SQRT_2, device, rng);
            let pi = build_mlp(&[last, pi_out], config.activation, ortho, 0.01, device, rng);
            let vf = build_mlp(&[last, 1], config.activation, ortho, 1.0, device, rng);
            (Some(trunk), pi, vf)
        } else {
            let widths = |out: usize| {
                let mut w = vec![obs_dim];
                w.extend_from_slice(arch);
                w.push(out);
                w
            };
            let pi = build_mlp(&widths(pi_out), config.activation, ortho, 0.01, device, rng);
            let vf = build_mlp(&widths(1), config.activation, ortho, 1.0, device, rng);
            (None, pi, vf)
        };
        let log_std = (continuous && !sds).then(|| {
            Param::from_tensor(Tensor::<1>::full([n_actions], config.log_std_init as f32, device).require_grad())
        });
        ActorCritic {
            trunk,
            pi,
            vf,
            log_std,
            activation: config.activation,
            n_actions,
            continuous,
            state_dependent_std: sds,
        }
    }

    /// The distribution parameters and the values (`[batch]`) for `obs` (`[batch, obs_dim]`).
    pub fn forward(&self, obs: Tensor<2>) -> (DistParams, Tensor<1>) {
        let batch = obs.dims()[0];
        let (h_pi, h_vf) = match &self.trunk {
            Some(trunk) => {
                let h = self.activation.forward(trunk.forward(obs));
                (h.clone(), h)
            }
            None => (obs.clone(), obs),
        };
        let out = self.pi.forward(h_pi);
        let value = self.vf.forward(h_vf).reshape([batch]);
        let dist = if !self.continuous {
            DistParams::Categorical { logits: out }
        } else if self.state_dependent_std {
            let n = self.n_actions;
            let mean = out.clone().slice([0..batch, 0..n]);
            let log_std = out.slice([0..batch, n..2 * n]).clamp(LOG_STD_MIN, LOG_STD_MAX);
            DistParams::Gaussian { mean, log_std }
        } else {
            let log_std = self.log_std.as_ref().expect("a state-independent Gaussian has a log-std").val();
            let log_std = log_std.reshape([1, self.n_actions]).repeat_dim(0, batch);
            DistParams::Gaussian { mean: out, log_std }
        };
        (dist, value)
    }

    /// Whether the policy is a Gaussian.
    pub fn is_continuous(&self) -> bool {
        self.continuous
    }

    /// Whether a Gaussian's log-std is an output of the policy network.
    pub fn state_dependent_std(&self) -> bool {
        self.state_dependent_std
    }

    /// Actions (discrete) or action dimensions (continuous).
    pub fn n_actions(&self) -> usize {
        self.n_actions
    }

    /// An actor-critic of separate networks `pi` and `vf` and, for a Gaussian policy, the
    /// state-independent `log_std` (one value per action dimension) on `device`; without `log_std`
    /// the policy is categorical over `pi`'s outputs. (The fused path's parameters as a module.)
    pub fn from_networks(pi: Mlp, vf: Mlp, log_std: Option<&[f32]>, device: &Device) -> Self {
        let activation = pi.activation;
        let n_actions = match log_std {
            Some(v) => v.len(),
            None => pi.layers.last().map_or(0, |l| l.weight.lazy_shape().dims::<2>()[1]),
        };
        let continuous = log_std.is_some();
        let log_std = log_std.map(|v| {
            Param::from_tensor(Tensor::<1>::from_data(TensorData::new(v.to_vec(), [v.len()]), device).require_grad())
        });
        ActorCritic { trunk: None, pi, vf, log_std, activation, n_actions, continuous, state_dependent_std: false }
    }

    /// The device the parameters are on.
    pub fn device(&self) -> Device {
        self.pi.layers[0].weight.device()
    }

    /// Values only (`[batch]`).
    pub fn value(&self, obs: Tensor<2>) -> Tensor<1> {
        self.forward(obs).1
    }

    /// Act on a batch of observations (`[n, obs_dim]` row-major) on the host: for each row, the raw
    /// action (`action_dim` scalars: the index as `f32`, or the unclipped Gaussian sample), its
    /// log-probability, and the value. `deterministic`: the most likely action (argmax / mean).
    pub fn act(&self, obs: &[f32], obs_dim: usize, rng: &mut Rng, deterministic: bool, device: &Device) -> Acted {
        let n = obs.len() / obs_dim;
        let x = Tensor::<2>::from_data(TensorData::new(obs.to_vec(), [n, obs_dim]), device);
        let (dist, value) = self.forward(x);
        let values = to_vec(value);
        match dist {
            DistParams::Categorical { logits } => {
                let k = self.n_actions;
                let logits = to_vec(logits);
                let mut actions = Vec::with_capacity(n);
                let mut log_probs = Vec::with_capacity(n);
                for row in logits.chunks_exact(k) {
                    let lp = log_softmax_host(row);
                    let a = if deterministic { argmax(row) } else { sample_categorical(&lp, rng) };
                    actions.push(a as f32);
                    log_probs.push(lp[a]);
                }
                Acted { actions, log_probs, values }
            }
            DistParams::Gaussian { mean, log_std } => {
                let d = self.n_actions;
                let mean = to_vec(mean);
                let log_std = to_vec(log_std);
                let mut actions = Vec::with_capacity(n * d);
                let mut log_probs = Vec::with_capacity(n);
                for (mu, ls) in mean.chunks_exact(d).zip(log_std.chunks_exact(d)) {
                    let mut lp = 0.0f32;
                    for j in 0..d {
                        let z = if deterministic { 0.0 } else { standard_normal(rng) };
                        actions.push(mu[j] + ls[j].exp() * z);
                        lp += -0.5 * z * z - ls[j] - HALF_LN_2PI;
                    }
                    log_probs.push(lp);
                }
                Acted { actions, log_probs, values }
            }
        }
    }
}

/// A policy that acts on a whole env batch at once: the burn [`ActorCritic`] ([`BurnActor`]) or
/// the fused one ([`crate::fused_policy::FusedActorCritic`]). `out`'s buffers are reused from call
/// to call.
pub trait BatchActor {
    /// Act on the observations `obs` (`[n, obs_dim]`): raw actions, their log-probabilities and the
    /// values, sampled from `rng` (the most likely actions when `deterministic`).
    fn act_into(&mut self, obs: &[f32], rng: &mut Rng, deterministic: bool, out: &mut Acted);
}

/// A no-autodiff [`ActorCritic`] on its device, acting through [`ActorCritic::act`].
pub struct BurnActor<'a> {
    /// The network (a `.valid()` copy).
    pub model: &'a ActorCritic,
    /// Its device.
    pub device: &'a Device,
    /// Scalars per observation.
    pub obs_dim: usize,
}

impl BatchActor for BurnActor<'_> {
    fn act_into(&mut self, obs: &[f32], rng: &mut Rng, deterministic: bool, out: &mut Acted) {
        *out = self.model.act(obs, self.obs_dim, rng, deterministic, self.device);
    }
}

impl BatchActor for crate::fused_policy::FusedActorCritic {
    fn act_into(&mut self, obs: &[f32], rng: &mut Rng, deterministic: bool, out: &mut Acted) {
        crate::fused_policy::FusedActorCritic::act_into(self, obs, rng, deterministic, out)
    }
}

/// What [`ActorCritic::act`] returns for a batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Acted {
    /// Raw actions, `n * action_dim`.
    pub actions: Vec<f32>,
    /// Log-probabilities of those actions, `n`.
    pub log_probs: Vec<f32>,
    /// `V(s)`, `n`.
    pub values: Vec<f32>,
}

// ---------------------------------------------------------------------------------------------
// Distributions (differentiable side)
// ---------------------------------------------------------------------------------------------

/// The parameters of a batch of action distributions.
#[allow(clippy::large_enum_variant)] // two tensors vs one; built once per forward pass
#[derive(Debug, Clone)]
pub enum DistParams {
    /// Categorical over `logits` (`[batch, n]`).
    Categorical {
        /// Unnormalised log-probabilities.
        logits: Tensor<2>,
    },
    /// Diagonal Gaussian, both `[batch, dim]`.
    Gaussian {
        /// Means.
        mean: Tensor<2>,
        /// Log standard deviations.
        log_std: Tensor<2>,
    },
}

impl DistParams {
    /// `log pi(a | s)` (`[batch]`) of raw actions `actions` (`[batch * action_dim]`, as stored).
    pub fn log_prob(&self, actions: &[f32]) -> Tensor<1> {
        match self {
            DistParams::Categorical { logits } => {
                let [b, _] = logits.dims();
                let device = logits.device();
                let idx: Vec<i64> = actions.iter().map(|&a| a as i64).collect();
                let idx = Tensor::<2, Int>::from_data(TensorData::new(idx, [b, 1]), &device);
                log_softmax(logits.clone(), 1).gather(1, idx).reshape([b])
            }
            DistParams::Gaussian { mean, log_std } => {
                let [b, d] = mean.dims();
                let a = Tensor::<2>::from_data(TensorData::new(actions.to_vec(), [b, d]), &mean.device());
                let z = (a - mean.clone()) * log_std.clone().neg().exp();
                let per_dim = z.square().mul_scalar(-0.5) - log_std.clone() - HALF_LN_2PI;
                per_dim.sum_dim(1).reshape([b])
            }
        }
    }

    /// Entropy of each distribution (`[batch]`).
    pub fn entropy(&self) -> Tensor<1> {
        match self {
            DistParams::Categorical { logits } => {
                let [b, _] = logits.dims();
                let lp = log_softmax(logits.clone(), 1);
                (lp.clone().exp() * lp).sum_dim(1).neg().reshape([b])
            }
            DistParams::Gaussian { log_std, .. } => {
                let [b, _] = log_std.dims();
                log_std.clone().add_scalar(0.5 + HALF_LN_2PI).sum_dim(1).reshape([b])
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Host-side helpers
// ---------------------------------------------------------------------------------------------

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().expect("f32 tensor")
}

/// Numerically stable `log softmax` of one row.
pub fn log_softmax_host(row: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; row.len()];
    log_softmax_into(row, &mut out);
    out
}

/// `out = log_softmax(row)`, numerically stable, without allocating.
pub fn log_softmax_into(row: &[f32], out: &mut [f32]) {
    let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let lse = max + row.iter().map(|&x| (x - max).exp()).sum::<f32>().ln();
    out.iter_mut().zip(row).for_each(|(o, &x)| *o = x - lse);
}

/// Inverse-CDF draw from a categorical given its log-probabilities (one uniform per draw).
pub fn sample_categorical(log_probs: &[f32], rng: &mut Rng) -> usize {
    let u: f64 = rng.random::<f64>();
    let mut acc = 0.0f64;
    for (i, &lp) in log_probs.iter().enumerate() {
        acc += (lp as f64).exp();
        if u < acc {
            return i;
        }
    }
    log_probs.len() - 1
}

/// Standard normal by Box-Muller (two uniforms per draw; the second variate is not cached, so a
/// checkpoint of the RNG position alone captures the sampler's state).
pub fn standard_normal(rng: &mut Rng) -> f32 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// Index of the largest value (ties to the lowest index).
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

// Keep `burn` (used by the Module derive) referenced.
#[allow(unused_imports)]
use burn as _;

#[cfg(test)]
mod tests {
    use super::*;
    use rlox_core::seeding::rng_from_seed;
    use rlox_core::spaces::{BoxSpace, Discrete};

    fn device() -> Device {
        rlox_nn::train_device(rlox_nn::DeviceKind::Cpu, 1).unwrap()
    }

    #[test]
    fn action_kinds_from_spaces_and_errors() {
        let k = ActionKind::from_space(&Discrete::new(3).into(), "ppo", "X").unwrap();
        assert_eq!((k.action_dim(), k.n_outputs()), (1, 3));
        let k = ActionKind::from_space(&BoxSpace::uniform(-2.0, 2.0, 1).into(), "ppo", "P").unwrap();
        assert_eq!((k.action_dim(), k.is_discrete()), (1, false));
        assert_eq!(<Vec<f32>>::from_policy(&k, &[3.5]), vec![2.0]);
        assert_eq!(<Vec<f32>>::from_policy(&k, &[-0.5]), vec![-0.5]);
    }

    #[test]
    fn categorical_log_prob_and_entropy_match_the_host() {
        let d = device();
        let kind = ActionKind::Discrete(3);
        let ac = ActorCritic::new(
            4,
            &kind,
            &PolicyConfig { ortho_init: false, ..Default::default() },
            &d,
            &mut rng_from_seed(0),
        );
        let obs: Vec<f32> = (0..8).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut rng = rng_from_seed(3);
        let acted = ac.act(&obs, 4, &mut rng, false, &d);
        let x = Tensor::<2>::from_data(TensorData::new(obs.clone(), [2, 4]), &d);
        let (dist, v) = ac.forward(x);
        let lp = to_vec(dist.log_prob(&acted.actions));
        for (a, b) in lp.iter().zip(&acted.log_probs) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        assert_eq!(to_vec(v), acted.values);
        let DistParams::Categorical { logits } = &dist else { panic!() };
        let logits = to_vec(logits.clone());
        let ent = to_vec(dist.entropy());
        for (row, e) in logits.chunks(3).zip(&ent) {
            let lp = log_softmax_host(row);
            let want: f32 = -lp.iter().map(|l| l.exp() * l).sum::<f32>();
            assert!((want - e).abs() < 1e-5);
        }
    }

    #[test]
    fn gaussian_log_prob_entropy_and_sampling() {
        let d = device();
        let kind = ActionKind::Continuous { low: vec![-2.0, -1.0], high: vec![2.0, 1.0] };
        for sds in [false, true] {
            let config = PolicyConfig { state_dependent_std: sds, log_std_init: -0.5, ..Default::default() };
            let ac = ActorCritic::new(3, &kind, &config, &d, &mut rng_from_seed(0));
            let obs = vec![0.1f32, -0.2, 0.3, 1.0, 0.5, -0.7];
            let acted = ac.act(&obs, 3, &mut rng_from_seed(9), false, &d);
            assert_eq!(acted.actions.len(), 4);
            let x = Tensor::<2>::from_data(TensorData::new(obs.clone(), [2, 3]), &d);
            let (dist, _) = ac.forward(x);
            let lp = to_vec(dist.log_prob(&acted.actions));
            for (a, b) in lp.iter().zip(&acted.log_probs) {
                assert!((a - b).abs() < 1e-4, "{a} vs {b}");
            }
            if !sds {
                // Entropy of N(mu, e^-0.5) per dim: 0.5 + 0.5 ln(2 pi) - 0.5; two dims.
                let want = 2.0 * (0.5 + HALF_LN_2PI - 0.5);
                assert!(to_vec(dist.entropy()).iter().all(|e| (e - want).abs() < 1e-5));
            }
            // Deterministic: the mean, same call twice gives the same numbers.
            let a = ac.act(&obs, 3, &mut rng_from_seed(1), true, &d);
            let b = ac.act(&obs, 3, &mut rng_from_seed(2), true, &d);
            assert_eq!(a, b);
        }
    }

    #[test]
    fn host_orthogonal_init_is_orthogonal_with_the_gain() {
        let mut rng = rng_from_seed(4);
        for (fan_in, fan_out) in [(4, 64), (64, 64), (64, 2)] {
            let w = orthogonal_host(fan_in, fan_out, 2.0, &mut rng); // [in, out]
                                                                     // The smaller dimension's vectors are orthogonal with norm 2.
            let (outer, inner) = if fan_out <= fan_in { (fan_out, fan_in) } else { (fan_in, fan_out) };
            let get = |a: usize, k: usize| if fan_out <= fan_in { w[k * fan_out + a] } else { w[a * fan_out + k] };
            for a in 0..outer {
                for b in 0..outer {
                    let dot: f32 = (0..inner).map(|k| get(a, k) * get(b, k)).sum();
                    let want = if a == b { 4.0 } else { 0.0 };
                    assert!((dot - want).abs() < 1e-4, "{fan_in}x{fan_out}: {dot}");
                }
            }
        }
        // Same seed, same weights: initialisation does not depend on burn's generator.
        let d = device();
        let kind = ActionKind::Discrete(2);
        let a = ActorCritic::new(4, &kind, &PolicyConfig::default(), &d, &mut rng_from_seed(9));
        d.seed(12345);
        let b = ActorCritic::new(4, &kind, &PolicyConfig::default(), &d, &mut rng_from_seed(9));
        let bytes = |m: &ActorCritic| rlox_nn::to_safetensors_bytes(m, &Default::default()).unwrap();
        assert_eq!(bytes(&a), bytes(&b));
    }

    #[test]
    fn sampling_is_seeded_and_matches_the_probabilities() {
        let lp = log_softmax_host(&[0.0, 1.0, 2.0]);
        let mut rng = rng_from_seed(5);
        let mut counts = [0usize; 3];
        let n = 20_000;
        for _ in 0..n {
            counts[sample_categorical(&lp, &mut rng)] += 1;
        }
        // Standard error of a frequency near 0.67 with n = 20000 is ~0.0033; allow 5 sigma.
        for (c, l) in counts.iter().zip(&lp) {
            assert!((*c as f64 / n as f64 - (*l as f64).exp()).abs() < 0.017, "{counts:?}");
        }
        let mut r1 = rng_from_seed(7);
        let mut r2 = rng_from_seed(7);
        let xs: Vec<f32> = (0..5).map(|_| standard_normal(&mut r1)).collect();
        let ys: Vec<f32> = (0..5).map(|_| standard_normal(&mut r2)).collect();
        assert_eq!(xs, ys);
        let mut r = rng_from_seed(11);
        let zs: Vec<f64> = (0..20_000).map(|_| standard_normal(&mut r) as f64).collect();
        let mean = zs.iter().sum::<f64>() / zs.len() as f64;
        let var = zs.iter().map(|z| (z - mean) * (z - mean)).sum::<f64>() / zs.len() as f64;
        // SE of the mean 0.007, of the variance 0.01: 5 sigma.
        assert!(mean.abs() < 0.035 && (var - 1.0).abs() < 0.05, "{mean} {var}");
    }

    #[test]
    fn every_parameter_gets_a_gradient() {
        let d = device();
        for (kind, shared, sds) in [
            (ActionKind::Discrete(2), false, false),
            (ActionKind::Discrete(3), true, false),
            (ActionKind::Continuous { low: vec![-1.0], high: vec![1.0] }, false, false),
            (ActionKind::Continuous { low: vec![-1.0; 2], high: vec![1.0; 2] }, true, true),
        ] {
            let config = PolicyConfig { shared_trunk: shared, state_dependent_std: sds, ..Default::default() };
            let ac = ActorCritic::new(4, &kind, &config, &d, &mut rng_from_seed(0));
            let x = Tensor::<2>::random([16, 4], burn::tensor::Distribution::Normal(0.0, 1.0), &d);
            let (dist, v) = ac.forward(x);
            let actions: Vec<f32> = (0..16 * kind.action_dim()).map(|i| (i % 2) as f32 * 0.5).collect();
            let loss = dist.log_prob(&actions).mean() + dist.entropy().mean() + v.square().mean();
            rlox_nn::testing::assert_all_params_get_grad(&ac, &loss);
        }
    }
}
