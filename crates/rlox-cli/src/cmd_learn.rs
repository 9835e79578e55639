//! `rlox learn`: model-free tabular learning with book-style curves.

use crate::args::EnvArgs;
use crate::output::{print_json, thin, Format};
use anyhow::{bail, Context};
use clap::Args;
use rlox_core::mdp::{Mdp, TabularMdp};
use rlox_core::plot::{LineChart, Series};
use rlox_core::policy::TabularPolicy;
use rlox_envs::gridworld::render::{draw, Figure};
use rlox_envs::gridworld::GridWorld;
use rlox_envs::registry::TabularEnv;
use rlox_tabular::bellman::{closed_form_values, iterative_evaluation, CLOSED_FORM_MAX_STATES};
use rlox_tabular::learn::{evaluate_greedy, learn, GreedyEvaluation, LearnAlgo, LearnSettings};
use rlox_tabular::planning::{value_iteration, PlanningOptions};
use rlox_tabular::policy_gradient::{learn_actor_critic, ActorCriticAlgo, PolicyGradientConfig, PolicyGradientResult};
use rlox_tabular::td::LearnResult;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Arguments of `rlox learn`.
#[derive(Args, Debug)]
pub struct LearnArgs {
    #[command(flatten)]
    env: EnvArgs,
    /// Algorithm: mc-basic, mc-es, mc-epsilon-greedy, td0, sarsa, expected-sarsa, n-step-sarsa, q-learning,
    /// q-learning-offpolicy, reinforce, qac, a2c-tabular, off-policy-ac.
    #[arg(long)]
    algo: String,
    /// Number of episodes.
    #[arg(long, conflicts_with = "steps")]
    episodes: Option<usize>,
    /// One episode of this many steps (td0 and q-learning-offpolicy, the book's long-episode setting).
    #[arg(long)]
    steps: Option<usize>,
    /// Maximum steps per episode (episodes are cut, with bootstrap, after it).
    #[arg(long)]
    episode_length: Option<usize>,
    /// Constant learning rate (Monte Carlo methods average returns unless this is changed from 0.1).
    #[arg(long, default_value_t = 0.1)]
    alpha: f64,
    /// Exploration rate of the on-policy learners (the book's epsilon-greedy).
    #[arg(long, default_value_t = 0.1)]
    epsilon: f64,
    /// Decay epsilon linearly to this value over the episodes (constant when absent).
    #[arg(long)]
    epsilon_final: Option<f64>,
    /// Discount factor.
    #[arg(long, default_value_t = 0.9)]
    gamma: f64,
    /// n of n-step Sarsa.
    #[arg(long, default_value_t = 3)]
    n: usize,
    /// Initial action values.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    initial_q: f64,
    /// Actor learning rate of the policy-gradient methods (default: the algorithm's tuned value).
    #[arg(long)]
    actor_alpha: Option<f64>,
    /// Critic learning rate of the actor-critic methods (default: the algorithm's tuned value).
    #[arg(long)]
    critic_alpha: Option<f64>,
    /// REINFORCE: subtract a learned state-value baseline (the tuned setting uses one).
    #[arg(long)]
    baseline: bool,
    /// Run seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Evaluation episodes of the greedy policy.
    #[arg(long, default_value_t = 100)]
    eval_episodes: usize,
    /// Write the book-style curves (and the policy picture of a grid world) into this directory.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// A learning run's environment: the grid world keeps its policy strings and pictures.
pub enum Learner {
    /// The book's grid world.
    Grid(Box<GridWorld>),
    /// Any other tabular env.
    Other(Box<dyn TabularEnv>),
}

impl Learner {
    /// Build from the env arguments.
    pub fn from_args(env: &EnvArgs) -> anyhow::Result<Self> {
        Ok(match env.gridworld()? {
            Some(g) => Learner::Grid(Box::new(g)),
            None => Learner::Other(env.make()?.into_tabular("tabular learning")?),
        })
    }

    /// The compiled model.
    pub fn mdp(&self) -> anyhow::Result<TabularMdp> {
        Ok(match self {
            Learner::Grid(g) => TabularMdp::from_mdp(g.as_ref())?,
            Learner::Other(e) => TabularMdp::from_mdp(e)?,
        })
    }

    /// Run the learner.
    pub fn learn(&mut self, s: &LearnSettings, reference: Option<&[f64]>) -> anyhow::Result<LearnResult> {
        Ok(match self {
            Learner::Grid(g) => learn(g.as_mut(), s, reference)?,
            Learner::Other(e) => learn(e, s, reference)?,
        })
    }

    /// Run a policy-gradient / actor-critic learner (book chapters 9-10).
    pub fn learn_actor_critic(
        &mut self,
        algo: ActorCriticAlgo,
        cfg: &PolicyGradientConfig,
        reference: Option<&[f64]>,
    ) -> anyhow::Result<PolicyGradientResult> {
        Ok(match self {
            Learner::Grid(g) => learn_actor_critic(g.as_mut(), algo, cfg, reference)?,
            Learner::Other(e) => learn_actor_critic(e, algo, cfg, reference)?,
        })
    }

    /// Evaluate a greedy policy.
    pub fn evaluate(
        &mut self,
        policy: &[usize],
        episodes: usize,
        max_steps: usize,
        seed: u64,
    ) -> anyhow::Result<GreedyEvaluation> {
        Ok(match self {
            Learner::Grid(g) => evaluate_greedy(g.as_mut(), policy, episodes, max_steps, seed)?,
            Learner::Other(e) => evaluate_greedy(e, policy, episodes, max_steps, seed)?,
        })
    }

    /// The policy in the env's format.
    pub fn format_policy(&self, actions: &[usize]) -> Value {
        match self {
            Learner::Grid(g) => Value::String(g.format_policy(actions)),
            Learner::Other(_) => json!(actions),
        }
    }

    /// The env id.
    pub fn id(&self) -> String {
        match self {
            Learner::Grid(_) => "gridworld".into(),
            Learner::Other(e) => e.id().to_string(),
        }
    }
}

/// The values the RMSE curve is measured against, or why there are none.
pub enum Reference {
    /// Optimal values for control, the uniform policy's values for TD(0).
    Values(Vec<f64>),
    /// The values are not defined (gamma 1 on a continuing task, or an undiscounted evaluation that does
    /// not converge): learning runs, the RMSE is skipped, and this says why.
    Undefined(String),
}

impl Reference {
    /// The values, if defined.
    pub fn values(&self) -> Option<&[f64]> {
        match self {
            Reference::Values(v) => Some(v),
            Reference::Undefined(_) => None,
        }
    }

    /// Why there are no values, if so.
    pub fn note(&self) -> Option<&str> {
        match self {
            Reference::Values(_) => None,
            Reference::Undefined(why) => Some(why),
        }
    }
}

/// The reference values for `algo` at `gamma`: optimal values (value iteration) for control, the uniform
/// policy's values for TD(0). With gamma 1 they exist only on an episodic model (terminal states make the
/// undiscounted return finite, as on CliffWalking); otherwise the RMSE is skipped with a note.
pub fn reference_values(mdp: &TabularMdp, algo: LearnAlgo, gamma: f64) -> anyhow::Result<Reference> {
    if gamma == 1.0 && !mdp.has_terminal_states() {
        return Ok(Reference::Undefined(
            "no reference values at gamma 1: the task has no terminal state, so undiscounted values are not \
             defined; the RMSE is not computed"
                .into(),
        ));
    }
    if algo.is_control() {
        let o = PlanningOptions { gamma, tol: 1e-12, keep_history: false, ..Default::default() };
        let r = value_iteration(mdp, &o).context("solving the model for the reference values")?;
        if !r.converged {
            return Ok(Reference::Undefined(format!(
                "no reference values: value iteration at gamma {gamma} did not converge in {} sweeps; the RMSE is \
                 not computed",
                r.iterations
            )));
        }
        return Ok(Reference::Values(r.values));
    }
    let pi = TabularPolicy::uniform(mdp.n_states(), mdp.n_actions());
    if mdp.n_states() <= CLOSED_FORM_MAX_STATES && gamma < 1.0 {
        return Ok(Reference::Values(closed_form_values(mdp, &pi, gamma)?));
    }
    const MAX_SWEEPS: usize = 1_000_000;
    let e = iterative_evaluation(mdp, &pi, gamma, 1e-12, MAX_SWEEPS, None, false)?;
    if !e.converged {
        return Ok(Reference::Undefined(format!(
            "no reference values: evaluating the uniform policy at gamma {gamma} did not converge in {MAX_SWEEPS} \
             sweeps; the RMSE is not computed"
        )));
    }
    Ok(Reference::Values(e.values))
}

/// Draw the learning curves (and a grid world's learned policy) into `dir`; returns the files.
pub fn draw_curves(dir: &Path, learner: &Learner, r: &LearnResult, title: &str) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut files = Vec::new();
    let h = &r.history;
    let per_episode = |name: &str, ys: Vec<f64>, label: &str| LineChart {
        title: format!("{title}: {name}"),
        x_label: "episode index".into(),
        y_label: label.into(),
        series: vec![Series {
            name: name.into(),
            points: ys.iter().enumerate().map(|(i, y)| (i as f64, *y)).collect(),
        }],
    };
    if h.episode_rewards.len() > 1 {
        let p = dir.join("reward_per_episode.png");
        per_episode("total reward", h.episode_rewards.clone(), "total reward").draw(&p, 800, 400)?;
        files.push(p);
        let p = dir.join("length_per_episode.png");
        per_episode("episode length", h.episode_lengths.iter().map(|&l| l as f64).collect(), "episode length")
            .draw(&p, 800, 400)?;
        files.push(p);
    }
    if !h.rmse.is_empty() {
        let p = dir.join("rmse.png");
        LineChart {
            title: format!("{title}: value error"),
            x_label: "step".into(),
            y_label: "RMSE of the value estimate".into(),
            series: vec![Series { name: "RMSE".into(), points: h.rmse.iter().map(|(s, e)| (*s as f64, *e)).collect() }],
        }
        .draw(&p, 800, 400)?;
        files.push(p);
    }
    if let Learner::Grid(g) = learner {
        let p = dir.join("policy_values.png");
        let table =
            if r.policy.is_empty() { None } else { Some(TabularPolicy::deterministic(&r.policy, g.n_actions())?) };
        let fig = Figure {
            policy: table.as_ref().map(|t| t.table()),
            values: Some(&r.values),
            title: Some(title),
            decimals: 1,
        };
        draw(g, &fig, &p)?;
        files.push(p);
    }
    Ok(files)
}

/// The knobs of a learning run, as the command line and the `[learn]` table of a TOML config give them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LearnSpec {
    /// Algorithm name (td0, sarsa, expected-sarsa, n-step-sarsa, q-learning, q-learning-offpolicy).
    pub algo: String,
    /// Number of episodes (default 500 when `steps` is absent).
    pub episodes: Option<usize>,
    /// One episode of this many steps (td0 and q-learning-offpolicy).
    pub steps: Option<usize>,
    /// Maximum steps per episode (default 1000).
    pub episode_length: Option<usize>,
    /// Constant learning rate (default 0.1).
    pub alpha: f64,
    /// Exploration rate (default 0.1).
    pub epsilon: f64,
    /// Final epsilon of a linear decay over the episodes (constant when absent).
    pub epsilon_final: Option<f64>,
    /// Discount factor (default 0.9).
    pub gamma: f64,
    /// n of n-step Sarsa (default 3).
    pub n: usize,
    /// Initial action values (default 0).
    pub initial_q: f64,
    /// Greedy-policy evaluation episodes (default 100).
    pub eval_episodes: usize,
}

impl Default for LearnSpec {
    fn default() -> Self {
        LearnSpec {
            algo: "q-learning-offpolicy".into(),
            episodes: None,
            steps: None,
            episode_length: None,
            alpha: 0.1,
            epsilon: 0.1,
            epsilon_final: None,
            gamma: 0.9,
            n: 3,
            initial_q: 0.0,
            eval_episodes: 100,
        }
    }
}

impl LearnSpec {
    /// The library settings for seed `seed`; errors name the offending option.
    pub fn settings(&self, seed: u64) -> anyhow::Result<LearnSettings> {
        let algo = LearnAlgo::parse(&self.algo)?;
        let mut s = LearnSettings { algo, ..Default::default() }.with_alpha(self.alpha).with_epsilon(self.epsilon);
        s.td.gamma = self.gamma;
        s.td.n = self.n;
        s.td.seed = seed;
        s.td.initial_q = self.initial_q;
        match (self.steps, self.episodes) {
            (Some(_), Some(_)) => bail!("give either episodes or steps, not both"),
            (Some(steps), None) => {
                if !matches!(algo, LearnAlgo::Td0 | LearnAlgo::QLearningOffpolicy) {
                    bail!("steps runs one long episode (td0, q-learning-offpolicy); use episodes for {}", self.algo);
                }
                if self.episode_length.is_some() {
                    bail!("episode_length and steps both set the episode length; give one");
                }
                s.td.episodes = 1;
                s.td.max_episode_steps = steps;
            }
            (None, episodes) => {
                let (default_episodes, default_length) = match algo {
                    // MC Basic: `episodes` bounds the policy iterations; the book's longest episodes are 100 steps.
                    LearnAlgo::McBasic => (100, 100),
                    LearnAlgo::McEs => (10_000, 100),
                    // The book's MC epsilon-greedy: a few iterations of one very long episode each.
                    LearnAlgo::McEpsilonGreedy => (10, 100_000),
                    _ => (500, 1000),
                };
                s.td.episodes = episodes.unwrap_or(default_episodes);
                s.td.max_episode_steps = self.episode_length.unwrap_or(default_length);
            }
        }
        if matches!(algo, LearnAlgo::McBasic | LearnAlgo::McEs | LearnAlgo::McEpsilonGreedy) {
            // Monte Carlo estimates are averages of returns (step 1/n), as in the book.
            s.td.step_size = rlox_tabular::schedule::StepSize::Visits { alpha0: 1.0, power: 1.0 };
            if self.alpha != LearnSpec::default().alpha {
                s.td.step_size = rlox_tabular::schedule::StepSize::Constant { alpha: self.alpha };
            }
        }
        if let Some(end) = self.epsilon_final {
            s.td.epsilon.end = end;
            s.td.epsilon.decay_episodes = s.td.episodes;
        }
        s.td.record_every = (s.td.episodes as u64 * s.td.max_episode_steps as u64 / 2000).clamp(1, 1000);
        s.td.validate()?;
        Ok(s)
    }
}

impl LearnArgs {
    /// The policy-gradient settings: the tuned ones of the algorithm, overridden by the flags given.
    fn policy_gradient_config(&self, algo: ActorCriticAlgo) -> anyhow::Result<PolicyGradientConfig> {
        if self.steps.is_some() {
            bail!("--steps is for td0 and q-learning-offpolicy; use --episodes for {}", self.algo);
        }
        let mut cfg = PolicyGradientConfig::tuned(algo);
        cfg.gamma = self.gamma;
        cfg.seed = self.seed;
        if let Some(e) = self.episodes {
            cfg.episodes = e;
        }
        if let Some(l) = self.episode_length {
            cfg.max_episode_steps = l;
        }
        if let Some(x) = self.actor_alpha {
            cfg.actor_step_size = x;
        }
        if let Some(x) = self.critic_alpha {
            cfg.critic_step_size = x;
        }
        cfg.baseline |= self.baseline;
        cfg.record_every = (cfg.episodes as u64 * cfg.max_episode_steps as u64 / 2000).clamp(1, 1000);
        cfg.validate()?;
        Ok(cfg)
    }

    fn spec(&self) -> LearnSpec {
        LearnSpec {
            algo: self.algo.clone(),
            episodes: self.episodes,
            steps: self.steps,
            episode_length: self.episode_length,
            alpha: self.alpha,
            epsilon: self.epsilon,
            epsilon_final: self.epsilon_final,
            gamma: self.gamma,
            n: self.n,
            initial_q: self.initial_q,
            eval_episodes: self.eval_episodes,
        }
    }
}

/// Run `rlox learn`.
pub fn run(a: LearnArgs) -> anyhow::Result<()> {
    let actor_critic = ActorCriticAlgo::parse(&a.algo).ok();
    if actor_critic.is_none() && LearnAlgo::parse(&a.algo).is_err() {
        bail!(
            "unknown algorithm '{}'; known: {}, {}",
            a.algo,
            LearnAlgo::NAMES.join(", "),
            ActorCriticAlgo::NAMES.join(", ")
        );
    }
    let mut learner = Learner::from_args(&a.env)?;
    let mdp = learner.mdp()?;
    let start = Instant::now();
    let (r, is_control, max_steps, probabilities, reference) = match actor_critic {
        Some(ac) => {
            let cfg = a.policy_gradient_config(ac)?;
            let reference = reference_values(&mdp, LearnAlgo::QLearning, cfg.gamma)?;
            let pg = learner.learn_actor_critic(ac, &cfg, reference.values())?;
            (pg.learn, true, cfg.max_episode_steps, Some(pg.probabilities), reference)
        }
        None => {
            let s = a.spec().settings(a.seed)?;
            let reference = reference_values(&mdp, s.algo, a.gamma)?;
            let r = learner.learn(&s, reference.values())?;
            (r, s.algo.is_control(), s.td.max_episode_steps, None, reference)
        }
    };
    let wall = start.elapsed().as_secs_f64();
    let eval = if is_control {
        Some(learner.evaluate(&r.policy, a.eval_episodes, max_steps.min(1000), a.seed)?)
    } else {
        None
    };
    let plots = match &a.plot {
        Some(dir) => draw_curves(dir, &learner, &r, &format!("{} on {}", a.algo, learner.id()))?,
        None => Vec::new(),
    };
    let h = &r.history;
    match a.format {
        Format::Json => print_json(&json!({
            "env": learner.id(),
            "algo": a.algo,
            "values": r.values,
            "policy": if r.policy.is_empty() { Value::Null } else { learner.format_policy(&r.policy) },
            "q": r.q,
            "steps": r.steps,
            "episodes": h.episode_rewards.len(),
            "wall_seconds": wall,
            "steps_per_second": r.steps as f64 / wall.max(1e-9),
            "final_rmse": h.rmse.last().map(|x| x.1),
            "reference_note": reference.note(),
            "history": {
                "episode_rewards": thin(&h.episode_rewards, 1000),
                "episode_lengths": thin(&h.episode_lengths, 1000),
                "rmse": thin(&h.rmse, 1000),
                "visits": h.visits,
            },
            "eval": eval,
            "probabilities": probabilities,
            "plots": plots.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        })),
        Format::Text => {
            if let Learner::Grid(g) = &learner {
                let policy = if r.policy.is_empty() { None } else { Some(r.policy.as_slice()) };
                print!("{}", g.render_text(policy, Some(&r.values)));
            } else {
                println!("policy: {:?}", r.policy);
            }
            println!("{} steps in {:.2} s ({:.0} steps/s)", r.steps, wall, r.steps as f64 / wall.max(1e-9));
            if let Some(e) = h.rmse.last() {
                println!("final RMSE against the reference: {:.4}", e.1);
            }
            if let Some(note) = reference.note() {
                println!("note: {note}");
            }
            if let Some(e) = eval {
                println!(
                    "greedy policy over {} episodes: mean return {:.3}, success rate {:.3}",
                    e.episodes, e.mean_return, e.success_rate
                );
            }
            for p in plots {
                println!("wrote {}", p.display());
            }
            Ok(())
        }
    }
}
