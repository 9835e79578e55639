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

use super::batch::{AutoresetMode, BatchEnv, BatchSeeding, Book, DiscreteAction, Reward, StepBuffers};
use super::simd::Isa;
use super::{bad_discrete, check_state, needs_reset};
use rlox_core::env::{NpRandom, SetState};
use rlox_core::seeding::{np_random, Generator};
use rlox_core::spaces::{BoxSpace, Discrete, Space};
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

/// A state drawn from Gymnasium's reset distribution: `uniform(-0.05, 0.05, size=(4,))`.
#[inline]
fn sample_initial(rng: &mut Generator) -> [f64; 4] {
    std::array::from_fn(|_| rng.uniform(-RESET_BOUND, RESET_BOUND))
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
    rng: Generator,
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

    /// A new env; call [`Env::reset`] before stepping. Until it is seeded, it draws from fresh OS
    /// entropy (as Gymnasium does).
    pub fn new() -> Self {
        CartPole { state: [0.0; 4], started: false, steps_beyond_terminated: None, rng: np_random(None).0 }
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
            self.rng = np_random(Some(s)).0;
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

impl NpRandom for CartPole {
    fn np_random(&self) -> &Generator {
        &self.rng
    }
    fn np_random_mut(&mut self) -> &mut Generator {
        &mut self.rng
    }
}

/// `CartPole-v1` as registered: [`CartPole`] inside a 500-step [`TimeLimit`].
pub fn cartpole_v1() -> TimeLimit<CartPole> {
    TimeLimit::new(CartPole::new(), MAX_EPISODE_STEPS)
}

/// N cart-poles as structure-of-arrays, stepped by one call with the time limit counted inside
/// the batch: Gymnasium's `CartPoleVectorEnv` (what `gymnasium.make_vec("CartPole-v1", n)` builds),
/// bit-exact per env.
///
/// * Seeding: [`BatchSeeding::Shared`] by default (one generator; a reset draws
///   `uniform(-0.05, 0.05, size=(4, n))`, an autoreset of `k` envs `size=(4, k)`, component by
///   component), or [`BatchSeeding::PerEnv`] (Gymnasium's `SyncVectorEnv` of `n` `CartPole-v1`
///   envs, env `i` seeded with `s + i`) through [`CartPoleVec::with_seeding`].
/// * Stepping: [`BatchEnv::step_into`] writes into caller slices (see [`super::batch`]);
///   [`rlox_core::vec_env::VecEnv::step`] into the batch's own buffers. The dynamics of all envs run vectorised
///   (AVX-512: eight envs per instruction, AVX2: four; see [`super::simd`]), with `sin`/`cos`
///   replayed lane by lane with the C library's bits; the portable path calls the C library once
///   per env. Every path gives the same bits as the scalar [`CartPole`].
/// * Rewards: 1 per step (also on the terminal step, as Gymnasium's vector env pays), 0 on an
///   autoreset step.
#[derive(Debug, Clone)]
pub struct CartPoleVec {
    x: Vec<f64>,
    x_dot: Vec<f64>,
    theta: Vec<f64>,
    theta_dot: Vec<f64>,
    book: Book,
    /// Scratch: bit `i` is set when env `i` pushes right (action 1).
    action_bits: Vec<u64>,
    /// `NEXT_STEP`: the envs that ended at the previous call, reset at the next one.
    pending: Vec<usize>,
    /// Scratch: a list of envs (capacity `num_envs`, so a step never allocates).
    scratch: Vec<usize>,
    /// Scratch: bit `i` set when env `i` ended at this call.
    ended_bits: Vec<u64>,
    isa: Isa,
}

impl CartPoleVec {
    /// `num_envs` cart-poles with the registered limit of 500 steps, seeded as
    /// `gymnasium.make_vec("CartPole-v1", num_envs)` is (one shared generator).
    pub fn new(num_envs: usize) -> Result<Self> {
        Self::with_seeding(num_envs, MAX_EPISODE_STEPS, BatchSeeding::Shared)
    }

    /// `num_envs` cart-poles truncated after `max_episode_steps` steps (one shared generator).
    pub fn with_time_limit(num_envs: usize, max_episode_steps: usize) -> Result<Self> {
        Self::with_seeding(num_envs, max_episode_steps, BatchSeeding::Shared)
    }

    /// `num_envs` cart-poles truncated after `max_episode_steps` steps, seeded as `seeding` says.
    pub fn with_seeding(num_envs: usize, max_episode_steps: usize, seeding: BatchSeeding) -> Result<Self> {
        let book = Book::new(ID, num_envs, 4, max_episode_steps, seeding)?;
        let z = vec![0.0; num_envs];
        Ok(CartPoleVec {
            x: z.clone(),
            x_dot: z.clone(),
            theta: z.clone(),
            theta_dot: z,
            book,
            action_bits: vec![0; num_envs.div_ceil(64)],
            pending: Vec::with_capacity(num_envs),
            scratch: Vec::with_capacity(num_envs),
            ended_bits: vec![0; num_envs.div_ceil(64)],
            isa: Isa::detect(),
        })
    }

    /// Run the batch kernel with `isa` instead of the detected one (a lower one, for tests and
    /// benchmarks); an instruction set this CPU lacks, or one whose `sin`/`cos` replay does not match
    /// the C library here, falls back to [`Isa::Portable`].
    pub fn set_isa(&mut self, isa: Isa) {
        self.isa = isa;
    }

    /// The instruction set the next step will use.
    pub fn isa(&self) -> Isa {
        effective_isa(self.isa)
    }

    /// The state of env `i` in [`STATE_LAYOUT`].
    pub fn state(&self, i: usize) -> Result<Vec<f64>> {
        self.book.check_index(i)?;
        Ok(vec![self.x[i], self.x_dot[i], self.theta[i], self.theta_dot[i]])
    }

    /// Overwrite the state of env `i` (and its observation in the batch's own buffer) without
    /// touching its episode clock.
    pub fn set_state(&mut self, i: usize, state: &[f64]) -> Result<()> {
        self.book.check_index(i)?;
        check_state(ID, STATE_LAYOUT, state, 4)?;
        let s = [state[0], state[1], state[2], state[3]];
        self.put(i, s);
        self.book.obs[4 * i..4 * i + 4].copy_from_slice(&observe(&s));
        Ok(())
    }

    /// The generators: one ([`BatchSeeding::Shared`]) or one per env ([`BatchSeeding::PerEnv`]).
    pub fn generators(&self) -> &[Generator] {
        &self.book.rngs
    }

    /// The generators, mutably (to seed from integers wider than 64 bits, then `reset(None)`).
    pub fn generators_mut(&mut self) -> &mut [Generator] {
        &mut self.book.rngs
    }

    #[inline(always)]
    fn put(&mut self, i: usize, s: [f64; 4]) {
        self.x[i] = s[0];
        self.x_dot[i] = s[1];
        self.theta[i] = s[2];
        self.theta_dot[i] = s[3];
    }

    #[inline(always)]
    fn get(&self, i: usize) -> [f64; 4] {
        [self.x[i], self.x_dot[i], self.theta[i], self.theta_dot[i]]
    }

    /// Draw reset states for the envs in `list` (increasing) and write their observations: from the
    /// shared generator component by component (`uniform(size=(4, k))`), or four draws from each
    /// env's own generator. Their episode clocks restart.
    fn reset_listed(&mut self, list: &[usize], obs: &mut [f32]) {
        match self.book.seeding {
            BatchSeeding::Shared => {
                let rng = &mut self.book.rngs[0];
                for component in [&mut self.x, &mut self.x_dot, &mut self.theta, &mut self.theta_dot] {
                    for &i in list {
                        component[i] = rng.uniform(-RESET_BOUND, RESET_BOUND);
                    }
                }
            }
            BatchSeeding::PerEnv => {
                for &i in list {
                    let s = sample_initial(&mut self.book.rngs[i]);
                    self.put(i, s);
                }
            }
        }
        for &i in list {
            obs[4 * i..4 * i + 4].copy_from_slice(&observe(&self.get(i)));
            self.book.elapsed[i] = 0;
        }
    }

    /// [`BatchEnv::step_into`] for any integer action type.
    pub fn step_actions<A: DiscreteAction, R: Reward>(&mut self, actions: &[A], out: StepBuffers<'_, R>) -> Result<()> {
        self.book.check_step(actions.len(), &out)?;
        // One pass that vectorises (a negative action is huge as a u64), then the action bits.
        if actions.iter().fold(0u64, |acc, a| acc | a.raw()) > 1 {
            let bad = actions.iter().copied().find(|a| a.raw() > 1).unwrap_or(actions[0]);
            return Err(bad_discrete(ID, bad, 2));
        }
        for (word, chunk) in self.action_bits.iter_mut().zip(actions.chunks(64)) {
            *word = chunk.iter().enumerate().fold(0, |w, (j, a)| w | (a.raw() & 1) << j);
        }
        let StepBuffers { obs, rewards, terminated, truncated, final_obs } = out;

        // 1. Every env takes its step (those pending a reset too: their result is overwritten).
        self.ended_bits.fill(0);
        let io = kernel::Io {
            x: &mut self.x,
            xd: &mut self.x_dot,
            th: &mut self.theta,
            thd: &mut self.theta_dot,
            bits: &self.action_bits,
            obs,
            terminated,
            truncated,
            elapsed: &mut self.book.elapsed,
            max_steps: self.book.max_episode_steps,
            ended: &mut self.ended_bits,
        };
        kernel::step(effective_isa(self.isa), io);
        rewards.fill(R::from_f64(1.0));

        // 2. NEXT_STEP: envs that ended at the previous call are reset now (reward 0, flags false).
        let pending = std::mem::take(&mut self.pending);
        if !pending.is_empty() {
            self.reset_listed(&pending, obs);
            for &i in &pending {
                rewards[i] = R::from_f64(0.0);
                terminated[i] = false;
                truncated[i] = false;
                self.ended_bits[i / 64] &= !(1 << (i % 64));
            }
        }

        // 3. The envs that ended now: reset at the next call, or (SAME_STEP) right away, their
        //    final observation kept.
        let mut ended = std::mem::take(&mut self.scratch);
        ended.clear();
        for (w, &word) in self.ended_bits.iter().enumerate() {
            let mut word = word;
            while word != 0 {
                ended.push(64 * w + word.trailing_zeros() as usize);
                word &= word - 1;
            }
        }
        if self.book.autoreset == AutoresetMode::SameStep {
            for &i in &ended {
                final_obs[4 * i..4 * i + 4].copy_from_slice(&obs[4 * i..4 * i + 4]);
            }
            self.reset_listed(&ended, obs);
            ended.clear();
        }
        // Both lists keep their capacity (`num_envs`), so no call allocates.
        self.pending = ended;
        self.scratch = pending;
        Ok(())
    }
}

/// `isa` if this CPU runs it and the `sin`/`cos` replay matches the C library here, else portable.
fn effective_isa(isa: Isa) -> Isa {
    if isa != Isa::Portable && isa.supported() && super::sincos::replica_verified() {
        isa
    } else {
        Isa::Portable
    }
}

impl BatchEnv for CartPoleVec {
    type Action = i64;

    fn id(&self) -> &'static str {
        ID
    }
    fn num_envs(&self) -> usize {
        self.book.len()
    }
    fn obs_dim(&self) -> usize {
        4
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
        self.pending.clear();
        let mut all = std::mem::take(&mut self.scratch);
        all.clear();
        all.extend(0..self.book.len());
        self.reset_listed(&all, obs);
        all.clear();
        self.scratch = all;
        Ok(())
    }

    fn step_into<R: Reward>(&mut self, actions: &[i64], out: StepBuffers<'_, R>) -> Result<()> {
        self.step_actions(actions, out)
    }
}

super::impl_vec_env_discrete!(CartPoleVec, 2, observation_space);

/// The vectorised step of the cart-pole dynamics (the same expressions as [`dynamics`]).
mod kernel {
    use super::super::simd::{Isa, Lanes};
    use super::super::sincos;
    use super::*;

    /// What one batch step reads and writes (all slices of the batch's length, `bits` and `ended`
    /// of one bit per env).
    pub(super) struct Io<'a> {
        pub x: &'a mut [f64],
        pub xd: &'a mut [f64],
        pub th: &'a mut [f64],
        pub thd: &'a mut [f64],
        /// Bit `i`: env `i` pushes right.
        pub bits: &'a [u64],
        pub obs: &'a mut [f32],
        pub terminated: &'a mut [bool],
        pub truncated: &'a mut [bool],
        /// The `TimeLimit` clocks, advanced by one.
        pub elapsed: &'a mut [u32],
        pub max_steps: u32,
        /// Out (zeroed by the caller): bit `i` set when env `i` terminated or was truncated.
        pub ended: &'a mut [u64],
    }

    /// Step every env: state in place, observations (env-major), flags, clocks, `ended` bits.
    pub(super) fn step(isa: Isa, mut io: Io<'_>) {
        let n = io.x.len();
        assert!(io.xd.len() == n && io.th.len() == n && io.thd.len() == n && io.obs.len() == 4 * n);
        assert!(io.terminated.len() == n && io.truncated.len() == n && io.elapsed.len() == n);
        assert!(io.bits.len() * 64 >= n && io.ended.len() * 64 >= n);
        let done = match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `effective_isa` checked the CPU and the sin/cos replay; the slices were checked above.
            Isa::Avx512 => unsafe { avx512(&mut io) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Isa::Avx2 => unsafe { avx2(&mut io) },
            _ => 0,
        };
        // The envs the vector loop did not cover: one at a time with the C library's sin/cos.
        for i in done..n {
            let a = (io.bits[i / 64] >> (i % 64)) as usize & 1;
            let (ns, t) = dynamics([io.x[i], io.xd[i], io.th[i], io.thd[i]], a);
            io.x[i] = ns[0];
            io.xd[i] = ns[1];
            io.th[i] = ns[2];
            io.thd[i] = ns[3];
            io.obs[4 * i..4 * i + 4].copy_from_slice(&observe(&ns));
            let e = io.elapsed[i] + 1;
            io.elapsed[i] = e;
            let u = e >= io.max_steps;
            io.terminated[i] = t;
            io.truncated[i] = u;
            io.ended[i / 64] |= ((t | u) as u64) << (i % 64);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512dq,avx512vl,avx512bw,avx2,fma")]
    unsafe fn avx512(io: &mut Io<'_>) -> usize {
        // SAFETY: forwarded; this function runs only where AVX-512 is available.
        unsafe { lanes::<super::super::simd::x86::F64x8>(io) }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2(io: &mut Io<'_>) -> usize {
        // SAFETY: forwarded; this function runs only where AVX2 and FMA are available.
        unsafe { lanes::<super::super::simd::x86::F64x4>(io) }
    }

    /// The vector loop over whole groups of `V::N` envs; returns how many envs it stepped.
    ///
    /// # Safety
    /// `V` must be usable on this CPU; the slices have the lengths `step` checked.
    #[inline(always)]
    pub(super) unsafe fn lanes<V: Lanes>(io: &mut Io<'_>) -> usize {
        let n = io.x.len();
        let whole = n / V::N * V::N;
        let tab = sincos::table_ptr();
        let lane_mask = (1u64 << V::N) - 1;
        let (x, xd, th, thd) = (io.x.as_mut_ptr(), io.xd.as_mut_ptr(), io.th.as_mut_ptr(), io.thd.as_mut_ptr());
        let (obs, term, trunc, elapsed) =
            (io.obs.as_mut_ptr(), io.terminated.as_mut_ptr(), io.truncated.as_mut_ptr(), io.elapsed.as_mut_ptr());
        let mut i = 0;
        while i < whole {
            // SAFETY: i + N <= n for every slice read and written below (obs has 4n entries).
            unsafe {
                let s_x = V::load(x.add(i));
                let s_xd = V::load(xd.add(i));
                let s_th = V::load(th.add(i));
                let s_thd = V::load(thd.add(i));
                let right = V::mask_from_bits(((io.bits[i / 64] >> (i % 64)) & lane_mask) as u32);
                let force = V::select(right, V::splat(FORCE_MAG), V::splat(-FORCE_MAG));

                let (sintheta, costheta) = sincos::sincos(s_th, tab);
                let temp =
                    force.add(V::splat(POLEMASS_LENGTH).mul(s_thd.mul(s_thd)).mul(sintheta)).div(V::splat(TOTAL_MASS));
                let num = V::splat(GRAVITY).mul(sintheta).sub(costheta.mul(temp));
                let den = V::splat(LENGTH).mul(
                    V::splat(4.0 / 3.0).sub(V::splat(MASSPOLE).mul(costheta.mul(costheta)).div(V::splat(TOTAL_MASS))),
                );
                let thetaacc = num.div(den);
                let xacc = temp.sub(V::splat(POLEMASS_LENGTH).mul(thetaacc).mul(costheta).div(V::splat(TOTAL_MASS)));

                let nx = s_x.add(V::splat(TAU).mul(s_xd));
                let nxd = s_xd.add(V::splat(TAU).mul(xacc));
                let nth = s_th.add(V::splat(TAU).mul(s_thd));
                let nthd = s_thd.add(V::splat(TAU).mul(thetaacc));

                let t = V::or(
                    V::or(nx.lt(V::splat(-X_THRESHOLD)), nx.gt(V::splat(X_THRESHOLD))),
                    V::or(nth.lt(V::splat(-THETA_THRESHOLD_RADIANS)), nth.gt(V::splat(THETA_THRESHOLD_RADIANS))),
                );

                nx.store(x.add(i));
                nxd.store(xd.add(i));
                nth.store(th.add(i));
                nthd.store(thd.add(i));
                V::store_rows4_f32(nx, nxd, nth, nthd, obs.add(4 * i));

                // Flags and clocks, lane by lane (the compiler unrolls this).
                let tb = V::bits(t);
                let mut ended = 0u64;
                for l in 0..V::N {
                    let e = *elapsed.add(i + l) + 1;
                    *elapsed.add(i + l) = e;
                    let te = (tb >> l) & 1 != 0;
                    let tr = e >= io.max_steps;
                    *term.add(i + l) = te;
                    *trunc.add(i + l) = tr;
                    ended |= ((te | tr) as u64) << l;
                }
                io.ended[i / 64] |= ended << (i % 64);
            }
            i += V::N;
        }
        whole
    }
}
