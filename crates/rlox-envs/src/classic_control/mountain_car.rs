//! `MountainCar-v0`: drive an under-powered car up a hill by rocking it back and forth.
//!
//! Gymnasium 1.4's `MountainCarEnv` (goal velocity 0). The state `[position, velocity]` is `f64`
//! throughout (Gymnasium's Python floats and `np.float64`s); the observation is the state rounded to `f32`.
//!
//! * Actions: `Discrete(3)`: 0 accelerates left, 1 does nothing, 2 accelerates right.
//! * Reward: -1 per step. Termination: position >= 0.5 with velocity >= 0.
//! * Velocity is clipped to `[-0.07, 0.07]`, position to `[-1.2, 0.6]`; hitting the left wall
//!   while moving left stops the car.
//! * Reset: position uniform in `[-0.6, -0.4)`, velocity 0.

use super::batch::{
    reset_per_env, step_per_env, AutoresetMode, BatchEnv, BatchSeeding, Book, DiscreteAction, EnvRows, Reward,
    StepBuffers,
};
use super::{bad_discrete, check_state, needs_reset};
use rlox_core::env::{NpRandom, SetState};
use rlox_core::seeding::{np_random, Generator};
use rlox_core::spaces::{BoxSpace, Discrete, Space};
use rlox_core::wrappers::TimeLimit;
use rlox_core::{Env, Info, Result, Step};

/// The Gymnasium id.
pub const ID: &str = "MountainCar-v0";
/// The registered time limit of `MountainCar-v0`.
pub const MAX_EPISODE_STEPS: usize = 200;
/// The layout of [`SetState`] states.
pub const STATE_LAYOUT: &str = "[position, velocity]";

const MIN_POSITION: f64 = -1.2;
const MAX_POSITION: f64 = 0.6;
const MAX_SPEED: f64 = 0.07;
const GOAL_POSITION: f64 = 0.5;
const GOAL_VELOCITY: f64 = 0.0;
const FORCE: f64 = 0.001;
const GRAVITY: f64 = 0.0025;

/// One step from `(position, velocity)` under `action` (0, 1 or 2, already checked).
///
/// Returns `(position, velocity, terminated)`. Gymnasium's `velocity += a + b` adds the sum of
/// the two accelerations, so they are summed first.
#[inline(always)]
pub fn dynamics(position: f64, velocity: f64, action: usize) -> (f64, f64, bool) {
    let velocity = velocity + ((action as f64 - 1.0) * FORCE + (3.0 * position).cos() * (-GRAVITY));
    let velocity = velocity.clamp(-MAX_SPEED, MAX_SPEED);
    let position = (position + velocity).clamp(MIN_POSITION, MAX_POSITION);
    let velocity = if position == MIN_POSITION && velocity < 0.0 { 0.0 } else { velocity };
    let terminated = position >= GOAL_POSITION && velocity >= GOAL_VELOCITY;
    (position, velocity, terminated)
}

/// The observation: the state rounded to `f32`.
#[inline(always)]
pub fn observe(position: f64, velocity: f64) -> [f32; 2] {
    [position as f32, velocity as f32]
}

/// Gymnasium's reset: `np.array([uniform(low=-0.6, high=-0.4), 0])`.
#[inline]
fn sample_initial(rng: &mut Generator) -> (f64, f64) {
    (rng.uniform(-0.6, -0.4), 0.0)
}

fn observation_space() -> Space {
    BoxSpace::new(vec![MIN_POSITION as f32, -MAX_SPEED as f32], vec![MAX_POSITION as f32, MAX_SPEED as f32]).into()
}

/// `MountainCar-v0` without its time limit (see [`mountain_car_v0`] for the registered env).
#[derive(Debug, Clone)]
pub struct MountainCar {
    position: f64,
    velocity: f64,
    started: bool,
    rng: Generator,
}

impl Default for MountainCar {
    fn default() -> Self {
        Self::new()
    }
}

impl MountainCar {
    /// The registered time limit (200).
    pub const fn max_episode_steps() -> usize {
        MAX_EPISODE_STEPS
    }

    /// A new env; call [`Env::reset`] before stepping. Until it is seeded, it draws from fresh OS
    /// entropy (as Gymnasium does).
    pub fn new() -> Self {
        MountainCar { position: 0.0, velocity: 0.0, started: false, rng: np_random(None).0 }
    }

    /// The current observation.
    pub fn obs(&self) -> [f32; 2] {
        observe(self.position, self.velocity)
    }
}

impl Env for MountainCar {
    type Obs = [f32; 2];
    type Action = usize;

    fn id(&self) -> &str {
        ID
    }

    fn observation_space(&self) -> Space {
        observation_space()
    }

    fn action_space(&self) -> Space {
        Discrete::new(3).into()
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<([f32; 2], Info)> {
        if let Some(s) = seed {
            self.rng = np_random(Some(s)).0;
        }
        (self.position, self.velocity) = sample_initial(&mut self.rng);
        self.started = true;
        Ok((self.obs(), Info::new()))
    }

    #[inline]
    fn step(&mut self, action: &usize) -> Result<Step<[f32; 2]>> {
        if *action >= 3 {
            return Err(bad_discrete(ID, *action, 3));
        }
        if !self.started {
            return Err(needs_reset(ID));
        }
        let (position, velocity, terminated) = dynamics(self.position, self.velocity, *action);
        self.position = position;
        self.velocity = velocity;
        Ok(Step { obs: self.obs(), reward: -1.0, terminated, truncated: false, info: Info::new() })
    }
}

impl SetState for MountainCar {
    /// Set `[position, velocity]`; the env counts as reset.
    fn set_state(&mut self, state: &[f64]) -> Result<()> {
        check_state(ID, STATE_LAYOUT, state, 2)?;
        self.position = state[0];
        self.velocity = state[1];
        self.started = true;
        Ok(())
    }

    fn state(&self) -> Vec<f64> {
        vec![self.position, self.velocity]
    }
}

impl NpRandom for MountainCar {
    fn np_random(&self) -> &Generator {
        &self.rng
    }
    fn np_random_mut(&mut self) -> &mut Generator {
        &mut self.rng
    }
}

/// `MountainCar-v0` as registered: [`MountainCar`] inside a 200-step [`TimeLimit`].
pub fn mountain_car_v0() -> TimeLimit<MountainCar> {
    TimeLimit::new(MountainCar::new(), MAX_EPISODE_STEPS)
}

/// N mountain cars as structure-of-arrays with the time limit inside: Gymnasium's
/// `SyncVectorEnv` of `MountainCar-v0` envs (what `gymnasium.make_vec("MountainCar-v0", n)` builds),
/// env `i` with its own generator seeded with `s + i` ([`BatchSeeding::PerEnv`]). See
/// [`super::batch`] for the caller-buffer API and the autoreset modes.
#[derive(Debug, Clone)]
pub struct MountainCarVec {
    state: State,
    book: Book,
}

/// The batch state, one array per component.
#[derive(Debug, Clone)]
struct State {
    position: Vec<f64>,
    velocity: Vec<f64>,
}

/// The envs of a step: the state and the (checked) actions.
struct Rows<'a, A> {
    state: &'a mut State,
    actions: &'a [A],
}

impl<A: DiscreteAction> EnvRows for Rows<'_, A> {
    #[inline(always)]
    fn step_row(&mut self, i: usize, obs: &mut [f32]) -> (f64, bool) {
        let a = self.actions[i].index().unwrap_or(1);
        let (p, v, terminated) = dynamics(self.state.position[i], self.state.velocity[i], a);
        self.state.position[i] = p;
        self.state.velocity[i] = v;
        obs.copy_from_slice(&observe(p, v));
        (-1.0, terminated)
    }

    #[inline(always)]
    fn reset_row(&mut self, i: usize, rng: &mut Generator, obs: &mut [f32]) {
        let (p, v) = sample_initial(rng);
        self.state.position[i] = p;
        self.state.velocity[i] = v;
        obs.copy_from_slice(&observe(p, v));
    }
}

impl MountainCarVec {
    /// `num_envs` cars with the registered limit of 200 steps.
    pub fn new(num_envs: usize) -> Result<Self> {
        Self::with_time_limit(num_envs, MAX_EPISODE_STEPS)
    }

    /// `num_envs` cars truncated after `max_episode_steps` steps.
    pub fn with_time_limit(num_envs: usize, max_episode_steps: usize) -> Result<Self> {
        let book = Book::new(ID, num_envs, 2, max_episode_steps, BatchSeeding::PerEnv)?;
        Ok(MountainCarVec { state: State { position: vec![0.0; num_envs], velocity: vec![0.0; num_envs] }, book })
    }

    /// The state of env `i` in [`STATE_LAYOUT`].
    pub fn state(&self, i: usize) -> Result<Vec<f64>> {
        self.book.check_index(i)?;
        Ok(vec![self.state.position[i], self.state.velocity[i]])
    }

    /// Overwrite the state of env `i` (and its observation in the batch's own buffer) without
    /// touching its episode clock.
    pub fn set_state(&mut self, i: usize, state: &[f64]) -> Result<()> {
        self.book.check_index(i)?;
        check_state(ID, STATE_LAYOUT, state, 2)?;
        self.state.position[i] = state[0];
        self.state.velocity[i] = state[1];
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

    /// [`BatchEnv::step_into`] for any integer action type.
    pub fn step_actions<A: DiscreteAction, R: Reward>(&mut self, actions: &[A], out: StepBuffers<'_, R>) -> Result<()> {
        self.book.check_step(actions.len(), &out)?;
        if let Some(&a) = actions.iter().find(|a| !matches!(a.index(), Some(0..=2))) {
            return Err(bad_discrete(ID, a, 3));
        }
        step_per_env(&mut self.book, out, &mut Rows { state: &mut self.state, actions });
        Ok(())
    }
}

impl BatchEnv for MountainCarVec {
    type Action = i64;

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
        reset_per_env(&mut self.book, obs, &mut Rows::<i64> { state: &mut self.state, actions: &[] });
        Ok(())
    }
    fn step_into<R: Reward>(&mut self, actions: &[i64], out: StepBuffers<'_, R>) -> Result<()> {
        self.step_actions(actions, out)
    }
}

super::impl_vec_env_discrete!(MountainCarVec, 3, observation_space);
