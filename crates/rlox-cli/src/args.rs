//! Argument groups shared by several subcommands: which environment, with which options.

use clap::Args;
use rlox_envs::gridworld::GridWorld;
use rlox_envs::registry::{self, AnyEnv, EnvOptions};

/// The environment and its options.
#[derive(Args, Debug, Clone)]
pub struct EnvArgs {
    /// Environment id (see `rlox env list`).
    #[arg(long, default_value = "gridworld")]
    pub env: String,
    /// Grid-world preset: book-5x5, book-3x3, book-2x2, book-1x2, book-1x3.
    #[arg(long)]
    pub preset: Option<String>,
    /// Grid rows (overrides the preset).
    #[arg(long)]
    pub rows: Option<usize>,
    /// Grid columns (overrides the preset).
    #[arg(long)]
    pub cols: Option<usize>,
    /// Forbidden cells, e.g. "2,2;2,3;4,3" (1-based row,col).
    #[arg(long)]
    pub forbidden: Option<String>,
    /// Target cell, e.g. "4,3".
    #[arg(long)]
    pub target: Option<String>,
    /// Start cell of episodes (random when absent), e.g. "1,1".
    #[arg(long)]
    pub start: Option<String>,
    /// Reward for trying to leave the grid.
    #[arg(long, allow_negative_numbers = true)]
    pub r_boundary: Option<f64>,
    /// Reward for entering or staying in a forbidden cell.
    #[arg(long, allow_negative_numbers = true)]
    pub r_forbidden: Option<f64>,
    /// Reward for entering or staying at the target.
    #[arg(long, allow_negative_numbers = true)]
    pub r_target: Option<f64>,
    /// Reward of every other move.
    #[arg(long, allow_negative_numbers = true)]
    pub r_other: Option<f64>,
    /// Forbidden cells are walls (the book's official code).
    #[arg(long)]
    pub forbidden_as_wall: bool,
    /// Bouncing off the border from a forbidden cell pays r_boundary + r_forbidden (book chapter 5 figures).
    #[arg(long)]
    pub additive_border: bool,
    /// Episodes end at the target (path-finding tasks).
    #[arg(long)]
    pub terminate_at_target: bool,
    /// Other env options as KEY=VALUE (e.g. is_slippery=false, map_name=8x8).
    #[arg(long = "opt", value_name = "KEY=VALUE")]
    pub opts: Vec<String>,
}

impl EnvArgs {
    /// The options as the registry takes them.
    pub fn options(&self) -> anyhow::Result<EnvOptions> {
        let mut o = EnvOptions::parse(&self.opts)?;
        let grid_flags = [
            ("preset", self.preset.clone()),
            ("rows", self.rows.map(|v| v.to_string())),
            ("cols", self.cols.map(|v| v.to_string())),
            ("forbidden", self.forbidden.clone()),
            ("target", self.target.clone()),
            ("start", self.start.clone()),
            ("r_boundary", self.r_boundary.map(|v| v.to_string())),
            ("r_forbidden", self.r_forbidden.map(|v| v.to_string())),
            ("r_target", self.r_target.map(|v| v.to_string())),
            ("r_other", self.r_other.map(|v| v.to_string())),
            ("forbidden_as_wall", self.forbidden_as_wall.then(|| "true".to_string())),
            ("additive_border", self.additive_border.then(|| "true".to_string())),
            ("terminate_at_target", self.terminate_at_target.then(|| "true".to_string())),
        ];
        for (key, value) in grid_flags {
            if let Some(v) = value {
                o.set(key, v)?;
            }
        }
        Ok(o)
    }

    /// The grid world, when `--env gridworld`.
    pub fn gridworld(&self) -> anyhow::Result<Option<GridWorld>> {
        if self.env != "gridworld" {
            return Ok(None);
        }
        Ok(Some(registry::make_gridworld_from(self.options()?)?))
    }

    /// A tabular learner on this env (the grid world keeps its policy strings and pictures).
    pub fn learner(&self) -> anyhow::Result<rlox_runner::tabular::Learner> {
        Ok(match self.gridworld()? {
            Some(g) => rlox_runner::tabular::Learner::Grid(Box::new(g)),
            None => rlox_runner::tabular::Learner::Other(self.make()?.into_tabular("tabular learning")?),
        })
    }

    /// Any registered environment.
    pub fn make(&self) -> anyhow::Result<AnyEnv> {
        Ok(registry::make(&self.env, self.options()?)?)
    }
}
