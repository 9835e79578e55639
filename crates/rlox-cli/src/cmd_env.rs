//! `rlox env list | show`.

use crate::args::EnvArgs;
use crate::output::{print_json, Format};
use anyhow::Context;
use clap::{Args, Subcommand};
use rlox_core::env::Env;
use rlox_core::mdp::Mdp;
use rlox_core::policy::TabularPolicy;
use rlox_envs::gridworld::render::{draw, Figure};
use rlox_envs::registry::{spec, AnyAction, AnyEnv, SPECS};
use serde_json::json;
use std::path::PathBuf;

/// Environment subcommands.
#[derive(Subcommand, Debug)]
pub enum EnvCommand {
    /// List every registered environment.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Describe one environment (and draw a grid world).
    Show(Box<ShowArgs>),
    /// Set a classic-control env's internal state after reset and apply a list of actions.
    Rollout(Box<RolloutArgs>),
}

/// Arguments of `rlox env rollout`.
#[derive(Args, Debug)]
pub struct RolloutArgs {
    /// Environment id (a classic-control env).
    #[arg(long)]
    env: String,
    /// The internal state set after every reset, comma separated (e.g. "0.01,-0.02,0.03,0.04").
    #[arg(long, allow_hyphen_values = true)]
    init_state: String,
    /// A JSON file with the actions: an array of numbers (discrete), of arrays (continuous), or an
    /// object with an "actions" array or a Gymnasium trace's "steps" (each with an "action").
    #[arg(long)]
    actions: PathBuf,
    /// Seed of the first reset.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Arguments of `rlox env show`.
#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The environment id (positional form of --env).
    #[arg(value_name = "ENV")]
    id: Option<String>,
    #[command(flatten)]
    env: EnvArgs,
    /// A policy to draw on the grid (rows separated by '/', letters U R D L S).
    #[arg(long)]
    policy: Option<String>,
    /// Draw the grid world (PNG or SVG by extension).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Run an env subcommand.
pub fn run(cmd: EnvCommand) -> anyhow::Result<()> {
    match cmd {
        EnvCommand::List { format } => list(format),
        EnvCommand::Show(a) => show(*a),
        EnvCommand::Rollout(a) => rollout(*a),
    }
}

fn parse_actions(path: &std::path::Path, continuous: bool) -> anyhow::Result<Vec<AnyAction>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading actions file {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))?;
    let list: Vec<serde_json::Value> = match value {
        serde_json::Value::Array(a) => a,
        serde_json::Value::Object(mut o) => match (o.remove("actions"), o.remove("steps")) {
            (Some(serde_json::Value::Array(a)), _) => a,
            (_, Some(serde_json::Value::Array(steps))) => steps
                .into_iter()
                .enumerate()
                .map(|(i, s)| {
                    s.get("action").cloned().with_context(|| format!("{}: step {i} has no \"action\"", path.display()))
                })
                .collect::<anyhow::Result<_>>()?,
            _ => anyhow::bail!(
                "{}: expected an array of actions, or an object with \"actions\" or \"steps\"",
                path.display()
            ),
        },
        _ => anyhow::bail!("{}: expected an array of actions", path.display()),
    };
    list.iter()
        .enumerate()
        .map(|(i, v)| {
            let bad = || {
                anyhow::anyhow!(
                    "{}: action {i} ({v}) is not a valid {} action",
                    path.display(),
                    if continuous { "continuous" } else { "discrete" }
                )
            };
            if continuous {
                match v {
                    serde_json::Value::Number(n) => Ok(AnyAction::Continuous(vec![n.as_f64().ok_or_else(bad)? as f32])),
                    serde_json::Value::Array(xs) => Ok(AnyAction::Continuous(
                        xs.iter()
                            .map(|x| x.as_f64().map(|f| f as f32).ok_or_else(bad))
                            .collect::<anyhow::Result<_>>()?,
                    )),
                    _ => Err(bad()),
                }
            } else {
                v.as_u64().map(|a| AnyAction::Discrete(a as usize)).ok_or_else(bad)
            }
        })
        .collect()
}

fn rollout(a: RolloutArgs) -> anyhow::Result<()> {
    let mut env = match rlox_envs::registry::make(&a.env, rlox_envs::registry::EnvOptions::new())? {
        AnyEnv::Control(e) => e,
        AnyEnv::Tabular(e) => anyhow::bail!("env rollout replays classic-control envs; {} is tabular", e.id()),
    };
    let init: Vec<f64> = a
        .init_state
        .split(',')
        .enumerate()
        .map(|(i, t)| {
            t.trim()
                .parse::<f64>()
                .with_context(|| format!("--init-state entry {} '{}' is not a number", i + 1, t.trim()))
        })
        .collect::<anyhow::Result<_>>()?;
    let continuous = !env.action_space().is_discrete();
    let actions = parse_actions(&a.actions, continuous)?;
    env.reset(Some(a.seed))?;
    env.set_state(&init).with_context(|| format!("--init-state for {}", a.env))?;
    let mut steps = Vec::with_capacity(actions.len());
    for (t, action) in actions.iter().enumerate() {
        let s = env.step(action).with_context(|| format!("step {t}"))?;
        steps.push(json!({
            "t": t,
            "action": match action { AnyAction::Discrete(x) => json!(x), AnyAction::Continuous(v) => json!(v) },
            // f32 observations widened to f64 so the printed decimals round-trip exactly (as the traces store them).
            "obs": s.obs.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>(),
            "reward": s.reward,
            "terminated": s.terminated,
            "truncated": s.truncated,
        }));
        if s.done() {
            env.reset(None)?;
            env.set_state(&init)?;
        }
    }
    match a.format {
        Format::Json => print_json(&json!({"env": a.env, "init_state": init, "steps": steps})),
        Format::Text => {
            for s in &steps {
                println!("{s}");
            }
            Ok(())
        }
    }
}

fn list(format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => print_json(&json!({
            "envs": SPECS.iter().map(|s| json!({
                "id": s.id,
                "description": s.description,
                "max_episode_steps": s.max_episode_steps,
                "has_model": s.has_model,
                "options": s.options,
            })).collect::<Vec<_>>()
        })),
        Format::Text => {
            for s in SPECS {
                let limit = s.max_episode_steps.map(|m| format!("limit {m}")).unwrap_or_else(|| "no limit".into());
                println!("{:<28} {:<10} {}", s.id, limit, s.description);
            }
            Ok(())
        }
    }
}

fn show(mut a: ShowArgs) -> anyhow::Result<()> {
    if let Some(id) = a.id.take() {
        a.env.env = id;
    }
    let spec = spec(&a.env.env)?;
    if let Some(g) = a.env.gridworld()? {
        let actions = a.policy.as_deref().map(|p| g.parse_policy(p)).transpose()?;
        if let Some(path) = &a.plot {
            let table = actions
                .as_ref()
                .map(|acts| TabularPolicy::deterministic(acts, g.n_actions()).map(|p| p.table().to_vec()))
                .transpose()?;
            let title = a.env.preset.clone().unwrap_or_else(|| "book-5x5".into());
            let fig = Figure { policy: table.as_deref(), values: None, title: Some(&title), decimals: 1 };
            draw(&g, &fig, path).with_context(|| format!("drawing {}", path.display()))?;
        }
        let cfg = g.config();
        match a.format {
            Format::Json => print_json(&json!({
                "id": "gridworld",
                "rows": cfg.rows,
                "cols": cfg.cols,
                "n_states": g.n_states(),
                "n_actions": g.n_actions(),
                "actions": cfg.actions.letters().iter().map(|c| c.to_string()).collect::<Vec<_>>(),
                "forbidden": cfg.forbidden,
                "target": cfg.target,
                "start": cfg.start,
                "rewards": {"boundary": cfg.r_boundary, "forbidden": cfg.r_forbidden, "target": cfg.r_target, "other": cfg.r_other},
                "forbidden_as_wall": cfg.forbidden_as_wall,
                "additive_border_from_forbidden": cfg.additive_border_from_forbidden,
                "terminate_at_target": cfg.terminate_at_target,
                "plot": a.plot.as_ref().map(|p| p.display().to_string()),
            })),
            Format::Text => {
                println!(
                    "gridworld {}x{}: {} states, {} actions ({})",
                    cfg.rows,
                    cfg.cols,
                    g.n_states(),
                    g.n_actions(),
                    cfg.actions.letters().iter().collect::<String>()
                );
                println!(
                    "rewards: boundary {}, forbidden {}, target {}, other {}",
                    cfg.r_boundary, cfg.r_forbidden, cfg.r_target, cfg.r_other
                );
                print!("{}", g.render_text(actions.as_deref(), None));
                if let Some(p) = &a.plot {
                    println!("wrote {}", p.display());
                }
                Ok(())
            }
        }
    } else {
        if a.plot.is_some() || a.policy.is_some() {
            anyhow::bail!("--plot and --policy draw grid worlds; {} is not one", spec.id);
        }
        let env = a.env.make()?;
        let (obs, act, sizes) = match &env {
            AnyEnv::Tabular(e) => (e.observation_space(), e.action_space(), Some((e.n_states(), e.n_actions()))),
            AnyEnv::Control(e) => (e.observation_space(), e.action_space(), None),
        };
        match a.format {
            Format::Json => print_json(&json!({
                "id": spec.id,
                "description": spec.description,
                "observation_space": obs.to_string(),
                "action_space": act.to_string(),
                "max_episode_steps": spec.max_episode_steps,
                "has_model": spec.has_model,
                "n_states": sizes.map(|s| s.0),
                "n_actions": sizes.map(|s| s.1),
            })),
            Format::Text => {
                println!("{}: {}", spec.id, spec.description);
                println!("observation space: {obs}\naction space: {act}");
                Ok(())
            }
        }
    }
}
