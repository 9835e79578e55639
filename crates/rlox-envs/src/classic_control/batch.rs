//! The batch API shared by the classic-control `*Vec` envs: stepping N envs per call into
//! caller-provided slices, Gymnasium's autoreset modes and vector seeding.
//!
//! ## Stepping into caller buffers
//! [`BatchEnv::step_into`] takes the actions of all envs as one flat slice (`i64` for discrete
//! actions, `f32` for the one-dimensional continuous ones) and writes the results into a
//! [`StepBuffers`]: observations `[num_envs * obs_dim]` (`f32`, env-major, Gymnasium's
//! `(num_envs, obs_dim)` array), rewards `[num_envs]` (`f32` or `f64`, see [`Reward`]),
//! `terminated` and `truncated` `[num_envs]` (`bool`, one byte each as in NumPy), and
//! `final_obs` `[num_envs * obs_dim]`. A Python binding hands these slices straight from NumPy
//! arrays; nothing is allocated or copied per step. [`BatchEnv::reset_into`] writes the first
//! observations the same way. The actions are validated before any env moves: an invalid action
//! is an error and leaves every env untouched.
//!
//! ## Autoreset ([`AutoresetMode`], Gymnasium 1.x)
//! * `NextStep` (the default, what Gymnasium's vector envs do): an env that ends at call `t`
//!   returns its final observation, reward and flags at `t`; at call `t + 1` its action is ignored,
//!   it is reset and returns the reset observation with reward 0 and both flags false. `final_obs`
//!   is not written (the final observation *is* the observation of call `t`) and may be empty.
//! * `SameStep`: an env that ends at call `t` is reset within the call: the observation of call
//!   `t` is already the reset observation, the reward and flags are those of the final step, and
//!   the final observation is written to its row of `final_obs` (Gymnasium's `infos["final_obs"]`;
//!   Stable-Baselines3's `terminal_observation`). Rows of envs that did not end are left as they were.
//!
//! ## Seeding ([`BatchSeeding`])
//! `gymnasium.make_vec(id, num_envs=n)` builds CartPole's NumPy vector env (`CartPoleVectorEnv`),
//! which draws every reset from **one** generator seeded with `s`: `uniform(size=(4, n))` at reset,
//! `uniform(size=(4, k))` for the `k` envs autoreset at a step, component by component. For every
//! other classic-control id it builds a `SyncVectorEnv` of `n` envs, env `i` with **its own**
//! generator seeded with `s + i`, reset on its own stream. [`BatchSeeding::Shared`] and
//! [`BatchSeeding::PerEnv`] are these two; [`BatchSeeding::gymnasium_default`] says which one
//! `make_vec` uses for an id. A batch that was never seeded draws fresh OS entropy, as Gymnasium does.

use rlox_core::seeding::{np_random, np_random_from_int_limbs, Generator};
use rlox_core::{Error, Result};

/// When a finished env is reset (Gymnasium's `AutoresetMode`); see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AutoresetMode {
    /// Reset on the call after the episode ended (Gymnasium's default, `NEXT_STEP`).
    #[default]
    NextStep,
    /// Reset within the call that ended the episode; the final observation goes to `final_obs`.
    SameStep,
}

/// How a batch seeded with `s` seeds its envs; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchSeeding {
    /// One generator for the whole batch (Gymnasium's NumPy vector env, `CartPoleVectorEnv`).
    Shared,
    /// Env `i` has its own generator seeded with `s + i` (Gymnasium's `SyncVectorEnv`).
    PerEnv,
}

impl BatchSeeding {
    /// What `gymnasium.make_vec(id, num_envs=n)` does for a classic-control id: `Shared` for
    /// `CartPole-v1` (its `vector_entry_point`), `PerEnv` for every other id.
    pub fn gymnasium_default(id: &str) -> BatchSeeding {
        if id == super::cartpole::ID {
            BatchSeeding::Shared
        } else {
            BatchSeeding::PerEnv
        }
    }
}

/// The element type of a reward buffer: `f64` (Gymnasium's `SyncVectorEnv`) or `f32`
/// (`CartPoleVectorEnv`). Classic-control rewards are computed in `f64` and rounded on store.
pub trait Reward: Copy {
    /// The reward rounded to this type.
    fn from_f64(x: f64) -> Self;
}

impl Reward for f64 {
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x
    }
}

impl Reward for f32 {
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
}

/// Caller-provided outputs of one batch call; see the [module docs](self) for the layout.
#[derive(Debug)]
pub struct StepBuffers<'a, R: Reward = f64> {
    /// `[num_envs * obs_dim]`, env-major.
    pub obs: &'a mut [f32],
    /// `[num_envs]`.
    pub rewards: &'a mut [R],
    /// `[num_envs]`.
    pub terminated: &'a mut [bool],
    /// `[num_envs]`.
    pub truncated: &'a mut [bool],
    /// `[num_envs * obs_dim]` in [`AutoresetMode::SameStep`]; unused (may be empty) in `NextStep`.
    pub final_obs: &'a mut [f32],
}

impl<R: Reward> StepBuffers<'_, R> {
    /// Check every length against the batch before anything is written.
    pub(crate) fn check(&self, env: &str, n: usize, obs_dim: usize, mode: AutoresetMode) -> Result<()> {
        let bad = |what: &str, got: usize, want: usize| {
            Err(Error::invalid(
                format!("{env} {what} buffer"),
                format!("has {got} elements, expected {want} ({n} envs x {obs_dim})"),
            ))
        };
        if self.obs.len() != n * obs_dim {
            return bad("observation", self.obs.len(), n * obs_dim);
        }
        if self.rewards.len() != n {
            return bad("reward", self.rewards.len(), n);
        }
        if self.terminated.len() != n {
            return bad("terminated", self.terminated.len(), n);
        }
        if self.truncated.len() != n {
            return bad("truncated", self.truncated.len(), n);
        }
        if mode == AutoresetMode::SameStep && self.final_obs.len() != n * obs_dim {
            return bad("final observation", self.final_obs.len(), n * obs_dim);
        }
        Ok(())
    }
}

/// A discrete action as it arrives in a batch: `i64` from NumPy, `usize` from Rust.
pub trait DiscreteAction: Copy + std::fmt::Display {
    /// The action as an index, `None` when negative or too large for `usize`.
    fn index(self) -> Option<usize>;
    /// The bits as a `u64` (sign-extended, so a negative action is larger than any index): lets a
    /// batch check all its actions with one vectorised pass.
    fn raw(self) -> u64;
}

impl DiscreteAction for usize {
    #[inline(always)]
    fn index(self) -> Option<usize> {
        Some(self)
    }
    #[inline(always)]
    fn raw(self) -> u64 {
        self as u64
    }
}

impl DiscreteAction for i64 {
    #[inline(always)]
    fn index(self) -> Option<usize> {
        usize::try_from(self).ok()
    }
    #[inline(always)]
    fn raw(self) -> u64 {
        self as u64
    }
}

impl DiscreteAction for i32 {
    #[inline(always)]
    fn index(self) -> Option<usize> {
        usize::try_from(self).ok()
    }
    #[inline(always)]
    fn raw(self) -> u64 {
        self as i64 as u64
    }
}

/// A classic-control batch stepped into caller-provided slices (the API the Python package uses).
pub trait BatchEnv {
    /// One env's action in the flat action slice: `i64` (discrete) or `f32` (continuous).
    type Action: Copy;

    /// The Gymnasium id.
    fn id(&self) -> &'static str;
    /// Number of envs.
    fn num_envs(&self) -> usize;
    /// Scalars per observation.
    fn obs_dim(&self) -> usize;
    /// The autoreset mode.
    fn autoreset_mode(&self) -> AutoresetMode;
    /// Change the autoreset mode (takes effect at the next call; pending `NextStep` resets of envs
    /// that already ended are still done at the next call).
    fn set_autoreset_mode(&mut self, mode: AutoresetMode);
    /// How the batch seeds its envs.
    fn seeding(&self) -> BatchSeeding;
    /// Reset every env (`Some(s)` reseeds first, see [`BatchSeeding`]) and write the first
    /// observations into `obs` (`[num_envs * obs_dim]`).
    fn reset_into(&mut self, seed: Option<u64>, obs: &mut [f32]) -> Result<()>;
    /// Step every env with its action and write the results into `out`.
    fn step_into<R: Reward>(&mut self, actions: &[Self::Action], out: StepBuffers<'_, R>) -> Result<()>;
}

/// The bookkeeping every batch shares: episode clocks, pending resets, generators and the
/// buffers behind the [`rlox_core::vec_env::VecEnv`] accessors.
///
/// The state arrays themselves live in each env's batch (one `Vec<f64>` per component).
#[derive(Debug, Clone)]
pub(crate) struct Book {
    pub id: &'static str,
    pub obs_dim: usize,
    /// Buffers behind the `VecEnv` accessors (unused by `step_into`).
    pub obs: Vec<f32>,
    pub rewards: Vec<f64>,
    pub terminated: Vec<bool>,
    pub truncated: Vec<bool>,
    pub final_obs: Vec<f32>,
    /// `NextStep`: the env finished at the previous call and is reset at this one.
    pub pending_reset: Vec<bool>,
    /// Steps in the current episode (the `TimeLimit` counter).
    pub elapsed: Vec<u32>,
    /// One generator per env (`PerEnv`) or one for the batch (`Shared`).
    pub rngs: Vec<Generator>,
    pub seeding: BatchSeeding,
    pub autoreset: AutoresetMode,
    pub max_episode_steps: u32,
    pub started: bool,
}

impl Book {
    pub fn new(
        id: &'static str,
        num_envs: usize,
        obs_dim: usize,
        max_episode_steps: usize,
        seeding: BatchSeeding,
    ) -> Result<Self> {
        if num_envs == 0 {
            return Err(Error::invalid("num_envs", format!("a {id} batch needs at least one env")));
        }
        if max_episode_steps == 0 || max_episode_steps > u32::MAX as usize {
            return Err(Error::invalid("max_episode_steps", format!("{max_episode_steps} is not in 1..=u32::MAX")));
        }
        let generators = match seeding {
            BatchSeeding::Shared => 1,
            BatchSeeding::PerEnv => num_envs,
        };
        Ok(Book {
            id,
            obs_dim,
            obs: vec![0.0; num_envs * obs_dim],
            rewards: vec![0.0; num_envs],
            terminated: vec![false; num_envs],
            truncated: vec![false; num_envs],
            final_obs: vec![0.0; num_envs * obs_dim],
            pending_reset: vec![false; num_envs],
            elapsed: vec![0; num_envs],
            rngs: (0..generators).map(|_| np_random(None).0).collect(),
            seeding,
            autoreset: AutoresetMode::NextStep,
            max_episode_steps: max_episode_steps as u32,
            started: false,
        })
    }

    pub fn len(&self) -> usize {
        self.pending_reset.len()
    }

    /// Check the observation buffer of a reset, reseed (`PerEnv`: env `i` gets `seed + i`;
    /// `Shared`: the one generator gets `seed`) and clear the episode bookkeeping.
    pub fn begin_reset(&mut self, seed: Option<u64>, obs: &[f32]) -> Result<()> {
        if obs.len() != self.len() * self.obs_dim {
            return Err(Error::invalid(
                format!("{} observation buffer", self.id),
                format!(
                    "has {} elements, expected {} ({} envs x {})",
                    obs.len(),
                    self.len() * self.obs_dim,
                    self.len(),
                    self.obs_dim
                ),
            ));
        }
        if let Some(s) = seed {
            for (i, r) in self.rngs.iter_mut().enumerate() {
                // Gymnasium adds in Python integers: past u64::MAX the seed just grows wider.
                let wide = s as u128 + i as u128;
                *r = np_random_from_int_limbs(&[wide as u64, (wide >> 64) as u64]).0;
            }
        }
        self.pending_reset.fill(false);
        self.elapsed.fill(0);
        self.started = true;
        Ok(())
    }

    /// Validate a step call (started, one action per env, buffer sizes) before any env moves.
    pub fn check_step<R: Reward>(&self, num_actions: usize, out: &StepBuffers<'_, R>) -> Result<()> {
        if !self.started {
            return Err(super::needs_reset(self.id));
        }
        if num_actions != self.len() {
            return Err(Error::invalid("actions", format!("got {num_actions} actions for {} envs", self.len())));
        }
        out.check(self.id, self.len(), self.obs_dim, self.autoreset)
    }

    /// The `TimeLimit` clock of env `i` after a step: returns `truncated`.
    #[inline(always)]
    pub fn tick(&mut self, i: usize) -> bool {
        let elapsed = self.elapsed[i] + 1;
        self.elapsed[i] = elapsed;
        elapsed >= self.max_episode_steps
    }

    /// Take the `VecEnv` buffers out (to lend them to `step_into` as a [`StepBuffers`]).
    pub fn take_buffers(&mut self) -> OwnedBuffers {
        OwnedBuffers {
            obs: std::mem::take(&mut self.obs),
            rewards: std::mem::take(&mut self.rewards),
            terminated: std::mem::take(&mut self.terminated),
            truncated: std::mem::take(&mut self.truncated),
            final_obs: std::mem::take(&mut self.final_obs),
        }
    }

    /// Put the buffers taken by [`Book::take_buffers`] back.
    pub fn restore_buffers(&mut self, b: OwnedBuffers) {
        self.obs = b.obs;
        self.rewards = b.rewards;
        self.terminated = b.terminated;
        self.truncated = b.truncated;
        self.final_obs = b.final_obs;
    }

    /// Check an env index for the per-env accessors.
    pub fn check_index(&self, i: usize) -> Result<()> {
        if i >= self.len() {
            return Err(Error::invalid("env index", format!("{} batch has {} envs, index {i}", self.id, self.len())));
        }
        Ok(())
    }
}

/// The `VecEnv` buffers while they are lent out.
pub(crate) struct OwnedBuffers {
    pub obs: Vec<f32>,
    pub rewards: Vec<f64>,
    pub terminated: Vec<bool>,
    pub truncated: Vec<bool>,
    pub final_obs: Vec<f32>,
}

impl OwnedBuffers {
    pub fn as_step_buffers(&mut self) -> StepBuffers<'_, f64> {
        StepBuffers {
            obs: &mut self.obs,
            rewards: &mut self.rewards,
            terminated: &mut self.terminated,
            truncated: &mut self.truncated,
            final_obs: &mut self.final_obs,
        }
    }
}

/// One env of a batch at a time, for [`step_per_env`].
pub(crate) trait EnvRows {
    /// Advance env `i` under its action, write its observation into `obs`, return
    /// `(reward, terminated)`.
    fn step_row(&mut self, i: usize, obs: &mut [f32]) -> (f64, bool);
    /// Draw a reset state for env `i` from `rng` and write its observation into `obs`.
    fn reset_row(&mut self, i: usize, rng: &mut Generator, obs: &mut [f32]);
}

/// The step of a batch whose envs each own a generator (every classic-control batch in `PerEnv`
/// seeding), one env at a time, with both autoreset modes. The caller has validated everything
/// ([`Book::check_step`]).
pub(crate) fn step_per_env<R: Reward>(book: &mut Book, out: StepBuffers<'_, R>, rows: &mut impl EnvRows) {
    debug_assert_eq!(book.seeding, BatchSeeding::PerEnv);
    let d = book.obs_dim;
    let same_step = book.autoreset == AutoresetMode::SameStep;
    for i in 0..book.len() {
        let row = &mut out.obs[i * d..(i + 1) * d];
        if book.pending_reset[i] {
            // NEXT_STEP: the action is ignored; reward 0, flags false, a fresh clock.
            rows.reset_row(i, &mut book.rngs[i], row);
            book.pending_reset[i] = false;
            book.elapsed[i] = 0;
            out.rewards[i] = R::from_f64(0.0);
            out.terminated[i] = false;
            out.truncated[i] = false;
            continue;
        }
        let (reward, terminated) = rows.step_row(i, row);
        let truncated = book.tick(i);
        out.rewards[i] = R::from_f64(reward);
        out.terminated[i] = terminated;
        out.truncated[i] = truncated;
        if terminated || truncated {
            if same_step {
                out.final_obs[i * d..(i + 1) * d].copy_from_slice(row);
                rows.reset_row(i, &mut book.rngs[i], row);
                book.elapsed[i] = 0;
            } else {
                book.pending_reset[i] = true;
            }
        }
    }
}

/// The reset of a `PerEnv` batch: env `i` draws from its own generator.
pub(crate) fn reset_per_env(book: &mut Book, obs: &mut [f32], rows: &mut impl EnvRows) {
    let d = book.obs_dim;
    for i in 0..book.len() {
        rows.reset_row(i, &mut book.rngs[i], &mut obs[i * d..(i + 1) * d]);
    }
}
