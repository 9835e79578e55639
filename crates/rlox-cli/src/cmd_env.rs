//! `rlox env list | show`.

use crate::args::EnvArgs;
use crate::output::{print_json, Format};
use anyhow::Context;
use clap::{Args, Subcommand};
use rlox_core::env::Env;
use rlox_core::mdp::Mdp;
use rlox_core::policy::TabularPolicy;
use rlox_envs::gridworld::render::{draw, Figure};
use rlox_envs::registry::{spec, AnyEnv, SPECS};
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
    Show(ShowArgs),
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
        EnvCommand::Show(a) => show(a),
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
                println!("gridworld {}x{}: {} states, {} actions ({})", cfg.rows, cfg.cols, g.n_states(), g.n_actions(), cfg.actions.letters().iter().collect::<String>());
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
        let AnyEnv::Tabular(env) = a.env.make()?;
        let (obs, act) = (env.observation_space(), env.action_space());
        match a.format {
            Format::Json => print_json(&json!({
                "id": spec.id,
                "description": spec.description,
                "observation_space": obs.to_string(),
                "action_space": act.to_string(),
                "max_episode_steps": spec.max_episode_steps,
                "has_model": spec.has_model,
                "n_states": env.n_states(),
                "n_actions": env.n_actions(),
            })),
            Format::Text => {
                println!("{}: {}", spec.id, spec.description);
                println!("observation space: {obs}\naction space: {act}");
                Ok(())
            }
        }
    }
}
