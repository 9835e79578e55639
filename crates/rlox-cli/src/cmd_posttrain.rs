//! `rlox sft | rm | dpo | grpo | r1-zero --config FILE.toml [--max-steps N]`: post-training runs
//! from TOML configs (the fields of rlox-posttrain's `SftConfig`, `RewardConfig`, `DpoConfig`,
//! `GrpoConfig`, `R1ZeroConfig`; TRL's key names are accepted too, see `rlox_posttrain::config`). Each
//! writes a run directory and prints its summary.

use crate::output::{print_json, Format};
use clap::Args;
use rlox_posttrain::dpo::{DpoConfig, DpoTrainer};
use rlox_posttrain::grpo::{GrpoConfig, GrpoTrainer};
use rlox_posttrain::r1_zero::{run_r1_zero, R1ZeroConfig};
use rlox_posttrain::reward_model::{RewardConfig, RewardTrainer};
use rlox_posttrain::sft::{SftConfig, SftTrainer};
use std::path::PathBuf;

/// Arguments shared by the post-training commands.
#[derive(Args, Debug)]
pub struct PostArgs {
    /// The run config (TOML).
    #[arg(long)]
    config: PathBuf,
    /// Override the number of optimizer steps (GRPO steps for r1-zero).
    #[arg(long)]
    max_steps: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Which post-training command.
#[derive(Debug, Clone, Copy)]
pub enum Method {
    /// Supervised fine-tuning.
    Sft,
    /// Reward model.
    Rm,
    /// DPO.
    Dpo,
    /// GRPO.
    Grpo,
    /// The tiny R1-Zero pipeline.
    R1Zero,
}

fn report(summary: &serde_json::Value, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => print_json(summary),
        Format::Text => {
            println!("{}", serde_json::to_string_pretty(summary)?);
            Ok(())
        }
    }
}

/// Run one post-training command.
pub fn run(method: Method, a: PostArgs) -> anyhow::Result<()> {
    let summary = match method {
        Method::Sft => {
            let mut c: SftConfig = rlox_posttrain::config::load(&a.config)?;
            if let Some(n) = a.max_steps {
                c.max_steps = n;
            }
            SftTrainer::new(&c)?.train()?
        }
        Method::Rm => {
            let mut c: RewardConfig = rlox_posttrain::config::load(&a.config)?;
            if let Some(n) = a.max_steps {
                c.max_steps = n;
            }
            RewardTrainer::new(&c)?.train()?
        }
        Method::Dpo => {
            let mut c: DpoConfig = rlox_posttrain::config::load(&a.config)?;
            if let Some(n) = a.max_steps {
                c.max_steps = n;
            }
            DpoTrainer::new(&c)?.train()?
        }
        Method::Grpo => {
            let mut c: GrpoConfig = rlox_posttrain::config::load(&a.config)?;
            if let Some(n) = a.max_steps {
                c.max_steps = n;
            }
            GrpoTrainer::new(&c)?.train()?
        }
        Method::R1Zero => {
            let c: R1ZeroConfig = rlox_core::config::load_toml(&a.config)?;
            run_r1_zero(&c, a.max_steps)?
        }
    };
    report(&summary, a.format)
}
