//! Policy gradient and actor-critic methods (book chapters 9 and 10), in their tabular and linear forms.
//!
//! The policy is a softmax over action preferences that are linear in features,
//! `pi(a | s, theta) = exp(h(s, a)) / sum_b exp(h(s, b))` with `h(s, a) = theta . phi(s, a)`, so that
//! `grad_theta ln pi(a | s) = phi(s, a) - sum_b pi(b | s) phi(s, b)` ([`SoftmaxPolicy::grad_log_prob`]).
//! With [`TabularFeatures`] (`phi(s, a)` the indicator of `(s, a)`) `theta` is a table of preferences
//! and the gradient is `1[b = a] - pi(b | s)` in row `s`. [`DenseFeatures`] gives any linear
//! parametrisation (one feature vector per state, copied per action). The critics are linear in the
//! same features: `v(s, w) = w . phi(s)` and `q(s, a, w) = w . phi(s, a)`.
//!
//! The algorithms follow the book's pseudocode line by line:
//!
//! * [`reinforce`] (Algorithm 9.1): play an episode with `pi(theta_k)`, then for `t = 0, ..., T-1`
//!   `theta += alpha_theta q_t grad ln pi(a_t | s_t, theta)` where `q_t` is the discounted return from
//!   `t`. As in the book there is no `gamma^t` factor. With `baseline = true` the update uses
//!   `q_t - v(s_t)` where `v` is a Monte Carlo estimate (`w += alpha_w (q_t - v(s_t)) phi(s_t)`); the
//!   estimate is kept (and reported) without the baseline too, but then it does not touch `theta`.
//! * [`qac`] (Algorithm 10.1): actor `theta += alpha_theta q(s_t, a_t, w) grad ln pi(a_t | s_t)`, critic
//!   Sarsa `w += alpha_w [r + gamma q(s_{t+1}, a_{t+1}, w) - q(s_t, a_t, w)] phi(s_t, a_t)` with
//!   `a_{t+1}` drawn from `pi(theta_t)` before the actor update.
//! * [`a2c`] (Algorithm 10.2): the TD error `delta = r + gamma v(s_{t+1}) - v(s_t)` estimates the
//!   advantage; actor `theta += alpha_theta delta grad ln pi`, critic `w += alpha_w delta phi(s_t)`.
//! * [`off_policy_actor_critic`] (Algorithm 10.3): actions from a behaviour policy `beta`; both
//!   updates of Algorithm 10.2 are weighted by `rho = pi(a_t | s_t, theta_t) / beta(a_t | s_t)`.
//! * [`deterministic_policy_gradient`] (Algorithm 10.4): a deterministic policy needs a continuous
//!   action, which the grid world does not have. It runs on any environment with a real action and
//!   linear features ([`DpgFeatures`]); the crate ships a one-dimensional linear-quadratic toy,
//!   [`ScalarLqr`] (`x' = x + a`, `r = -(x^2 + c a^2)`), whose optimal policy is linear and known in
//!   closed form ([`ScalarLqr::optimal_gain`]) and whose action values are exactly linear in
//!   `(x^2, x a, a^2)` ([`QuadraticFeatures`]). So the test can check the learned gain against the
//!   Riccati solution rather than eyeballing a curve.
//!
//! Episodes end on `terminated` (no bootstrap), or are cut at `max_episode_steps` or on `truncated`;
//! the TD critics then bootstrap from the last state, REINFORCE uses the truncated return.
//!
//! Every run is seeded: the environment is reset with `seed` at the first episode and actions are
//! drawn from the stream `derive_seed(seed, 1)`, as in [`crate::td`].

use crate::td::{discrete_sizes, rmse, LearnResult, LearningHistory};
use rand::Rng as _;
use rlox_core::env::{Env, Info, Step};
use rlox_core::policy::{argmax_lowest, TabularPolicy};
use rlox_core::seeding::{derive_seed, rng_from_seed, Rng};
use rlox_core::spaces::{BoxSpace, Space};
use rlox_core::{Error, Result};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// Features
// ---------------------------------------------------------------------------------------------

/// Linear features of states and (state, action) pairs, written sparsely as `(index, value)`.
///
/// `phi(s, a)` defaults to `phi(s)` copied into the block of action `a`: index `i * n_actions + a`
/// for each entry `i` of `phi(s)`. With one-hot state features this is the row-major layout
/// `s * n_actions + a` of every table in rlox.
pub trait LinearFeatures {
    /// Number of states (observations are `0..n_states`).
    fn n_states(&self) -> usize;
    /// Number of actions.
    fn n_actions(&self) -> usize;
    /// Length of `phi(s)` (the parameters of a state-value critic).
    fn state_dim(&self) -> usize;
    /// Clear `out`, then push the non-zero entries of `phi(s)`.
    fn write_state(&self, s: usize, out: &mut Vec<(usize, f64)>);
    /// Length of `phi(s, a)` (the policy parameters and those of an action-value critic).
    fn state_action_dim(&self) -> usize {
        self.state_dim() * self.n_actions()
    }
    /// Clear `out`, then push the non-zero entries of `phi(s, a)`.
    fn write_state_action(&self, s: usize, a: usize, out: &mut Vec<(usize, f64)>) {
        self.write_state(s, out);
        let na = self.n_actions();
        for entry in out.iter_mut() {
            entry.0 = entry.0 * na + a;
        }
    }
}

/// One-hot features: `theta` and the critic weights are plain tables (row-major `s * n_actions + a`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TabularFeatures {
    /// Number of states.
    pub n_states: usize,
    /// Number of actions.
    pub n_actions: usize,
}

impl TabularFeatures {
    /// Features for `n_states` states and `n_actions` actions.
    pub fn new(n_states: usize, n_actions: usize) -> Self {
        TabularFeatures { n_states, n_actions }
    }
}

impl LinearFeatures for TabularFeatures {
    fn n_states(&self) -> usize {
        self.n_states
    }
    fn n_actions(&self) -> usize {
        self.n_actions
    }
    fn state_dim(&self) -> usize {
        self.n_states
    }
    fn write_state(&self, s: usize, out: &mut Vec<(usize, f64)>) {
        out.clear();
        out.push((s, 1.0));
    }
    fn write_state_action(&self, s: usize, a: usize, out: &mut Vec<(usize, f64)>) {
        out.clear();
        out.push((s * self.n_actions + a, 1.0));
    }
}

/// Dense linear features: one vector `phi(s)` of length `dim` per state, given as a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenseFeatures {
    n_states: usize,
    n_actions: usize,
    dim: usize,
    table: Vec<f64>,
}

impl DenseFeatures {
    /// Features from a row-major table `[s * dim + i]`; errors on a wrong length, a zero size or a
    /// non-finite entry.
    pub fn new(n_states: usize, n_actions: usize, dim: usize, table: Vec<f64>) -> Result<Self> {
        if n_states == 0 || n_actions == 0 || dim == 0 {
            return Err(Error::invalid(
                "features",
                format!("{n_states} states, {n_actions} actions, dimension {dim}: all must be at least 1"),
            ));
        }
        if table.len() != n_states * dim {
            return Err(Error::invalid(
                "features",
                format!("{} entries for {n_states} states of dimension {dim}", table.len()),
            ));
        }
        if let Some(i) = table.iter().position(|x| !x.is_finite()) {
            return Err(Error::invalid(
                "features",
                format!("phi({})[{}] = {} is not finite", i / dim, i % dim, table[i]),
            ));
        }
        Ok(DenseFeatures { n_states, n_actions, dim, table })
    }

    /// Features computed by `f(s, &mut phi)` for every state.
    pub fn from_fn(
        n_states: usize,
        n_actions: usize,
        dim: usize,
        mut f: impl FnMut(usize, &mut [f64]),
    ) -> Result<Self> {
        let mut table = vec![0.0; n_states * dim];
        for (s, row) in table.chunks_mut(dim.max(1)).enumerate() {
            f(s, row);
        }
        Self::new(n_states, n_actions, dim, table)
    }

    /// `phi(s)`.
    pub fn state(&self, s: usize) -> &[f64] {
        &self.table[s * self.dim..(s + 1) * self.dim]
    }
}

impl LinearFeatures for DenseFeatures {
    fn n_states(&self) -> usize {
        self.n_states
    }
    fn n_actions(&self) -> usize {
        self.n_actions
    }
    fn state_dim(&self) -> usize {
        self.dim
    }
    fn write_state(&self, s: usize, out: &mut Vec<(usize, f64)>) {
        out.clear();
        out.extend(self.state(s).iter().enumerate().filter(|(_, v)| **v != 0.0).map(|(i, v)| (i, *v)));
    }
}

#[inline]
fn dot(w: &[f64], phi: &[(usize, f64)]) -> f64 {
    phi.iter().map(|&(i, v)| w[i] * v).sum()
}

#[inline]
fn axpy(w: &mut [f64], scale: f64, phi: &[(usize, f64)]) {
    for &(i, v) in phi {
        w[i] += scale * v;
    }
}

/// Draw an index from a distribution by inversion (the same rule as [`TabularPolicy::sample`]).
fn sample_from(probs: &[f64], rng: &mut Rng) -> usize {
    let u: f64 = rng.random();
    let mut acc = 0.0;
    for (a, p) in probs.iter().enumerate() {
        acc += p;
        if u < acc {
            return a;
        }
    }
    probs.iter().rposition(|p| *p > 0.0).unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Softmax policy
// ---------------------------------------------------------------------------------------------

/// A softmax policy over linear action preferences `h(s, a) = theta . phi(s, a)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoftmaxPolicy {
    theta: Vec<f64>,
}

impl SoftmaxPolicy {
    /// All preferences `initial` (0 gives the uniform policy).
    pub fn new<F: LinearFeatures + ?Sized>(features: &F, initial: f64) -> Self {
        SoftmaxPolicy { theta: vec![initial; features.state_action_dim()] }
    }

    /// A policy with the given parameters; errors on a wrong length or a non-finite entry.
    pub fn from_theta<F: LinearFeatures + ?Sized>(features: &F, theta: Vec<f64>) -> Result<Self> {
        if theta.len() != features.state_action_dim() {
            return Err(Error::invalid(
                "theta",
                format!("{} parameters for features of dimension {}", theta.len(), features.state_action_dim()),
            ));
        }
        if let Some(x) = theta.iter().find(|x| !x.is_finite()) {
            return Err(Error::invalid("theta", format!("{x} is not finite")));
        }
        Ok(SoftmaxPolicy { theta })
    }

    /// The parameters `theta`.
    pub fn theta(&self) -> &[f64] {
        &self.theta
    }

    /// The parameters, mutably (finite differences, custom updates).
    pub fn theta_mut(&mut self) -> &mut [f64] {
        &mut self.theta
    }

    /// `pi(. | s)` into `out` (length `n_actions`), computed stably (max preference subtracted).
    fn probs_with<F: LinearFeatures + ?Sized>(&self, f: &F, s: usize, buf: &mut Vec<(usize, f64)>, out: &mut [f64]) {
        for (a, h) in out.iter_mut().enumerate() {
            f.write_state_action(s, a, buf);
            *h = dot(&self.theta, buf);
        }
        let max = out.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut z = 0.0;
        for h in out.iter_mut() {
            *h = (*h - max).exp();
            z += *h;
        }
        out.iter_mut().for_each(|p| *p /= z);
    }

    /// The preferences `h(s, .)` into `out` (length `n_actions`).
    pub fn preferences<F: LinearFeatures + ?Sized>(&self, f: &F, s: usize, out: &mut [f64]) {
        let mut buf = Vec::new();
        for (a, h) in out.iter_mut().enumerate() {
            f.write_state_action(s, a, &mut buf);
            *h = dot(&self.theta, &buf);
        }
    }

    /// `pi(. | s)`.
    pub fn probs<F: LinearFeatures + ?Sized>(&self, f: &F, s: usize) -> Vec<f64> {
        let mut out = vec![0.0; f.n_actions()];
        self.probs_with(f, s, &mut Vec::new(), &mut out);
        out
    }

    /// `ln pi(a | s)`, computed as `h(s, a) - logsumexp(h(s, .))`.
    pub fn log_prob<F: LinearFeatures + ?Sized>(&self, f: &F, s: usize, a: usize) -> f64 {
        let mut h = vec![0.0; f.n_actions()];
        self.preferences(f, s, &mut h);
        let max = h.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + h.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
        h[a] - lse
    }

    /// `grad_theta ln pi(a | s) = phi(s, a) - sum_b pi(b | s) phi(s, b)`, written sparsely into `out`
    /// (cleared first; an index may appear more than once, entries add up).
    pub fn grad_log_prob<F: LinearFeatures + ?Sized>(&self, f: &F, s: usize, a: usize, out: &mut Vec<(usize, f64)>) {
        let mut probs = vec![0.0; f.n_actions()];
        self.grad_with(f, s, a, &mut Vec::new(), &mut probs, out);
    }

    fn grad_with<F: LinearFeatures + ?Sized>(
        &self,
        f: &F,
        s: usize,
        a: usize,
        buf: &mut Vec<(usize, f64)>,
        probs: &mut [f64],
        out: &mut Vec<(usize, f64)>,
    ) {
        self.probs_with(f, s, buf, probs);
        out.clear();
        for (b, p) in probs.iter().enumerate() {
            let c = if b == a { 1.0 - p } else { -p };
            f.write_state_action(s, b, buf);
            out.extend(buf.iter().map(|&(i, v)| (i, c * v)));
        }
    }

    /// The whole policy as a table (every state of the features).
    pub fn table<F: LinearFeatures + ?Sized>(&self, f: &F) -> TabularPolicy {
        let (ns, na) = (f.n_states(), f.n_actions());
        let mut probs = vec![0.0; ns * na];
        let mut buf = Vec::new();
        for (s, row) in probs.chunks_mut(na).enumerate() {
            self.probs_with(f, s, &mut buf, row);
        }
        TabularPolicy::from_probs(ns, na, probs).expect("softmax rows are distributions")
    }

    /// The most probable action of every state (lowest index among ties within 1e-9).
    pub fn greedy<F: LinearFeatures + ?Sized>(&self, f: &F) -> Vec<usize> {
        (0..f.n_states()).map(|s| argmax_lowest(&self.probs(f, s))).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration and results
// ---------------------------------------------------------------------------------------------

/// Settings of the stochastic policy-gradient learners. Defaults suit the book's 5x5 path-finding
/// task (start (1,1), episodes end at the target, r_boundary = r_forbidden = -10, r_other = -1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyGradientConfig {
    /// Discount factor. Default 0.9.
    pub gamma: f64,
    /// Number of episodes. Default 1000.
    pub episodes: usize,
    /// Steps after which an episode is cut (the TD critics bootstrap from the last state). Default 100.
    pub max_episode_steps: usize,
    /// Actor learning rate `alpha_theta` (> 0). Default 0.1.
    pub actor_step_size: f64,
    /// Critic learning rate `alpha_w` (> 0; REINFORCE: its Monte Carlo value estimate). Default 0.1.
    pub critic_step_size: f64,
    /// REINFORCE only: use `q_t - v(s_t)` instead of `q_t`. Default false (the book's Algorithm 9.1).
    pub baseline: bool,
    /// Initial value of every policy parameter (0: the uniform policy). Default 0.
    pub initial_preference: f64,
    /// Initial value of every critic weight. Default 0.
    pub initial_critic: f64,
    /// Record the RMSE of the critic's state values against the reference every this many steps. Default 100.
    pub record_every: u64,
    /// Run seed. Default 0.
    pub seed: u64,
}

impl Default for PolicyGradientConfig {
    fn default() -> Self {
        PolicyGradientConfig {
            gamma: 0.9,
            episodes: 1000,
            max_episode_steps: 100,
            actor_step_size: 0.1,
            critic_step_size: 0.1,
            baseline: false,
            initial_preference: 0.0,
            initial_critic: 0.0,
            record_every: 100,
            seed: 0,
        }
    }
}

fn check_rate(what: &str, x: f64) -> Result<()> {
    if !(x > 0.0 && x.is_finite()) {
        return Err(Error::invalid(what, format!("{x} must be a positive, finite number")));
    }
    Ok(())
}

impl PolicyGradientConfig {
    /// Settings that work on the book's 5x5 path-finding task (start (1,1), episodes end at the target,
    /// r_boundary = r_forbidden = -10, r_other = -1, gamma 0.9), found by a small sweep over seeds
    /// (the success rates are in `tests/actor_critic_book.rs`):
    ///
    /// * `reinforce`: baseline on, `alpha_theta = 0.001`, `alpha_w = 0.1`, 3000 episodes of at most 1000 steps
    ///   (without the baseline it needs about `alpha_theta = 1e-4` and 20,000 episodes);
    /// * `qac`: `alpha_theta = 0.01`, `alpha_w = 0.03`, 2000 episodes of at most 100 steps;
    /// * `a2c-tabular` and `off-policy-ac`: the defaults (`alpha = 0.1` for both, 1000 episodes of at most 100 steps).
    pub fn tuned(algo: ActorCriticAlgo) -> Self {
        let d = PolicyGradientConfig::default();
        match algo {
            ActorCriticAlgo::Reinforce => PolicyGradientConfig {
                episodes: 3000,
                max_episode_steps: 1000,
                actor_step_size: 0.001,
                critic_step_size: 0.1,
                baseline: true,
                ..d
            },
            ActorCriticAlgo::Qac => {
                PolicyGradientConfig { episodes: 2000, actor_step_size: 0.01, critic_step_size: 0.03, ..d }
            }
            ActorCriticAlgo::A2c | ActorCriticAlgo::OffPolicyAc => d,
        }
    }

    /// Check every field; errors name the field and value.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.gamma) {
            return Err(Error::invalid("gamma", format!("{} is outside [0, 1]", self.gamma)));
        }
        if self.episodes == 0 {
            return Err(Error::invalid("episodes", "must be at least 1"));
        }
        if self.max_episode_steps == 0 {
            return Err(Error::invalid("episode length", "max_episode_steps must be at least 1"));
        }
        check_rate("actor_step_size", self.actor_step_size)?;
        check_rate("critic_step_size", self.critic_step_size)?;
        for (what, x) in [("initial_preference", self.initial_preference), ("initial_critic", self.initial_critic)] {
            if !x.is_finite() {
                return Err(Error::invalid(what, format!("{x} is not finite")));
            }
        }
        if self.record_every == 0 {
            return Err(Error::invalid("record_every", "must be at least 1"));
        }
        Ok(())
    }
}

/// What a policy-gradient run returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyGradientResult {
    /// `q`: the QAC critic's action values (empty for the state-value critics); `values`: the critic's
    /// state values (QAC: `sum_a pi(a|s) q(s, a)`; REINFORCE: its Monte Carlo estimate); `policy`: the
    /// most probable action of every state; `steps`; `history` (per-episode reward and length, the
    /// RMSE of `values` against the reference, visit counts of each (state, action)).
    pub learn: LearnResult,
    /// `pi(a | s)`, row-major `[s * n_actions + a]`.
    pub probabilities: Vec<f64>,
    /// The policy parameters `theta`.
    pub theta: Vec<f64>,
    /// The critic weights `w`.
    pub critic: Vec<f64>,
}

impl PolicyGradientResult {
    /// The learned stochastic policy.
    pub fn policy(&self) -> TabularPolicy {
        let ns = self.learn.values.len();
        TabularPolicy::from_probs(ns, self.probabilities.len() / ns.max(1), self.probabilities.clone())
            .expect("softmax rows are distributions")
    }
}

// ---------------------------------------------------------------------------------------------
// Actor and critic
// ---------------------------------------------------------------------------------------------

/// What the critic estimates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CriticKind {
    /// `v(s, w) = w . phi(s)` (REINFORCE's baseline, A2C, off-policy actor-critic).
    StateValue,
    /// `q(s, a, w) = w . phi(s, a)` (QAC).
    ActionValue,
}

/// A softmax actor with a linear critic, and the single-transition updates of the book's algorithms.
///
/// The run functions ([`reinforce`], [`qac`], [`a2c`], [`off_policy_actor_critic`]) are loops over
/// these updates; they are public so that the updates can be checked one transition at a time.
#[derive(Debug, Clone)]
pub struct ActorCritic<F> {
    /// The features shared by actor and critic.
    pub features: F,
    /// The actor.
    pub policy: SoftmaxPolicy,
    /// The critic weights `w`.
    pub critic: Vec<f64>,
    /// What the critic estimates.
    pub kind: CriticKind,
    /// Discount factor.
    pub gamma: f64,
    /// `alpha_theta`.
    pub actor_step_size: f64,
    /// `alpha_w`.
    pub critic_step_size: f64,
    feat: Vec<(usize, f64)>,
    grad: Vec<(usize, f64)>,
    probs: Vec<f64>,
}

impl<F: LinearFeatures> ActorCritic<F> {
    /// Actor and critic initialised from `cfg` (`initial_preference`, `initial_critic`, rates, gamma).
    pub fn new(features: F, kind: CriticKind, cfg: &PolicyGradientConfig) -> Self {
        let dim = match kind {
            CriticKind::StateValue => features.state_dim(),
            CriticKind::ActionValue => features.state_action_dim(),
        };
        ActorCritic {
            policy: SoftmaxPolicy::new(&features, cfg.initial_preference),
            critic: vec![cfg.initial_critic; dim],
            kind,
            gamma: cfg.gamma,
            actor_step_size: cfg.actor_step_size,
            critic_step_size: cfg.critic_step_size,
            feat: Vec::new(),
            grad: Vec::new(),
            probs: vec![0.0; features.n_actions()],
            features,
        }
    }

    /// `pi(. | s, theta)`.
    pub fn pi(&mut self, s: usize) -> &[f64] {
        self.policy.probs_with(&self.features, s, &mut self.feat, &mut self.probs);
        &self.probs
    }

    /// Draw an action from `pi(. | s, theta)`.
    pub fn sample(&mut self, s: usize, rng: &mut Rng) -> usize {
        self.pi(s);
        sample_from(&self.probs, rng)
    }

    /// `v(s, w)` (state-value critic).
    pub fn v(&mut self, s: usize) -> f64 {
        debug_assert_eq!(self.kind, CriticKind::StateValue);
        self.features.write_state(s, &mut self.feat);
        dot(&self.critic, &self.feat)
    }

    /// `q(s, a, w)` (action-value critic).
    pub fn q(&mut self, s: usize, a: usize) -> f64 {
        debug_assert_eq!(self.kind, CriticKind::ActionValue);
        self.features.write_state_action(s, a, &mut self.feat);
        dot(&self.critic, &self.feat)
    }

    /// `theta += scale grad ln pi(a | s, theta)`.
    fn actor_step(&mut self, s: usize, a: usize, scale: f64) {
        self.policy.grad_with(&self.features, s, a, &mut self.feat, &mut self.probs, &mut self.grad);
        axpy(&mut self.policy.theta, scale, &self.grad);
    }

    /// Algorithms 10.2 (`rho = 1`) and 10.3 (`rho = pi(a|s, theta_t) / beta(a|s)`): with
    /// `delta = r + gamma v(s2, w_t) - v(s, w_t)` (no bootstrap when `terminated`),
    /// `theta += alpha_theta rho delta grad ln pi(a | s, theta_t)` and `w += alpha_w rho delta phi(s)`.
    /// Returns `delta`.
    pub fn advantage_update(&mut self, s: usize, a: usize, r: f64, s2: usize, terminated: bool, rho: f64) -> f64 {
        let v_next = if terminated { 0.0 } else { self.v(s2) };
        let delta = r + self.gamma * v_next - self.v(s);
        self.actor_step(s, a, self.actor_step_size * rho * delta);
        self.features.write_state(s, &mut self.feat);
        axpy(&mut self.critic, self.critic_step_size * rho * delta, &self.feat);
        delta
    }

    /// Algorithm 10.1: `theta += alpha_theta q(s, a, w_t) grad ln pi(a | s, theta_t)` and the Sarsa
    /// critic `w += alpha_w [r + gamma q(s2, a2, w_t) - q(s, a, w_t)] phi(s, a)`; `a2 = None` when the
    /// episode terminated in `s2`. Returns the TD error.
    pub fn qac_update(&mut self, s: usize, a: usize, r: f64, next: Option<(usize, usize)>) -> f64 {
        let q_next = next.map_or(0.0, |(s2, a2)| self.q(s2, a2));
        let q_sa = self.q(s, a);
        let delta = r + self.gamma * q_next - q_sa;
        self.actor_step(s, a, self.actor_step_size * q_sa);
        self.features.write_state_action(s, a, &mut self.feat);
        axpy(&mut self.critic, self.critic_step_size * delta, &self.feat);
        delta
    }

    /// One REINFORCE update (Algorithm 9.1) with the discounted return `g` from `(s, a)`:
    /// `theta += alpha_theta (g - b) grad ln pi(a | s)` where `b = v(s, w)` with the baseline and 0
    /// without, and the Monte Carlo value step `w += alpha_w (g - v(s, w)) phi(s)`.
    pub fn reinforce_update(&mut self, s: usize, a: usize, g: f64, baseline: bool) {
        let delta = g - self.v(s);
        self.actor_step(s, a, self.actor_step_size * if baseline { delta } else { g });
        self.features.write_state(s, &mut self.feat);
        axpy(&mut self.critic, self.critic_step_size * delta, &self.feat);
    }

    /// The critic's state values: `v(s, w)`, or `sum_a pi(a|s) q(s, a, w)` for an action-value critic.
    pub fn state_values(&mut self) -> Vec<f64> {
        let (ns, na) = (self.features.n_states(), self.features.n_actions());
        (0..ns)
            .map(|s| match self.kind {
                CriticKind::StateValue => self.v(s),
                CriticKind::ActionValue => {
                    let probs = self.pi(s).to_vec();
                    (0..na).map(|a| probs[a] * self.q(s, a)).sum()
                }
            })
            .collect()
    }

    fn is_finite(&self) -> bool {
        self.policy.theta.iter().chain(&self.critic).all(|x| x.is_finite())
    }
}

/// Steps, curves and visit counts of a run.
struct Recorder<'a> {
    na: usize,
    reference: Option<&'a [f64]>,
    record_every: u64,
    steps: u64,
    history: LearningHistory,
}

impl<'a> Recorder<'a> {
    fn new(ns: usize, na: usize, cfg: &PolicyGradientConfig, reference: Option<&'a [f64]>) -> Result<Self> {
        if let Some(r) = reference {
            if r.len() != ns {
                return Err(Error::invalid("reference values", format!("{} values for {ns} states", r.len())));
            }
        }
        let history = LearningHistory { visits: vec![0; ns * na], ..Default::default() };
        Ok(Recorder { na, reference, record_every: cfg.record_every, steps: 0, history })
    }

    fn tick<F: LinearFeatures>(&mut self, s: usize, a: usize, ac: &mut ActorCritic<F>) {
        self.history.visits[s * self.na + a] += 1;
        self.steps += 1;
        if let Some(r) = self.reference {
            if self.steps.is_multiple_of(self.record_every) {
                let v = ac.state_values();
                self.history.rmse.push((self.steps, rmse(&v, r)));
            }
        }
    }

    fn end_episode<F: LinearFeatures>(&mut self, total: f64, len: usize, ac: &ActorCritic<F>) -> Result<()> {
        self.history.episode_rewards.push(total);
        self.history.episode_lengths.push(len);
        if !ac.is_finite() {
            return Err(Error::invalid(
                "step sizes",
                format!(
                    "the parameters diverged (non-finite) in episode {}; lower actor_step_size / critic_step_size",
                    self.history.episode_rewards.len()
                ),
            ));
        }
        Ok(())
    }

    fn finish<F: LinearFeatures>(self, mut ac: ActorCritic<F>) -> PolicyGradientResult {
        let (ns, na) = (ac.features.n_states(), ac.features.n_actions());
        let values = ac.state_values();
        let q = match ac.kind {
            CriticKind::ActionValue => (0..ns * na).map(|i| ac.q(i / na, i % na)).collect(),
            CriticKind::StateValue => Vec::new(),
        };
        let table = ac.policy.table(&ac.features);
        let policy = (0..ns).map(|s| argmax_lowest(table.probs(s))).collect();
        PolicyGradientResult {
            learn: LearnResult { q, values, policy, steps: self.steps, history: self.history },
            probabilities: table.table().to_vec(),
            theta: ac.policy.theta,
            critic: ac.critic,
        }
    }
}

fn check_features<E: Env, F: LinearFeatures>(env: &E, f: &F) -> Result<()> {
    let (ns, na) = discrete_sizes(env)?;
    if f.n_states() != ns || f.n_actions() != na {
        return Err(Error::invalid(
            "features",
            format!(
                "built for {} states and {} actions; {} has {ns} states and {na} actions",
                f.n_states(),
                f.n_actions(),
                env.id()
            ),
        ));
    }
    Ok(())
}

fn reset_seed(cfg: &PolicyGradientConfig, episode: usize) -> Option<u64> {
    if episode == 0 {
        Some(cfg.seed)
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// The algorithms
// ---------------------------------------------------------------------------------------------

/// REINFORCE, book Algorithm 9.1 (optionally with a learned baseline; see the module docs).
pub fn reinforce<E, F>(
    env: &mut E,
    features: F,
    cfg: &PolicyGradientConfig,
    reference: Option<&[f64]>,
) -> Result<PolicyGradientResult>
where
    E: Env<Obs = usize, Action = usize>,
    F: LinearFeatures,
{
    cfg.validate()?;
    check_features(env, &features)?;
    let mut rec = Recorder::new(features.n_states(), features.n_actions(), cfg, reference)?;
    let mut ac = ActorCritic::new(features, CriticKind::StateValue, cfg);
    let mut rng = rng_from_seed(derive_seed(cfg.seed, 1));
    let mut episode_buf: Vec<(usize, usize, f64)> = Vec::new();
    for episode in 0..cfg.episodes {
        // Generate the whole episode with pi(theta_k).
        episode_buf.clear();
        let (mut s, _) = env.reset(reset_seed(cfg, episode))?;
        loop {
            let a = ac.sample(s, &mut rng);
            let step = env.step(&a)?;
            episode_buf.push((s, a, step.reward));
            rec.tick(s, a, &mut ac);
            if step.done() || episode_buf.len() >= cfg.max_episode_steps {
                break;
            }
            s = step.obs;
        }
        // Returns q_t = sum_{k > t} gamma^{k-t-1} r_k, computed backwards.
        let mut returns = vec![0.0; episode_buf.len()];
        let mut g = 0.0;
        for (t, &(_, _, r)) in episode_buf.iter().enumerate().rev() {
            g = r + cfg.gamma * g;
            returns[t] = g;
        }
        // Updates in the book's order t = 0, 1, ..., T-1, each at the current theta.
        for (&(s, a, _), &g) in episode_buf.iter().zip(&returns) {
            ac.reinforce_update(s, a, g, cfg.baseline);
        }
        let total = episode_buf.iter().map(|x| x.2).sum();
        rec.end_episode(total, episode_buf.len(), &ac)?;
    }
    Ok(rec.finish(ac))
}

/// QAC, book Algorithm 10.1 (actor softmax, critic Sarsa on `q`).
pub fn qac<E, F>(
    env: &mut E,
    features: F,
    cfg: &PolicyGradientConfig,
    reference: Option<&[f64]>,
) -> Result<PolicyGradientResult>
where
    E: Env<Obs = usize, Action = usize>,
    F: LinearFeatures,
{
    cfg.validate()?;
    check_features(env, &features)?;
    let mut rec = Recorder::new(features.n_states(), features.n_actions(), cfg, reference)?;
    let mut ac = ActorCritic::new(features, CriticKind::ActionValue, cfg);
    let mut rng = rng_from_seed(derive_seed(cfg.seed, 1));
    for episode in 0..cfg.episodes {
        let (mut s, _) = env.reset(reset_seed(cfg, episode))?;
        let mut a = ac.sample(s, &mut rng);
        let (mut total, mut len) = (0.0, 0);
        loop {
            let step = env.step(&a)?;
            total += step.reward;
            len += 1;
            // a_{t+1} ~ pi(. | s_{t+1}, theta_t), drawn before the update as in the book.
            let next = if step.terminated { None } else { Some((step.obs, ac.sample(step.obs, &mut rng))) };
            ac.qac_update(s, a, step.reward, next);
            rec.tick(s, a, &mut ac);
            match next {
                Some(pair) if !(step.truncated || len >= cfg.max_episode_steps) => (s, a) = pair,
                _ => break,
            }
        }
        rec.end_episode(total, len, &ac)?;
    }
    Ok(rec.finish(ac))
}

/// Advantage actor-critic (TD actor-critic), book Algorithm 10.2.
pub fn a2c<E, F>(
    env: &mut E,
    features: F,
    cfg: &PolicyGradientConfig,
    reference: Option<&[f64]>,
) -> Result<PolicyGradientResult>
where
    E: Env<Obs = usize, Action = usize>,
    F: LinearFeatures,
{
    advantage_run(env, features, None, cfg, reference)
}

/// Where the actions of [`off_policy_actor_critic`] come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    /// A fixed behaviour policy `beta` (e.g. [`TabularPolicy::uniform`]).
    Fixed(TabularPolicy),
    /// `beta = pi(theta_t)`, the current target policy: every ratio is exactly 1 and the run is A2C.
    Target,
}

/// Off-policy actor-critic with importance sampling, book Algorithm 10.3.
pub fn off_policy_actor_critic<E, F>(
    env: &mut E,
    features: F,
    behaviour: &Behaviour,
    cfg: &PolicyGradientConfig,
    reference: Option<&[f64]>,
) -> Result<PolicyGradientResult>
where
    E: Env<Obs = usize, Action = usize>,
    F: LinearFeatures,
{
    if let Behaviour::Fixed(beta) = behaviour {
        if beta.n_states() != features.n_states() || beta.n_actions() != features.n_actions() {
            return Err(Error::invalid(
                "behaviour policy",
                format!(
                    "{}x{} for features of {} states and {} actions",
                    beta.n_states(),
                    beta.n_actions(),
                    features.n_states(),
                    features.n_actions()
                ),
            ));
        }
    }
    advantage_run(env, features, Some(behaviour), cfg, reference)
}

fn advantage_run<E, F>(
    env: &mut E,
    features: F,
    behaviour: Option<&Behaviour>,
    cfg: &PolicyGradientConfig,
    reference: Option<&[f64]>,
) -> Result<PolicyGradientResult>
where
    E: Env<Obs = usize, Action = usize>,
    F: LinearFeatures,
{
    cfg.validate()?;
    check_features(env, &features)?;
    let mut rec = Recorder::new(features.n_states(), features.n_actions(), cfg, reference)?;
    let mut ac = ActorCritic::new(features, CriticKind::StateValue, cfg);
    let mut rng = rng_from_seed(derive_seed(cfg.seed, 1));
    for episode in 0..cfg.episodes {
        let (mut s, _) = env.reset(reset_seed(cfg, episode))?;
        let (mut total, mut len) = (0.0, 0);
        loop {
            let (a, rho) = match behaviour {
                None => (ac.sample(s, &mut rng), 1.0),
                Some(Behaviour::Target) => {
                    let a = ac.sample(s, &mut rng);
                    let beta_a = ac.pi(s)[a];
                    (a, ac.pi(s)[a] / beta_a)
                }
                Some(Behaviour::Fixed(beta)) => {
                    let a = beta.sample(s, &mut rng);
                    (a, ac.pi(s)[a] / beta.probs(s)[a])
                }
            };
            let step = env.step(&a)?;
            total += step.reward;
            len += 1;
            ac.advantage_update(s, a, step.reward, step.obs, step.terminated, rho);
            rec.tick(s, a, &mut ac);
            if step.done() || len >= cfg.max_episode_steps {
                break;
            }
            s = step.obs;
        }
        rec.end_episode(total, len, &ac)?;
    }
    Ok(rec.finish(ac))
}

/// The stochastic policy-gradient learners by name (for the CLI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActorCriticAlgo {
    /// REINFORCE (Algorithm 9.1); `baseline` in the config adds the value baseline.
    #[serde(rename = "reinforce")]
    Reinforce,
    /// QAC (Algorithm 10.1).
    #[serde(rename = "qac")]
    Qac,
    /// Advantage actor-critic (Algorithm 10.2), tabular.
    #[serde(rename = "a2c-tabular")]
    A2c,
    /// Off-policy actor-critic (Algorithm 10.3) with the uniform behaviour policy.
    #[serde(rename = "off-policy-ac")]
    OffPolicyAc,
}

impl ActorCriticAlgo {
    /// The names, for help texts and errors.
    pub const NAMES: &'static [&'static str] = &["reinforce", "qac", "a2c-tabular", "off-policy-ac"];

    /// Parse a name.
    pub fn parse(name: &str) -> Result<Self> {
        serde_json::from_value(serde_json::Value::String(name.to_string())).map_err(|_| Error::Unknown {
            kind: "actor-critic algorithm",
            name: name.to_string(),
            known: Self::NAMES.join(", "),
        })
    }
}

/// Run a stochastic policy-gradient learner with tabular features (off-policy: uniform behaviour).
pub fn learn_actor_critic<E>(
    env: &mut E,
    algo: ActorCriticAlgo,
    cfg: &PolicyGradientConfig,
    reference: Option<&[f64]>,
) -> Result<PolicyGradientResult>
where
    E: Env<Obs = usize, Action = usize>,
{
    let (ns, na) = discrete_sizes(env)?;
    let f = TabularFeatures::new(ns, na);
    match algo {
        ActorCriticAlgo::Reinforce => reinforce(env, f, cfg, reference),
        ActorCriticAlgo::Qac => qac(env, f, cfg, reference),
        ActorCriticAlgo::A2c => a2c(env, f, cfg, reference),
        ActorCriticAlgo::OffPolicyAc => {
            off_policy_actor_critic(env, f, &Behaviour::Fixed(TabularPolicy::uniform(ns, na)), cfg, reference)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Deterministic policy gradient (Algorithm 10.4)
// ---------------------------------------------------------------------------------------------

/// Linear features for the deterministic policy gradient with a one-dimensional real action:
/// `mu(s, theta) = theta . psi(s)` and `q(s, a, w) = w . phi(s, a)`.
pub trait DpgFeatures<S> {
    /// Length of `psi(s)` (and of `theta`).
    fn policy_dim(&self) -> usize;
    /// Length of `phi(s, a)` (and of `w`).
    fn critic_dim(&self) -> usize;
    /// `psi(s)` into `out`; it is also `grad_theta mu(s, theta)`.
    fn write_policy(&self, s: &S, out: &mut [f64]);
    /// `phi(s, a)` into `out`.
    fn write_critic(&self, s: &S, a: f64, out: &mut [f64]);
    /// `d phi(s, a) / d a` into `out`, so that `grad_a q(s, a, w) = w . d phi / d a`.
    fn write_critic_action_grad(&self, s: &S, a: f64, out: &mut [f64]);
}

/// For a scalar state `x`: `psi(x) = [x]` (the linear policy `a = theta x`) and
/// `phi(x, a) = [x^2, x a, a^2]`, which spans the action values of every linear policy of [`ScalarLqr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QuadraticFeatures;

impl DpgFeatures<f64> for QuadraticFeatures {
    fn policy_dim(&self) -> usize {
        1
    }
    fn critic_dim(&self) -> usize {
        3
    }
    fn write_policy(&self, x: &f64, out: &mut [f64]) {
        out[0] = *x;
    }
    fn write_critic(&self, x: &f64, a: f64, out: &mut [f64]) {
        out.copy_from_slice(&[x * x, x * a, a * a]);
    }
    fn write_critic_action_grad(&self, x: &f64, a: f64, out: &mut [f64]) {
        out.copy_from_slice(&[0.0, *x, 2.0 * a]);
    }
}

/// A one-dimensional linear-quadratic control problem: the smallest setting with a continuous action
/// whose optimal deterministic policy is known exactly.
///
/// State `x`, action `a` (any real), `x' = x + a`, reward `-(x^2 + c a^2)` with `c = action_cost`.
/// Episodes start at `x_0 ~ U[-init_range, init_range]` and never terminate (cut them with
/// `max_episode_steps`). Under the discount `gamma` the optimal policy is `a = -k* x`
/// ([`ScalarLqr::optimal_gain`]), and every linear policy `a = theta x` with `|1 + theta| < 1/sqrt(gamma)`
/// has `v(x) = -P x^2` and `q(x, a) = -x^2 - c a^2 - gamma P (x + a)^2`.
#[derive(Debug, Clone)]
pub struct ScalarLqr {
    /// The action cost `c` (> 0). Default 1.
    pub action_cost: f64,
    /// Half-width of the initial-state interval. Default 1.
    pub init_range: f64,
    x: f64,
    rng: Rng,
    needs_reset: bool,
}

impl Default for ScalarLqr {
    fn default() -> Self {
        ScalarLqr { action_cost: 1.0, init_range: 1.0, x: 0.0, rng: rng_from_seed(0), needs_reset: true }
    }
}

impl ScalarLqr {
    /// The problem with action cost `c`; errors unless `c > 0` and `init_range > 0`.
    pub fn new(action_cost: f64, init_range: f64) -> Result<Self> {
        check_rate("action_cost", action_cost)?;
        check_rate("init_range", init_range)?;
        Ok(ScalarLqr { action_cost, init_range, ..Default::default() })
    }

    /// `P` of the linear policy `a = theta x` (`v(x) = -P x^2`): `P = (1 + c theta^2) / (1 - gamma (1 + theta)^2)`;
    /// infinite when the closed loop is not stable under the discount.
    pub fn value_coefficient(&self, theta: f64, gamma: f64) -> f64 {
        let denom = 1.0 - gamma * (1.0 + theta).powi(2);
        if denom <= 0.0 {
            f64::INFINITY
        } else {
            (1.0 + self.action_cost * theta * theta) / denom
        }
    }

    /// The optimal gain `k*` (the optimal policy is `a = -k* x`), from the discounted Riccati equation
    /// `P = 1 + gamma P c / (c + gamma P)`, `k* = gamma P / (c + gamma P)`.
    pub fn optimal_gain(&self, gamma: f64) -> f64 {
        let c = self.action_cost;
        let mut p = 1.0;
        for _ in 0..10_000 {
            let next = 1.0 + gamma * p * c / (c + gamma * p);
            if (next - p).abs() < 1e-15 {
                p = next;
                break;
            }
            p = next;
        }
        gamma * p / (c + gamma * p)
    }

    /// The current state.
    pub fn state(&self) -> f64 {
        self.x
    }
}

impl Env for ScalarLqr {
    type Obs = f64;
    type Action = f64;

    fn id(&self) -> &str {
        "ScalarLqr"
    }
    fn observation_space(&self) -> Space {
        BoxSpace::new(vec![f32::NEG_INFINITY], vec![f32::INFINITY]).into()
    }
    fn action_space(&self) -> Space {
        BoxSpace::new(vec![f32::NEG_INFINITY], vec![f32::INFINITY]).into()
    }
    fn reset(&mut self, seed: Option<u64>) -> Result<(f64, Info)> {
        if let Some(seed) = seed {
            self.rng = rng_from_seed(seed);
        }
        self.x = self.rng.random_range(-self.init_range..=self.init_range);
        self.needs_reset = false;
        Ok((self.x, Info::new()))
    }
    fn step(&mut self, a: &f64) -> Result<Step<f64>> {
        if !a.is_finite() {
            return Err(Error::InvalidAction {
                env: "ScalarLqr".into(),
                action: a.to_string(),
                space: self.action_space().to_string(),
            });
        }
        if self.needs_reset {
            return Err(Error::NeedsReset { env: "ScalarLqr".into(), when: "before reset()" });
        }
        let reward = -(self.x * self.x + self.action_cost * a * a);
        self.x += a;
        Ok(Step { obs: self.x, reward, terminated: false, truncated: false, info: Info::new() })
    }
}

/// Settings of [`deterministic_policy_gradient`]. Defaults suit [`ScalarLqr`] with [`QuadraticFeatures`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DpgConfig {
    /// Discount factor. Default 0.9.
    pub gamma: f64,
    /// Number of episodes. Default 2000.
    pub episodes: usize,
    /// Steps after which an episode is cut (the critic bootstraps from the last state). Default 20.
    pub max_episode_steps: usize,
    /// Actor learning rate `alpha_theta` (> 0). Default 0.005.
    pub actor_step_size: f64,
    /// Critic learning rate `alpha_w` (> 0). Default 0.01.
    pub critic_step_size: f64,
    /// Standard deviation of the behaviour policy `beta = mu(s, theta) + N(0, sigma^2)` (>= 0). Default 0.5.
    pub exploration_std: f64,
    /// Initial value of every policy parameter. Default 0.
    pub initial_theta: f64,
    /// Initial value of every critic weight. Default 0.
    pub initial_critic: f64,
    /// Run seed. Default 0.
    pub seed: u64,
}

impl Default for DpgConfig {
    fn default() -> Self {
        DpgConfig {
            gamma: 0.9,
            episodes: 2000,
            max_episode_steps: 20,
            actor_step_size: 0.005,
            critic_step_size: 0.01,
            exploration_std: 0.5,
            initial_theta: 0.0,
            initial_critic: 0.0,
            seed: 0,
        }
    }
}

impl DpgConfig {
    /// Check every field; errors name the field and value.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.gamma) {
            return Err(Error::invalid("gamma", format!("{} is outside [0, 1]", self.gamma)));
        }
        if self.episodes == 0 {
            return Err(Error::invalid("episodes", "must be at least 1"));
        }
        if self.max_episode_steps == 0 {
            return Err(Error::invalid("episode length", "max_episode_steps must be at least 1"));
        }
        check_rate("actor_step_size", self.actor_step_size)?;
        check_rate("critic_step_size", self.critic_step_size)?;
        if !(self.exploration_std >= 0.0 && self.exploration_std.is_finite()) {
            return Err(Error::invalid("exploration_std", format!("{} must be >= 0", self.exploration_std)));
        }
        for (what, x) in [("initial_theta", self.initial_theta), ("initial_critic", self.initial_critic)] {
            if !x.is_finite() {
                return Err(Error::invalid(what, format!("{x} is not finite")));
            }
        }
        Ok(())
    }
}

/// What [`deterministic_policy_gradient`] returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DpgResult {
    /// The policy parameters `theta` at the end.
    pub theta: Vec<f64>,
    /// The critic weights `w` at the end.
    pub critic: Vec<f64>,
    /// `theta` after each episode.
    pub theta_per_episode: Vec<Vec<f64>>,
    /// Total reward (of the behaviour policy) of each episode.
    pub episode_rewards: Vec<f64>,
    /// Length of each episode.
    pub episode_lengths: Vec<usize>,
    /// Environment steps taken.
    pub steps: u64,
}

/// A standard normal draw (Box-Muller).
fn standard_normal(rng: &mut Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Off-policy deterministic policy gradient, book Algorithm 10.4, with linear actor and critic.
///
/// Each step: `a_t = mu(s_t, theta_t) + N(0, sigma^2)` (the behaviour policy),
/// `delta_t = r + gamma q(s_{t+1}, mu(s_{t+1}, theta_t), w_t) - q(s_t, a_t, w_t)` (no bootstrap on
/// `terminated`), critic `w_{t+1} = w_t + alpha_w delta_t phi(s_t, a_t)`, then actor
/// `theta_{t+1} = theta_t + alpha_theta psi(s_t) grad_a q(s_t, a, w_{t+1})|_{a = mu(s_t)}`.
/// Errors when the parameters become non-finite (step sizes too large).
pub fn deterministic_policy_gradient<E, S, F>(env: &mut E, features: &F, cfg: &DpgConfig) -> Result<DpgResult>
where
    E: Env<Obs = S, Action = f64>,
    S: Clone,
    F: DpgFeatures<S>,
{
    cfg.validate()?;
    let (pd, cd) = (features.policy_dim(), features.critic_dim());
    let mut theta = vec![cfg.initial_theta; pd];
    let mut w = vec![cfg.initial_critic; cd];
    let (mut psi, mut phi, mut dphi) = (vec![0.0; pd], vec![0.0; cd], vec![0.0; cd]);
    let dense = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut rng = rng_from_seed(derive_seed(cfg.seed, 1));
    let mut out = DpgResult {
        theta: Vec::new(),
        critic: Vec::new(),
        theta_per_episode: Vec::with_capacity(cfg.episodes),
        episode_rewards: Vec::with_capacity(cfg.episodes),
        episode_lengths: Vec::with_capacity(cfg.episodes),
        steps: 0,
    };
    for episode in 0..cfg.episodes {
        let (mut s, _) = env.reset(if episode == 0 { Some(cfg.seed) } else { None })?;
        let (mut total, mut len) = (0.0, 0);
        loop {
            features.write_policy(&s, &mut psi);
            let mu_s = dense(&theta, &psi);
            let a = mu_s + cfg.exploration_std * standard_normal(&mut rng);
            let step = env.step(&a)?;
            total += step.reward;
            len += 1;
            out.steps += 1;
            let q_next = if step.terminated {
                0.0
            } else {
                features.write_policy(&step.obs, &mut psi);
                let mu_next = dense(&theta, &psi);
                features.write_critic(&step.obs, mu_next, &mut phi);
                dense(&w, &phi)
            };
            features.write_critic(&s, a, &mut phi);
            let delta = step.reward + cfg.gamma * q_next - dense(&w, &phi);
            // Critic first: the actor uses w_{t+1}, as in the book.
            w.iter_mut().zip(&phi).for_each(|(wi, p)| *wi += cfg.critic_step_size * delta * p);
            features.write_critic_action_grad(&s, mu_s, &mut dphi);
            let grad_a_q = dense(&w, &dphi);
            features.write_policy(&s, &mut psi);
            theta.iter_mut().zip(&psi).for_each(|(t, p)| *t += cfg.actor_step_size * p * grad_a_q);
            if !theta.iter().chain(&w).all(|x| x.is_finite()) {
                return Err(Error::invalid(
                    "step sizes",
                    format!(
                        "the parameters diverged (non-finite) in episode {}; lower actor_step_size / critic_step_size",
                        episode + 1
                    ),
                ));
            }
            if step.done() || len >= cfg.max_episode_steps {
                break;
            }
            s = step.obs;
        }
        out.episode_rewards.push(total);
        out.episode_lengths.push(len);
        out.theta_per_episode.push(theta.clone());
    }
    out.theta = theta;
    out.critic = w;
    Ok(out)
}
