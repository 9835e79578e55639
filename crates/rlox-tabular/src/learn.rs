//! One entry point for the model-free tabular learners, selected by name (used by the CLI and the
//! `train` job), plus greedy-policy evaluation.

use crate::monte_carlo::{
    mc_basic, mc_epsilon_greedy, mc_exploring_starts, ExploringStart, McBasicConfig, McEpsilonGreedyConfig,
    McExploringStartsConfig,
};
use crate::schedule::{EpsilonSchedule, StepSize};
use crate::td::{self, discrete_sizes, LearnResult, TdConfig, TdControl};
use rlox_core::env::Env;
use rlox_core::policy::TabularPolicy;
use rlox_core::seeding::{derive_seed, rng_from_seed};
use rlox_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// The model-free algorithms `rlox learn` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LearnAlgo {
    /// TD(0) state values of the uniform policy.
    Td0,
    /// Sarsa.
    Sarsa,
    /// Expected Sarsa.
    ExpectedSarsa,
    /// n-step Sarsa.
    NStepSarsa,
    /// Q-learning with epsilon-greedy behaviour.
    QLearning,
    /// Q-learning from uniform behaviour.
    QLearningOffpolicy,
    /// MC Basic: policy iteration with Monte Carlo estimates from every (state, action).
    McBasic,
    /// MC Exploring Starts.
    McEs,
    /// MC epsilon-greedy.
    McEpsilonGreedy,
}

impl LearnAlgo {
    /// The kebab-case names, for help texts and errors.
    pub const NAMES: &'static [&'static str] = &[
        "mc-basic",
        "mc-es",
        "mc-epsilon-greedy",
        "td0",
        "sarsa",
        "expected-sarsa",
        "n-step-sarsa",
        "q-learning",
        "q-learning-offpolicy",
    ];

    /// Parse a kebab-case name.
    pub fn parse(name: &str) -> Result<Self> {
        serde_json::from_value(serde_json::Value::String(name.to_string())).map_err(|_| Error::Unknown {
            kind: "algorithm",
            name: name.to_string(),
            known: Self::NAMES.join(", "),
        })
    }

    /// Whether the result holds action values and a policy (everything but TD(0)).
    pub fn is_control(self) -> bool {
        self != LearnAlgo::Td0
    }

    /// Whether the algorithm starts episodes in chosen states (needs [`ExploringStart`]).
    pub fn needs_exploring_starts(self) -> bool {
        matches!(self, LearnAlgo::McBasic | LearnAlgo::McEs)
    }
}

/// Settings of a learning run: the algorithm plus the TD settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LearnSettings {
    /// The algorithm. Default off-policy Q-learning (the book's chapter 7 example).
    pub algo: LearnAlgo,
    /// Learning-rate, exploration and length settings.
    pub td: TdConfig,
}

impl Default for LearnSettings {
    fn default() -> Self {
        LearnSettings { algo: LearnAlgo::QLearningOffpolicy, td: TdConfig::default() }
    }
}

/// Run the selected learner. `reference` (optimal values for control, the uniform policy's values
/// for TD(0)) feeds the RMSE curve.
///
/// The Monte Carlo methods read `td.episodes` (MC Basic: its maximum number of policy iterations),
/// `td.max_episode_steps` (the episode length), `td.gamma`, `td.step_size`, `td.epsilon` and `td.seed`.
pub fn learn<E>(env: &mut E, settings: &LearnSettings, reference: Option<&[f64]>) -> Result<LearnResult>
where
    E: Env<Obs = usize, Action = usize> + ExploringStart,
{
    let (ns, na) = discrete_sizes(env)?;
    let cfg = &settings.td;
    match settings.algo {
        LearnAlgo::Td0 => td::td0_state_values(env, &TabularPolicy::uniform(ns, na), cfg, reference),
        LearnAlgo::Sarsa => td::td_control(env, TdControl::Sarsa, cfg, reference),
        LearnAlgo::ExpectedSarsa => td::td_control(env, TdControl::ExpectedSarsa, cfg, reference),
        LearnAlgo::QLearning => td::td_control(env, TdControl::QLearning, cfg, reference),
        LearnAlgo::NStepSarsa => td::n_step_sarsa(env, cfg, reference),
        LearnAlgo::QLearningOffpolicy => {
            td::q_learning_off_policy(env, &TabularPolicy::uniform(ns, na), cfg, reference)
        }
        LearnAlgo::McBasic => {
            let mc = McBasicConfig {
                gamma: cfg.gamma,
                episode_length: cfg.max_episode_steps,
                max_iterations: cfg.episodes,
                seed: cfg.seed,
                ..Default::default()
            };
            Ok(mc_basic(env, &mc, reference)?.learn)
        }
        LearnAlgo::McEs => {
            let mc = McExploringStartsConfig {
                gamma: cfg.gamma,
                episodes: cfg.episodes,
                episode_length: cfg.max_episode_steps,
                step_size: cfg.step_size,
                initial_q: cfg.initial_q,
                seed: cfg.seed,
                ..Default::default()
            };
            Ok(mc_exploring_starts(env, &mc, reference)?.learn)
        }
        LearnAlgo::McEpsilonGreedy => {
            let mc = McEpsilonGreedyConfig {
                gamma: cfg.gamma,
                epsilon: cfg.epsilon,
                episodes: cfg.episodes,
                episode_length: cfg.max_episode_steps,
                step_size: cfg.step_size,
                initial_q: cfg.initial_q,
                seed: cfg.seed,
                ..Default::default()
            };
            Ok(mc_epsilon_greedy(env, &mc, reference)?.learn)
        }
    }
}

/// Result of evaluating a greedy policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GreedyEvaluation {
    /// Episodes run.
    pub episodes: usize,
    /// Mean undiscounted return.
    pub mean_return: f64,
    /// Standard deviation of the return.
    pub std_return: f64,
    /// Mean episode length.
    pub mean_length: f64,
    /// Fraction of episodes with a positive return (FrozenLake's success rate).
    pub success_rate: f64,
}

/// Run `policy` (one action per state) for `episodes` episodes of at most `max_steps` steps.
pub fn evaluate_greedy<E>(
    env: &mut E,
    policy: &[usize],
    episodes: usize,
    max_steps: usize,
    seed: u64,
) -> Result<GreedyEvaluation>
where
    E: Env<Obs = usize, Action = usize>,
{
    if episodes == 0 || max_steps == 0 {
        return Err(Error::invalid("evaluation", "needs at least one episode of at least one step"));
    }
    let _ = rng_from_seed(derive_seed(seed, 2));
    let mut returns = Vec::with_capacity(episodes);
    let mut total_len = 0usize;
    for k in 0..episodes {
        let (mut s, _) = env.reset(if k == 0 { Some(derive_seed(seed, 3)) } else { None })?;
        let mut g = 0.0;
        for _ in 0..max_steps {
            let a = *policy.get(s).ok_or_else(|| Error::invalid("policy", format!("no action for state {s}")))?;
            let step = env.step(&a)?;
            g += step.reward;
            total_len += 1;
            s = step.obs;
            if step.done() {
                break;
            }
        }
        returns.push(g);
    }
    let n = episodes as f64;
    let mean = returns.iter().sum::<f64>() / n;
    let var = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n;
    Ok(GreedyEvaluation {
        episodes,
        mean_return: mean,
        std_return: var.sqrt(),
        mean_length: total_len as f64 / n,
        success_rate: returns.iter().filter(|r| **r > 0.0).count() as f64 / n,
    })
}

/// Helpers to build settings from command-line style values.
impl LearnSettings {
    /// Set a constant learning rate.
    pub fn with_alpha(mut self, alpha: f64) -> Self {
        self.td.step_size = StepSize::Constant { alpha };
        self
    }

    /// Set a constant epsilon.
    pub fn with_epsilon(mut self, epsilon: f64) -> Self {
        self.td.epsilon = EpsilonSchedule::constant(epsilon);
        self
    }
}
