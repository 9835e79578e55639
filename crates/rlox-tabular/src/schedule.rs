//! Step sizes and exploration schedules.

use rlox_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// The learning rate `alpha_t(s, a)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum StepSize {
    /// A constant `alpha` (the book's TD examples use 0.1).
    Constant {
        /// The constant.
        alpha: f64,
    },
    /// `alpha_0 / n^power` where `n` counts visits of the (state, action) pair: `power = 1` is the
    /// Robbins-Monro `1/k` rule (sum alpha = inf, sum alpha^2 < inf for 0.5 < power <= 1).
    Visits {
        /// The first step size.
        alpha0: f64,
        /// The decay exponent.
        power: f64,
    },
}

impl StepSize {
    /// The step size at the `n`-th visit (`n >= 1`).
    #[inline]
    pub fn at(&self, n: u64) -> f64 {
        match *self {
            StepSize::Constant { alpha } => alpha,
            StepSize::Visits { alpha0, power } => alpha0 / (n.max(1) as f64).powf(power),
        }
    }

    /// Errors on a non-positive or non-finite alpha.
    pub fn validate(&self) -> Result<()> {
        let a = match *self {
            StepSize::Constant { alpha } => alpha,
            StepSize::Visits { alpha0, .. } => alpha0,
        };
        if !(a > 0.0 && a.is_finite()) {
            return Err(Error::invalid("alpha", format!("{a} must be a positive number")));
        }
        Ok(())
    }
}

/// Epsilon decaying linearly from `start` to `end` over `decay_episodes` episodes, then constant.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpsilonSchedule {
    /// Epsilon in the first episode.
    pub start: f64,
    /// Epsilon after the decay.
    pub end: f64,
    /// Episodes over which epsilon decays (0: constant `start`).
    pub decay_episodes: usize,
}

impl EpsilonSchedule {
    /// A constant epsilon.
    pub fn constant(epsilon: f64) -> Self {
        EpsilonSchedule { start: epsilon, end: epsilon, decay_episodes: 0 }
    }

    /// Epsilon in episode `k` (from 0).
    pub fn at(&self, episode: usize) -> f64 {
        if self.decay_episodes == 0 || episode >= self.decay_episodes {
            return if self.decay_episodes == 0 { self.start } else { self.end };
        }
        self.start + (self.end - self.start) * episode as f64 / self.decay_episodes as f64
    }

    /// Errors when an end point is outside [0, 1].
    pub fn validate(&self) -> Result<()> {
        for e in [self.start, self.end] {
            if !(0.0..=1.0).contains(&e) {
                return Err(Error::invalid("epsilon", format!("{e} is outside [0, 1]")));
            }
        }
        Ok(())
    }
}
