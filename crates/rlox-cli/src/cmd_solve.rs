//! `rlox solve`: policy evaluation and planning on any environment with a model.

use crate::args::EnvArgs;
use crate::output::{print_json, Format};
use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use rlox_core::mdp::{Mdp, TabularMdp};
use rlox_core::policy::TabularPolicy;
use rlox_envs::gridworld::render::{draw, Figure};
use rlox_envs::gridworld::GridWorld;
use rlox_envs::registry::TabularEnv;
use rlox_tabular::bellman::{closed_form_values, greedy_actions, iterative_evaluation, optimality_residual, q_from_v};
use rlox_tabular::planning::{
    policy_iteration, truncated_policy_iteration, value_iteration, IterationRecord, PlanningOptions, PlanningResult,
};
use serde_json::{json, Value};
use std::path::PathBuf;

/// Which computation to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Algo {
    /// Evaluate the policy given with --policy.
    Evaluate,
    /// Value iteration.
    ValueIteration,
    /// Policy iteration.
    PolicyIteration,
    /// Truncated policy iteration with --sweeps evaluation sweeps.
    TruncatedPi,
}

/// How `evaluate` solves the Bellman equation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Method {
    /// Solve (I - gamma P_pi) v = r_pi.
    #[default]
    ClosedForm,
    /// Iterate v <- r_pi + gamma P_pi v (the history holds every iterate).
    Iterative,
}

/// Arguments of `rlox solve`.
#[derive(Args, Debug)]
pub struct SolveArgs {
    #[command(flatten)]
    env: EnvArgs,
    /// The algorithm.
    #[arg(long, value_enum)]
    algo: Algo,
    /// Discount factor.
    #[arg(long, default_value_t = 0.9)]
    gamma: f64,
    /// Policy to evaluate: grid rows separated by '/', one letter per cell (U R D L S; 1-D grids L S R);
    /// for other envs a comma-separated list of actions.
    #[arg(long)]
    policy: Option<String>,
    /// Initial policy of (truncated) policy iteration, same format as --policy.
    #[arg(long)]
    initial_policy: Option<String>,
    /// Evaluation sweeps per iteration of truncated policy iteration.
    #[arg(long, default_value_t = 3)]
    sweeps: usize,
    /// Stop when ||v_k - v_{k-1}||_inf < tol.
    #[arg(long, default_value_t = 1e-10)]
    tol: f64,
    /// Give up after this many iterations (an error: the setting diverges or converges too slowly).
    #[arg(long, default_value_t = 100_000)]
    max_iterations: usize,
    /// How `evaluate` solves the Bellman equation.
    #[arg(long, value_enum, default_value_t)]
    method: Method,
    /// Record ||v_k - v*||_inf in the history (solves the MDP once more first).
    #[arg(long)]
    track_error: bool,
    /// Leave the per-iteration history out of the JSON output.
    #[arg(long)]
    no_history: bool,
    /// Draw the policy and values (grid world only; PNG or SVG by extension).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// The environment being solved: the grid world keeps its policy-string format and pictures.
enum Target {
    Grid(Box<GridWorld>),
    Other(Box<dyn TabularEnv>),
}

impl Target {
    fn mdp(&self) -> anyhow::Result<TabularMdp> {
        Ok(match self {
            Target::Grid(g) => TabularMdp::from_mdp(g.as_ref())?,
            Target::Other(e) => TabularMdp::from_mdp(e)?,
        })
    }

    fn parse_policy(&self, text: &str, n_states: usize, n_actions: usize) -> anyhow::Result<Vec<usize>> {
        match self {
            Target::Grid(g) => Ok(g.parse_policy(text)?),
            Target::Other(_) => {
                let actions: Vec<usize> = text
                    .split(',')
                    .enumerate()
                    .map(|(i, t)| {
                        t.trim()
                            .parse()
                            .with_context(|| format!("policy entry {} '{}' is not an action index", i + 1, t.trim()))
                    })
                    .collect::<anyhow::Result<_>>()?;
                if actions.len() != n_states {
                    bail!("policy has {} actions; the environment has {n_states} states", actions.len());
                }
                if let Some((s, a)) = actions.iter().enumerate().find(|(_, &a)| a >= n_actions) {
                    bail!("policy entry {} is action {a}; the environment has {n_actions} actions", s + 1);
                }
                Ok(actions)
            }
        }
    }

    fn format_policy(&self, actions: &[usize]) -> Value {
        match self {
            Target::Grid(g) => Value::String(g.format_policy(actions)),
            Target::Other(_) => json!(actions),
        }
    }
}

fn history_json(target: &Target, history: &[IterationRecord]) -> Value {
    Value::Array(
        history
            .iter()
            .enumerate()
            .map(|(k, h)| {
                json!({
                    "iteration": k + 1,
                    "values": h.values,
                    "policy": target.format_policy(&h.policy),
                    "delta": h.delta,
                    "error": h.error,
                })
            })
            .collect(),
    )
}

/// Run `rlox solve`.
pub fn run(a: SolveArgs) -> anyhow::Result<()> {
    let target = match a.env.gridworld()? {
        Some(g) => Target::Grid(Box::new(g)),
        None => Target::Other(a.env.make()?.into_tabular("planning")?),
    };
    let mdp = target.mdp()?;
    let (ns, na) = (mdp.n_states(), mdp.n_actions());
    let mut options = PlanningOptions {
        gamma: a.gamma,
        tol: a.tol,
        max_iterations: a.max_iterations,
        keep_history: !a.no_history || a.plot.is_some(),
        ..Default::default()
    };
    if let Some(p) = &a.initial_policy {
        options.initial_policy = Some(target.parse_policy(p, ns, na)?);
    }
    if a.track_error {
        let reference = value_iteration(&mdp, &PlanningOptions { keep_history: false, tol: 1e-12, ..options.clone() })?;
        options.reference = Some(reference.values);
    }

    let (values, policy, iterations, converged, history): (Vec<f64>, Vec<usize>, usize, bool, Value) = match a.algo {
        Algo::Evaluate => {
            let text = a.policy.as_deref().context("--algo evaluate needs --policy")?;
            let actions = target.parse_policy(text, ns, na)?;
            let pi = TabularPolicy::deterministic(&actions, na)?;
            match a.method {
                Method::ClosedForm => (closed_form_values(&mdp, &pi, a.gamma)?, actions, 0, true, Value::Null),
                Method::Iterative => {
                    let e = iterative_evaluation(&mdp, &pi, a.gamma, a.tol, a.max_iterations, None, !a.no_history)?;
                    if !e.converged {
                        bail!(
                            "policy evaluation did not converge in {} sweeps (last change {:.3e}); with gamma = {} the values may diverge",
                            e.iterations,
                            e.deltas.last().copied().unwrap_or(f64::NAN),
                            a.gamma
                        );
                    }
                    let hist = Value::Array(
                        e.history
                            .iter()
                            .zip(&e.deltas)
                            .enumerate()
                            .map(|(k, (v, d))| json!({"iteration": k + 1, "values": v, "policy": target.format_policy(&actions), "delta": d}))
                            .collect(),
                    );
                    (e.values, actions, e.iterations, true, hist)
                }
            }
        }
        Algo::ValueIteration | Algo::PolicyIteration | Algo::TruncatedPi => {
            if a.policy.is_some() {
                bail!("--policy is for --algo evaluate; planning starts from --initial-policy");
            }
            let r: PlanningResult = match a.algo {
                Algo::ValueIteration => value_iteration(&mdp, &options)?,
                Algo::PolicyIteration => policy_iteration(&mdp, &options)?,
                _ => truncated_policy_iteration(&mdp, a.sweeps, &options)?,
            };
            if !r.converged {
                bail!("{:?} did not converge within {} iterations (tol {})", a.algo, a.max_iterations, a.tol);
            }
            let h = if a.no_history { Value::Null } else { history_json(&target, &r.history) };
            (r.values, r.policy, r.iterations, r.converged, h)
        }
    };
    let q = q_from_v(&mdp, &values, a.gamma);
    let residual = optimality_residual(&mdp, &values, a.gamma);
    let greedy = greedy_actions(&q, na);

    if let (Some(path), Target::Grid(g)) = (&a.plot, &target) {
        let table = TabularPolicy::deterministic(&policy, na)?;
        let title = format!("{:?} (gamma {})", a.algo, a.gamma);
        draw(g, &Figure { policy: Some(table.table()), values: Some(&values), title: Some(&title), decimals: 1 }, path)
            .with_context(|| format!("drawing {}", path.display()))?;
    } else if a.plot.is_some() {
        bail!("--plot draws grid worlds only");
    }

    match a.format {
        Format::Json => print_json(&json!({
            "env": a.env.env,
            "algo": format!("{:?}", a.algo),
            "gamma": a.gamma,
            "values": values,
            "policy": target.format_policy(&policy),
            "greedy_policy": target.format_policy(&greedy),
            "q": q,
            "iterations": iterations,
            "converged": converged,
            "bellman_optimality_residual": residual,
            "history": history,
        })),
        Format::Text => {
            match &target {
                Target::Grid(g) => print!("{}", g.render_text(Some(&policy), Some(&values))),
                Target::Other(_) => {
                    println!("values: {:?}", crate::output::round_vec(&values, 4));
                    println!("policy: {policy:?}");
                }
            }
            println!("iterations: {iterations}, Bellman optimality residual: {residual:.3e}");
            if let Some(p) = &a.plot {
                println!("wrote {}", p.display());
            }
            Ok(())
        }
    }
}
