//! TOML configuration files.
//!
//! Every trainer's `Config` derives `Deserialize` with `#[serde(deny_unknown_fields, default)]`, so
//! a typo is an error naming the key, its line and column, and a missing key takes the documented
//! default.

use crate::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;

/// Parse `text` (from `origin`, used in messages) into `T`.
pub fn from_toml_str<T: DeserializeOwned>(text: &str, origin: &Path) -> Result<T> {
    toml::from_str(text)
        .map_err(|e| Error::Config { path: origin.to_path_buf(), message: e.to_string().trim_end().to_string() })
}

/// Read and parse a TOML file.
pub fn load_toml<T: DeserializeOwned>(path: impl AsRef<Path>) -> Result<T> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    from_toml_str(&text, path)
}

/// Serialise a config to TOML (for the run directory's resolved config).
pub fn to_toml_string<T: Serialize>(value: &T) -> Result<String> {
    toml::to_string_pretty(value).map_err(|e| Error::invalid("config", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct C {
        gamma: f64,
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err = from_toml_str::<C>("gamma = 0.9\ngamam = 1\n", Path::new("x.toml")).unwrap_err().to_string();
        assert!(err.contains("x.toml") && err.contains("gamam") && err.contains("line 2"), "{err}");
    }

    #[test]
    fn wrong_type_names_line() {
        let err = from_toml_str::<C>("gamma = \"high\"\n", Path::new("y.toml")).unwrap_err().to_string();
        assert!(err.contains("line 1") && err.contains("gamma"), "{err}");
    }
}
