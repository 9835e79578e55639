//! The [`Env`] contract, with Gymnasium 1.x semantics.
//!
//! * `reset(seed)` starts an episode. `Some(seed)` reseeds the environment's RNG (Gymnasium's
//!   `reset(seed=...)`); `None` continues the current stream. It returns the first observation and an info map.
//! * `step(action)` advances one step and returns the observation, the reward, `terminated` (the MDP
//!   reached a terminal state: bootstrapping from it is wrong) and `truncated` (the episode was cut,
//!   usually by a [`crate::wrappers::TimeLimit`]: bootstrapping from it is right), and an info map.
//! * Stepping an action outside the action space (or a NaN) is an error, never a panic or a silent clip.

use crate::spaces::Space;
use crate::Result;
use serde::Serialize;

/// A value stored in an [`Info`] map.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum InfoValue {
    /// A boolean flag.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A real number.
    Float(f64),
    /// Text.
    Text(String),
    /// A vector of reals.
    Floats(Vec<f64>),
}

/// Gymnasium's `info` dictionary: a small ordered map that does not allocate while empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Info {
    entries: Vec<(String, InfoValue)>,
}

impl Info {
    /// An empty map (no allocation).
    pub fn new() -> Self {
        Info { entries: Vec::new() }
    }

    /// Insert or replace `key`.
    pub fn insert(&mut self, key: impl Into<String>, value: InfoValue) {
        let key = key.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    /// The value at `key`.
    pub fn get(&self, key: &str) -> Option<&InfoValue> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// A real number at `key` (integers are widened).
    pub fn get_f64(&self, key: &str) -> Option<f64> {
        match self.get(key)? {
            InfoValue::Float(x) => Some(*x),
            InfoValue::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &InfoValue)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// What one call to [`Env::step`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Step<O> {
    /// The observation after the step.
    pub obs: O,
    /// The reward of the transition.
    pub reward: f64,
    /// The MDP reached a terminal state.
    pub terminated: bool,
    /// The episode was cut short (time limit or similar).
    pub truncated: bool,
    /// Extra information.
    pub info: Info,
}

impl<O> Step<O> {
    /// `terminated || truncated`: the episode is over and `reset` must be called.
    pub fn done(&self) -> bool {
        self.terminated || self.truncated
    }
}

/// A reinforcement-learning environment with Gymnasium 1.x semantics.
pub trait Env {
    /// The observation type (`usize` for discrete states, `Vec<f32>` or arrays for boxes).
    type Obs: Clone;
    /// The action type (`usize` for discrete actions, `Vec<f32>` for boxes).
    type Action: Clone;

    /// The Gymnasium id (`"CartPole-v1"`, `"gridworld"`, ...).
    fn id(&self) -> &str;

    /// The observation space.
    fn observation_space(&self) -> Space;

    /// The action space.
    fn action_space(&self) -> Space;

    /// Start a new episode; `Some(seed)` reseeds the environment's RNG first.
    fn reset(&mut self, seed: Option<u64>) -> Result<(Self::Obs, Info)>;

    /// Advance one step.
    fn step(&mut self, action: &Self::Action) -> Result<Step<Self::Obs>>;
}

/// An observation that can be written into a flat `f32` buffer (used by vectorised envs and networks).
pub trait FlatObs {
    /// Number of scalars written by [`FlatObs::write_flat`].
    fn flat_len(&self) -> usize;
    /// Write the observation into `out` (length [`FlatObs::flat_len`]).
    fn write_flat(&self, out: &mut [f32]);
}

impl FlatObs for usize {
    fn flat_len(&self) -> usize {
        1
    }
    fn write_flat(&self, out: &mut [f32]) {
        out[0] = *self as f32;
    }
}

impl FlatObs for Vec<f32> {
    fn flat_len(&self) -> usize {
        self.len()
    }
    fn write_flat(&self, out: &mut [f32]) {
        out.copy_from_slice(self);
    }
}

impl<const N: usize> FlatObs for [f32; N] {
    fn flat_len(&self) -> usize {
        N
    }
    fn write_flat(&self, out: &mut [f32]) {
        out.copy_from_slice(self);
    }
}

/// Gymnasium's `Env.np_random`: the NumPy generator a Gymnasium-compatible environment draws from.
///
/// `reset(Some(s))` replaces it with [`crate::seeding::np_random`]`(Some(s))`; replacing it by hand
/// (e.g. with a generator seeded from an integer wider than 64 bits) and then calling `reset(None)`
/// is Gymnasium's `env.np_random = rng; env.reset()`.
pub trait NpRandom {
    /// The generator.
    fn np_random(&self) -> &crate::seeding::Generator;
    /// The generator, mutably (assign to replace it).
    fn np_random_mut(&mut self) -> &mut crate::seeding::Generator;
}

/// An environment whose internal state can be set directly (for trace replay and exploring starts).
pub trait SetState {
    /// Set the internal state from its scalar layout (documented by each env); errors on a wrong length.
    fn set_state(&mut self, state: &[f64]) -> Result<()>;
    /// The internal state in the same layout.
    fn state(&self) -> Vec<f64>;
}

impl<E: Env + ?Sized> Env for Box<E> {
    type Obs = E::Obs;
    type Action = E::Action;

    fn id(&self) -> &str {
        (**self).id()
    }
    fn observation_space(&self) -> Space {
        (**self).observation_space()
    }
    fn action_space(&self) -> Space {
        (**self).action_space()
    }
    fn reset(&mut self, seed: Option<u64>) -> Result<(Self::Obs, Info)> {
        (**self).reset(seed)
    }
    fn step(&mut self, action: &Self::Action) -> Result<Step<Self::Obs>> {
        (**self).step(action)
    }
}

impl<R: NpRandom + ?Sized> NpRandom for Box<R> {
    fn np_random(&self) -> &crate::seeding::Generator {
        (**self).np_random()
    }
    fn np_random_mut(&mut self) -> &mut crate::seeding::Generator {
        (**self).np_random_mut()
    }
}

impl<S: SetState + ?Sized> SetState for Box<S> {
    fn set_state(&mut self, state: &[f64]) -> Result<()> {
        (**self).set_state(state)
    }
    fn state(&self) -> Vec<f64> {
        (**self).state()
    }
}
