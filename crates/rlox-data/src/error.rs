//! Errors of the data layer; each one names the file it concerns.

use std::path::PathBuf;

/// What can go wrong reading or writing rlox data files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error with the file it concerns.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file that is not valid Parquet (truncated, not Parquet at all, corrupt).
    #[error("{path}: not a readable Parquet file ({message}); was it truncated or written by a crashed process?")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The reader's message.
        message: String,
    },
    /// A Parquet file whose columns do not match what the reader expects.
    #[error("{path}: wrong schema for {kind}: {message}")]
    Schema {
        /// The file.
        path: PathBuf,
        /// "preference dataset", "rollouts", ...
        kind: &'static str,
        /// Which column is missing or has which type.
        message: String,
    },
    /// An argument that does not make sense.
    #[error("invalid {what}: {why}")]
    Invalid {
        /// The field or argument.
        what: String,
        /// Why it is rejected.
        why: String,
    },
    /// An Arrow error while building or converting batches.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

impl Error {
    /// Shorthand for [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(what: impl Into<String>, why: impl Into<String>) -> Self {
        Error::Invalid { what: what.into(), why: why.into() }
    }
    /// Shorthand for [`Error::Parquet`].
    pub fn parquet(path: impl Into<PathBuf>, e: impl std::fmt::Display) -> Self {
        Error::Parquet { path: path.into(), message: e.to_string() }
    }
}

impl From<Error> for rlox_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io { path, source } => rlox_core::Error::Io { path, source },
            other => rlox_core::Error::invalid("parquet output", other.to_string()),
        }
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
