//! `Acrobot-v1`: swing the tip of a two-link chain above a line by torquing the middle joint.
//!
//! Gymnasium 1.4's `AcrobotEnv` with its defaults: the "book" dynamics (Sutton & Barto), no torque
//! noise, one fourth-order Runge-Kutta step of 0.2 s per action. The state
//! `[theta1, theta2, dtheta1, dtheta2]` is `f64`; the observation
//! `[cos theta1, sin theta1, cos theta2, sin theta2, dtheta1, dtheta2]` is rounded to `f32`.
//!
//! ## Bit-exactness
//! Gymnasium integrates a 5-vector (the state plus the torque) with NumPy array arithmetic in
//! `f64`; [`dynamics`] repeats its expressions in the same order: the constants (`m1 * lc1**2`,
//! `(m1 * lc1 + m2 * l1) * g`, ...) are folded exactly as Python evaluates them left to right, and
//! the RK4 combination is `y0 + dt/6 * (((k1 + 2 k2) + 2 k3) + k4)`. The squares of `np.float64`
//! values (`dtheta1**2`, `dtheta2**2`, `d2**2`) are C's `pow(x, 2)`, which glibc does not always
//! round like `x * x`; the constant squares (`lc1**2`, ...) are exact either way. Angles are wrapped with
//! Gymnasium's `wrap` (repeated subtraction of 2 pi, not a modulo) and velocities bounded with its
//! `bound`. Gymnasium's reset draws the state in `float64` and rounds it to `float32`, which is
//! kept here too.
//!
//! * Actions: `Discrete(3)`: torque -1, 0, +1 on the joint between the links.
//! * Reward: -1 per step, 0 on the terminal step. Termination: `-cos t1 - cos(t2 + t1) > 1`.
//! * Reset: each component uniform in `[-0.1, 0.1)`, then rounded to `f32`.

use super::batch::{
    reset_per_env, step_per_env, AutoresetMode, BatchEnv, BatchSeeding, Book, DiscreteAction, EnvRows, Reward,
    StepBuffers,
};
use super::{bad_discrete, check_state, needs_reset, py_square};
use rlox_core::env::{NpRandom, SetState};
use rlox_core::seeding::{np_random, Generator};
use rlox_core::spaces::{BoxSpace, Discrete, Space};
use rlox_core::wrappers::TimeLimit;
use rlox_core::{Env, Info, Result, Step};
use std::f64::consts::PI;

/// The Gymnasium id.
pub const ID: &str = "Acrobot-v1";
/// The registered time limit of `Acrobot-v1`.
pub const MAX_EPISODE_STEPS: usize = 500;
/// The layout of [`SetState`] states.
pub const STATE_LAYOUT: &str = "[theta1, theta2, dtheta1, dtheta2]";

const DT: f64 = 0.2;
const LINK_LENGTH_1: f64 = 1.0;
const LINK_MASS_1: f64 = 1.0;
const LINK_MASS_2: f64 = 1.0;
const LINK_COM_POS_1: f64 = 0.5;
const LINK_COM_POS_2: f64 = 0.5;
const LINK_MOI: f64 = 1.0;
const MAX_VEL_1: f64 = 4.0 * PI;
const MAX_VEL_2: f64 = 9.0 * PI;
/// Torques of actions 0, 1, 2.
const AVAIL_TORQUE: [f64; 3] = [-1.0, 0.0, 1.0];
const G: f64 = 9.8;

/// The time derivative of `[theta1, theta2, dtheta1, dtheta2]` under torque `a` (Gymnasium's
/// `_dsdt` with `book_or_nips = "book"`).
#[inline(always)]
fn dsdt(s: [f64; 4], a: f64) -> [f64; 4] {
    let (m1, m2, l1, lc1, lc2, i1, i2) =
        (LINK_MASS_1, LINK_MASS_2, LINK_LENGTH_1, LINK_COM_POS_1, LINK_COM_POS_2, LINK_MOI, LINK_MOI);
    let [theta1, theta2, dtheta1, dtheta2] = s;
    let cos_t2 = theta2.cos();
    let sin_t2 = theta2.sin();
    let d1 = m1 * (lc1 * lc1) + m2 * (l1 * l1 + lc2 * lc2 + 2.0 * l1 * lc2 * cos_t2) + i1 + i2;
    let d2 = m2 * (lc2 * lc2 + l1 * lc2 * cos_t2) + i2;
    let phi2 = m2 * lc2 * G * (theta1 + theta2 - PI / 2.0).cos();
    let phi1 = -m2 * l1 * lc2 * py_square(dtheta2) * sin_t2 - 2.0 * m2 * l1 * lc2 * dtheta2 * dtheta1 * sin_t2
        + (m1 * lc1 + m2 * l1) * G * (theta1 - PI / 2.0).cos()
        + phi2;
    let ddtheta2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * py_square(dtheta1) * sin_t2 - phi2)
        / (m2 * (lc2 * lc2) + i2 - py_square(d2) / d1);
    let ddtheta1 = -(d2 * ddtheta2 + phi1) / d1;
    [dtheta1, dtheta2, ddtheta1, ddtheta2]
}

/// `y + h * k`, component-wise (NumPy's `y0 + dt2 * k1`).
#[inline(always)]
fn axpy(y: [f64; 4], h: f64, k: [f64; 4]) -> [f64; 4] {
    std::array::from_fn(|j| y[j] + h * k[j])
}

/// Gymnasium's `wrap(x, -pi, pi)`: subtract or add 2 pi until `x` lies in `[-pi, pi]`.
#[inline(always)]
fn wrap(mut x: f64) -> f64 {
    let (m, big_m) = (-PI, PI);
    let diff = big_m - m;
    while x > big_m {
        x -= diff;
    }
    while x < m {
        x += diff;
    }
    x
}

/// Gymnasium's `bound(x, m, M)`: `min(max(x, m), M)`.
#[inline(always)]
fn bound(x: f64, m: f64, big_m: f64) -> f64 {
    let x = if m > x { m } else { x };
    if big_m < x {
        big_m
    } else {
        x
    }
}

/// One 0.2 s RK4 step from `s` under `action` (0, 1 or 2, already checked).
///
/// Returns the next state and whether it is terminal.
#[inline(always)]
pub fn dynamics(s: [f64; 4], action: usize) -> ([f64; 4], bool) {
    let a = AVAIL_TORQUE[action];
    // Gymnasium's rk4 over t = [0, dt]: dt = t[1] - t[0], dt2 = dt / 2.
    let dt2 = DT / 2.0;
    let k1 = dsdt(s, a);
    let k2 = dsdt(axpy(s, dt2, k1), a);
    let k3 = dsdt(axpy(s, dt2, k2), a);
    let k4 = dsdt(axpy(s, DT, k3), a);
    let ns: [f64; 4] = std::array::from_fn(|j| s[j] + DT / 6.0 * (k1[j] + 2.0 * k2[j] + 2.0 * k3[j] + k4[j]));
    let ns = [wrap(ns[0]), wrap(ns[1]), bound(ns[2], -MAX_VEL_1, MAX_VEL_1), bound(ns[3], -MAX_VEL_2, MAX_VEL_2)];
    let terminated = -ns[0].cos() - (ns[1] + ns[0]).cos() > 1.0;
    (ns, terminated)
}

/// The observation `[cos t1, sin t1, cos t2, sin t2, dt1, dt2]` in `f32`.
#[inline(always)]
pub fn observe(s: &[f64; 4]) -> [f32; 6] {
    [s[0].cos() as f32, s[0].sin() as f32, s[1].cos() as f32, s[1].sin() as f32, s[2] as f32, s[3] as f32]
}

#[inline]
fn sample_initial(rng: &mut Generator) -> [f64; 4] {
    // Gymnasium: `uniform(-0.1, 0.1, size=(4,)).astype(np.float32)`.
    std::array::from_fn(|_| rng.uniform(-0.1, 0.1) as f32 as f64)
}

fn observation_space() -> Space {
    let high = [1.0, 1.0, 1.0, 1.0, MAX_VEL_1 as f32, MAX_VEL_2 as f32];
    BoxSpace::new(high.iter().map(|h| -h).collect(), high.to_vec()).into()
}

/// `Acrobot-v1` without its time limit (see [`acrobot_v1`] for the registered env).
#[derive(Debug, Clone)]
pub struct Acrobot {
    state: [f64; 4],
    started: bool,
    rng: Generator,
}

impl Default for Acrobot {
    fn default() -> Self {
        Self::new()
    }
}

impl Acrobot {
    /// The registered time limit (500).
    pub const fn max_episode_steps() -> usize {
        MAX_EPISODE_STEPS
    }

    /// A new env; call [`Env::reset`] before stepping. Until it is seeded, it draws from fresh OS
    /// entropy (as Gymnasium does).
    pub fn new() -> Self {
        Acrobot { state: [0.0; 4], started: false, rng: np_random(None).0 }
    }

    /// The current observation.
    pub fn obs(&self) -> [f32; 6] {
        observe(&self.state)
    }
}

impl Env for Acrobot {
    type Obs = [f32; 6];
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

    fn reset(&mut self, seed: Option<u64>) -> Result<([f32; 6], Info)> {
        if let Some(s) = seed {
            self.rng = np_random(Some(s)).0;
        }
        self.state = sample_initial(&mut self.rng);
        self.started = true;
        Ok((self.obs(), Info::new()))
    }

    #[inline]
    fn step(&mut self, action: &usize) -> Result<Step<[f32; 6]>> {
        if *action >= 3 {
            return Err(bad_discrete(ID, *action, 3));
        }
        if !self.started {
            return Err(needs_reset(ID));
        }
        let (state, terminated) = dynamics(self.state, *action);
        self.state = state;
        let reward = if terminated { 0.0 } else { -1.0 };
        Ok(Step { obs: observe(&state), reward, terminated, truncated: false, info: Info::new() })
    }
}

impl SetState for Acrobot {
    /// Set `[theta1, theta2, dtheta1, dtheta2]` (kept in `f64` as given); the env counts as reset.
    fn set_state(&mut self, state: &[f64]) -> Result<()> {
        check_state(ID, STATE_LAYOUT, state, 4)?;
        self.state.copy_from_slice(state);
        self.started = true;
        Ok(())
    }

    fn state(&self) -> Vec<f64> {
        self.state.to_vec()
    }
}

impl NpRandom for Acrobot {
    fn np_random(&self) -> &Generator {
        &self.rng
    }
    fn np_random_mut(&mut self) -> &mut Generator {
        &mut self.rng
    }
}

/// `Acrobot-v1` as registered: [`Acrobot`] inside a 500-step [`TimeLimit`].
pub fn acrobot_v1() -> TimeLimit<Acrobot> {
    TimeLimit::new(Acrobot::new(), MAX_EPISODE_STEPS)
}

/// N acrobots as structure-of-arrays with the time limit inside: Gymnasium's `SyncVectorEnv` of
/// `Acrobot-v1` envs (what `gymnasium.make_vec("Acrobot-v1", n)` builds), env `i` with its own
/// generator seeded with `s + i` ([`BatchSeeding::PerEnv`]). See [`super::batch`] for the
/// caller-buffer API and the autoreset modes.
#[derive(Debug, Clone)]
pub struct AcrobotVec {
    state: State,
    book: Book,
}

/// The batch state, one array per component.
#[derive(Debug, Clone)]
struct State {
    theta1: Vec<f64>,
    theta2: Vec<f64>,
    dtheta1: Vec<f64>,
    dtheta2: Vec<f64>,
}

impl State {
    #[inline(always)]
    fn get(&self, i: usize) -> [f64; 4] {
        [self.theta1[i], self.theta2[i], self.dtheta1[i], self.dtheta2[i]]
    }

    #[inline(always)]
    fn put(&mut self, i: usize, s: [f64; 4]) {
        self.theta1[i] = s[0];
        self.theta2[i] = s[1];
        self.dtheta1[i] = s[2];
        self.dtheta2[i] = s[3];
    }
}

/// The envs of a step: the state and the (checked) actions.
struct Rows<'a, A> {
    state: &'a mut State,
    actions: &'a [A],
}

impl<A: DiscreteAction> EnvRows for Rows<'_, A> {
    #[inline(always)]
    fn step_row(&mut self, i: usize, obs: &mut [f32]) -> (f64, bool) {
        // Checked by `step_actions`.
        let a = self.actions[i].index().unwrap_or(1);
        let (s, terminated) = dynamics(self.state.get(i), a);
        self.state.put(i, s);
        obs.copy_from_slice(&observe(&s));
        (if terminated { 0.0 } else { -1.0 }, terminated)
    }

    #[inline(always)]
    fn reset_row(&mut self, i: usize, rng: &mut Generator, obs: &mut [f32]) {
        let s = sample_initial(rng);
        self.state.put(i, s);
        obs.copy_from_slice(&observe(&s));
    }
}

impl AcrobotVec {
    /// `num_envs` acrobots with the registered limit of 500 steps.
    pub fn new(num_envs: usize) -> Result<Self> {
        Self::with_time_limit(num_envs, MAX_EPISODE_STEPS)
    }

    /// `num_envs` acrobots truncated after `max_episode_steps` steps.
    pub fn with_time_limit(num_envs: usize, max_episode_steps: usize) -> Result<Self> {
        let book = Book::new(ID, num_envs, 6, max_episode_steps, BatchSeeding::PerEnv)?;
        let z = vec![0.0; num_envs];
        Ok(AcrobotVec { state: State { theta1: z.clone(), theta2: z.clone(), dtheta1: z.clone(), dtheta2: z }, book })
    }

    /// The state of env `i` in [`STATE_LAYOUT`].
    pub fn state(&self, i: usize) -> Result<Vec<f64>> {
        self.book.check_index(i)?;
        Ok(self.state.get(i).to_vec())
    }

    /// Overwrite the state of env `i` (and its observation in the batch's own buffer) without
    /// touching its episode clock.
    pub fn set_state(&mut self, i: usize, state: &[f64]) -> Result<()> {
        self.book.check_index(i)?;
        check_state(ID, STATE_LAYOUT, state, 4)?;
        let s = [state[0], state[1], state[2], state[3]];
        self.state.put(i, s);
        self.book.obs[6 * i..6 * i + 6].copy_from_slice(&observe(&s));
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

impl BatchEnv for AcrobotVec {
    type Action = i64;

    fn id(&self) -> &'static str {
        ID
    }
    fn num_envs(&self) -> usize {
        self.book.len()
    }
    fn obs_dim(&self) -> usize {
        6
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

super::impl_vec_env_discrete!(AcrobotVec, 3, observation_space);
