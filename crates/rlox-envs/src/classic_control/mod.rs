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
//! nothing), [`rlox_core::env::SetState`] and [`rlox_core::env::NpRandom`]. The time limit is
//! Gymnasium's `TimeLimit` wrapper: the `*_v1()`/`*_v0()` constructors return the env wrapped in
//! [`rlox_core::wrappers::TimeLimit`] with the registered limit.
//!
//! Each batch (`*Vec`) holds one array per state component, counts the time limit inside, and
//! offers two interfaces: [`rlox_core::vec_env::VecEnv`] (its own output buffers) and [`BatchEnv`],
//! which steps all envs per call into caller-provided slices (observations, rewards, flags and the
//! final observations of [`AutoresetMode::SameStep`]) without allocating, the form a Python binding
//! fills NumPy arrays with; see [`batch`] for the layout and the autoreset modes. The batches call
//! the very same `dynamics` functions as the scalar envs, except [`CartPoleVec`], whose dynamics run
//! vectorised across envs ([`simd`]: AVX-512 or AVX2 chosen at run time, a portable path otherwise)
//! with `sin`/`cos` replayed lane by lane with the C library's own bits; every path gives the same
//! bits as the scalar env.
//!
//! ## Seeding
//! Every draw is Gymnasium's, from the generator Gymnasium builds
//! ([`rlox_core::seeding::np_random`]: NumPy's `SeedSequence` and `PCG64`), in the same order:
//! `reset(Some(s))` gives the observation of Gymnasium's `env.reset(seed=s)`, `reset(None)`
//! continues the stream, and the same actions then give Gymnasium's episode
//! (`tests/gymnasium_seeded.rs` checks it against Gymnasium 1.4's own episodes). An env that was
//! never seeded draws from fresh OS entropy, as Gymnasium's does. A batch seeded with `s` equals
//! `gymnasium.make_vec(id, num_envs=n)` seeded with `s`: [`CartPoleVec`] follows Gymnasium's
//! NumPy vector env (one generator for the batch) unless built with [`BatchSeeding::PerEnv`]; the
//! other batches follow `SyncVectorEnv` (env `i` seeded with `s + i`). To replay a Gymnasium
//! episode from a given state instead, reset and then set the state with
//! [`rlox_core::env::SetState::set_state`].

/// `VecEnv` for a discrete batch whose inherent `step_actions` does the work.
macro_rules! impl_vec_env_discrete {
    ($ty:ty, $n_actions:expr, $obs_space:path) => {
        impl rlox_core::vec_env::VecEnv for $ty {
            type Action = usize;

            fn num_envs(&self) -> usize {
                self.book.len()
            }
            fn obs_dim(&self) -> usize {
                self.book.obs_dim
            }
            fn single_observation_space(&self) -> rlox_core::Space {
                $obs_space()
            }
            fn single_action_space(&self) -> rlox_core::Space {
                rlox_core::Discrete::new($n_actions).into()
            }
            fn reset(&mut self, seed: Option<u64>) -> rlox_core::Result<()> {
                let mut obs = std::mem::take(&mut self.book.obs);
                let result = $crate::classic_control::BatchEnv::reset_into(self, seed, &mut obs);
                self.book.obs = obs;
                self.book.rewards.fill(0.0);
                self.book.terminated.fill(false);
                self.book.truncated.fill(false);
                result
            }
            fn step(&mut self, actions: &[usize]) -> rlox_core::Result<()> {
                let mut buffers = self.book.take_buffers();
                let result = self.step_actions(actions, buffers.as_step_buffers());
                self.book.restore_buffers(buffers);
                result
            }
            fn observations(&self) -> &[f32] {
                &self.book.obs
            }
            fn rewards(&self) -> &[f64] {
                &self.book.rewards
            }
            fn terminated(&self) -> &[bool] {
                &self.book.terminated
            }
            fn truncated(&self) -> &[bool] {
                &self.book.truncated
            }
        }
    };
}
pub(crate) use impl_vec_env_discrete;

/// `VecEnv` for a batch with one-dimensional `Box` actions whose inherent `step_flat` does the work.
macro_rules! impl_vec_env_continuous {
    ($ty:ty, $obs_space:path, $action_space:path, $low:expr, $high:expr) => {
        impl rlox_core::vec_env::VecEnv for $ty {
            type Action = Vec<f32>;

            fn num_envs(&self) -> usize {
                self.book.len()
            }
            fn obs_dim(&self) -> usize {
                self.book.obs_dim
            }
            fn single_observation_space(&self) -> rlox_core::Space {
                $obs_space()
            }
            fn single_action_space(&self) -> rlox_core::Space {
                $action_space()
            }
            fn reset(&mut self, seed: Option<u64>) -> rlox_core::Result<()> {
                let mut obs = std::mem::take(&mut self.book.obs);
                let result = $crate::classic_control::BatchEnv::reset_into(self, seed, &mut obs);
                self.book.obs = obs;
                self.book.rewards.fill(0.0);
                self.book.terminated.fill(false);
                self.book.truncated.fill(false);
                result
            }
            fn step(&mut self, actions: &[Vec<f32>]) -> rlox_core::Result<()> {
                let mut flat = std::mem::take(&mut self.flat_actions);
                flat.clear();
                for a in actions {
                    flat.push($crate::classic_control::scalar_action(self.book.id, a, $low, $high)?);
                }
                let mut buffers = self.book.take_buffers();
                let result = self.step_flat(&flat, buffers.as_step_buffers());
                self.book.restore_buffers(buffers);
                self.flat_actions = flat;
                result
            }
            fn observations(&self) -> &[f32] {
                &self.book.obs
            }
            fn rewards(&self) -> &[f64] {
                &self.book.rewards
            }
            fn terminated(&self) -> &[bool] {
                &self.book.terminated
            }
            fn truncated(&self) -> &[bool] {
                &self.book.truncated
            }
        }
    };
}
pub(crate) use impl_vec_env_continuous;

pub mod acrobot;
pub mod batch;
pub mod cartpole;
pub mod continuous_mountain_car;
pub mod mountain_car;
pub mod pendulum;
pub mod simd;
mod sincos;
mod sincos_table;

pub use acrobot::{acrobot_v1, Acrobot, AcrobotVec};
pub use batch::{AutoresetMode, BatchEnv, BatchSeeding, DiscreteAction, Reward, StepBuffers};
pub use cartpole::{cartpole_v1, CartPole, CartPoleVec};
pub use continuous_mountain_car::{mountain_car_continuous_v0, MountainCarContinuous, MountainCarContinuousVec};
pub use mountain_car::{mountain_car_v0, MountainCar, MountainCarVec};
pub use pendulum::{pendulum_v1, Pendulum, PendulumVec};
pub use simd::Isa;

use rlox_core::{Error, Result};

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
pub(crate) fn bad_discrete(env: &str, action: impl std::fmt::Display, n: usize) -> Error {
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
