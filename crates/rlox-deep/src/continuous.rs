//! Networks for continuous control: the actors and critics of DDPG, TD3 and SAC, and the mapping
//! between a `Box` action space and the `[-1, 1]` range the networks work in.
//!
//! As in Stable-Baselines3, every network works in the *scaled* action space `[-1, 1]^d`: actors
//! end in `tanh`, the replay buffer stores scaled actions, and [`ActionScale::to_env`] maps an action
//! to the env's bounds `low + (a + 1) / 2 * (high - low)` only when it is sent to the env.
//!
//! * [`DeterministicActor`]: `mu(s) = tanh(MLP(s))` (DDPG, TD3).
//! * [`GaussianActor`]: SAC's squashed Gaussian, `a = tanh(u)`, `u ~ N(mean(s), exp(log_std(s))^2)`,
//!   with a state-dependent `log_std` clamped to `[-20, 2]` (SB3's `LOG_STD_MIN/MAX`).
//!   [`GaussianActor::sample`] takes the standard-normal noise as an input tensor, drawn by the
//!   caller from a seeded ChaCha stream ([`standard_normal`]), so runs repeat and tests can fix it.
//! * [`Critics`]: one or more `Q(s, a) = MLP([s, a])` (one for DDPG, two for TD3/SAC's clipped double Q).

use rand_distr::{Distribution, StandardNormal};
use rlox_core::seeding::Rng;
use rlox_core::spaces::Space;
use rlox_core::{Error, Result};
use rlox_nn::burn;
use rlox_nn::burn::module::Module;
use rlox_nn::burn::nn::{Linear, LinearConfig};
use rlox_nn::burn::tensor::activation::{softplus, tanh};
use rlox_nn::{Activation, Device, Mlp, MlpConfig, Tensor, TensorData};

/// `log_std` is clamped to this range (SB3's SAC: `LOG_STD_MIN = -20`, `LOG_STD_MAX = 2`).
pub const LOG_STD_MIN: f64 = -20.0;
/// See [`LOG_STD_MIN`].
pub const LOG_STD_MAX: f64 = 2.0;

// ---------------------------------------------------------------------------------------------
// Action scaling
// ---------------------------------------------------------------------------------------------

/// The bounds of a `Box` action space, for mapping between `[-1, 1]` and the env's range.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionScale {
    /// Lower bounds.
    pub low: Vec<f32>,
    /// Upper bounds.
    pub high: Vec<f32>,
}

impl ActionScale {
    /// The scale of `space`, or an error naming `algo`, the env and its action space when it is not a
    /// bounded `Box` (a `Discrete` space, or infinite bounds that cannot be squashed into).
    pub fn for_space(algo: &str, env_id: &str, space: &Space) -> Result<Self> {
        let Some(b) = space.as_box() else {
            return Err(Error::invalid(
                "env",
                format!("{algo} needs a continuous (Box) action space; {env_id} has {space}. Use dqn, ppo or a2c for discrete actions"),
            ));
        };
        if b.low.iter().chain(&b.high).any(|x| !x.is_finite()) || b.low.iter().zip(&b.high).any(|(l, h)| l >= h) {
            return Err(Error::invalid(
                "env",
                format!("{algo} squashes actions into the action space's bounds; {env_id} has {space}, which is unbounded or empty"),
            ));
        }
        Ok(ActionScale { low: b.low.clone(), high: b.high.clone() })
    }

    /// The scale for a box with these (finite, ordered) bounds.
    pub fn new(low: Vec<f32>, high: Vec<f32>) -> Self {
        ActionScale { low, high }
    }

    /// Action dimension.
    pub fn dim(&self) -> usize {
        self.low.len()
    }

    /// `[-1, 1]` to the env's bounds.
    pub fn to_env(&self, scaled: &[f32]) -> Vec<f32> {
        scaled.iter().zip(self.low.iter().zip(&self.high)).map(|(a, (l, h))| l + 0.5 * (a + 1.0) * (h - l)).collect()
    }

    /// The env's bounds to `[-1, 1]`.
    pub fn from_env(&self, action: &[f32]) -> Vec<f32> {
        action.iter().zip(self.low.iter().zip(&self.high)).map(|(a, (l, h))| 2.0 * (a - l) / (h - l) - 1.0).collect()
    }
}

/// `n` standard-normal draws from `rng` (the noise of SAC's reparameterised sample, TD3's target
/// smoothing and Gaussian exploration: never burn's generator, so that runs repeat and resume).
pub fn standard_normal(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| StandardNormal.sample(rng)).collect()
}

// ---------------------------------------------------------------------------------------------
// Actors
// ---------------------------------------------------------------------------------------------

/// DDPG/TD3's deterministic policy `mu(s) = tanh(MLP(s))` in `[-1, 1]^d`.
#[derive(Module, Debug)]
pub struct DeterministicActor {
    /// `obs -> hidden -> action` (no activation after the last layer; `tanh` is applied in `forward`).
    pub net: Mlp,
}

impl DeterministicActor {
    /// An actor for `obs_dim` inputs and `act_dim` outputs; hidden layers `hidden` with `activation`.
    pub fn new(obs_dim: usize, act_dim: usize, hidden: &[usize], activation: Activation, device: &Device) -> Self {
        DeterministicActor { net: MlpConfig::new(obs_dim, hidden, act_dim).with_activation(activation).init(device) }
    }

    /// `[batch, obs_dim]` to actions `[batch, act_dim]` in `[-1, 1]`.
    pub fn forward(&self, obs: Tensor<2>) -> Tensor<2> {
        tanh(self.net.forward(obs))
    }
}

/// SAC's squashed Gaussian policy with a state-dependent standard deviation.
#[derive(Module, Debug)]
pub struct GaussianActor {
    /// The shared body `obs -> hidden` (the activation is applied after its last layer too).
    pub latent: Mlp,
    /// Mean head.
    pub mu: Linear,
    /// Log standard deviation head (clamped to `[LOG_STD_MIN, LOG_STD_MAX]`).
    pub log_std: Linear,
    #[module(skip)]
    activation: Activation,
}

impl GaussianActor {
    /// An actor with hidden layers `hidden` (at least one).
    pub fn new(obs_dim: usize, act_dim: usize, hidden: &[usize], activation: Activation, device: &Device) -> Self {
        let (last, body) = hidden.split_last().expect("the Gaussian actor needs at least one hidden layer");
        GaussianActor {
            latent: MlpConfig::new(obs_dim, body, *last).with_activation(activation).init(device),
            mu: LinearConfig::new(*last, act_dim).init(device),
            log_std: LinearConfig::new(*last, act_dim).init(device),
            activation,
        }
    }

    /// An actor made of its parts (the fused path's parameters as a module).
    pub fn from_parts(latent: Mlp, mu: Linear, log_std: Linear, activation: Activation) -> Self {
        GaussianActor { latent, mu, log_std, activation }
    }

    /// The hidden activation.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// Mean and clamped log standard deviation of the pre-squash Gaussian, each `[batch, act_dim]`.
    pub fn forward(&self, obs: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let h = self.activation.forward(self.latent.forward(obs));
        (self.mu.forward(h.clone()), self.log_std.forward(h).clamp(LOG_STD_MIN, LOG_STD_MAX))
    }

    /// The deterministic action `tanh(mean(s))` (evaluation).
    pub fn mode(&self, obs: Tensor<2>) -> Tensor<2> {
        tanh(self.forward(obs).0)
    }

    /// A reparameterised sample `a = tanh(mean + std * eps)` for the given standard-normal `eps`
    /// (`[batch, act_dim]`) and its log-density `[batch, 1]` (see [`squashed_log_prob`]).
    pub fn sample(&self, obs: Tensor<2>, eps: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let (mean, log_std) = self.forward(obs);
        let u = mean + log_std.clone().exp() * eps.clone();
        let log_prob = squashed_log_prob(u.clone(), log_std, eps);
        (tanh(u), log_prob)
    }
}

impl GaussianActor {
    /// The latent features `h(s)` the heads read (after the activation), `[batch, hidden]`.
    pub fn features(&self, obs: Tensor<2>) -> Tensor<2> {
        self.activation.forward(self.latent.forward(obs))
    }

    /// The gSDE mean `clamp(mu(h), -clip, clip)` (SB3 limits the mean with a hard tanh when gSDE is on).
    pub fn sde_mean(&self, h: Tensor<2>, clip: f64) -> Tensor<2> {
        self.mu.forward(h).clamp(-clip, clip)
    }
}

/// gSDE (generalized state-dependent exploration, Raffin et al. 2022) for SAC, as SB3 does it with
/// `full_std` and learned features: the pre-squash action is `u = mean(s) + h(s) theta`, where `h(s)`
/// are the actor's latent features and `theta` (`[hidden, act_dim]`) is drawn from
/// `N(0, exp(log_std)^2)` element-wise. Rollouts keep one `theta` for `train_freq` steps, so the
/// exploration is smooth in time (what MountainCarContinuous needs); each gradient step draws a new
/// one. Given `s`, `u` is Gaussian with variance `(h(s)^2) (exp(log_std)^2)` per action dimension.
#[derive(Module, Debug)]
pub struct SdeNoise {
    /// Log standard deviation of each exploration weight, `[hidden, act_dim]`.
    pub log_std: burn::module::Param<Tensor<2>>,
}

impl SdeNoise {
    /// All log standard deviations at `log_std_init` (SB3's `log_std_init`).
    pub fn new(hidden: usize, act_dim: usize, log_std_init: f64, device: &Device) -> Self {
        SdeNoise { log_std: burn::module::Param::from_tensor(Tensor::full([hidden, act_dim], log_std_init, device)) }
    }

    /// An exploration matrix `theta = exp(log_std) * eps` for standard-normal `eps` (`[hidden, act_dim]`),
    /// differentiable in `log_std` (the reparameterisation SB3's `rsample` makes).
    pub fn theta(&self, eps: Tensor<2>) -> Tensor<2> {
        self.log_std.val().exp() * eps
    }

    /// A squashed action `tanh(mean + h theta)` and its log-density (`[batch, 1]`) under
    /// `N(mean, (h^2) (exp(log_std)^2) + 1e-6)` with the tanh correction.
    pub fn sample(&self, h: Tensor<2>, mean: Tensor<2>, theta: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let noise = h.clone().matmul(theta);
        let variance = h.square().matmul(self.log_std.val().mul_scalar(2.0).exp());
        let std = variance.add_scalar(1e-6).sqrt();
        let u = mean + noise.clone();
        // Given s, u = mean + std * z with z = noise / std standard normal: the density of the plain
        // squashed Gaussian with log std = ln(std).
        let z = noise / std.clone();
        let log_prob = squashed_log_prob(u.clone(), std.log(), z);
        (tanh(u), log_prob)
    }
}

/// `log pi(a|s)` of `a = tanh(u)`, `u = mean + std * eps`, summed over action dimensions: the Gaussian
/// log-density `-eps^2/2 - log std - log(2 pi)/2` minus the change-of-variables term
/// `log(1 - tanh(u)^2)`, computed as `2 (log 2 - u - softplus(-2u))`, which is exact and stays finite
/// where `tanh(u)` rounds to ±1 (SB3 adds `1e-6` inside the log instead).
pub fn squashed_log_prob(u: Tensor<2>, log_std: Tensor<2>, eps: Tensor<2>) -> Tensor<2> {
    let half_log_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
    let gaussian = (eps.square().mul_scalar(-0.5) - log_std).sub_scalar(half_log_2pi);
    let log_det = (softplus(u.clone().mul_scalar(-2.0), 1.0) + u).mul_scalar(-2.0).add_scalar(2.0 * 2f64.ln());
    (gaussian - log_det).sum_dim(1)
}

// ---------------------------------------------------------------------------------------------
// Critics
// ---------------------------------------------------------------------------------------------

/// `Q(s, a) = MLP([s, a])`, a scalar per row.
#[derive(Module, Debug)]
pub struct QCritic {
    /// `obs_dim + act_dim -> hidden -> 1`.
    pub net: Mlp,
}

impl QCritic {
    /// `[batch, obs_dim]` and `[batch, act_dim]` to `[batch, 1]`.
    pub fn forward(&self, obs: Tensor<2>, action: Tensor<2>) -> Tensor<2> {
        self.net.forward(Tensor::cat(vec![obs, action], 1))
    }
}

/// `n` independent Q-networks trained on the same targets: one for DDPG, two ("twin") for TD3 and
/// SAC, whose targets take the minimum to fight over-estimation (Fujimoto et al. 2018).
#[derive(Module, Debug)]
pub struct Critics {
    /// The Q-networks.
    pub nets: Vec<QCritic>,
}

impl Critics {
    /// `n` critics for `obs_dim` observations and `act_dim` actions.
    pub fn new(
        n: usize,
        obs_dim: usize,
        act_dim: usize,
        hidden: &[usize],
        activation: Activation,
        device: &Device,
    ) -> Self {
        let nets = (0..n)
            .map(|_| QCritic {
                net: MlpConfig::new(obs_dim + act_dim, hidden, 1).with_activation(activation).init(device),
            })
            .collect();
        Critics { nets }
    }

    /// Every critic's `Q(s, a)`, each `[batch, 1]`.
    pub fn forward(&self, obs: Tensor<2>, action: Tensor<2>) -> Vec<Tensor<2>> {
        self.nets.iter().map(|q| q.forward(obs.clone(), action.clone())).collect()
    }

    /// The element-wise minimum over the critics (`[batch, 1]`).
    pub fn min(&self, obs: Tensor<2>, action: Tensor<2>) -> Tensor<2> {
        let mut qs = self.forward(obs, action).into_iter();
        let first = qs.next().expect("at least one critic");
        qs.fold(first, |m, q| m.min_pair(q))
    }
}

/// A `[rows, cols]` tensor from row-major values.
pub fn matrix(values: Vec<f32>, rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    Tensor::<2>::from_data(TensorData::new(values, [rows, cols]), device)
}

/// A tensor's values as `f32`.
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().expect("f32 tensor")
}

// Make `burn` (used by the Module derive) count as used even if the derive changes.
#[allow(unused_imports)]
use burn as _;

#[cfg(test)]
mod tests {
    use super::*;
    use rlox_core::seeding::rng_from_seed;
    use rlox_core::spaces::{BoxSpace, Discrete};
    use rlox_nn::{train_device, DeviceKind};

    #[test]
    fn every_actor_and_critic_parameter_gets_a_gradient() {
        let device = train_device(DeviceKind::Cpu, 5).unwrap();
        let obs = Tensor::<2>::random([16, 3], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let act = Tensor::<2>::random([16, 2], burn::tensor::Distribution::Uniform(-1.0, 1.0), &device);

        let actor = DeterministicActor::new(3, 2, &[16, 16], Activation::Relu, &device);
        rlox_nn::testing::assert_all_params_get_grad(&actor, &actor.forward(obs.clone()).square().mean());

        let gaussian = GaussianActor::new(3, 2, &[16, 16], Activation::Relu, &device);
        // gSDE: the exploration weights' log std gets a gradient through the sample and its density.
        let sde = SdeNoise::new(16, 2, -1.0, &device);
        let h = gaussian.features(obs.clone());
        let theta = sde.theta(matrix(standard_normal(&mut rng_from_seed(3), 32), 16, 2, &device));
        let (a, log_prob) = sde.sample(h.clone(), gaussian.sde_mean(h, 2.0), theta);
        rlox_nn::testing::assert_all_params_get_grad(&sde, &(a.sum() + log_prob.sum()));
        let eps = matrix(standard_normal(&mut rng_from_seed(1), 32), 16, 2, &device);
        let (a, log_prob) = gaussian.sample(obs.clone(), eps);
        rlox_nn::testing::assert_all_params_get_grad(&gaussian, &(a.sum() + log_prob.sum()));

        let critics = Critics::new(2, 3, 2, &[16, 16], Activation::Relu, &device);
        let loss =
            critics.forward(obs.clone(), act).into_iter().map(|q| q.square().mean()).reduce(|a, b| a + b).unwrap();
        rlox_nn::testing::assert_all_params_get_grad(&critics, &loss);

        // The actor losses of DDPG/TD3 and SAC reach the actor's parameters through the critic.
        let loss = critics.nets[0].forward(obs.clone(), actor.forward(obs.clone())).mean().neg();
        rlox_nn::testing::assert_all_params_get_grad(&actor, &loss);
        let eps = matrix(standard_normal(&mut rng_from_seed(2), 32), 16, 2, &device);
        let (a, log_prob) = gaussian.sample(obs.clone(), eps);
        let loss = (log_prob.mul_scalar(0.2) - critics.min(obs, a)).mean();
        rlox_nn::testing::assert_all_params_get_grad(&gaussian, &loss);
    }

    /// The squashed log-density against the change of variables done directly in f64:
    /// `log N(u; m, s) - sum log(1 - tanh(u)^2)`, including |u| large enough that f32's `tanh` is ±1.
    #[test]
    fn tanh_gaussian_log_prob_matches_change_of_variables_in_f64() {
        let device = rlox_nn::cpu_device().unwrap();
        let means = [0.3f64, -1.2, 2.5, 0.0, -6.0, 9.0];
        let log_stds = [-0.5f64, 0.1, -2.0, 1.5, 0.0, -1.0];
        let eps = [0.7f64, -1.3, 0.2, 2.1, -0.9, 0.4];
        let u: Vec<f64> = (0..6).map(|i| means[i] + log_stds[i].exp() * eps[i]).collect();
        let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let got = values(squashed_log_prob(
            matrix(f(&u), 3, 2, &device),
            matrix(f(&log_stds), 3, 2, &device),
            matrix(f(&eps), 3, 2, &device),
        ));
        for (row, &got_row) in got.iter().enumerate().take(3) {
            let mut want = 0.0;
            for j in 2 * row..2 * row + 2 {
                let std = log_stds[j].exp();
                let z = (u[j] - means[j]) / std;
                let normal = -0.5 * z * z - std.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln();
                // 1 - tanh(u)^2 = sech(u)^2 = 4 / (e^u + e^-u)^2, exact in f64 for these |u|.
                let sech2 = 4.0 / (u[j].exp() + (-u[j]).exp()).powi(2);
                want += normal - sech2.ln();
            }
            let tol = 1e-4 * (1.0 + f64::abs(want));
            assert!((got_row as f64 - want).abs() < tol, "row {row}: {got_row} vs {want}");
        }
    }

    /// The gSDE density against a direct f64 computation for one state: `u = m + h theta`,
    /// `var_j = sum_i h_i^2 exp(2 log_std_ij)`, `log N(u; m, var + 1e-6) - log(1 - tanh(u)^2)`.
    #[test]
    fn sde_log_prob_matches_f64() {
        let device = rlox_nn::cpu_device().unwrap();
        let (hdim, ad) = (3, 2);
        let h = [0.5f64, -1.0, 2.0];
        let mean = [0.2f64, -0.4];
        let log_std = [-1.0f64, 0.5, -0.3, -2.0, 0.1, -0.7];
        let eps = [0.3f64, -1.1, 0.8, 0.5, -0.2, 1.4];
        let sde = SdeNoise {
            log_std: burn::module::Param::from_tensor(matrix(
                log_std.iter().map(|&x| x as f32).collect(),
                hdim,
                ad,
                &device,
            )),
        };
        let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let theta = sde.theta(matrix(f(&eps), hdim, ad, &device));
        let (a, lp) = sde.sample(matrix(f(&h), 1, hdim, &device), matrix(f(&mean), 1, ad, &device), theta);
        let mut want = 0.0;
        let mut want_a = Vec::new();
        for j in 0..ad {
            let noise: f64 = (0..hdim).map(|i| h[i] * log_std[i * ad + j].exp() * eps[i * ad + j]).sum();
            let var: f64 = (0..hdim).map(|i| h[i] * h[i] * (2.0 * log_std[i * ad + j]).exp()).sum::<f64>() + 1e-6;
            let u = mean[j] + noise;
            want_a.push(u.tanh());
            want += -0.5 * noise * noise / var
                - 0.5 * var.ln()
                - 0.5 * (2.0 * std::f64::consts::PI).ln()
                - (1.0 - u.tanh().powi(2)).ln();
        }
        let got = values(lp)[0] as f64;
        assert!((got - want).abs() < 1e-4 * (1.0 + want.abs()), "{got} vs {want}");
        for (g, w) in values(a).iter().zip(&want_a) {
            assert!((*g as f64 - w).abs() < 1e-5, "{g} vs {w}");
        }
    }

    #[test]
    fn log_std_is_clamped_and_actions_are_in_bounds() {
        let device = train_device(DeviceKind::Cpu, 9).unwrap();
        let actor = GaussianActor::new(2, 1, &[8], Activation::Relu, &device);
        let obs = matrix(vec![1e4, -1e4, -1e4, 1e4], 2, 2, &device);
        let (_, log_std) = actor.forward(obs.clone());
        assert!(values(log_std).iter().all(|&x| (LOG_STD_MIN as f32..=LOG_STD_MAX as f32).contains(&x)));
        let eps = matrix(vec![3.0, -3.0], 2, 1, &device);
        let (a, lp) = actor.sample(obs, eps);
        assert!(values(a).iter().all(|x| x.abs() <= 1.0));
        assert!(values(lp).iter().all(|x| x.is_finite()));
    }

    #[test]
    fn action_scale_round_trip_and_bad_spaces() {
        let s = ActionScale::for_space("sac", "Pendulum-v1", &Space::Box(BoxSpace::uniform(-2.0, 2.0, 1))).unwrap();
        assert_eq!(s.to_env(&[-1.0]), vec![-2.0]);
        assert_eq!(s.to_env(&[1.0]), vec![2.0]);
        assert_eq!(s.to_env(&[0.25]), vec![0.5]);
        assert_eq!(s.from_env(&[0.5]), vec![0.25]);
        let e = ActionScale::for_space("td3", "CartPole-v1", &Space::Discrete(Discrete::new(2))).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("td3") && msg.contains("CartPole-v1") && msg.contains("Discrete"), "{msg}");
        let e = ActionScale::for_space("sac", "x", &Space::Box(BoxSpace::uniform(f32::NEG_INFINITY, 1.0, 1)));
        assert!(e.unwrap_err().to_string().contains("unbounded"));
    }
}
