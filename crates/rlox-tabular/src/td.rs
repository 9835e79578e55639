//! Temporal-difference learning (book chapter 7): TD(0) state values, Sarsa, Expected Sarsa,
//! n-step Sarsa, and Q-learning on-policy (epsilon-greedy behaviour) and off-policy (any behaviour policy).
//!
//! All learners work on any environment with discrete observations and actions. Episodes end on
//! `terminated` (no bootstrap) or `truncated`/`max_episode_steps` (bootstrap from the last state).
//! Exploration is the book's epsilon-greedy: the greedy action (lowest index among ties) with
//! probability `1 - eps (|A|-1)/|A|`, every other action with `eps/|A|`.

use crate::schedule::{EpsilonSchedule, StepSize};
use rand::Rng as _;
use rlox_core::env::Env;
use rlox_core::policy::{argmax_lowest, TabularPolicy};
use rlox_core::seeding::{derive_seed, rng_from_seed, Rng};
use rlox_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// Settings of the TD learners. Defaults are the book's chapter 7 path-finding example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TdConfig {
    /// Discount factor. Default 0.9.
    pub gamma: f64,
    /// Learning rate. Default constant 0.1.
    pub step_size: StepSize,
    /// Exploration of the on-policy learners. Default constant 0.1.
    pub epsilon: EpsilonSchedule,
    /// Number of episodes. Default 500.
    pub episodes: usize,
    /// Steps after which an episode is cut (truncated, with bootstrap). Default 100,000.
    pub max_episode_steps: usize,
    /// n of n-step Sarsa. Default 3.
    pub n: usize,
    /// Initial action values `q_0`. Default 0.
    pub initial_q: f64,
    /// Record the RMSE against the reference every this many steps. Default 100.
    pub record_every: u64,
    /// Run seed. Default 0.
    pub seed: u64,
}

impl Default for TdConfig {
    fn default() -> Self {
        TdConfig {
            gamma: 0.9,
            step_size: StepSize::Constant { alpha: 0.1 },
            epsilon: EpsilonSchedule::constant(0.1),
            episodes: 500,
            max_episode_steps: 100_000,
            n: 3,
            initial_q: 0.0,
            record_every: 100,
            seed: 0,
        }
    }
}

impl TdConfig {
    /// Check every field; errors name the field and value.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.gamma) {
            return Err(Error::invalid("gamma", format!("{} is outside [0, 1]", self.gamma)));
        }
        self.step_size.validate()?;
        self.epsilon.validate()?;
        if self.episodes == 0 {
            return Err(Error::invalid("episodes", "must be at least 1"));
        }
        if self.max_episode_steps == 0 {
            return Err(Error::invalid("episode length", "must be at least 1"));
        }
        if self.n == 0 {
            return Err(Error::invalid("n", "n-step Sarsa needs n >= 1"));
        }
        if self.record_every == 0 {
            return Err(Error::invalid("record_every", "must be at least 1"));
        }
        Ok(())
    }
}

/// The curves a learner records.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LearningHistory {
    /// Total (undiscounted) reward of each episode.
    pub episode_rewards: Vec<f64>,
    /// Length of each episode.
    pub episode_lengths: Vec<usize>,
    /// `(step, RMSE)` of the value estimate against the reference, every `record_every` steps.
    pub rmse: Vec<(u64, f64)>,
    /// Visit counts of each (state, action), row-major.
    pub visits: Vec<u64>,
}

/// What a tabular learner returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LearnResult {
    /// Action values, row-major (empty for TD(0) state values).
    pub q: Vec<f64>,
    /// State values: `max_a q(s, a)`, or the TD(0) estimate.
    pub values: Vec<f64>,
    /// Greedy policy with respect to `q` (empty for TD(0)).
    pub policy: Vec<usize>,
    /// Environment steps taken.
    pub steps: u64,
    /// Learning curves.
    pub history: LearningHistory,
}

/// The TD algorithms that learn action values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TdControl {
    /// Sarsa: target `r + gamma q(s', a')`.
    Sarsa,
    /// Expected Sarsa: target `r + gamma sum_a' pi(a'|s') q(s', a')`.
    ExpectedSarsa,
    /// Q-learning with epsilon-greedy behaviour: target `r + gamma max_a' q(s', a')`.
    QLearning,
}

/// Discrete sizes of an environment, or an error naming the env.
pub fn discrete_sizes<E: Env>(env: &E) -> Result<(usize, usize)> {
    match (env.observation_space().as_discrete(), env.action_space().as_discrete()) {
        (Some(o), Some(a)) => Ok((o.n, a.n)),
        _ => Err(Error::invalid(
            "environment",
            format!(
                "{} has {} observations and {} actions; tabular methods need Discrete for both",
                env.id(),
                env.observation_space(),
                env.action_space()
            ),
        )),
    }
}

/// The book's epsilon-greedy choice.
#[inline]
pub fn epsilon_greedy(q_row: &[f64], epsilon: f64, rng: &mut Rng) -> usize {
    if epsilon > 0.0 && rng.random::<f64>() < epsilon {
        rng.random_range(0..q_row.len())
    } else {
        argmax_lowest(q_row)
    }
}

fn max_row(q: &[f64]) -> f64 {
    q.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// `sqrt(mean((max_a q(s, .) - reference)^2))`.
pub fn rmse_of_q(q: &[f64], n_actions: usize, reference: &[f64]) -> f64 {
    let sq: f64 = q.chunks(n_actions).zip(reference).map(|(row, r)| (max_row(row) - r).powi(2)).sum();
    (sq / reference.len() as f64).sqrt()
}

/// `sqrt(mean((v - reference)^2))`.
pub fn rmse(v: &[f64], reference: &[f64]) -> f64 {
    let sq: f64 = v.iter().zip(reference).map(|(a, b)| (a - b).powi(2)).sum();
    (sq / reference.len() as f64).sqrt()
}

struct Tables<'a> {
    q: Vec<f64>,
    na: usize,
    visits: Vec<u64>,
    step_size: StepSize,
    reference: Option<&'a [f64]>,
    record_every: u64,
    steps: u64,
    history: LearningHistory,
}

impl<'a> Tables<'a> {
    fn new(ns: usize, na: usize, cfg: &TdConfig, reference: Option<&'a [f64]>) -> Result<Self> {
        if let Some(r) = reference {
            if r.len() != ns {
                return Err(Error::invalid("reference values", format!("{} values for {ns} states", r.len())));
            }
        }
        Ok(Tables {
            q: vec![cfg.initial_q; ns * na],
            na,
            visits: vec![0; ns * na],
            step_size: cfg.step_size,
            reference,
            record_every: cfg.record_every,
            steps: 0,
            history: LearningHistory::default(),
        })
    }

    #[inline]
    fn row(&self, s: usize) -> &[f64] {
        &self.q[s * self.na..(s + 1) * self.na]
    }

    /// `q(s,a) += alpha (target - q(s,a))`, counting the visit and the step.
    #[inline]
    fn update(&mut self, s: usize, a: usize, target: f64) {
        let i = s * self.na + a;
        self.visits[i] += 1;
        let alpha = self.step_size.at(self.visits[i]);
        self.q[i] += alpha * (target - self.q[i]);
    }

    #[inline]
    fn tick(&mut self) {
        self.steps += 1;
        if let Some(r) = self.reference {
            if self.steps.is_multiple_of(self.record_every) {
                self.history.rmse.push((self.steps, rmse_of_q(&self.q, self.na, r)));
            }
        }
    }

    fn finish(mut self) -> LearnResult {
        let values: Vec<f64> = self.q.chunks(self.na).map(max_row).collect();
        let policy = self.q.chunks(self.na).map(argmax_lowest).collect();
        self.history.visits = self.visits;
        LearnResult { q: self.q, values, policy, steps: self.steps, history: self.history }
    }
}

fn expected_under_epsilon_greedy(row: &[f64], epsilon: f64) -> f64 {
    let na = row.len() as f64;
    let g = argmax_lowest(row);
    row.iter().enumerate().map(|(a, q)| q * if a == g { 1.0 - epsilon * (na - 1.0) / na } else { epsilon / na }).sum()
}

/// Sarsa, Expected Sarsa or Q-learning with epsilon-greedy behaviour over `cfg.episodes` episodes.
pub fn td_control<E>(env: &mut E, algo: TdControl, cfg: &TdConfig, reference: Option<&[f64]>) -> Result<LearnResult>
where
    E: Env<Obs = usize, Action = usize>,
{
    cfg.validate()?;
    let (ns, na) = discrete_sizes(env)?;
    let mut t = Tables::new(ns, na, cfg, reference)?;
    let mut rng = rng_from_seed(derive_seed(cfg.seed, 1));
    for episode in 0..cfg.episodes {
        let eps = cfg.epsilon.at(episode);
        let (mut s, _) = env.reset(if episode == 0 { Some(cfg.seed) } else { None })?;
        let mut a = epsilon_greedy(t.row(s), eps, &mut rng);
        let (mut total, mut len) = (0.0, 0);
        loop {
            let step = env.step(&a)?;
            let (s2, r) = (step.obs, step.reward);
            total += r;
            len += 1;
            let cut = step.truncated || len >= cfg.max_episode_steps;
            // The next action is drawn (before the update, as the book's Sarsa does) unless the MDP ended.
            let a2 = if step.terminated { a } else { epsilon_greedy(t.row(s2), eps, &mut rng) };
            let bootstrap = if step.terminated {
                0.0
            } else {
                match algo {
                    TdControl::Sarsa => t.row(s2)[a2],
                    TdControl::ExpectedSarsa => expected_under_epsilon_greedy(t.row(s2), eps),
                    TdControl::QLearning => max_row(t.row(s2)),
                }
            };
            t.update(s, a, r + cfg.gamma * bootstrap);
            t.tick();
            if step.terminated || cut {
                break;
            }
            (s, a) = (s2, a2);
        }
        t.history.episode_rewards.push(total);
        t.history.episode_lengths.push(len);
    }
    Ok(t.finish())
}

/// n-step Sarsa: the target sums `n` rewards and bootstraps from `q(s_{t+n}, a_{t+n})`.
pub fn n_step_sarsa<E>(env: &mut E, cfg: &TdConfig, reference: Option<&[f64]>) -> Result<LearnResult>
where
    E: Env<Obs = usize, Action = usize>,
{
    cfg.validate()?;
    let (ns, na) = discrete_sizes(env)?;
    let n = cfg.n;
    let mut t = Tables::new(ns, na, cfg, reference)?;
    let mut rng = rng_from_seed(derive_seed(cfg.seed, 1));
    for episode in 0..cfg.episodes {
        let eps = cfg.epsilon.at(episode);
        let (s0, _) = env.reset(if episode == 0 { Some(cfg.seed) } else { None })?;
        let mut states = vec![s0];
        let mut actions = vec![epsilon_greedy(t.row(s0), eps, &mut rng)];
        let mut rewards: Vec<f64> = Vec::new();
        let mut end = usize::MAX; // T: the time of the terminal (or cut) state
        let mut terminated = false;
        let mut time = 0usize;
        loop {
            if time < end {
                let step = env.step(&actions[time])?;
                rewards.push(step.reward);
                states.push(step.obs);
                t.tick();
                if step.terminated || step.truncated || time + 1 >= cfg.max_episode_steps {
                    end = time + 1;
                    terminated = step.terminated;
                }
                if !step.terminated {
                    // Also drawn at a cut: the on-policy bootstrap uses q(s_T, a_T).
                    actions.push(epsilon_greedy(t.row(step.obs), eps, &mut rng));
                }
            }
            // tau = time - n + 1 is the time whose pair gets its n-step update now.
            if time + 1 >= n {
                let tau = time + 1 - n;
                let upto = (tau + n).min(end);
                let mut g = 0.0;
                for k in (tau..upto).rev() {
                    g = rewards[k] + cfg.gamma * g;
                }
                if tau + n < end {
                    g += cfg.gamma.powi(n as i32) * t.row(states[tau + n])[actions[tau + n]];
                } else if !terminated {
                    // A cut episode bootstraps from q(s_T, a_T).
                    g += cfg.gamma.powi((end - tau) as i32) * t.row(states[end])[actions[end]];
                }
                t.update(states[tau], actions[tau], g);
                if tau + 1 == end {
                    break;
                }
            }
            time += 1;
        }
        t.history.episode_rewards.push(rewards.iter().sum());
        t.history.episode_lengths.push(rewards.len());
    }
    Ok(t.finish())
}

/// Off-policy Q-learning: act with `behaviour` (e.g. uniform), learn the greedy policy.
/// Runs `cfg.episodes` episodes of at most `cfg.max_episode_steps` steps each (the book's example:
/// one episode of 100,000 steps).
pub fn q_learning_off_policy<E>(
    env: &mut E,
    behaviour: &TabularPolicy,
    cfg: &TdConfig,
    reference: Option<&[f64]>,
) -> Result<LearnResult>
where
    E: Env<Obs = usize, Action = usize>,
{
    cfg.validate()?;
    let (ns, na) = discrete_sizes(env)?;
    if behaviour.n_states() != ns || behaviour.n_actions() != na {
        return Err(Error::invalid(
            "behaviour policy",
            format!("{}x{} for an env with {ns} states and {na} actions", behaviour.n_states(), behaviour.n_actions()),
        ));
    }
    let mut t = Tables::new(ns, na, cfg, reference)?;
    let mut rng = rng_from_seed(derive_seed(cfg.seed, 1));
    for episode in 0..cfg.episodes {
        let (mut s, _) = env.reset(if episode == 0 { Some(cfg.seed) } else { None })?;
        let (mut total, mut len) = (0.0, 0);
        loop {
            let a = behaviour.sample(s, &mut rng);
            let step = env.step(&a)?;
            total += step.reward;
            len += 1;
            let bootstrap = if step.terminated { 0.0 } else { max_row(t.row(step.obs)) };
            t.update(s, a, step.reward + cfg.gamma * bootstrap);
            t.tick();
            if step.done() || len >= cfg.max_episode_steps {
                break;
            }
            s = step.obs;
        }
        t.history.episode_rewards.push(total);
        t.history.episode_lengths.push(len);
    }
    Ok(t.finish())
}

/// TD(0) estimation of the state values of `policy`: `v(s) += alpha (r + gamma v(s') - v(s))`.
pub fn td0_state_values<E>(
    env: &mut E,
    policy: &TabularPolicy,
    cfg: &TdConfig,
    reference: Option<&[f64]>,
) -> Result<LearnResult>
where
    E: Env<Obs = usize, Action = usize>,
{
    cfg.validate()?;
    let (ns, na) = discrete_sizes(env)?;
    if policy.n_states() != ns || policy.n_actions() != na {
        return Err(Error::invalid(
            "policy",
            format!("{}x{} for an env with {ns} states and {na} actions", policy.n_states(), policy.n_actions()),
        ));
    }
    // Reuse the tables with one "action" per state for the values.
    let mut t = Tables::new(ns, 1, cfg, reference)?;
    let mut rng = rng_from_seed(derive_seed(cfg.seed, 1));
    for episode in 0..cfg.episodes {
        let (mut s, _) = env.reset(if episode == 0 { Some(cfg.seed) } else { None })?;
        let (mut total, mut len) = (0.0, 0);
        loop {
            let a = policy.sample(s, &mut rng);
            let step = env.step(&a)?;
            total += step.reward;
            len += 1;
            let bootstrap = if step.terminated { 0.0 } else { t.q[step.obs] };
            t.update(s, 0, step.reward + cfg.gamma * bootstrap);
            t.tick();
            if step.done() || len >= cfg.max_episode_steps {
                break;
            }
            s = step.obs;
        }
        t.history.episode_rewards.push(total);
        t.history.episode_lengths.push(len);
    }
    let mut r = t.finish();
    r.policy.clear();
    r.q.clear();
    Ok(r)
}
