//! One environment behind an object-safe interface that the Python classes drive.
//!
//! rlox's envs are generic ([`Env`] with their own observation and action types). Python sees two
//! kinds of each: observations are an index (`Discrete` spaces) or a vector of `f32` (`Box`), and so
//! are actions. [`Core`] erases an env to exactly that, with the observation written into a buffer
//! the caller owns, so a step of a batch of scalar envs allocates nothing.
//!
//! Every [`Core`] is `Send + Sync`, as PyO3 requires of a Python class: a Python object may be used
//! from several threads (one at a time, under PyO3's borrow flag), e.g. by a Ray actor or a thread pool.

use rlox_core::env::{Env, Info, SetState};
use rlox_core::spaces::Space;
use rlox_core::{Error, Result};

/// An action as it arrives from Python.
#[derive(Debug, Clone, Copy)]
pub enum ActionIn<'a> {
    /// An element of a `Discrete` space (checked against the space by the env).
    Index(i64),
    /// A point of a `Box` space, flattened.
    Vector(&'a [f32]),
}

/// Where an observation goes.
pub enum ObsOut<'a> {
    /// A `Discrete` observation.
    Index(&'a mut i64),
    /// A `Box` observation, flattened (length = the space's `flat_dim`).
    Vector(&'a mut [f32]),
}

/// What a step returns besides the observation.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The reward.
    pub reward: f64,
    /// The MDP reached a terminal state.
    pub terminated: bool,
    /// The episode was cut (time limit).
    pub truncated: bool,
    /// Gymnasium's `info`.
    pub info: Info,
}

/// A type-erased environment.
pub trait Core: Send + Sync {
    /// The Gymnasium id.
    fn id(&self) -> &str;
    /// The observation space.
    fn observation_space(&self) -> Space;
    /// The action space.
    fn action_space(&self) -> Space;
    /// Start an episode (reseeding first when `seed` is given); writes the first observation.
    fn reset(&mut self, seed: Option<u64>, obs: ObsOut<'_>) -> Result<Info>;
    /// Advance one step; writes the observation.
    fn step(&mut self, action: ActionIn<'_>, obs: ObsOut<'_>) -> Result<Outcome>;
    /// The internal state (layout documented by each env: `[x, x_dot, theta, theta_dot]` for CartPole,
    /// the state index for the toy-text envs).
    fn state(&self) -> Vec<f64>;
    /// Overwrite the internal state (Gymnasium's `env.unwrapped.state = ...`).
    fn set_state(&mut self, state: &[f64]) -> Result<()>;
}

/// Writing an env's observation type into an [`ObsOut`].
pub trait WriteObs {
    /// Write `self`; a kind mismatch (never produced by this crate) is an error, not a panic.
    fn write_obs(&self, out: ObsOut<'_>) -> Result<()>;
}

impl WriteObs for usize {
    #[inline]
    fn write_obs(&self, out: ObsOut<'_>) -> Result<()> {
        match out {
            ObsOut::Index(slot) => *slot = *self as i64,
            ObsOut::Vector(v) if v.len() == 1 => v[0] = *self as f32,
            ObsOut::Vector(v) => return Err(kind_mismatch("a discrete observation", v.len())),
        }
        Ok(())
    }
}

fn write_floats(src: &[f32], out: ObsOut<'_>) -> Result<()> {
    match out {
        ObsOut::Vector(v) if v.len() == src.len() => {
            v.copy_from_slice(src);
            Ok(())
        }
        ObsOut::Vector(v) => Err(kind_mismatch("an observation of the wrong length", v.len())),
        ObsOut::Index(_) => Err(kind_mismatch("a vector observation", 1)),
    }
}

impl<const N: usize> WriteObs for [f32; N] {
    #[inline]
    fn write_obs(&self, out: ObsOut<'_>) -> Result<()> {
        write_floats(self, out)
    }
}

impl WriteObs for Vec<f32> {
    #[inline]
    fn write_obs(&self, out: ObsOut<'_>) -> Result<()> {
        write_floats(self, out)
    }
}

#[cold]
fn kind_mismatch(what: &str, len: usize) -> Error {
    Error::invalid("observation buffer", format!("{what} cannot go into a buffer of {len} values"))
}

/// Reading an env's action type from an [`ActionIn`].
pub trait ReadAction: Sized {
    /// The env's action, or [`Error::InvalidAction`] naming the space.
    fn read_action(action: ActionIn<'_>, env: &str, space: &Space) -> Result<Self>;
}

impl ReadAction for usize {
    #[inline]
    fn read_action(action: ActionIn<'_>, env: &str, space: &Space) -> Result<Self> {
        match action {
            ActionIn::Index(a) if a >= 0 => Ok(a as usize),
            other => Err(invalid_action(env, other, space)),
        }
    }
}

impl ReadAction for Vec<f32> {
    #[inline]
    fn read_action(action: ActionIn<'_>, env: &str, space: &Space) -> Result<Self> {
        match action {
            ActionIn::Vector(v) => Ok(v.to_vec()),
            other => Err(invalid_action(env, other, space)),
        }
    }
}

/// The error for an action of the wrong kind or sign.
#[cold]
pub fn invalid_action(env: &str, action: ActionIn<'_>, space: &Space) -> Error {
    let action = match action {
        ActionIn::Index(a) => a.to_string(),
        ActionIn::Vector(v) => format!("{v:?}"),
    };
    Error::InvalidAction { env: env.to_string(), action, space: space.to_string() }
}

/// Any rlox env (or wrapper) as a [`Core`].
pub struct Erased<E> {
    env: E,
    action_space: Space,
}

impl<E: Env> Erased<E> {
    /// Erase `env`.
    pub fn new(env: E) -> Self {
        let action_space = env.action_space();
        Erased { env, action_space }
    }
}

impl<E> Core for Erased<E>
where
    E: Env + SetState + Send + Sync,
    E::Obs: WriteObs,
    E::Action: ReadAction,
{
    fn id(&self) -> &str {
        self.env.id()
    }
    fn observation_space(&self) -> Space {
        self.env.observation_space()
    }
    fn action_space(&self) -> Space {
        self.action_space.clone()
    }
    fn reset(&mut self, seed: Option<u64>, obs: ObsOut<'_>) -> Result<Info> {
        let (o, info) = self.env.reset(seed)?;
        o.write_obs(obs)?;
        Ok(info)
    }
    #[inline]
    fn step(&mut self, action: ActionIn<'_>, obs: ObsOut<'_>) -> Result<Outcome> {
        let a = E::Action::read_action(action, self.env.id(), &self.action_space)?;
        let s = self.env.step(&a)?;
        s.obs.write_obs(obs)?;
        Ok(Outcome { reward: s.reward, terminated: s.terminated, truncated: s.truncated, info: s.info })
    }
    fn state(&self) -> Vec<f64> {
        self.env.state()
    }
    fn set_state(&mut self, state: &[f64]) -> Result<()> {
        self.env.set_state(state)
    }
}
