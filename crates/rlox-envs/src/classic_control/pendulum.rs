//! `Pendulum-v1`: swing a pendulum up and keep it upright with a bounded torque.
//!
//! Gymnasium 1.4's `PendulumEnv` (g = 10). The state `[theta, theta_dot]` is `f64`; the
//! observation is `[cos theta, sin theta, theta_dot]` rounded to `f32`.
//!
//! ## Where `f32` enters
//! The action arrives as a `float32` array and `np.clip(u, -2, 2)[0]` keeps it a `np.float32`.
//! Under NumPy 2's promotion rules every product of that torque with a Python float stays
//! `float32`: `3.0 / (m * l**2) * u` and `0.001 * (u**2)` are computed in `f32` (the Python
//! constants rounded to `f32` first) and only widened to `f64` when they meet the `f64` state.
//! The cost's angle term wraps theta with `((theta + pi) % (2 pi)) - pi`, where `%` is Python's
//! floor-mod (sign of the divisor), not Rust's `fmod`. The squares in the cost are Python's `**`,
//! i.e. C's `pow`/`powf`, which do not always round like a multiplication (see `py_square`).
//!
//! * Actions: `Box(-2, 2, (1,))`; finite values outside are clipped as in Gymnasium, NaN and
//!   infinities are errors.
//! * Reward: `-(angle² + 0.1 theta_dot² + 0.001 u²)`; never terminates (only the 200-step limit).
//! * Reset: theta uniform in `[-pi, pi)`, theta_dot uniform in `[-1, 1)`.

use super::{
    check_state, floor_mod, needs_reset, py_square, py_square_f32, scalar_action, uniform, Book, DEFAULT_SEED,
};
use rlox_core::env::SetState;
use rlox_core::seeding::{rng_from_seed, Rng};
use rlox_core::spaces::{BoxSpace, Space};
use rlox_core::vec_env::VecEnv;
use rlox_core::wrappers::TimeLimit;
use rlox_core::{Env, Info, Result, Step};
use std::f64::consts::PI;

/// The Gymnasium id.
pub const ID: &str = "Pendulum-v1";
/// The registered time limit of `Pendulum-v1`.
pub const MAX_EPISODE_STEPS: usize = 200;
/// The layout of [`SetState`] states.
pub const STATE_LAYOUT: &str = "[theta, theta_dot]";

const MAX_SPEED: f64 = 8.0;
const MAX_TORQUE: f32 = 2.0;
const DT: f64 = 0.05;
/// Gymnasium's default gravity.
pub const DEFAULT_G: f64 = 10.0;
const M: f64 = 1.0;
const L: f64 = 1.0;

/// Gymnasium's `angle_normalize`: theta wrapped into `[-pi, pi)` with Python's floor-mod.
#[inline(always)]
pub fn angle_normalize(x: f64) -> f64 {
    floor_mod(x + PI, 2.0 * PI) - PI
}

/// One step from `(th, thdot)` under the raw torque `u` (finite, not yet clipped); `g` is gravity.
///
/// Returns `(theta, theta_dot, reward)`.
#[inline(always)]
pub fn dynamics(th: f64, thdot: f64, u: f32, g: f64) -> (f64, f64, f64) {
    // np.clip on a float32 array stays float32.
    let u = u.clamp(-MAX_TORQUE, MAX_TORQUE);
    let an = angle_normalize(th);
    // `0.001 * (u**2)` is a float32 product (0.001 rounded to f32), widened when added to the f64 terms.
    let torque_cost = 0.001f32 * py_square_f32(u);
    let costs = py_square(an) + 0.1 * py_square(thdot) + torque_cost as f64;
    // `3 * g / (2 * l) * sin(th)` is f64; `3.0 / (m * l**2) * u` is a float32 product.
    let torque_acc = (3.0 / (M * L * L)) as f32 * u;
    let newthdot = thdot + (3.0 * g / (2.0 * L) * th.sin() + torque_acc as f64) * DT;
    let newthdot = newthdot.clamp(-MAX_SPEED, MAX_SPEED);
    let newth = th + newthdot * DT;
    (newth, newthdot, -costs)
}

/// The observation `[cos theta, sin theta, theta_dot]` in `f32`.
#[inline(always)]
pub fn observe(th: f64, thdot: f64) -> [f32; 3] {
    [th.cos() as f32, th.sin() as f32, thdot as f32]
}

#[inline]
fn sample_initial(rng: &mut Rng) -> (f64, f64) {
    // One draw of `uniform(low=[-pi, -1], high=[pi, 1])`: theta first, then theta_dot.
    let th = uniform(rng, -PI, PI);
    let thdot = uniform(rng, -1.0, 1.0);
    (th, thdot)
}

fn observation_space() -> Space {
    BoxSpace::new(vec![-1.0, -1.0, -MAX_SPEED as f32], vec![1.0, 1.0, MAX_SPEED as f32]).into()
}

fn action_space() -> Space {
    BoxSpace::uniform(-MAX_TORQUE, MAX_TORQUE, 1).into()
}

/// `Pendulum-v1` without its time limit (see [`pendulum_v1`] for the registered env).
#[derive(Debug, Clone)]
pub struct Pendulum {
    th: f64,
    thdot: f64,
    g: f64,
    started: bool,
    rng: Rng,
}

impl Default for Pendulum {
    fn default() -> Self {
        Self::new()
    }
}

impl Pendulum {
    /// The registered time limit (200).
    pub const fn max_episode_steps() -> usize {
        MAX_EPISODE_STEPS
    }

    /// A new env with Gymnasium's default gravity (10); call [`Env::reset`] before stepping.
    pub fn new() -> Self {
        Self::with_gravity(DEFAULT_G)
    }

    /// A new env with gravity `g` (Gymnasium's `g` argument).
    pub fn with_gravity(g: f64) -> Self {
        Pendulum { th: 0.0, thdot: 0.0, g, started: false, rng: rng_from_seed(DEFAULT_SEED) }
    }

    /// The current observation.
    pub fn obs(&self) -> [f32; 3] {
        observe(self.th, self.thdot)
    }
}

impl Env for Pendulum {
    type Obs = [f32; 3];
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

    fn reset(&mut self, seed: Option<u64>) -> Result<([f32; 3], Info)> {
        if let Some(s) = seed {
            self.rng = rng_from_seed(s);
        }
        (self.th, self.thdot) = sample_initial(&mut self.rng);
        self.started = true;
        Ok((self.obs(), Info::new()))
    }

    #[inline]
    fn step(&mut self, action: &Vec<f32>) -> Result<Step<[f32; 3]>> {
        let u = scalar_action(ID, action, -MAX_TORQUE, MAX_TORQUE)?;
        if !self.started {
            return Err(needs_reset(ID));
        }
        let (th, thdot, reward) = dynamics(self.th, self.thdot, u, self.g);
        self.th = th;
        self.thdot = thdot;
        Ok(Step { obs: observe(th, thdot), reward, terminated: false, truncated: false, info: Info::new() })
    }
}

impl SetState for Pendulum {
    /// Set `[theta, theta_dot]`; the env counts as reset.
    fn set_state(&mut self, state: &[f64]) -> Result<()> {
        check_state(ID, STATE_LAYOUT, state, 2)?;
        self.th = state[0];
        self.thdot = state[1];
        self.started = true;
        Ok(())
    }

    fn state(&self) -> Vec<f64> {
        vec![self.th, self.thdot]
    }
}

/// `Pendulum-v1` as registered: [`Pendulum`] inside a 200-step [`TimeLimit`].
pub fn pendulum_v1() -> TimeLimit<Pendulum> {
    TimeLimit::new(Pendulum::new(), MAX_EPISODE_STEPS)
}

/// N pendulums as structure-of-arrays with `NEXT_STEP` autoreset and the time limit inside.
#[derive(Debug, Clone)]
pub struct PendulumVec {
    th: Vec<f64>,
    thdot: Vec<f64>,
    g: f64,
    book: Book,
}

impl PendulumVec {
    /// `num_envs` pendulums with the registered limit of 200 steps.
    pub fn new(num_envs: usize) -> Result<Self> {
        Self::with_time_limit(num_envs, MAX_EPISODE_STEPS)
    }

    /// `num_envs` pendulums truncated after `max_episode_steps` steps.
    pub fn with_time_limit(num_envs: usize, max_episode_steps: usize) -> Result<Self> {
        let book = Book::new(ID, num_envs, 3, max_episode_steps)?;
        Ok(PendulumVec { th: vec![0.0; num_envs], thdot: vec![0.0; num_envs], g: DEFAULT_G, book })
    }

    /// The state of env `i` in [`STATE_LAYOUT`].
    pub fn state(&self, i: usize) -> Result<Vec<f64>> {
        self.book.check_index(ID, i)?;
        Ok(vec![self.th[i], self.thdot[i]])
    }

    /// Overwrite the state of env `i` (and its observation) without touching its episode clock.
    pub fn set_state(&mut self, i: usize, state: &[f64]) -> Result<()> {
        self.book.check_index(ID, i)?;
        check_state(ID, STATE_LAYOUT, state, 2)?;
        self.put(i, state[0], state[1]);
        Ok(())
    }

    #[inline(always)]
    fn put(&mut self, i: usize, th: f64, thdot: f64) {
        self.th[i] = th;
        self.thdot[i] = thdot;
        self.book.obs[3 * i..3 * i + 3].copy_from_slice(&observe(th, thdot));
    }
}

impl VecEnv for PendulumVec {
    type Action = Vec<f32>;

    fn num_envs(&self) -> usize {
        self.book.len()
    }
    fn obs_dim(&self) -> usize {
        3
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
            let (th, thdot) = sample_initial(&mut self.book.rngs[i]);
            self.put(i, th, thdot);
        }
        Ok(())
    }

    fn step(&mut self, actions: &[Vec<f32>]) -> Result<()> {
        self.book.check_step(ID, actions.len())?;
        for a in actions {
            scalar_action(ID, a, -MAX_TORQUE, MAX_TORQUE)?;
        }
        for (i, a) in actions.iter().enumerate() {
            if self.book.pending_reset[i] {
                let (th, thdot) = sample_initial(&mut self.book.rngs[i]);
                self.put(i, th, thdot);
                self.book.record_reset(i);
            } else {
                let (th, thdot, reward) = dynamics(self.th[i], self.thdot[i], a[0], self.g);
                self.put(i, th, thdot);
                self.book.record(i, reward, false);
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
