//! Tabular learning and planning runs (the book's grid world and Gymnasium's toy-text envs): the
//! learner over an env, the reference values of the RMSE curve, the book-style curves, the `[learn]`
//! settings, and the `[plan]`/`[learn]` job of `rlox train` (the main job's embedded default config).

use crate::config::{Method, TrainConfig};
use anyhow::{bail, Context};
use rlox_core::checkpoint::atomic_write;
use rlox_core::logger::Logger;
use rlox_core::mdp::{Mdp, TabularMdp};
use rlox_core::plot::{LineChart, Series};
use rlox_core::policy::TabularPolicy;
use rlox_core::run::RunDir;
use rlox_envs::gridworld::render::{draw, Figure};
use rlox_envs::gridworld::GridWorld;
use rlox_envs::registry::{EnvOptions, TabularEnv};
use rlox_tabular::bellman::max_abs_diff;
use rlox_tabular::bellman::{closed_form_values, iterative_evaluation, CLOSED_FORM_MAX_STATES};
use rlox_tabular::learn::{evaluate_greedy, learn, GreedyEvaluation, LearnAlgo, LearnSettings};
use rlox_tabular::planning::{policy_iteration, truncated_policy_iteration};
use rlox_tabular::planning::{value_iteration, PlanningOptions};
use rlox_tabular::policy_gradient::{learn_actor_critic, ActorCriticAlgo, PolicyGradientConfig, PolicyGradientResult};
use rlox_tabular::td::LearnResult;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A learning run's environment: the grid world keeps its policy strings and pictures.
pub enum Learner {
    /// The book's grid world.
    Grid(Box<GridWorld>),
    /// Any other tabular env.
    Other(Box<dyn TabularEnv>),
}

impl Learner {
    /// The env `id` with `options` (`gridworld` keeps its policy strings and pictures).
    pub fn new(id: &str, options: EnvOptions) -> anyhow::Result<Self> {
        Ok(match id {
            "gridworld" => Learner::Grid(Box::new(rlox_envs::registry::make_gridworld_from(options)?)),
            _ => Learner::Other(rlox_envs::registry::make(id, options)?.into_tabular("tabular learning")?),
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

/// `[plan]`: which planning algorithm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlanSection {
    /// value-iteration, policy-iteration or truncated-pi.
    pub algo: String,
    /// Discount factor (default 0.9).
    pub gamma: f64,
    /// Stopping tolerance (default 1e-10).
    pub tol: f64,
    /// Evaluation sweeps of truncated-pi (default 3).
    pub sweeps: usize,
}

impl Default for PlanSection {
    fn default() -> Self {
        PlanSection { algo: "value-iteration".into(), gamma: 0.9, tol: 1e-10, sweeps: 3 }
    }
}

/// Run the planning/learning job of `cfg` (its method is [`Method::Tabular`]); returns the summary
/// (also written to `summary.json`).
pub fn run_tabular(cfg: &TrainConfig) -> anyhow::Result<Value> {
    let Method::Tabular { plan, learn: learn_spec } = &cfg.method else {
        bail!("not a tabular job");
    };
    if plan.is_none() && learn_spec.is_none() {
        bail!("the config has neither a [plan] nor a [learn] table: nothing to do");
    }
    let seed = cfg.run.seed;
    let mut learner = Learner::new(&cfg.env.id, cfg.env.options()?)?;
    // Validate the learning settings before creating anything on disk.
    let learn_settings = learn_spec.as_ref().map(|l| l.settings(seed)).transpose()?;
    let run = RunDir::create(&cfg.run.runs_dir, &cfg.run.name)?;
    cfg.write(&run)?;
    let progress = cfg.run.progress;
    let total_steps = learn_settings.as_ref().map(|s| (s.td.episodes * s.td.max_episode_steps) as u64).unwrap_or(1);
    // Metrics also go to `metrics.parquet` (Hive/Spark-safe, long format), which `rlox sql --table <run dir>`
    // and Spark read directly.
    let mut log = crate::sinks::run_logger(&run, total_steps, progress)?;
    let mdp = learner.mdp()?;
    let mut summary = json!({"run_dir": run.path().display().to_string(), "env": learner.id(), "seed": seed});

    let mut optimal: Option<Vec<f64>> = None;
    if let Some(plan) = plan {
        let o = PlanningOptions { gamma: plan.gamma, tol: plan.tol, ..Default::default() };
        let start = Instant::now();
        let r = match plan.algo.as_str() {
            "value-iteration" => value_iteration(&mdp, &o)?,
            "policy-iteration" => policy_iteration(&mdp, &o)?,
            "truncated-pi" => truncated_policy_iteration(&mdp, plan.sweeps, &o)?,
            other => bail!("[plan] algo '{other}' is not value-iteration, policy-iteration or truncated-pi"),
        };
        for (k, h) in r.history.iter().enumerate() {
            log.log(k as u64 + 1, &[("plan/delta", h.delta)])?;
        }
        if let Learner::Grid(g) = &learner {
            let table = TabularPolicy::deterministic(&r.policy, g.n_actions())?;
            let title = format!("{} (gamma {})", plan.algo, plan.gamma);
            draw(
                g,
                &Figure { policy: Some(table.table()), values: Some(&r.values), title: Some(&title), decimals: 1 },
                &run.plot_path("planned_policy_values.png"),
            )?;
            draw(
                g,
                &Figure { policy: Some(table.table()), values: Some(&r.values), title: Some(&title), decimals: 1 },
                &run.plot_path("planned_policy_values.svg"),
            )?;
        }
        summary["plan"] = json!({
            "algo": plan.algo,
            "iterations": r.iterations,
            "converged": r.converged,
            "seconds": start.elapsed().as_secs_f64(),
            "values": r.values,
            "policy": learner.format_policy(&r.policy),
        });
        optimal = Some(r.values);
    }

    if let (Some(spec), Some(settings)) = (learn_spec, &learn_settings) {
        let gamma = settings.td.gamma;
        let reference = match (&optimal, settings.algo.is_control(), plan) {
            (Some(v), true, Some(p)) if (p.gamma - gamma).abs() < 1e-15 => Reference::Values(v.clone()),
            _ => reference_values(&mdp, settings.algo, gamma)?,
        };
        if let Some(note) = reference.note() {
            tracing::warn!("{note}");
        }
        let start = Instant::now();
        let r = learner.learn(settings, reference.values())?;
        let wall = start.elapsed().as_secs_f64();
        for (step, e) in &r.history.rmse {
            log.log(*step, &[("learn/rmse", *e)])?;
        }
        let mut steps = 0u64;
        for (reward, len) in r.history.episode_rewards.iter().zip(&r.history.episode_lengths) {
            steps += *len as u64;
            log.log(steps, &[("learn/episode_reward", *reward), ("learn/episode_length", *len as f64)])?;
        }
        let files =
            draw_curves(&run.path().join("plots"), &learner, &r, &format!("{} on {}", spec.algo, learner.id()))?;
        let checkpoint = json!({"algo": spec.algo, "n_states": mdp.n_states(), "n_actions": mdp.n_actions(), "q": r.q, "values": r.values, "seed": seed});
        atomic_write(run.checkpoint_path("table.json"), serde_json::to_string(&checkpoint)?.as_bytes())?;
        let mut learned = json!({
            "algo": spec.algo,
            "steps": r.steps,
            "wall_seconds": wall,
            "steps_per_second": r.steps as f64 / wall.max(1e-9),
            "final_rmse": r.history.rmse.last().map(|x| x.1),
            "plots": files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        });
        if settings.algo.is_control() {
            let greedy = TabularPolicy::deterministic(&r.policy, mdp.n_actions())?;
            let gap = match reference.values() {
                Some(optimal) if gamma < 1.0 => Some(max_abs_diff(&closed_form_values(&mdp, &greedy, gamma)?, optimal)),
                _ => None,
            };
            let eval =
                learner.evaluate(&r.policy, spec.eval_episodes, settings.td.max_episode_steps.min(1000), seed)?;
            learned["policy"] = learner.format_policy(&r.policy);
            learned["value_gap_to_optimal"] = json!(gap);
            learned["eval"] = serde_json::to_value(&eval)?;
            log.log(r.steps, &[("eval/mean_return", eval.mean_return)])?;
        }
        summary["learn"] = learned;
    }
    log.flush()?;
    run.write_summary(&summary)?;
    Ok(summary)
}
