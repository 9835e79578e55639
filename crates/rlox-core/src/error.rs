//! The error type shared by the foundation crates.

use std::path::PathBuf;

/// Everything that can go wrong in rlox-core and the crates that build on its contracts.
///
/// Each variant carries enough context (file, field, value) for a user to fix the input
/// without reading the source.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An action that is not an element of the environment's action space.
    #[error("invalid action {action} for {env}: the action space is {space}")]
    InvalidAction {
        /// Environment id.
        env: String,
        /// The offending action, formatted.
        action: String,
        /// The action space, formatted.
        space: String,
    },
    /// `step` was called before `reset` or after the episode ended without a reset.
    #[error("{env}: step() called {when}; call reset() first")]
    NeedsReset {
        /// Environment id.
        env: String,
        /// "before reset()" or "after the episode ended".
        when: &'static str,
    },
    /// A configuration value or user argument that does not make sense.
    #[error("invalid {what}: {why}")]
    Invalid {
        /// The field or argument name.
        what: String,
        /// Why it is rejected.
        why: String,
    },
    /// An unknown environment id or preset.
    #[error("unknown {kind} '{name}'; known: {known}")]
    Unknown {
        /// "environment", "preset", ...
        kind: &'static str,
        /// What the user asked for.
        name: String,
        /// The known names, comma separated.
        known: String,
    },
    /// A configuration file that does not parse or has unknown keys.
    #[error("{path}: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// The parser's message (includes line and column).
        message: String,
    },
    /// An I/O error with the file it concerns.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Training diverged: a loss or gradient norm became NaN or infinite. The last checkpoint on disk
    /// (if any) is from before, and is kept.
    #[error("{algo} diverged: the {quantity} became {value} at {unit} {step}; {hint}")]
    Diverged {
        /// The trainer (`ppo`, `dpo`, ...).
        algo: String,
        /// What went non-finite (`loss`, `critic loss`, `gradient norm`, ...).
        quantity: String,
        /// Its value.
        value: f64,
        /// What `step` counts (`gradient step`, `update`, `step`).
        unit: &'static str,
        /// Where.
        step: u64,
        /// What to try.
        hint: String,
    },
    /// A checkpoint that cannot be used: missing, truncated, corrupted, or from another run.
    #[error("checkpoint {path}: {why}")]
    Checkpoint {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// A plot could not be drawn.
    #[error("plot {path}: {message}")]
    Plot {
        /// The output file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(what: impl Into<String>, why: impl Into<String>) -> Self {
        Error::Invalid { what: what.into(), why: why.into() }
    }

    /// Shorthand for [`Error::Checkpoint`].
    pub fn checkpoint(path: impl Into<PathBuf>, why: impl Into<String>) -> Self {
        Error::Checkpoint { path: path.into(), why: why.into() }
    }

    /// Shorthand for [`Error::Diverged`] with the usual hint.
    pub fn diverged(
        algo: impl Into<String>,
        quantity: impl Into<String>,
        value: f64,
        unit: &'static str,
        step: u64,
    ) -> Self {
        Error::Diverged {
            algo: algo.into(),
            quantity: quantity.into(),
            value,
            unit,
            step,
            hint: "check the data (rewards, observations) for NaN/inf, or lower the learning rate".into(),
        }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
