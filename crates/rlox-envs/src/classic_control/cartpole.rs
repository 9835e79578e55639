//! `CartPole-v1`: balance a pole on a cart by pushing the cart left or right.
//!
//! Gymnasium 1.4's `CartPoleEnv` with its defaults (Euler integration, reward 1 per step, the
//! Sutton-Barto reward off). The state `[x, x_dot, theta, theta_dot]` is `f64`, as Gymnasium keeps
//! it; the observation is that state rounded to `f32`. Every step is computed in `f64` with the
//! same operation order as Gymnasium's `step`, so states match Gymnasium's to the bit.
//!
//! * Actions: `Discrete(2)`, 0 pushes left (-10 N), 1 pushes right (+10 N).
//! * Termination: `|x| > 2.4` or `|theta| > 12°`.
//! * Reset: each component uniform in `[-0.05, 0.05)`.
//! * Stepping after termination without a reset follows Gymnasium: the dynamics keep running,
//!   `terminated` stays true and the reward is 0 (Gymnasium also logs a warning; rlox does not print).

use super::{bad_discrete, check_state, needs_reset, uniform, Book, DEFAULT_SEED};
use rlox_core::env::SetState;
use rlox_core::seeding::{rng_from_seed, Rng};
use rlox_core::spaces::{BoxSpace, Discrete, Space};
use rlox_core::vec_env::VecEnv;
use rlox_core::wrappers::TimeLimit;
use rlox_core::{Env, Info, Result, Step};
use std::f64::consts::PI;

/// The Gymnasium id.
pub const ID: &str = "CartPole-v1";
/// The registered time limit of `CartPole-v1`.
pub const MAX_EPISODE_STEPS: usize = 500;
/// The layout of [`SetState`] states.
pub const STATE_LAYOUT: &str = "[x, x_dot, theta, theta_dot]";

const GRAVITY: f64 = 9.8;
const MASSCART: f64 = 1.0;
const MASSPOLE: f64 = 0.1;
const TOTAL_MASS: f64 = MASSPOLE + MASSCART;
/// Half the pole's length, as in Gymnasium.
const LENGTH: f64 = 0.5;
const POLEMASS_LENGTH: f64 = MASSPOLE * LENGTH;
const FORCE_MAG: f64 = 10.0;
/// Seconds between state updates.
const TAU: f64 = 0.02;
/// 12 degrees, computed as Gymnasium does (`12 * 2 * math.pi / 360`).
const THETA_THRESHOLD_RADIANS: f64 = 12.0 * 2.0 * PI / 360.0;
const X_THRESHOLD: f64 = 2.4;
const RESET_BOUND: f64 = 0.05;

/// One Euler step of the cart-pole from `s` under `action` (0 or 1, already checked).
///
/// Returns the next state and whether it is terminal. The expressions keep Gymnasium's grouping:
/// `np.square(v)` is `v * v`, and products associate left to right as Python evaluates them.
#[inline(always)]
pub fn dynamics(s: [f64; 4], action: usize) -> ([f64; 4], bool) {
    let [x, x_dot, theta, theta_dot] = s;
    let force = if action == 1 { FORCE_MAG } else { -FORCE_MAG };
    let costheta = theta.cos();
    let sintheta = theta.sin();
    let temp = (force + POLEMASS_LENGTH * (theta_dot * theta_dot) * sintheta) / TOTAL_MASS;
    let thetaacc =
        (GRAVITY * sintheta - costheta * temp) / (LENGTH * (4.0 / 3.0 - MASSPOLE * (costheta * costheta) / TOTAL_MASS));
    let xacc = temp - POLEMASS_LENGTH * thetaacc * costheta / TOTAL_MASS;

    let x = x + TAU * x_dot;
    let x_dot = x_dot + TAU * xacc;
    let theta = theta + TAU * theta_dot;
    let theta_dot = theta_dot + TAU * thetaacc;

    // Four comparisons, not `!range.contains(..)`: a NaN state is not terminal in Gymnasium.
    #[allow(clippy::manual_range_contains)]
    let terminated =
        x < -X_THRESHOLD || x > X_THRESHOLD || theta < -THETA_THRESHOLD_RADIANS || theta > THETA_THRESHOLD_RADIANS;
    ([x, x_dot, theta, theta_dot], terminated)
}

/// The observation of a state: each component rounded to `f32`.
#[inline(always)]
pub fn observe(s: &[f64; 4]) -> [f32; 4] {
    [s[0] as f32, s[1] as f32, s[2] as f32, s[3] as f32]
}

/// A state drawn from Gymnasium's reset distribution.
#[inline]
fn sample_initial(rng: &mut Rng) -> [f64; 4] {
    std::array::from_fn(|_| uniform(rng, -RESET_BOUND, RESET_BOUND))
}

fn observation_space() -> Space {
    let high = [(X_THRESHOLD * 2.0) as f32, f32::INFINITY, (THETA_THRESHOLD_RADIANS * 2.0) as f32, f32::INFINITY];
    BoxSpace::new(high.iter().map(|h| -h).collect(), high.to_vec()).into()
}

/// `CartPole-v1` without its time limit (see [`cartpole_v1`] for the registered env).
#[derive(Debug, Clone)]
pub struct CartPole {
    state: [f64; 4],
    started: bool,
    /// Gymnasium's `steps_beyond_terminated`: `Some` once a terminal state was reached.
    steps_beyond_terminated: Option<u64>,
    rng: Rng,
}

impl Default for CartPole {
    fn default() -> Self {
        Self::new()
    }
}

impl CartPole {
    /// The registered time limit (500).
    pub const fn max_episode_steps() -> usize {
        MAX_EPISODE_STEPS
    }

    /// A new env; call [`Env::reset`] before stepping. Its RNG starts from [`DEFAULT_SEED`].
    pub fn new() -> Self {
        CartPole { state: [0.0; 4], started: false, steps_beyond_terminated: None, rng: rng_from_seed(DEFAULT_SEED) }
    }

    /// The current observation.
    pub fn obs(&self) -> [f32; 4] {
        observe(&self.state)
    }
}

impl Env for CartPole {
    type Obs = [f32; 4];
    type Action = usize;

    fn id(&self) -> &str {
        ID
    }

    fn observation_space(&self) -> Space {
        observation_space()
    }

    fn action_space(&self) -> Space {
        Discrete::new(2).into()
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<([f32; 4], Info)> {
        if let Some(s) = seed {
            self.rng = rng_from_seed(s);
        }
        self.state = sample_initial(&mut self.rng);
        self.started = true;
        self.steps_beyond_terminated = None;
        Ok((self.obs(), Info::new()))
    }

    #[inline]
    fn step(&mut self, action: &usize) -> Result<Step<[f32; 4]>> {
        let action = *action;
        if action >= 2 {
            return Err(bad_discrete(ID, action, 2));
        }
        if !self.started {
            return Err(needs_reset(ID));
        }
        let (state, terminated) = dynamics(self.state, action);
        self.state = state;
        let reward = if !terminated {
            1.0
        } else if let Some(n) = self.steps_beyond_terminated.as_mut() {
            *n += 1;
            0.0
        } else {
            self.steps_beyond_terminated = Some(0);
            1.0
        };
        Ok(Step { obs: observe(&state), reward, terminated, truncated: false, info: Info::new() })
    }
}

impl SetState for CartPole {
    /// Set `[x, x_dot, theta, theta_dot]`; the env counts as reset (Gymnasium's `env.unwrapped.state = ...`
    /// after a `reset()`).
    fn set_state(&mut self, state: &[f64]) -> Result<()> {
        check_state(ID, STATE_LAYOUT, state, 4)?;
        self.state.copy_from_slice(state);
        self.started = true;
        self.steps_beyond_terminated = None;
        Ok(())
    }

    fn state(&self) -> Vec<f64> {
        self.state.to_vec()
    }
}

/// `CartPole-v1` as registered: [`CartPole`] inside a 500-step [`TimeLimit`].
pub fn cartpole_v1() -> TimeLimit<CartPole> {
    TimeLimit::new(CartPole::new(), MAX_EPISODE_STEPS)
}

/// N cart-poles as structure-of-arrays, stepped by one call with `NEXT_STEP` autoreset and the
/// time limit counted inside the batch (Gymnasium's `CartPoleVectorEnv`, bit-exact per env).
#[derive(Debug, Clone)]
pub struct CartPoleVec {
    x: Vec<f64>,
    x_dot: Vec<f64>,
    theta: Vec<f64>,
    theta_dot: Vec<f64>,
    book: Book,
}

impl CartPoleVec {
    /// `num_envs` cart-poles with the registered limit of 500 steps.
    pub fn new(num_envs: usize) -> Result<Self> {
        Self::with_time_limit(num_envs, MAX_EPISODE_STEPS)
    }

    /// `num_envs` cart-poles truncated after `max_episode_steps` steps.
    pub fn with_time_limit(num_envs: usize, max_episode_steps: usize) -> Result<Self> {
        let book = Book::new(ID, num_envs, 4, max_episode_steps)?;
        let z = vec![0.0; num_envs];
        Ok(CartPoleVec { x: z.clone(), x_dot: z.clone(), theta: z.clone(), theta_dot: z, book })
    }

    /// The state of env `i` in [`STATE_LAYOUT`].
    pub fn state(&self, i: usize) -> Result<Vec<f64>> {
        self.book.check_index(ID, i)?;
        Ok(vec![self.x[i], self.x_dot[i], self.theta[i], self.theta_dot[i]])
    }

    /// Overwrite the state of env `i` (and its observation) without touching its episode clock.
    pub fn set_state(&mut self, i: usize, state: &[f64]) -> Result<()> {
        self.book.check_index(ID, i)?;
        check_state(ID, STATE_LAYOUT, state, 4)?;
        self.put(i, [state[0], state[1], state[2], state[3]]);
        Ok(())
    }

    #[inline(always)]
    fn put(&mut self, i: usize, s: [f64; 4]) {
        self.x[i] = s[0];
        self.x_dot[i] = s[1];
        self.theta[i] = s[2];
        self.theta_dot[i] = s[3];
        self.book.obs[4 * i..4 * i + 4].copy_from_slice(&observe(&s));
    }
}

impl VecEnv for CartPoleVec {
    type Action = usize;

    fn num_envs(&self) -> usize {
        self.book.len()
    }
    fn obs_dim(&self) -> usize {
        4
    }
    fn single_observation_space(&self) -> Space {
        observation_space()
    }
    fn single_action_space(&self) -> Space {
        Discrete::new(2).into()
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<()> {
        self.book.begin_reset(seed);
        for i in 0..self.book.len() {
            let s = sample_initial(&mut self.book.rngs[i]);
            self.put(i, s);
        }
        Ok(())
    }

    fn step(&mut self, actions: &[usize]) -> Result<()> {
        self.book.check_step(ID, actions.len())?;
        if let Some(&a) = actions.iter().find(|&&a| a >= 2) {
            return Err(bad_discrete(ID, a, 2));
        }
        for (i, &action) in actions.iter().enumerate() {
            if self.book.pending_reset[i] {
                let s = sample_initial(&mut self.book.rngs[i]);
                self.put(i, s);
                self.book.record_reset(i);
            } else {
                let s = [self.x[i], self.x_dot[i], self.theta[i], self.theta_dot[i]];
                let (s, terminated) = dynamics(s, action);
                self.put(i, s);
                self.book.record(i, 1.0, terminated);
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
