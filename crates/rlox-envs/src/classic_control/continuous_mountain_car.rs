//! `MountainCarContinuous-v0`: the mountain car with a continuous engine force and an energy cost.
//!
//! Gymnasium 1.4's `Continuous_MountainCarEnv` (goal position 0.45, power 0.0015).
//!
//! ## Where `f32` enters
//! Gymnasium stores the state as a `float32` array after every step, but `reset()` (and a replay
//! harness that assigns `env.unwrapped.state = np.array(...)`) leaves a `float64` array. NumPy 2's
//! promotion then gives two regimes, which this env tracks with a `wide` flag:
//!
//! * **first step after a reset or [`SetState::set_state`]** (`wide`): position and velocity are
//!   `np.float64`, so the step runs in `f64` except for the engine term, and the result is rounded
//!   to `f32` when stored.
//! * **every later step**: position and velocity are `np.float32`; `3 * position` is an `f32`
//!   product, and the Python-float constants they meet (`0.07`, `0.6`, `-1.2`, `0.45`) are rounded
//!   to `f32` before each comparison and addition.
//!
//! The engine term `force * power - 0.0025 * cos(3 position)` is `f32` when the action lies in
//! `[-1, 1]` (`force` is then the `np.float32` action itself), but `f64` when the action is clipped:
//! Python's `min(max(a, -1.0), 1.0)` then returns the Python float bound, not a `float32`. The
//! reward uses the raw, unclipped action: `100 * [goal reached] - 0.1 a²`.
//!
//! * Actions: `Box(-1, 1, (1,))`; finite values outside are clipped as in Gymnasium, NaN and
//!   infinities are errors.
//! * Termination: position >= 0.45 with velocity >= 0.
//! * Reset: position uniform in `[-0.6, -0.4)`, velocity 0.

use super::{check_state, needs_reset, py_square, scalar_action, uniform, Book, DEFAULT_SEED};
use rlox_core::env::SetState;
use rlox_core::seeding::{rng_from_seed, Rng};
use rlox_core::spaces::{BoxSpace, Space};
use rlox_core::vec_env::VecEnv;
use rlox_core::wrappers::TimeLimit;
use rlox_core::{Env, Info, Result, Step};

/// The Gymnasium id.
pub const ID: &str = "MountainCarContinuous-v0";
/// The registered time limit of `MountainCarContinuous-v0`.
pub const MAX_EPISODE_STEPS: usize = 999;
/// The layout of [`SetState`] states.
pub const STATE_LAYOUT: &str = "[position, velocity]";

const MIN_ACTION: f32 = -1.0;
const MAX_ACTION: f32 = 1.0;
const MIN_POSITION: f64 = -1.2;
const MAX_POSITION: f64 = 0.6;
const MAX_SPEED: f64 = 0.07;
const GOAL_POSITION: f64 = 0.45;
const GOAL_VELOCITY: f64 = 0.0;
const POWER: f64 = 0.0015;

/// One step from `(position, velocity)` under the raw action `a` (finite, not yet clipped).
///
/// `wide` says whether the state is still the `float64` array of a reset (see the module docs).
/// Returns `(position, velocity, terminated, reward)`; the new state is always `f32`-valued.
#[inline(always)]
pub fn dynamics(position: f64, velocity: f64, wide: bool, a: f32) -> (f64, f64, bool, f64) {
    let in_range = (MIN_ACTION..=MAX_ACTION).contains(&a);
    let (position, velocity, terminated) = if wide {
        let slope = 0.0025 * (3.0 * position).cos();
        let velocity = if in_range {
            velocity + (a * POWER as f32 - slope as f32) as f64
        } else {
            velocity + (a.clamp(MIN_ACTION, MAX_ACTION) as f64 * POWER - slope)
        };
        let velocity = velocity.clamp(-MAX_SPEED, MAX_SPEED);
        let position = (position + velocity).clamp(MIN_POSITION, MAX_POSITION);
        let velocity = if position == MIN_POSITION && velocity < 0.0 { 0.0 } else { velocity };
        let terminated = position >= GOAL_POSITION && velocity >= GOAL_VELOCITY;
        (position as f32, velocity as f32, terminated)
    } else {
        let (p, v) = (position as f32, velocity as f32);
        let slope = 0.0025 * ((3.0f32 * p) as f64).cos();
        let v = if in_range {
            v + (a * POWER as f32 - slope as f32)
        } else {
            v + (a.clamp(MIN_ACTION, MAX_ACTION) as f64 * POWER - slope) as f32
        };
        let v = v.clamp(-MAX_SPEED as f32, MAX_SPEED as f32);
        let p = (p + v).clamp(MIN_POSITION as f32, MAX_POSITION as f32);
        let v = if p == MIN_POSITION as f32 && v < 0.0 { 0.0 } else { v };
        let terminated = p >= GOAL_POSITION as f32 && v >= GOAL_VELOCITY as f32;
        (p, v, terminated)
    };
    let goal = if terminated { 100.0 } else { 0.0 };
    let a = a as f64;
    // `math.pow(a, 2)`: the square of a float32 value is exact in f64, and so is `pow`'s result.
    let reward = goal - py_square(a) * 0.1;
    (position as f64, velocity as f64, terminated, reward)
}

/// The observation: the state rounded to `f32`.
#[inline(always)]
pub fn observe(position: f64, velocity: f64) -> [f32; 2] {
    [position as f32, velocity as f32]
}

#[inline]
fn sample_initial(rng: &mut Rng) -> (f64, f64) {
    (uniform(rng, -0.6, -0.4), 0.0)
}

fn observation_space() -> Space {
    BoxSpace::new(vec![MIN_POSITION as f32, -MAX_SPEED as f32], vec![MAX_POSITION as f32, MAX_SPEED as f32]).into()
}

fn action_space() -> Space {
    BoxSpace::uniform(MIN_ACTION, MAX_ACTION, 1).into()
}

/// `MountainCarContinuous-v0` without its time limit (see [`mountain_car_continuous_v0`]).
#[derive(Debug, Clone)]
pub struct MountainCarContinuous {
    position: f64,
    velocity: f64,
    /// The state is still the `float64` array of a reset (the next step runs in `f64`).
    wide: bool,
    started: bool,
    rng: Rng,
}

impl Default for MountainCarContinuous {
    fn default() -> Self {
        Self::new()
    }
}

impl MountainCarContinuous {
    /// The registered time limit (999).
    pub const fn max_episode_steps() -> usize {
        MAX_EPISODE_STEPS
    }

    /// A new env; call [`Env::reset`] before stepping.
    pub fn new() -> Self {
        MountainCarContinuous {
            position: 0.0,
            velocity: 0.0,
            wide: true,
            started: false,
            rng: rng_from_seed(DEFAULT_SEED),
        }
    }

    /// The current observation.
    pub fn obs(&self) -> [f32; 2] {
        observe(self.position, self.velocity)
    }
}

impl Env for MountainCarContinuous {
    type Obs = [f32; 2];
    type Action = Vec<f32>;

    fn id(&self) -> &str {
        ID
    }

    fn observation_space(&self) -> Space {
        observation_space()
    }

    fn action_space(&self) -> Space {
        action_space()
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<([f32; 2], Info)> {
        if let Some(s) = seed {
            self.rng = rng_from_seed(s);
        }
        (self.position, self.velocity) = sample_initial(&mut self.rng);
        self.wide = true;
        self.started = true;
        Ok((self.obs(), Info::new()))
    }

    #[inline]
    fn step(&mut self, action: &Vec<f32>) -> Result<Step<[f32; 2]>> {
        let a = scalar_action(ID, action, MIN_ACTION, MAX_ACTION)?;
        if !self.started {
            return Err(needs_reset(ID));
        }
        let (position, velocity, terminated, reward) = dynamics(self.position, self.velocity, self.wide, a);
        self.position = position;
        self.velocity = velocity;
        self.wide = false;
        Ok(Step { obs: self.obs(), reward, terminated, truncated: false, info: Info::new() })
    }
}

impl SetState for MountainCarContinuous {
    /// Set `[position, velocity]` as a `float64` state (like Gymnasium's reset): the next step runs
    /// in `f64`, later ones in `f32`. The env counts as reset.
    fn set_state(&mut self, state: &[f64]) -> Result<()> {
        check_state(ID, STATE_LAYOUT, state, 2)?;
        self.position = state[0];
        self.velocity = state[1];
        self.wide = true;
        self.started = true;
        Ok(())
    }

    fn state(&self) -> Vec<f64> {
        vec![self.position, self.velocity]
    }
}

/// `MountainCarContinuous-v0` as registered: [`MountainCarContinuous`] inside a 999-step [`TimeLimit`].
pub fn mountain_car_continuous_v0() -> TimeLimit<MountainCarContinuous> {
    TimeLimit::new(MountainCarContinuous::new(), MAX_EPISODE_STEPS)
}

/// N continuous mountain cars as structure-of-arrays with `NEXT_STEP` autoreset and the time limit inside.
#[derive(Debug, Clone)]
pub struct MountainCarContinuousVec {
    position: Vec<f64>,
    velocity: Vec<f64>,
    wide: Vec<bool>,
    book: Book,
}

impl MountainCarContinuousVec {
    /// `num_envs` cars with the registered limit of 999 steps.
    pub fn new(num_envs: usize) -> Result<Self> {
        Self::with_time_limit(num_envs, MAX_EPISODE_STEPS)
    }

    /// `num_envs` cars truncated after `max_episode_steps` steps.
    pub fn with_time_limit(num_envs: usize, max_episode_steps: usize) -> Result<Self> {
        let book = Book::new(ID, num_envs, 2, max_episode_steps)?;
        Ok(MountainCarContinuousVec {
            position: vec![0.0; num_envs],
            velocity: vec![0.0; num_envs],
            wide: vec![true; num_envs],
            book,
        })
    }

    /// The state of env `i` in [`STATE_LAYOUT`].
    pub fn state(&self, i: usize) -> Result<Vec<f64>> {
        self.book.check_index(ID, i)?;
        Ok(vec![self.position[i], self.velocity[i]])
    }

    /// Overwrite the state of env `i` (a `float64` state, as after a reset) without touching its clock.
    pub fn set_state(&mut self, i: usize, state: &[f64]) -> Result<()> {
        self.book.check_index(ID, i)?;
        check_state(ID, STATE_LAYOUT, state, 2)?;
        self.put(i, state[0], state[1], true);
        Ok(())
    }

    #[inline(always)]
    fn put(&mut self, i: usize, position: f64, velocity: f64, wide: bool) {
        self.position[i] = position;
        self.velocity[i] = velocity;
        self.wide[i] = wide;
        self.book.obs[2 * i..2 * i + 2].copy_from_slice(&observe(position, velocity));
    }
}

impl VecEnv for MountainCarContinuousVec {
    type Action = Vec<f32>;

    fn num_envs(&self) -> usize {
        self.book.len()
    }
    fn obs_dim(&self) -> usize {
        2
    }
    fn single_observation_space(&self) -> Space {
        observation_space()
    }
    fn single_action_space(&self) -> Space {
        action_space()
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<()> {
        self.book.begin_reset(seed);
        for i in 0..self.book.len() {
            let (p, v) = sample_initial(&mut self.book.rngs[i]);
            self.put(i, p, v, true);
        }
        Ok(())
    }

    fn step(&mut self, actions: &[Vec<f32>]) -> Result<()> {
        self.book.check_step(ID, actions.len())?;
        for a in actions {
            scalar_action(ID, a, MIN_ACTION, MAX_ACTION)?;
        }
        for (i, a) in actions.iter().enumerate() {
            if self.book.pending_reset[i] {
                let (p, v) = sample_initial(&mut self.book.rngs[i]);
                self.put(i, p, v, true);
                self.book.record_reset(i);
            } else {
                let (p, v, terminated, reward) = dynamics(self.position[i], self.velocity[i], self.wide[i], a[0]);
                self.put(i, p, v, false);
                self.book.record(i, reward, terminated);
            }
        }
        Ok(())
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
