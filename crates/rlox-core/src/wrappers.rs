//! Wrappers: [`TimeLimit`] and [`RecordEpisodeStatistics`], with Gymnasium's semantics.

use crate::env::{Env, Info, InfoValue, NpRandom, Step};
use crate::spaces::Space;
use crate::Result;
use std::time::Instant;

/// Truncates episodes after `max_episode_steps` steps (Gymnasium's `TimeLimit`).
///
/// The step that reaches the limit returns `truncated = true`; `terminated` is passed through
/// unchanged, so a step can be both terminated and truncated, exactly as in Gymnasium.
#[derive(Debug, Clone)]
pub struct TimeLimit<E> {
    inner: E,
    max_episode_steps: usize,
    elapsed: usize,
}

impl<E> TimeLimit<E> {
    /// Wrap `inner` with a limit of `max_episode_steps` steps per episode.
    pub fn new(inner: E, max_episode_steps: usize) -> Self {
        TimeLimit { inner, max_episode_steps, elapsed: 0 }
    }

    /// The wrapped environment.
    pub fn inner(&self) -> &E {
        &self.inner
    }

    /// The wrapped environment, mutably (e.g. to set its state after a reset).
    pub fn inner_mut(&mut self) -> &mut E {
        &mut self.inner
    }

    /// Steps taken in the current episode.
    pub fn elapsed_steps(&self) -> usize {
        self.elapsed
    }

    /// The limit.
    pub fn max_episode_steps(&self) -> usize {
        self.max_episode_steps
    }
}

impl<E: Env> Env for TimeLimit<E> {
    type Obs = E::Obs;
    type Action = E::Action;

    fn id(&self) -> &str {
        self.inner.id()
    }
    fn observation_space(&self) -> Space {
        self.inner.observation_space()
    }
    fn action_space(&self) -> Space {
        self.inner.action_space()
    }
    fn reset(&mut self, seed: Option<u64>) -> Result<(E::Obs, Info)> {
        self.elapsed = 0;
        self.inner.reset(seed)
    }
    fn step(&mut self, action: &E::Action) -> Result<Step<E::Obs>> {
        let mut step = self.inner.step(action)?;
        self.elapsed += 1;
        if self.elapsed >= self.max_episode_steps {
            step.truncated = true;
        }
        Ok(step)
    }
}

impl<E: NpRandom> NpRandom for TimeLimit<E> {
    fn np_random(&self) -> &crate::seeding::Generator {
        self.inner.np_random()
    }
    fn np_random_mut(&mut self) -> &mut crate::seeding::Generator {
        self.inner.np_random_mut()
    }
}

/// Adds Gymnasium's `episode` statistics to the info of the step that ends an episode:
/// `episode_r` (return), `episode_l` (length) and `episode_t` (seconds since the wrapper was built).
#[derive(Debug, Clone)]
pub struct RecordEpisodeStatistics<E> {
    inner: E,
    episode_return: f64,
    episode_length: usize,
    start: Instant,
    /// Returns of the finished episodes, in order.
    pub returns: Vec<f64>,
    /// Lengths of the finished episodes, in order.
    pub lengths: Vec<usize>,
}

impl<E> RecordEpisodeStatistics<E> {
    /// Wrap `inner`.
    pub fn new(inner: E) -> Self {
        RecordEpisodeStatistics {
            inner,
            episode_return: 0.0,
            episode_length: 0,
            start: Instant::now(),
            returns: Vec::new(),
            lengths: Vec::new(),
        }
    }

    /// The wrapped environment.
    pub fn inner(&self) -> &E {
        &self.inner
    }

    /// The wrapped environment, mutably.
    pub fn inner_mut(&mut self) -> &mut E {
        &mut self.inner
    }
}

impl<E: Env> Env for RecordEpisodeStatistics<E> {
    type Obs = E::Obs;
    type Action = E::Action;

    fn id(&self) -> &str {
        self.inner.id()
    }
    fn observation_space(&self) -> Space {
        self.inner.observation_space()
    }
    fn action_space(&self) -> Space {
        self.inner.action_space()
    }
    fn reset(&mut self, seed: Option<u64>) -> Result<(E::Obs, Info)> {
        self.episode_return = 0.0;
        self.episode_length = 0;
        self.inner.reset(seed)
    }
    fn step(&mut self, action: &E::Action) -> Result<Step<E::Obs>> {
        let mut step = self.inner.step(action)?;
        self.episode_return += step.reward;
        self.episode_length += 1;
        if step.done() {
            step.info.insert("episode_r", InfoValue::Float(self.episode_return));
            step.info.insert("episode_l", InfoValue::Int(self.episode_length as i64));
            step.info.insert("episode_t", InfoValue::Float(self.start.elapsed().as_secs_f64()));
            self.returns.push(self.episode_return);
            self.lengths.push(self.episode_length);
        }
        Ok(step)
    }
}

/// Setting the state passes through; the episode's step count is kept (trace replays set the state
/// right after `reset`, when it is zero).
impl<E: crate::env::SetState> crate::env::SetState for TimeLimit<E> {
    fn set_state(&mut self, state: &[f64]) -> Result<()> {
        self.inner.set_state(state)
    }
    fn state(&self) -> Vec<f64> {
        self.inner.state()
    }
}
