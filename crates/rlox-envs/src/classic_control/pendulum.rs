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

use super::batch::{
    reset_per_env, step_per_env, AutoresetMode, BatchEnv, BatchSeeding, Book, EnvRows, Reward, StepBuffers,
};
use super::{check_state, floor_mod, needs_reset, py_square, py_square_f32, scalar_action};
use rlox_core::env::{NpRandom, SetState};
use rlox_core::seeding::{np_random, Generator};
use rlox_core::spaces::{BoxSpace, Space};
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
fn sample_initial(rng: &mut Generator) -> (f64, f64) {
    // One draw of `uniform(low=[-pi, -1], high=[pi, 1])`: theta first, then theta_dot.
    let th = rng.uniform(-PI, PI);
    let thdot = rng.uniform(-1.0, 1.0);
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
    rng: Generator,
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

    /// A new env with Gymnasium's default gravity (10); call [`Env::reset`] before stepping. Until
    /// it is seeded, it draws from fresh OS entropy (as Gymnasium does).
    pub fn new() -> Self {
        Self::with_gravity(DEFAULT_G)
    }

    /// A new env with gravity `g` (Gymnasium's `g` argument).
    pub fn with_gravity(g: f64) -> Self {
        Pendulum { th: 0.0, thdot: 0.0, g, started: false, rng: np_random(None).0 }
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
            self.rng = np_random(Some(s)).0;
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

impl NpRandom for Pendulum {
    fn np_random(&self) -> &Generator {
        &self.rng
    }
    fn np_random_mut(&mut self) -> &mut Generator {
        &mut self.rng
    }
}

/// `Pendulum-v1` as registered: [`Pendulum`] inside a 200-step [`TimeLimit`].
pub fn pendulum_v1() -> TimeLimit<Pendulum> {
    TimeLimit::new(Pendulum::new(), MAX_EPISODE_STEPS)
}

/// N pendulums as structure-of-arrays with the time limit inside: Gymnasium's `SyncVectorEnv` of
/// `Pendulum-v1` envs (what `gymnasium.make_vec("Pendulum-v1", n)` builds), env `i` with its own
/// generator seeded with `s + i` ([`BatchSeeding::PerEnv`]). Actions are one torque per env. See
/// [`super::batch`] for the caller-buffer API and the autoreset modes.
#[derive(Debug, Clone)]
pub struct PendulumVec {
    state: State,
    g: f64,
    book: Book,
    /// Scratch for [`rlox_core::vec_env::VecEnv::step`]: the torques as one flat slice.
    flat_actions: Vec<f32>,
}

/// The batch state, one array per component.
#[derive(Debug, Clone)]
struct State {
    th: Vec<f64>,
    thdot: Vec<f64>,
}

/// The envs of a step: the state and the (checked) torques.
struct Rows<'a> {
    state: &'a mut State,
    g: f64,
    actions: &'a [f32],
}

impl EnvRows for Rows<'_> {
    #[inline(always)]
    fn step_row(&mut self, i: usize, obs: &mut [f32]) -> (f64, bool) {
        let (th, thdot, reward) = dynamics(self.state.th[i], self.state.thdot[i], self.actions[i], self.g);
        self.state.th[i] = th;
        self.state.thdot[i] = thdot;
        obs.copy_from_slice(&observe(th, thdot));
        (reward, false)
    }

    #[inline(always)]
    fn reset_row(&mut self, i: usize, rng: &mut Generator, obs: &mut [f32]) {
        let (th, thdot) = sample_initial(rng);
        self.state.th[i] = th;
        self.state.thdot[i] = thdot;
        obs.copy_from_slice(&observe(th, thdot));
    }
}

impl PendulumVec {
    /// `num_envs` pendulums with the registered limit of 200 steps.
    pub fn new(num_envs: usize) -> Result<Self> {
        Self::with_time_limit(num_envs, MAX_EPISODE_STEPS)
    }

    /// `num_envs` pendulums truncated after `max_episode_steps` steps.
    pub fn with_time_limit(num_envs: usize, max_episode_steps: usize) -> Result<Self> {
        let book = Book::new(ID, num_envs, 3, max_episode_steps, BatchSeeding::PerEnv)?;
        Ok(PendulumVec {
            state: State { th: vec![0.0; num_envs], thdot: vec![0.0; num_envs] },
            g: DEFAULT_G,
            book,
            flat_actions: Vec::with_capacity(num_envs),
        })
    }

    /// The state of env `i` in [`STATE_LAYOUT`].
    pub fn state(&self, i: usize) -> Result<Vec<f64>> {
        self.book.check_index(i)?;
        Ok(vec![self.state.th[i], self.state.thdot[i]])
    }

    /// Overwrite the state of env `i` (and its observation in the batch's own buffer) without
    /// touching its episode clock.
    pub fn set_state(&mut self, i: usize, state: &[f64]) -> Result<()> {
        self.book.check_index(i)?;
        check_state(ID, STATE_LAYOUT, state, 2)?;
        self.state.th[i] = state[0];
        self.state.thdot[i] = state[1];
        self.book.obs[3 * i..3 * i + 3].copy_from_slice(&observe(state[0], state[1]));
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

    /// [`BatchEnv::step_into`]: one torque per env; finite torques outside `[-2, 2]` are clipped
    /// (as Gymnasium does), NaN and infinities are errors.
    pub fn step_flat<R: Reward>(&mut self, actions: &[f32], out: StepBuffers<'_, R>) -> Result<()> {
        self.book.check_step(actions.len(), &out)?;
        for &a in actions {
            scalar_action(ID, &[a], -MAX_TORQUE, MAX_TORQUE)?;
        }
        step_per_env(&mut self.book, out, &mut Rows { state: &mut self.state, g: self.g, actions });
        Ok(())
    }
}

impl BatchEnv for PendulumVec {
    type Action = f32;

    fn id(&self) -> &'static str {
        ID
    }
    fn num_envs(&self) -> usize {
        self.book.len()
    }
    fn obs_dim(&self) -> usize {
        3
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
        reset_per_env(&mut self.book, obs, &mut Rows { state: &mut self.state, g: self.g, actions: &[] });
        Ok(())
    }
    fn step_into<R: Reward>(&mut self, actions: &[f32], out: StepBuffers<'_, R>) -> Result<()> {
        self.step_flat(actions, out)
    }
}

super::impl_vec_env_continuous!(PendulumVec, observation_space, action_space, -MAX_TORQUE, MAX_TORQUE);
