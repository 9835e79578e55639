//! Exploration noise for deterministic policies (DDPG, TD3), added to the actor's action in the
//! scaled space `[-1, 1]` and clipped back into it, as Stable-Baselines3 does.
//!
//! * [`NoiseConfig::Normal`]: independent `N(0, sigma^2)` per step (SB3's `NormalActionNoise`; the
//!   TD3 paper and rl-baselines3-zoo use `sigma = 0.1`).
//! * [`NoiseConfig::OrnsteinUhlenbeck`]: temporally correlated noise
//!   `x <- x + theta (0 - x) dt + sigma sqrt(dt) N(0, 1)` (SB3's `OrnsteinUhlenbeckActionNoise`,
//!   DDPG paper: `theta = 0.15`, `sigma = 0.2`), reset to 0 at the end of each episode.
//!
//! Draws come from the caller's seeded ChaCha stream; the OU state is part of a checkpoint.

use rand_distr::{Distribution, StandardNormal};
use rlox_core::seeding::Rng;
use rlox_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// Which exploration noise.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum NoiseConfig {
    /// No noise (greedy acting).
    None,
    /// Gaussian noise with standard deviation `sigma` in every dimension.
    Normal {
        /// Standard deviation (in the scaled space `[-1, 1]`).
        sigma: f64,
    },
    /// Ornstein-Uhlenbeck noise.
    OrnsteinUhlenbeck {
        /// Volatility.
        sigma: f64,
        /// Mean-reversion rate (SB3: 0.15).
        #[serde(default = "theta")]
        theta: f64,
        /// Time step (SB3: 1e-2).
        #[serde(default = "dt")]
        dt: f64,
    },
}

fn theta() -> f64 {
    0.15
}
fn dt() -> f64 {
    1e-2
}

impl NoiseConfig {
    /// Check the values; `what` names the config field in errors.
    pub fn validate(&self, what: &str) -> Result<()> {
        let ok = match *self {
            NoiseConfig::None => true,
            NoiseConfig::Normal { sigma } => sigma >= 0.0 && sigma.is_finite(),
            NoiseConfig::OrnsteinUhlenbeck { sigma, theta, dt } => {
                sigma >= 0.0 && sigma.is_finite() && theta >= 0.0 && theta.is_finite() && dt > 0.0 && dt.is_finite()
            }
        };
        if ok {
            Ok(())
        } else {
            Err(Error::invalid(what, format!("{self:?}: sigma and theta must be finite and >= 0, dt > 0")))
        }
    }
}

/// A noise process with its state.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionNoise {
    config: NoiseConfig,
    /// The OU state (unused otherwise).
    pub state: Vec<f64>,
}

impl ActionNoise {
    /// A process for `dim`-dimensional actions, starting at 0.
    pub fn new(config: NoiseConfig, dim: usize) -> Self {
        ActionNoise { config, state: vec![0.0; dim] }
    }

    /// The next noise vector.
    pub fn sample(&mut self, rng: &mut Rng) -> Vec<f64> {
        match self.config {
            NoiseConfig::None => vec![0.0; self.state.len()],
            NoiseConfig::Normal { sigma } => (0..self.state.len())
                .map(|_| {
                    let z: f64 = StandardNormal.sample(rng);
                    sigma * z
                })
                .collect(),
            NoiseConfig::OrnsteinUhlenbeck { sigma, theta, dt } => {
                for x in self.state.iter_mut() {
                    let z: f64 = StandardNormal.sample(rng);
                    *x += theta * (0.0 - *x) * dt + sigma * dt.sqrt() * z;
                }
                self.state.clone()
            }
        }
    }

    /// Start a new episode (the OU process returns to 0).
    pub fn reset(&mut self) {
        self.state.iter_mut().for_each(|x| *x = 0.0);
    }

    /// `action + noise`, clipped to `[-1, 1]`.
    pub fn perturb(&mut self, action: &mut [f32], rng: &mut Rng) {
        if matches!(self.config, NoiseConfig::None) {
            return;
        }
        for (a, n) in action.iter_mut().zip(self.sample(rng)) {
            *a = (*a + n as f32).clamp(-1.0, 1.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rlox_core::seeding::rng_from_seed;

    /// Seeded: 20000 draws, standard deviation within 3% of sigma, mean within 0.01.
    #[test]
    fn normal_noise_has_the_asked_spread() {
        let mut n = ActionNoise::new(NoiseConfig::Normal { sigma: 0.1 }, 1);
        let mut rng = rng_from_seed(4);
        let xs: Vec<f64> = (0..20_000).map(|_| n.sample(&mut rng)[0]).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64).sqrt();
        assert!(mean.abs() < 0.01 && (sd - 0.1).abs() < 0.003, "{mean} {sd}");
    }

    /// OU: successive values are strongly correlated (lag-1 autocorrelation 1 - theta dt = 0.9985 in
    /// theory; we require > 0.95), the stationary spread is sigma / sqrt(2 theta) within 15%, and reset zeroes it.
    #[test]
    fn ou_noise_is_correlated_and_resets() {
        let mut n = ActionNoise::new(NoiseConfig::OrnsteinUhlenbeck { sigma: 0.3, theta: 0.15, dt: 1e-2 }, 1);
        let mut rng = rng_from_seed(8);
        let xs: Vec<f64> = (0..400_000).map(|_| n.sample(&mut rng)[0]).collect();
        let tail = &xs[100_000..];
        let mean = tail.iter().sum::<f64>() / tail.len() as f64;
        let var = tail.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / tail.len() as f64;
        let cov = tail.windows(2).map(|w| (w[0] - mean) * (w[1] - mean)).sum::<f64>() / (tail.len() - 1) as f64;
        assert!(cov / var > 0.95, "{}", cov / var);
        let want = 0.3 / (2.0f64 * 0.15).sqrt();
        assert!((var.sqrt() - want).abs() < 0.15 * want, "{} vs {want}", var.sqrt());
        n.reset();
        assert_eq!(n.state, vec![0.0]);
    }

    #[test]
    fn perturb_clips_and_bad_config_names_the_field() {
        let mut n = ActionNoise::new(NoiseConfig::Normal { sigma: 10.0 }, 3);
        let mut a = [0.9f32, -0.9, 0.0];
        n.perturb(&mut a, &mut rng_from_seed(1));
        assert!(a.iter().all(|x| x.abs() <= 1.0));
        let e = NoiseConfig::Normal { sigma: -1.0 }.validate("td3.action_noise").unwrap_err();
        assert!(e.to_string().contains("td3.action_noise"));
    }
}
