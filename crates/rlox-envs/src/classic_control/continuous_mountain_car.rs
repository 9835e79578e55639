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

use super::batch::{
    reset_per_env, step_per_env, AutoresetMode, BatchEnv, BatchSeeding, Book, EnvRows, Reward, StepBuffers,
};
use super::{check_state, needs_reset, py_square, scalar_action};
use rlox_core::env::{NpRandom, SetState};
use rlox_core::seeding::{np_random, Generator};
use rlox_core::spaces::{BoxSpace, Space};
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

/// Gymnasium's reset: `np.array([uniform(low=-0.6, high=-0.4), 0])` (a `float64` state).
#[inline]
fn sample_initial(rng: &mut Generator) -> (f64, f64) {
    (rng.uniform(-0.6, -0.4), 0.0)
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
    rng: Generator,
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

    /// A new env; call [`Env::reset`] before stepping. Until it is seeded, it draws from fresh OS
    /// entropy (as Gymnasium does).
    pub fn new() -> Self {
        MountainCarContinuous { position: 0.0, velocity: 0.0, wide: true, started: false, rng: np_random(None).0 }
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
            self.rng = np_random(Some(s)).0;
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

impl NpRandom for MountainCarContinuous {
    fn np_random(&self) -> &Generator {
        &self.rng
    }
    fn np_random_mut(&mut self) -> &mut Generator {
        &mut self.rng
    }
}

/// `MountainCarContinuous-v0` as registered: [`MountainCarContinuous`] inside a 999-step [`TimeLimit`].
pub fn mountain_car_continuous_v0() -> TimeLimit<MountainCarContinuous> {
    TimeLimit::new(MountainCarContinuous::new(), MAX_EPISODE_STEPS)
}

/// N continuous mountain cars as structure-of-arrays with the time limit inside: Gymnasium's
/// `SyncVectorEnv` of `MountainCarContinuous-v0` envs (what `gymnasium.make_vec` builds), env `i`
/// with its own generator seeded with `s + i` ([`BatchSeeding::PerEnv`]). Actions are one force per
/// env. See [`super::batch`] for the caller-buffer API and the autoreset modes.
#[derive(Debug, Clone)]
pub struct MountainCarContinuousVec {
    state: State,
    book: Book,
    /// Scratch for [`rlox_core::vec_env::VecEnv::step`]: the forces as one flat slice.
    flat_actions: Vec<f32>,
}

/// The batch state, one array per component, and whether each env still holds a reset's
/// `float64` state (see the module docs).
#[derive(Debug, Clone)]
struct State {
    position: Vec<f64>,
    velocity: Vec<f64>,
    wide: Vec<bool>,
}

/// The envs of a step: the state and the (checked) forces.
struct Rows<'a> {
    state: &'a mut State,
    actions: &'a [f32],
}

impl EnvRows for Rows<'_> {
    #[inline(always)]
    fn step_row(&mut self, i: usize, obs: &mut [f32]) -> (f64, bool) {
        let s = &mut *self.state;
        let (p, v, terminated, reward) = dynamics(s.position[i], s.velocity[i], s.wide[i], self.actions[i]);
        s.position[i] = p;
        s.velocity[i] = v;
        s.wide[i] = false;
        obs.copy_from_slice(&observe(p, v));
        (reward, terminated)
    }

    #[inline(always)]
    fn reset_row(&mut self, i: usize, rng: &mut Generator, obs: &mut [f32]) {
        let (p, v) = sample_initial(rng);
        self.state.position[i] = p;
        self.state.velocity[i] = v;
        self.state.wide[i] = true;
        obs.copy_from_slice(&observe(p, v));
    }
}

impl MountainCarContinuousVec {
    /// `num_envs` cars with the registered limit of 999 steps.
    pub fn new(num_envs: usize) -> Result<Self> {
        Self::with_time_limit(num_envs, MAX_EPISODE_STEPS)
    }

    /// `num_envs` cars truncated after `max_episode_steps` steps.
    pub fn with_time_limit(num_envs: usize, max_episode_steps: usize) -> Result<Self> {
        let book = Book::new(ID, num_envs, 2, max_episode_steps, BatchSeeding::PerEnv)?;
        Ok(MountainCarContinuousVec {
            state: State { position: vec![0.0; num_envs], velocity: vec![0.0; num_envs], wide: vec![true; num_envs] },
            book,
            flat_actions: Vec::with_capacity(num_envs),
        })
    }

    /// The state of env `i` in [`STATE_LAYOUT`].
    pub fn state(&self, i: usize) -> Result<Vec<f64>> {
        self.book.check_index(i)?;
        Ok(vec![self.state.position[i], self.state.velocity[i]])
    }

    /// Overwrite the state of env `i` (a `float64` state, as after a reset) without touching its clock.
    pub fn set_state(&mut self, i: usize, state: &[f64]) -> Result<()> {
        self.book.check_index(i)?;
        check_state(ID, STATE_LAYOUT, state, 2)?;
        self.state.position[i] = state[0];
        self.state.velocity[i] = state[1];
        self.state.wide[i] = true;
        self.book.obs[2 * i..2 * i + 2].copy_from_slice(&observe(state[0], state[1]));
        Ok(())
    }

    /// The generators, one per env.
    pub fn generators(&self) -> &[Generator] {
        &self.book.rngs
    }

    /// The generators, mutably.
    pub fn generators_mut(&mut self) -> &mut [Generator] {
        &mut self.book.rngs
    }

    /// [`BatchEnv::step_into`]: one force per env; finite forces outside `[-1, 1]` are clipped (as
    /// Gymnasium does), NaN and infinities are errors.
    pub fn step_flat<R: Reward>(&mut self, actions: &[f32], out: StepBuffers<'_, R>) -> Result<()> {
        self.book.check_step(actions.len(), &out)?;
        for &a in actions {
            scalar_action(ID, &[a], MIN_ACTION, MAX_ACTION)?;
        }
        step_per_env(&mut self.book, out, &mut Rows { state: &mut self.state, actions });
        Ok(())
    }
}

impl BatchEnv for MountainCarContinuousVec {
    type Action = f32;

    fn id(&self) -> &'static str {
        ID
    }
    fn num_envs(&self) -> usize {
        self.book.len()
    }
    fn obs_dim(&self) -> usize {
        2
    }
    fn autoreset_mode(&self) -> AutoresetMode {
        self.book.autoreset
    }
    fn set_autoreset_mode(&mut self, mode: AutoresetMode) {
        self.book.autoreset = mode;
    }
    fn seeding(&self) -> BatchSeeding {
        self.book.seeding
    }
    fn reset_into(&mut self, seed: Option<u64>, obs: &mut [f32]) -> Result<()> {
        self.book.begin_reset(seed, obs)?;
        reset_per_env(&mut self.book, obs, &mut Rows { state: &mut self.state, actions: &[] });
        Ok(())
    }
    fn step_into<R: Reward>(&mut self, actions: &[f32], out: StepBuffers<'_, R>) -> Result<()> {
        self.step_flat(actions, out)
    }
}

super::impl_vec_env_continuous!(MountainCarContinuousVec, observation_space, action_space, MIN_ACTION, MAX_ACTION);
