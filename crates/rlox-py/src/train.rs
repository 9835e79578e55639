//! `rlox.train`: any `rlox train` config run from Python, through the same run layer as the CLI
//! ([`rlox_runner`]), so the run directory, its files and the summary are the CLI's.
//!
//! The config arrives as TOML text (a path is read by the Python side, which names the file) or as a
//! JSON object (a Python `dict`, serialised by the Python side); keyword overrides are the CLI's
//! flags. Training runs with the GIL released, so other Python threads (a Ray actor's heartbeat, a
//! progress monitor) keep running.

use pyo3::exceptions::{PyFloatingPointError, PyValueError};
use pyo3::prelude::*;
use rlox_core::config::FlatTable;
use rlox_runner::{Overrides, TrainConfig};
use std::path::{Path, PathBuf};

/// The error chain as one message, each cause once (as the CLI prints it).
fn chain_message(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// The Python exception for a failed run: the exception of the rlox error inside (a NaN loss is a
/// `FloatingPointError`, an unreadable file an `OSError`), else `ValueError` (a bad config).
fn run_error(err: anyhow::Error) -> PyErr {
    let msg = chain_message(&err);
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<rlox_core::Error>() {
            return match e {
                rlox_core::Error::Diverged { .. } => PyFloatingPointError::new_err(msg),
                rlox_core::Error::Io { source, .. } => PyErr::from(std::io::Error::new(source.kind(), msg)),
                _ => PyValueError::new_err(msg),
            };
        }
        if let Some(e) = cause.downcast_ref::<std::io::Error>() {
            return PyErr::from(std::io::Error::new(e.kind(), msg));
        }
    }
    PyValueError::new_err(msg)
}

/// Where a config came from: TOML text (and its file, for relative paths and error messages) or a
/// JSON object.
enum Source {
    Toml { text: String, origin: PathBuf },
    Json(String),
}

fn config_of(source: Source, overrides: &Overrides) -> anyhow::Result<TrainConfig> {
    match source {
        Source::Toml { text, origin } => TrainConfig::parse(&text, &origin, overrides),
        Source::Json(json) => {
            let value: serde_json::Value = serde_json::from_str(&json)?;
            let toml::Value::Table(table) = toml::Value::try_from(value)
                .map_err(|e| anyhow::anyhow!("the config dict cannot be a TOML table: {e}"))?
            else {
                anyhow::bail!("the config must be a dict");
            };
            TrainConfig::from_table(FlatTable::from_table(table, Path::new("<config dict>")), overrides)
        }
    }
}

/// Run a training config (or resume a run) and return the summary as JSON text.
///
/// Exactly one of `toml_text` (with `origin`, the file it was read from), `json` and `resume` is
/// given; `None` for all three runs the default config (the book's grid world) as `rlox train` does.
#[pyfunction]
#[pyo3(signature = (*, toml_text=None, origin=None, json=None, resume=None, algo=None, env=None, total_steps=None, seed=None, runs_dir=None, progress=false))]
#[allow(clippy::too_many_arguments)]
pub fn train(
    py: Python<'_>,
    toml_text: Option<String>,
    origin: Option<PathBuf>,
    json: Option<String>,
    resume: Option<PathBuf>,
    algo: Option<String>,
    env: Option<String>,
    total_steps: Option<u64>,
    seed: Option<u64>,
    runs_dir: Option<PathBuf>,
    progress: bool,
) -> PyResult<String> {
    let overrides = Overrides { algo, env, total_steps, seed, runs_dir, progress: Some(progress) };
    let source = match (toml_text, json) {
        (Some(_), Some(_)) => return Err(PyValueError::new_err("give a TOML config or a dict, not both")),
        (Some(text), None) => Some(Source::Toml { text, origin: origin.unwrap_or_else(|| "<config>".into()) }),
        (None, Some(json)) => Some(Source::Json(json)),
        (None, None) => None,
    };
    if resume.is_some() && source.is_some() {
        return Err(PyValueError::new_err(
            "resume= continues a run with the config.toml in its directory; do not pass a config as well",
        ));
    }
    let outcome = crate::errors::guard(|| {
        py.detach(|| {
            let summary = match (resume, source) {
                (Some(dir), _) => rlox_runner::resume(&dir, &overrides),
                (None, Some(source)) => config_of(source, &overrides).and_then(|cfg| rlox_runner::train(&cfg)),
                (None, None) => rlox_runner::default_config(&overrides).and_then(|cfg| rlox_runner::train(&cfg)),
            };
            summary.map(|s| s.to_string()).map_err(run_error)
        })
    });
    outcome?
}
