//! The library's entry point: which method, and a config or a run directory to continue; back comes the
//! run's summary (also in its `summary.json`). The `rlox` subcommands `sft`, `rm`, `dpo` and `grpo` are
//! this call between parsing their arguments and printing its result.

use crate::config::RunConfig;
use crate::dpo::Dpo;
use crate::grpo::Grpo;
use crate::reward_model::Reward;
use crate::sft::Sft;
use crate::trainer::{Method, MethodKind, Trainer};
use crate::{Error, Result};
use rlox_core::config::FlatTable;
use std::path::{Path, PathBuf};

/// Where a new run's config comes from.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// A TOML file (rlox's or TRL's key names; errors name the file, key and line).
    File(PathBuf),
    /// Values already parsed (e.g. a Python dict); `origin` names them in errors.
    Table {
        /// The flat table.
        table: toml::Table,
        /// What to call it in error messages.
        origin: PathBuf,
    },
}

/// What to run.
#[derive(Debug, Clone)]
pub enum Launch {
    /// A new run from a config, optionally with another number of optimizer steps.
    New {
        /// The config.
        config: ConfigSource,
        /// Overrides `total_steps` (`max_steps`).
        max_steps: Option<u64>,
    },
    /// Continue the run in this directory from its latest checkpoint, with its own `config.toml`.
    Resume(PathBuf),
}

/// Run `method` as `launch` says; returns the summary. Resuming a run of another method is an error
/// naming both (see [`resume`] to take the method from the run).
pub fn run(method: MethodKind, launch: Launch) -> Result<serde_json::Value> {
    match method {
        MethodKind::Sft => run_method::<Sft>(launch),
        MethodKind::Rm => run_method::<Reward>(launch),
        MethodKind::Dpo => run_method::<Dpo>(launch),
        MethodKind::Grpo => run_method::<Grpo>(launch),
    }
}

/// Continue the run in `run_dir`, whatever its method (read from its latest checkpoint).
pub fn resume(run_dir: &Path) -> Result<serde_json::Value> {
    run(crate::checkpoint::method_of_run(run_dir)?, Launch::Resume(run_dir.to_path_buf()))
}

fn run_method<M: Method>(launch: Launch) -> Result<serde_json::Value> {
    match launch {
        Launch::New { config, max_steps } => {
            let table = match config {
                ConfigSource::File(path) => FlatTable::load(&path)?,
                ConfigSource::Table { table, origin } => FlatTable::from_table(table, &origin),
            };
            let mut config = RunConfig::<M::Config>::from_table(table, &M::defaults())?;
            if let Some(n) = max_steps {
                config.run.total_steps = n;
            }
            Trainer::<M>::new(&config)?.train()
        }
        Launch::Resume(dir) => {
            let found = crate::checkpoint::method_of_run(&dir)?;
            if found != M::KIND {
                return Err(Error::checkpoint(
                    &dir,
                    format!("a {found} run; continue it with `rlox {found} --resume {}`", dir.display()),
                ));
            }
            let config = RunConfig::<M::Config>::load(&dir.join("config.toml"), &M::defaults())?;
            Trainer::<M>::new(&config)?.resume(&dir)
        }
    }
}
