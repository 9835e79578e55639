//! `rlox learn`: model-free tabular learning with book-style curves.

use crate::args::EnvArgs;
use crate::output::{print_json, thin, Format};
use anyhow::bail;
use clap::Args;
use rlox_runner::tabular::{draw_curves, reference_values, LearnSpec, Learner};
use rlox_tabular::learn::LearnAlgo;
use rlox_tabular::policy_gradient::{ActorCriticAlgo, PolicyGradientConfig};
use serde_json::{json, Value};
use std::path::PathBuf;
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
    let mut learner = a.env.learner()?;
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
