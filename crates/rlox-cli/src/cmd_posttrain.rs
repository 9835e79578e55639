//! `rlox sft | rm | dpo | grpo --config FILE.toml [--max-steps N]`, `... --resume RUN_DIR`, and
//! `rlox r1-zero --config FILE.toml`: post-training runs (parse the arguments, call
//! `rlox_posttrain::run`, print the summary). Config files take rlox's or TRL's key names (see
//! `rlox_posttrain::config`); each run writes a run directory, and `--resume` continues one from its
//! latest checkpoint, in the same directory, with its own config.

use crate::output::{print_json, Format};
use anyhow::bail;
use clap::Args;
use rlox_posttrain::r1_zero::{run_r1_zero, R1ZeroConfig};
use rlox_posttrain::{ConfigSource, Launch, MethodKind};
use std::path::PathBuf;

/// Arguments shared by the post-training commands.
#[derive(Args, Debug)]
pub struct PostArgs {
    /// The run config (TOML).
    #[arg(long, required_unless_present = "resume", conflicts_with = "resume")]
    config: Option<PathBuf>,
    /// Continue the run in this directory from its latest checkpoint (method and config from the run).
    #[arg(long, value_name = "RUN_DIR")]
    resume: Option<PathBuf>,
    /// Override the number of optimizer steps (GRPO steps for r1-zero).
    #[arg(long, conflicts_with = "resume")]
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

/// Run one post-training command.
pub fn run(method: Method, a: PostArgs) -> anyhow::Result<()> {
    let kind = match method {
        Method::Sft => Some(MethodKind::Sft),
        Method::Rm => Some(MethodKind::Rm),
        Method::Dpo => Some(MethodKind::Dpo),
        Method::Grpo => Some(MethodKind::Grpo),
        Method::R1Zero => None,
    };
    let summary = match (kind, a.resume) {
        (Some(kind), Some(dir)) => rlox_posttrain::run(kind, Launch::Resume(dir))?,
        (Some(kind), None) => {
            let config = ConfigSource::File(a.config.expect("clap requires --config without --resume"));
            rlox_posttrain::run(kind, Launch::New { config, max_steps: a.max_steps })?
        }
        (None, Some(_)) => {
            bail!("r1-zero does not resume; continue its sft-*/ or grpo-*/ run with `rlox sft|grpo --resume`")
        }
        (None, None) => {
            let path = a.config.expect("clap requires --config without --resume");
            let c: R1ZeroConfig = rlox_core::config::load_toml(&path)?;
            run_r1_zero(&c, a.max_steps)?
        }
    };
    match a.format {
        Format::Json => print_json(&summary),
        Format::Text => {
            println!("{}", serde_json::to_string_pretty(&summary)?);
            Ok(())
        }
    }
}
