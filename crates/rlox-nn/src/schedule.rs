//! Schedules for learning rates and exploration rates, as functions of training progress.
//!
//! `progress` is the fraction of training done, in `[0, 1]` (SB3 passes `progress_remaining = 1 -
//! progress`; rlox uses the fraction done, which reads more naturally).

use serde::{Deserialize, Serialize};

/// A value that changes over training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Schedule {
    /// The same value throughout.
    Constant {
        /// The value.
        value: f64,
    },
    /// From `start` to `end` linearly over the first `fraction` of training, then `end`
    /// (SB3's `get_linear_fn(start, end, end_fraction)`; `fraction = 1` decays over the whole run).
    Linear {
        /// Value at progress 0.
        start: f64,
        /// Value from progress `fraction` on.
        end: f64,
        /// Fraction of training over which to interpolate (> 0).
        fraction: f64,
    },
}

impl Schedule {
    /// A constant.
    pub fn constant(value: f64) -> Self {
        Schedule::Constant { value }
    }

    /// Linear decay from `start` to `end` over the whole run.
    pub fn linear(start: f64, end: f64) -> Self {
        Schedule::Linear { start, end, fraction: 1.0 }
    }

    /// The value at `progress` (clamped to `[0, 1]`).
    pub fn value(&self, progress: f64) -> f64 {
        let p = progress.clamp(0.0, 1.0);
        match *self {
            Schedule::Constant { value } => value,
            Schedule::Linear { start, end, fraction } => {
                if p >= fraction {
                    end
                } else {
                    start + p * (end - start) / fraction
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_matches_sb3_get_linear_fn() {
        // SB3: get_linear_fn(1.0, 0.04, 0.16)(progress_remaining) with progress = 1 - remaining.
        let s = Schedule::Linear { start: 1.0, end: 0.04, fraction: 0.16 };
        assert_eq!(s.value(0.0), 1.0);
        assert!((s.value(0.08) - 0.52).abs() < 1e-12);
        assert_eq!(s.value(0.16), 0.04);
        assert_eq!(s.value(0.9), 0.04);
        assert_eq!(Schedule::linear(3e-4, 0.0).value(0.5), 1.5e-4);
        assert_eq!(Schedule::constant(0.1).value(0.7), 0.1);
    }

    #[test]
    fn serde_round_trip() {
        let s: Schedule = serde_json::from_str(r#"{"kind": "linear", "start": 1, "end": 0, "fraction": 0.5}"#).unwrap();
        assert_eq!(s.value(0.25), 0.5);
    }
}
