//! Gymnasium 1.4's classic-control environments, bit-exact against Gymnasium's own traces.
//!
//! | id | scalar env | batch | constructor (with `TimeLimit`) | limit |
//! |---|---|---|---|---|
//! | `CartPole-v1` | [`CartPole`] | [`CartPoleVec`] | [`cartpole_v1`] | 500 |
//! | `Acrobot-v1` | [`Acrobot`] | [`AcrobotVec`] | [`acrobot_v1`] | 500 |
//! | `MountainCar-v0` | [`MountainCar`] | [`MountainCarVec`] | [`mountain_car_v0`] | 200 |
//! | `MountainCarContinuous-v0` | [`MountainCarContinuous`] | [`MountainCarContinuousVec`] | [`mountain_car_continuous_v0`] | 999 |
//! | `Pendulum-v1` | [`Pendulum`] | [`PendulumVec`] | [`pendulum_v1`] | 200 |
//!
//! ## How "bit-exact" is reached
//! Gymnasium computes with NumPy scalars, and NumPy 2's promotion rules (NEP 50) decide, operation by
//! operation, whether a value is rounded to `float32` or kept in `float64`: a Python float meeting a
//! `np.float32` is *weak* and is rounded to `float32` first, a `np.float64` meeting a `np.float32`
//! widens the result to `float64`. Each env file follows its Gymnasium counterpart expression by
//! expression, in the same evaluation order (floating-point addition is not associative), and says
//! where a value is `f32`. The sines and cosines call the platform's `libm`, as NumPy does for
//! scalars; Rust never contracts `a * b + c` into a fused multiply-add unless asked, so the rounding
//! steps are the same as NumPy's.
//!
//! ## Scalar envs and batches
//! Each scalar env implements [`rlox_core::Env`] (observations as `[f32; N]`, so a step allocates
//! nothing) and [`rlox_core::env::SetState`]. The time limit is Gymnasium's `TimeLimit` wrapper:
//! the `*_v1()`/`*_v0()` constructors return the env wrapped in [`rlox_core::wrappers::TimeLimit`]
//! with the registered limit.
//!
//! Each batch (`*Vec`) implements [`rlox_core::vec_env::VecEnv`]: one array per state component, one
//! loop over the envs, the time limit counted inside the loop, and Gymnasium's `NEXT_STEP`
//! autoreset (see [`rlox_core::vec_env`]). The batch calls the very same `dynamics` function as
//! the scalar env, so both produce the same bits.
//!
//! ## Seeding
//! Initial states are drawn from Gymnasium's ranges with Gymnasium's formula
//! (`low + (high - low) * u`, `u` uniform in `[0, 1)`), but `u` comes from rlox's ChaCha8 stream
//! ([`rlox_core::seeding`]), not NumPy's PCG64: the same seed gives a different (but equally
//! distributed) initial state than Gymnasium. An env that was never seeded uses seed 0, so runs are
//! reproducible by default. To replay a Gymnasium episode exactly, reset and then set the state with
//! [`rlox_core::env::SetState::set_state`].

pub mod acrobot;
pub mod cartpole;
pub mod continuous_mountain_car;
pub mod mountain_car;
pub mod pendulum;

pub use acrobot::{acrobot_v1, Acrobot, AcrobotVec};
pub use cartpole::{cartpole_v1, CartPole, CartPoleVec};
pub use continuous_mountain_car::{mountain_car_continuous_v0, MountainCarContinuous, MountainCarContinuousVec};
pub use mountain_car::{mountain_car_v0, MountainCar, MountainCarVec};
pub use pendulum::{pendulum_v1, Pendulum, PendulumVec};

use rand::Rng as _;
use rlox_core::seeding::{rng_from_seed, Rng};
use rlox_core::{Error, Result};

/// The seed of an env that was never seeded (Gymnasium would use OS entropy; rlox stays reproducible).
pub const DEFAULT_SEED: u64 = 0;

/// NumPy's `Generator.uniform(low, high)` formula on rlox's stream: `low + (high - low) * u`.
#[inline]
pub(crate) fn uniform(rng: &mut Rng, low: f64, high: f64) -> f64 {
    low + (high - low) * rng.random::<f64>()
}

/// Python's `x ** 2` on a float (and NumPy's on a `np.float64`): C's `pow(x, 2.0)`.
///
/// This is *not* always `x * x`: glibc's `pow` is accurate to about half an ulp but not correctly
/// rounded, and for roughly one `x` in a thousand it returns the neighbour of the correctly rounded
/// square (Acrobot drifts by an ulp within a few hundred steps if `x * x` is used). The exponent
/// goes through [`std::hint::black_box`] because LLVM would otherwise rewrite `pow(x, 2.0)` as
/// `x * x`. (`np.square`, used by CartPole, *is* `x * x`.)
#[inline(always)]
pub(crate) fn py_square(x: f64) -> f64 {
    x.powf(std::hint::black_box(2.0))
}

/// NumPy's `u ** 2` on a `np.float32`: C's `powf(u, 2.0f)`, which rounds the exact square (at most
/// 48 bits) once; ties at the `f32` midpoint do not always go to even as `u * u` does.
#[inline(always)]
pub(crate) fn py_square_f32(u: f32) -> f32 {
    u.powf(std::hint::black_box(2.0f32))
}

/// Python's (and NumPy's) float `%`: the result takes the sign of the divisor.
///
/// Rust's `%` is C's `fmod` (sign of the dividend); Python adds the divisor once when the signs
/// differ, and turns a zero remainder into a zero with the divisor's sign.
#[inline]
pub(crate) fn floor_mod(x: f64, m: f64) -> f64 {
    let r = x % m;
    if r != 0.0 {
        if (r < 0.0) != (m < 0.0) {
            r + m
        } else {
            r
        }
    } else {
        0.0f64.copysign(m)
    }
}

/// The error for a discrete action outside `Discrete(n)`.
#[cold]
pub(crate) fn bad_discrete(env: &str, action: usize, n: usize) -> Error {
    Error::InvalidAction { env: env.to_string(), action: action.to_string(), space: format!("Discrete({n})") }
}

/// Check a one-dimensional continuous action and return its value.
///
/// Out-of-range values are accepted and clipped by the dynamics, as Gymnasium does (its reference
/// traces step Pendulum with 3.5 and -7.0); a wrong length, NaN or an infinity is an error.
#[inline]
pub(crate) fn scalar_action(env: &str, action: &[f32], low: f32, high: f32) -> Result<f32> {
    match action {
        [a] if a.is_finite() => Ok(*a),
        _ => Err(bad_continuous(env, action, low, high)),
    }
}

#[cold]
fn bad_continuous(env: &str, action: &[f32], low: f32, high: f32) -> Error {
    let why =
        if action.len() != 1 { format!(" (length {}, expected 1)", action.len()) } else { " (not finite)".into() };
    Error::InvalidAction {
        env: env.to_string(),
        action: format!("{action:?}{why}"),
        space: format!("Box({low:?}, {high:?}, (1,), float32); finite values outside the bounds are clipped"),
    }
}

/// Check the length of a state passed to `set_state`.
pub(crate) fn check_state(env: &str, layout: &str, state: &[f64], n: usize) -> Result<()> {
    if state.len() != n {
        return Err(Error::invalid(
            format!("{env} state"),
            format!("got {} values, expected {n}: {layout}", state.len()),
        ));
    }
    Ok(())
}

/// The error for `step` before `reset`.
#[cold]
pub(crate) fn needs_reset(env: &str) -> Error {
    Error::NeedsReset { env: env.to_string(), when: "before reset()" }
}

/// The bookkeeping every batch shares: outputs, flags, episode clocks and one RNG per env.
///
/// The state arrays themselves live in each env's batch (one `Vec<f64>` per component).
#[derive(Debug, Clone)]
pub(crate) struct Book {
    pub obs: Vec<f32>,
    pub rewards: Vec<f64>,
    pub terminated: Vec<bool>,
    pub truncated: Vec<bool>,
    /// The env finished at the previous call and is reset at this one (`NEXT_STEP`).
    pub pending_reset: Vec<bool>,
    /// Steps in the current episode (the `TimeLimit` counter).
    pub elapsed: Vec<u32>,
    pub rngs: Vec<Rng>,
    pub max_episode_steps: u32,
    pub started: bool,
}

impl Book {
    pub fn new(env: &str, num_envs: usize, obs_dim: usize, max_episode_steps: usize) -> Result<Self> {
        if num_envs == 0 {
            return Err(Error::invalid("num_envs", format!("a {env} batch needs at least one env")));
        }
        if max_episode_steps == 0 || max_episode_steps > u32::MAX as usize {
            return Err(Error::invalid("max_episode_steps", format!("{max_episode_steps} is not in 1..=u32::MAX")));
        }
        Ok(Book {
            obs: vec![0.0; num_envs * obs_dim],
            rewards: vec![0.0; num_envs],
            terminated: vec![false; num_envs],
            truncated: vec![false; num_envs],
            pending_reset: vec![false; num_envs],
            elapsed: vec![0; num_envs],
            rngs: (0..num_envs as u64).map(|i| rng_from_seed(DEFAULT_SEED + i)).collect(),
            max_episode_steps: max_episode_steps as u32,
            started: false,
        })
    }

    pub fn len(&self) -> usize {
        self.rewards.len()
    }

    /// Reseed (env `i` gets `seed + i`) and clear every flag before a full reset.
    pub fn begin_reset(&mut self, seed: Option<u64>) {
        if let Some(s) = seed {
            for (i, r) in self.rngs.iter_mut().enumerate() {
                *r = rng_from_seed(s.wrapping_add(i as u64));
            }
        }
        self.rewards.fill(0.0);
        self.terminated.fill(false);
        self.truncated.fill(false);
        self.pending_reset.fill(false);
        self.elapsed.fill(0);
        self.started = true;
    }

    /// Validate the call before any env moves.
    pub fn check_step(&self, env: &str, num_actions: usize) -> Result<()> {
        if !self.started {
            return Err(needs_reset(env));
        }
        if num_actions != self.len() {
            return Err(Error::invalid("actions", format!("got {num_actions} actions for {} envs", self.len())));
        }
        Ok(())
    }

    /// Record the outcome of env `i`'s step, counting the time limit.
    #[inline(always)]
    pub fn record(&mut self, i: usize, reward: f64, terminated: bool) {
        let elapsed = self.elapsed[i] + 1;
        let truncated = elapsed >= self.max_episode_steps;
        self.elapsed[i] = elapsed;
        self.rewards[i] = reward;
        self.terminated[i] = terminated;
        self.truncated[i] = truncated;
        self.pending_reset[i] = terminated | truncated;
    }

    /// Record that env `i` was reset at this call: reward 0, both flags false, a fresh clock.
    #[inline(always)]
    pub fn record_reset(&mut self, i: usize) {
        self.elapsed[i] = 0;
        self.rewards[i] = 0.0;
        self.terminated[i] = false;
        self.truncated[i] = false;
        self.pending_reset[i] = false;
    }

    /// Check an env index for the per-env accessors.
    pub fn check_index(&self, env: &str, i: usize) -> Result<()> {
        if i >= self.len() {
            return Err(Error::invalid("env index", format!("{env} batch has {} envs, index {i}", self.len())));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::floor_mod;

    #[test]
    fn floor_mod_follows_python() {
        // Values checked against CPython: 7.5 % 2 == 1.5, -7.5 % 2 == 0.5, 7.5 % -2 == -0.5, -4.0 % 2 == 0.0
        assert_eq!(floor_mod(7.5, 2.0), 1.5);
        assert_eq!(floor_mod(-7.5, 2.0), 0.5);
        assert_eq!(floor_mod(7.5, -2.0), -0.5);
        assert_eq!(floor_mod(-4.0, 2.0).to_bits(), 0.0f64.to_bits());
        assert_eq!(floor_mod(4.0, -2.0).to_bits(), (-0.0f64).to_bits());
    }
}
