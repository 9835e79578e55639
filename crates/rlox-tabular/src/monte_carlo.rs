//! Monte Carlo control (book chapter 5): MC Basic, MC Exploring Starts and MC epsilon-greedy.
//!
//! All three replace the model-based policy evaluation of policy iteration by averages of sampled
//! returns, so they need no [`rlox_core::Mdp`], only an environment to play episodes in:
//!
//! * [`mc_basic`] (book Algorithm 5.1) is policy iteration whose evaluation step estimates
//!   `q_pi_k(s, a)` from `episodes_per_pair` episodes of `episode_length` steps started at every
//!   `(s, a)`. It is the clearest statement of the idea and the least sample-efficient. Because every
//!   pair must be started on purpose, the environment must let us put it in any state: the
//!   [`ExploringStart`] trait.
//! * [`mc_exploring_starts`] (book Algorithm 5.2) plays one episode per iteration from a uniformly
//!   drawn `(s, a)`, uses every step of it (first-visit or every-visit) and improves the policy right
//!   after each episode instead of waiting for a full evaluation.
//! * [`mc_epsilon_greedy`] (book Algorithm 5.3) drops exploring starts: an epsilon-greedy policy
//!   visits every pair of one long episode, so any [`Env`] with discrete spaces will do.
//!
//! With a deterministic environment and a deterministic policy one episode per pair gives the exact
//! `L`-step truncated action value, so MC Basic is then exactly policy iteration with a
//! finite-horizon evaluation: `q_k(s, a) = r(s, a) + gamma v^(L-1)_pi_k(s')` where `v^(j)` is `j`
//! Bellman backups from zero. The chapter 5 tests check this to the last bit.
//!
//! Greedy choices break ties toward the lowest action index (after 1e-9), as everywhere in rlox.

use crate::planning::IterationRecord;
use crate::schedule::{EpsilonSchedule, StepSize};
use crate::td::{discrete_sizes, epsilon_greedy, rmse, LearnResult, LearningHistory};
use rand::Rng as _;
use rlox_core::env::Env;
use rlox_core::env::SetState;
use rlox_core::mdp::Mdp;
use rlox_core::policy::argmax_lowest;
use rlox_core::seeding::{derive_seed, rng_from_seed};
use rlox_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// An environment that can start an episode in any state: what "exploring starts" require.
///
/// After `start_at(s)` the next [`Env::step`] acts from `s`, as if `s` had been the observation of a
/// reset. Implemented for the grid world and the toy-text envs; an env that cannot do this (e.g.
/// one with hidden continuous state) cannot run [`mc_basic`] or [`mc_exploring_starts`], and the
/// CLI says so rather than silently starting elsewhere.
pub trait ExploringStart {
    /// Put the environment in `state`; errors when `state` is out of range.
    fn start_at(&mut self, state: usize) -> Result<()>;

    /// Whether `state` is terminal, so that an episode started there has return 0 and cannot be
    /// stepped. Default: no terminal states.
    fn is_terminal(&self, _state: usize) -> bool {
        false
    }
}

/// Every environment whose state can be set and whose model says which states are terminal
/// (the grid world, FrozenLake, CliffWalking, Taxi, and the registry's boxed tabular envs).
impl<T: SetState + Mdp + ?Sized> ExploringStart for T {
    fn start_at(&mut self, state: usize) -> Result<()> {
        self.set_state(&[state as f64])
    }
    fn is_terminal(&self, state: usize) -> bool {
        Mdp::is_terminal(self, state)
    }
}

/// What a Monte Carlo control run returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonteCarloResult {
    /// Final action values, state values, the greedy policy, steps and learning curves
    /// (`history.rmse` holds `(env steps, RMSE of the state values against the reference)` per record).
    /// State values are `max_a q` for MC Basic and Exploring Starts, and the values of the
    /// epsilon-greedy policy (`sum_a pi(a|s) q(s, a)`, with the epsilon of the next episode) for MC
    /// epsilon-greedy, whose `q` estimates that policy.
    pub learn: LearnResult,
    /// One record per iteration of MC Basic, or per `record_every` episodes of the other two:
    /// the state values as above, the greedy policy, the sup-norm change since the previous record and the sup-norm
    /// error against the reference.
    pub iterations: Vec<IterationRecord>,
    /// MC Basic: the policy was stable (greedy in its own action values). The sampling methods have no
    /// stopping rule and report `false`.
    pub converged: bool,
}

fn check_gamma(gamma: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&gamma) {
        return Err(Error::invalid("gamma", format!("{gamma} is outside [0, 1]")));
    }
    Ok(())
}

fn check_at_least_one(what: &str, n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::invalid(what, "must be at least 1"));
    }
    Ok(())
}

fn check_reference(reference: Option<&[f64]>, ns: usize) -> Result<()> {
    match reference {
        Some(r) if r.len() != ns => {
            Err(Error::invalid("reference values", format!("{} values for {ns} states", r.len())))
        }
        _ => Ok(()),
    }
}

fn max_row(row: &[f64]) -> f64 {
    row.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// State values from action values: `max_a q(s, a)` for a greedy policy, or the expectation under the
/// book's epsilon-greedy policy around the greedy action when `epsilon` is given.
fn values_of(q: &[f64], na: usize, epsilon: Option<f64>) -> Vec<f64> {
    match epsilon {
        None => q.chunks(na).map(max_row).collect(),
        Some(eps) => q
            .chunks(na)
            .map(|row| {
                let g = argmax_lowest(row);
                let other = eps / na as f64;
                let best = 1.0 - eps * (na as f64 - 1.0) / na as f64;
                row.iter().enumerate().map(|(a, v)| v * if a == g { best } else { other }).sum()
            })
            .collect(),
    }
}

fn greedy_of(q: &[f64], na: usize) -> Vec<usize> {
    q.chunks(na).map(argmax_lowest).collect()
}

fn sup_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// Shared bookkeeping: the per-record history and the final [`LearnResult`].
struct Recorder<'a> {
    na: usize,
    reference: Option<&'a [f64]>,
    previous: Vec<f64>,
    iterations: Vec<IterationRecord>,
    history: LearningHistory,
}

impl<'a> Recorder<'a> {
    fn new(ns: usize, na: usize, reference: Option<&'a [f64]>) -> Self {
        Recorder {
            na,
            reference,
            previous: vec![0.0; ns],
            iterations: Vec::new(),
            history: LearningHistory { visits: vec![0; ns * na], ..Default::default() },
        }
    }

    fn record(&mut self, q: &[f64], steps: u64, epsilon: Option<f64>) {
        let values = values_of(q, self.na, epsilon);
        let delta = sup_diff(&values, &self.previous);
        let error = self.reference.map(|r| sup_diff(&values, r));
        if let Some(r) = self.reference {
            self.history.rmse.push((steps, rmse(&values, r)));
        }
        self.iterations.push(IterationRecord { values: values.clone(), policy: greedy_of(q, self.na), delta, error });
        self.previous = values;
    }

    fn episode(&mut self, total: f64, len: usize) {
        self.history.episode_rewards.push(total);
        self.history.episode_lengths.push(len);
    }

    fn finish(self, q: Vec<f64>, steps: u64, converged: bool, epsilon: Option<f64>) -> MonteCarloResult {
        let values = values_of(&q, self.na, epsilon);
        let policy = greedy_of(&q, self.na);
        MonteCarloResult {
            learn: LearnResult { q, values, policy, steps, history: self.history },
            iterations: self.iterations,
            converged,
        }
    }
}

/// The discounted return `r_1 + gamma r_2 + ...` accumulated from the end, in the same order as the
/// nested Bellman backups (so deterministic runs match the model-based numbers bit for bit).
fn discounted(rewards: &[f64], gamma: f64) -> f64 {
    rewards.iter().rev().fold(0.0, |g, r| r + gamma * g)
}

// ---------------------------------------------------------------------------------------------
// MC Basic
// ---------------------------------------------------------------------------------------------

/// Settings of [`mc_basic`]. Defaults follow the book's chapter 5 grid-world examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McBasicConfig {
    /// Discount factor, in [0, 1]. Default 0.9 (the book's).
    pub gamma: f64,
    /// Steps per episode, counting the first action: 1 means `q(s, a) = r(s, a)`. Default 100, the
    /// longest of the book's Fig 5.4, where the truncation error `gamma^100 max|r| / (1 - gamma)`
    /// is below 3e-4.
    pub episode_length: usize,
    /// Episodes per `(s, a)` and iteration. Default 1: with a deterministic env and policy every
    /// episode from a pair is the same (the book's remark); raise it for stochastic envs.
    pub episodes_per_pair: usize,
    /// Give up after this many policy-iteration steps. Default 100.
    pub max_iterations: usize,
    /// `pi_0`, one action per state. Default: action 0 in every state (as in rlox's planning).
    pub initial_policy: Option<Vec<usize>>,
    /// Seed passed to the env's first `reset` (for stochastic envs). Default 0.
    pub seed: u64,
}

impl Default for McBasicConfig {
    fn default() -> Self {
        McBasicConfig {
            gamma: 0.9,
            episode_length: 100,
            episodes_per_pair: 1,
            max_iterations: 100,
            initial_policy: None,
            seed: 0,
        }
    }
}

impl McBasicConfig {
    /// Check every field; errors name the field and value.
    pub fn validate(&self) -> Result<()> {
        check_gamma(self.gamma)?;
        check_at_least_one("episode length", self.episode_length)?;
        check_at_least_one("episodes per (state, action) pair", self.episodes_per_pair)?;
        check_at_least_one("max_iterations", self.max_iterations)?;
        Ok(())
    }
}

/// MC Basic (book Algorithm 5.1): policy iteration with Monte Carlo action-value estimates.
///
/// Each iteration `k` estimates `q_k(s, a)` as the mean discounted return of `episodes_per_pair`
/// episodes that take `a` in `s` and then follow `pi_k` for `episode_length - 1` more steps (or until
/// the env terminates), then sets `pi_{k+1}` greedy in `q_k`. It stops when `pi_{k+1} = pi_k`.
/// Each iteration estimates `q` afresh, as the book's algorithm does: old returns belong to old policies.
///
/// `reference` (state values, e.g. from value iteration) adds error curves to the history.
pub fn mc_basic<E>(env: &mut E, cfg: &McBasicConfig, reference: Option<&[f64]>) -> Result<MonteCarloResult>
where
    E: Env<Obs = usize, Action = usize> + ExploringStart,
{
    cfg.validate()?;
    let (ns, na) = discrete_sizes(env)?;
    check_reference(reference, ns)?;
    let mut actions = match &cfg.initial_policy {
        Some(p) if p.len() != ns || p.iter().any(|&a| a >= na) => {
            return Err(Error::invalid("initial policy", format!("needs one action < {na} for each of {ns} states")))
        }
        Some(p) => p.clone(),
        None => vec![0; ns],
    };
    env.reset(Some(cfg.seed))?;
    let mut rec = Recorder::new(ns, na, reference);
    let mut q = vec![0.0; ns * na];
    let mut rewards = Vec::with_capacity(cfg.episode_length);
    let mut steps = 0u64;
    let mut converged = false;
    for _ in 0..cfg.max_iterations {
        for s in 0..ns {
            for a in 0..na {
                let i = s * na + a;
                q[i] = 0.0;
                if env.is_terminal(s) {
                    continue;
                }
                for e in 0..cfg.episodes_per_pair {
                    rewards.clear();
                    env.start_at(s)?;
                    let mut action = a;
                    while rewards.len() < cfg.episode_length {
                        let step = env.step(&action)?;
                        rewards.push(step.reward);
                        if step.done() {
                            break;
                        }
                        action = actions[step.obs];
                    }
                    steps += rewards.len() as u64;
                    rec.history.visits[i] += 1;
                    rec.episode(rewards.iter().sum(), rewards.len());
                    // Incremental mean: exact (no rounding) when all returns are equal.
                    q[i] += (discounted(&rewards, cfg.gamma) - q[i]) / (e + 1) as f64;
                }
            }
        }
        rec.record(&q, steps, None);
        let improved = greedy_of(&q, na);
        let stable = improved == actions;
        actions = improved;
        if stable {
            converged = true;
            break;
        }
    }
    Ok(rec.finish(q, steps, converged, None))
}

// ---------------------------------------------------------------------------------------------
// MC Exploring Starts
// ---------------------------------------------------------------------------------------------

/// Which visits of a pair in an episode update its estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Visit {
    /// Only the first visit: returns of one episode are then independent samples.
    First,
    /// Every visit: more (correlated) samples per episode; what the book uses for long episodes.
    Every,
}

/// Settings of [`mc_exploring_starts`]. The book gives the algorithm but no numbers for it; the
/// defaults are ours and say why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McExploringStartsConfig {
    /// Discount factor, in [0, 1]. Default 0.9 (the book's grid world).
    pub gamma: f64,
    /// Number of episodes (one policy improvement after each). Default 10,000: about 80 starts per
    /// pair of the 5x5 grid world.
    pub episodes: usize,
    /// Steps per episode. Default 100, as for MC Basic (truncation error below 3e-4 at gamma 0.9).
    pub episode_length: usize,
    /// First-visit or every-visit averaging. Default first-visit (Algorithm 5.2 as in Sutton-Barto).
    pub visit: Visit,
    /// Update `q += alpha_n (g - q)` at the n-th update of a pair. Default `1/n`: the plain average
    /// of the returns, as the book's `Returns(s, a) / Num(s, a)`.
    pub step_size: StepSize,
    /// Initial action values. Default 0.
    pub initial_q: f64,
    /// Record values and the RMSE every this many episodes. Default 100.
    pub record_every: usize,
    /// Run seed (start pairs, env). Default 0.
    pub seed: u64,
}

impl Default for McExploringStartsConfig {
    fn default() -> Self {
        McExploringStartsConfig {
            gamma: 0.9,
            episodes: 10_000,
            episode_length: 100,
            visit: Visit::First,
            step_size: StepSize::Visits { alpha0: 1.0, power: 1.0 },
            initial_q: 0.0,
            record_every: 100,
            seed: 0,
        }
    }
}

impl McExploringStartsConfig {
    /// Check every field; errors name the field and value.
    pub fn validate(&self) -> Result<()> {
        check_gamma(self.gamma)?;
        check_at_least_one("episodes", self.episodes)?;
        check_at_least_one("episode length", self.episode_length)?;
        check_at_least_one("record_every", self.record_every)?;
        self.step_size.validate()?;
        if !self.initial_q.is_finite() {
            return Err(Error::invalid("initial_q", format!("{} is not finite", self.initial_q)));
        }
        Ok(())
    }
}

/// One episode's `(s, a, r)` and the backward Monte Carlo update shared by ES and epsilon-greedy.
struct Episode {
    states: Vec<u32>,
    actions: Vec<u32>,
    rewards: Vec<f64>,
    first: Vec<usize>,
}

impl Episode {
    fn new(n_pairs: usize) -> Self {
        Episode { states: Vec::new(), actions: Vec::new(), rewards: Vec::new(), first: vec![usize::MAX; n_pairs] }
    }

    fn clear(&mut self) {
        self.states.clear();
        self.actions.clear();
        self.rewards.clear();
    }

    fn push(&mut self, s: usize, a: usize, r: f64) {
        self.states.push(s as u32);
        self.actions.push(a as u32);
        self.rewards.push(r);
    }

    /// `g <- r_{t+1} + gamma g` from the end; update `q(s_t, a_t)` at (first) visits.
    /// `counts` drive the step size (`alpha_n` at the n-th update), `visits` only count for the history.
    #[allow(clippy::too_many_arguments)]
    fn update(
        &mut self,
        q: &mut [f64],
        counts: &mut [u64],
        visits: &mut [u64],
        na: usize,
        gamma: f64,
        visit: Visit,
        alpha: &StepSize,
    ) {
        let pair = |t: usize| self.states[t] as usize * na + self.actions[t] as usize;
        if visit == Visit::First {
            for t in (0..self.rewards.len()).rev() {
                self.first[pair(t)] = t;
            }
        }
        let mut g = 0.0;
        for t in (0..self.rewards.len()).rev() {
            g = self.rewards[t] + gamma * g;
            let i = pair(t);
            if visit == Visit::Every || self.first[i] == t {
                visits[i] += 1;
                counts[i] += 1;
                q[i] += alpha.at(counts[i]) * (g - q[i]);
            }
        }
        if visit == Visit::First {
            for t in 0..self.rewards.len() {
                self.first[pair(t)] = usize::MAX;
            }
        }
    }
}

/// MC Exploring Starts (book Algorithm 5.2).
///
/// Every episode starts from a uniformly drawn pair `(s_0, a_0)` (terminal states excluded), follows
/// the greedy policy of the current `q` for `episode_length` steps (or until termination), then
/// updates `q` backward with the returns of the (first or every) visits and makes the policy greedy
/// again. Exploring starts are what let a greedy, never-exploring policy still try every action.
pub fn mc_exploring_starts<E>(
    env: &mut E,
    cfg: &McExploringStartsConfig,
    reference: Option<&[f64]>,
) -> Result<MonteCarloResult>
where
    E: Env<Obs = usize, Action = usize> + ExploringStart,
{
    cfg.validate()?;
    let (ns, na) = discrete_sizes(env)?;
    check_reference(reference, ns)?;
    let starts: Vec<usize> = (0..ns).filter(|&s| !env.is_terminal(s)).collect();
    if starts.is_empty() {
        return Err(Error::invalid("environment", format!("{} has no non-terminal state to start from", env.id())));
    }
    env.reset(Some(cfg.seed))?;
    let mut rng = rng_from_seed(derive_seed(cfg.seed, 1));
    let mut rec = Recorder::new(ns, na, reference);
    let mut q = vec![cfg.initial_q; ns * na];
    let mut ep = Episode::new(ns * na);
    let mut counts = vec![0u64; ns * na];
    let mut steps = 0u64;
    for episode in 0..cfg.episodes {
        ep.clear();
        let s0 = starts[rng.random_range(0..starts.len())];
        let a0 = rng.random_range(0..na);
        env.start_at(s0)?;
        let (mut s, mut a) = (s0, a0);
        while ep.rewards.len() < cfg.episode_length {
            let step = env.step(&a)?;
            ep.push(s, a, step.reward);
            if step.done() {
                break;
            }
            s = step.obs;
            a = argmax_lowest(&q[s * na..(s + 1) * na]);
        }
        steps += ep.rewards.len() as u64;
        rec.episode(ep.rewards.iter().sum(), ep.rewards.len());
        ep.update(&mut q, &mut counts, &mut rec.history.visits, na, cfg.gamma, cfg.visit, &cfg.step_size);
        if (episode + 1) % cfg.record_every == 0 || episode + 1 == cfg.episodes {
            rec.record(&q, steps, None);
        }
    }
    Ok(rec.finish(q, steps, false, None))
}

// ---------------------------------------------------------------------------------------------
// MC epsilon-greedy
// ---------------------------------------------------------------------------------------------

/// Settings of [`mc_epsilon_greedy`]. Defaults are the book's chapter 5 example (Fig 5.6):
/// epsilon 0.5, the uniform initial policy, one episode of a million steps per iteration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McEpsilonGreedyConfig {
    /// Discount factor, in [0, 1]. Default 0.9.
    pub gamma: f64,
    /// Exploration, per episode (= iteration). Default constant 0.5.
    pub epsilon: EpsilonSchedule,
    /// Number of episodes, one policy improvement after each. Default 10 (the book shows the first
    /// iterations; ten make the estimates settle).
    pub episodes: usize,
    /// Steps per episode (an episode also ends when the env terminates). Default 1,000,000.
    pub episode_length: usize,
    /// First-visit or every-visit. Default every-visit (the book's: with one long episode, first
    /// visits would waste almost all of it).
    pub visit: Visit,
    /// `q += alpha_n (g - q)` at the n-th update of a pair. Default `1/n`, the average of all returns
    /// seen so far (the book's `Returns / Num`, kept across episodes).
    pub step_size: StepSize,
    /// Forget the returns of earlier episodes when a new one starts (only the step-size counters are
    /// reset: a pair's first update in the episode overwrites its estimate, unvisited pairs keep theirs).
    /// Each iteration then evaluates its own policy, as in MC Basic, and the method behaves like policy
    /// iteration over epsilon-greedy policies. Default false: the book's pseudo-code initialises
    /// `Returns` and `Num` once, so early returns of worse policies weigh on the averages (and slow the
    /// convergence as `1/k`).
    pub restart_estimates: bool,
    /// The first episode follows the uniform policy (the book's `pi_0`). Default true; when false it is
    /// epsilon-greedy in `initial_q` (ties to action 0).
    pub uniform_first_episode: bool,
    /// Initial action values. Default 0.
    pub initial_q: f64,
    /// Record values and the RMSE every this many episodes. Default 1.
    pub record_every: usize,
    /// Run seed (env resets, exploration). Default 0.
    pub seed: u64,
}

impl Default for McEpsilonGreedyConfig {
    fn default() -> Self {
        McEpsilonGreedyConfig {
            gamma: 0.9,
            epsilon: EpsilonSchedule::constant(0.5),
            episodes: 10,
            episode_length: 1_000_000,
            visit: Visit::Every,
            step_size: StepSize::Visits { alpha0: 1.0, power: 1.0 },
            restart_estimates: false,
            uniform_first_episode: true,
            initial_q: 0.0,
            record_every: 1,
            seed: 0,
        }
    }
}

impl McEpsilonGreedyConfig {
    /// Check every field; errors name the field and value.
    pub fn validate(&self) -> Result<()> {
        check_gamma(self.gamma)?;
        self.epsilon.validate()?;
        check_at_least_one("episodes", self.episodes)?;
        check_at_least_one("episode length", self.episode_length)?;
        check_at_least_one("record_every", self.record_every)?;
        self.step_size.validate()?;
        if !self.initial_q.is_finite() {
            return Err(Error::invalid("initial_q", format!("{} is not finite", self.initial_q)));
        }
        Ok(())
    }
}

/// MC epsilon-greedy (book Algorithm 5.3).
///
/// Each episode starts where `env.reset` puts it (the grid world without a start cell: a uniformly
/// random cell), acts with the book's epsilon-greedy policy of the `q` at the episode's start (greedy
/// action `1 - eps (|A|-1)/|A|`, each other `eps/|A|`) for `episode_length` steps, then updates `q`
/// backward with the returns and so improves the policy. No exploring starts are needed: with
/// `eps > 0` a long episode visits every pair many times. The learned `q` estimates the values of the
/// epsilon-greedy policy, so the greedy policy is optimal among epsilon-greedy ones, not necessarily
/// optimal (the book's point about large epsilon); build the acting policy with
/// [`rlox_core::TabularPolicy::epsilon_greedy`] from `learn.policy`.
pub fn mc_epsilon_greedy<E>(
    env: &mut E,
    cfg: &McEpsilonGreedyConfig,
    reference: Option<&[f64]>,
) -> Result<MonteCarloResult>
where
    E: Env<Obs = usize, Action = usize>,
{
    cfg.validate()?;
    let (ns, na) = discrete_sizes(env)?;
    check_reference(reference, ns)?;
    let mut rng = rng_from_seed(derive_seed(cfg.seed, 1));
    let mut rec = Recorder::new(ns, na, reference);
    let mut q = vec![cfg.initial_q; ns * na];
    let mut ep = Episode::new(ns * na);
    let mut counts = vec![0u64; ns * na];
    let mut steps = 0u64;
    for episode in 0..cfg.episodes {
        let eps = if episode == 0 && cfg.uniform_first_episode { 1.0 } else { cfg.epsilon.at(episode) };
        if cfg.restart_estimates {
            // The first update of each pair in this episode then overwrites q (alpha_1 = 1 for 1/n).
            counts.iter_mut().for_each(|c| *c = 0);
        }
        ep.clear();
        let (mut s, _) = env.reset(if episode == 0 { Some(cfg.seed) } else { None })?;
        while ep.rewards.len() < cfg.episode_length {
            let a = epsilon_greedy(&q[s * na..(s + 1) * na], eps, &mut rng);
            let step = env.step(&a)?;
            ep.push(s, a, step.reward);
            if step.done() {
                break;
            }
            s = step.obs;
        }
        steps += ep.rewards.len() as u64;
        rec.episode(ep.rewards.iter().sum(), ep.rewards.len());
        ep.update(&mut q, &mut counts, &mut rec.history.visits, na, cfg.gamma, cfg.visit, &cfg.step_size);
        if (episode + 1) % cfg.record_every == 0 || episode + 1 == cfg.episodes {
            rec.record(&q, steps, Some(cfg.epsilon.at(episode + 1)));
        }
    }
    Ok(rec.finish(q, steps, false, Some(cfg.epsilon.at(cfg.episodes))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discounted_return_matches_forward_sum() {
        let r = [1.0, -1.0, 0.5];
        assert!((discounted(&r, 0.9) - (1.0 - 0.9 + 0.5 * 0.81)).abs() < 1e-15);
        assert_eq!(discounted(&[], 0.9), 0.0);
    }

    #[test]
    fn first_visit_counts_each_pair_once_per_episode() {
        let mut ep = Episode::new(4);
        // (s, a) = (0, 0) twice, then (1, 1).
        ep.push(0, 0, 1.0);
        ep.push(0, 0, 1.0);
        ep.push(1, 1, 1.0);
        let (mut q, mut visits) = (vec![0.0; 4], vec![0; 4]);
        let avg = StepSize::Visits { alpha0: 1.0, power: 1.0 };
        ep.update(&mut q, &mut [0; 4], &mut visits, 2, 0.5, Visit::First, &avg);
        assert_eq!(visits, vec![1, 0, 0, 1]);
        assert_eq!(q[0], 1.0 + 0.5 + 0.25);
        let (mut q, mut visits) = (vec![0.0; 4], vec![0; 4]);
        ep.update(&mut q, &mut [0; 4], &mut visits, 2, 0.5, Visit::Every, &avg);
        assert_eq!(visits, vec![2, 0, 0, 1]);
        assert_eq!(q[0], (1.75 + 1.5) / 2.0);
    }
}
