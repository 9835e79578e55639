//! Recording the episodes a trainer actually plays, as Parquet.
//!
//! [`EpisodeRecorder`] wraps any [`Env`] and copies every transition it sees (the observation before
//! the action, the action, the reward) into the current [`Episode`]; when the episode terminates or
//! is truncated the episode goes to a shared [`EpisodeSink`]. The trainer keeps using the wrapper as
//! its env, so what is recorded is exactly what it trained on (exploration included).
//!
//! Why a wrapper and not a trainer callback: every trainer in rlox already takes an `Env`, so one
//! wrapper covers DQN, the tabular learners and vectorised envs (wrap each copy; they share a sink)
//! without touching the algorithms.
//!
//! **Clones do not record.** Trainers clone their env to run evaluation episodes; those are not
//! training data, so a clone of a recorder is a plain pass-through (same env state, no sink).
//!
//! An episode still running when training stops is not in the sink (it has no end yet).
//!
//! **Time limits counted outside.** Some vector envs (rlox-deep's `ResumableVecEnv`) run bare envs
//! and count the time limit themselves, so the env never reports `truncated`; the vector env just
//! resets it. For those, [`EpisodeRecorder::with_time_limit`] tells the recorder the limit, and an
//! episode that reaches it without terminating is recorded as truncated there (a reset before the
//! limit is still an abandoned episode, dropped).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rlox_core::env::{Env, FlatObs, Info, SetState, Step};
use rlox_core::spaces::Space;

use crate::records::{episodes_to_batch, Episode, Transition};
use crate::schema::episode_schema;
use crate::write::{write_parquet, WriteOptions};
use crate::Result;

/// Finished episodes, shared between the recorders of one run and the code that writes them.
#[derive(Debug, Clone, Default)]
pub struct EpisodeSink {
    episodes: Arc<Mutex<Vec<Episode>>>,
}

impl EpisodeSink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of finished episodes so far.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no episode has finished yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Take the finished episodes out of the sink (it is empty afterwards).
    pub fn take(&self) -> Vec<Episode> {
        std::mem::take(&mut *self.lock())
    }

    /// Write the finished episodes of run `run` to `path` (schema [`episode_schema`], Hive/Spark-safe)
    /// and empty the sink. Returns the file written.
    pub fn write(&self, path: impl AsRef<Path>, run: &str, options: &WriteOptions) -> Result<PathBuf> {
        let episodes = self.take();
        let batch = episodes_to_batch(run, &episodes)?;
        write_parquet(path, episode_schema(), &[batch], options)
    }

    fn push(&self, mut episode: Episode) {
        let mut all = self.lock();
        episode.episode = all.len() as i64;
        all.push(episode);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Episode>> {
        // A panic elsewhere while holding the lock leaves the data intact: keep using it.
        self.episodes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// An [`Env`] wrapper that records every episode it plays into an [`EpisodeSink`].
#[derive(Debug)]
pub struct EpisodeRecorder<E: Env> {
    env: E,
    sink: Option<EpisodeSink>,
    last_obs: Option<E::Obs>,
    current: Vec<Transition>,
    time_limit: Option<usize>,
}

impl<E: Env> EpisodeRecorder<E> {
    /// Record the episodes of `env` into `sink`.
    pub fn new(env: E, sink: EpisodeSink) -> Self {
        EpisodeRecorder { env, sink: Some(sink), last_obs: None, current: Vec::new(), time_limit: None }
    }

    /// Record into `sink` when given, else pass through (lets one constructor build both the
    /// training envs and the evaluation envs of a trainer).
    pub fn maybe(env: E, sink: Option<EpisodeSink>) -> Self {
        EpisodeRecorder { env, sink, last_obs: None, current: Vec::new(), time_limit: None }
    }

    /// The caller truncates episodes after `max_steps` steps (the wrapped env is bare and does not
    /// say so itself; see the module docs); `None` leaves truncation to the env.
    pub fn with_time_limit(mut self, max_steps: Option<usize>) -> Self {
        self.time_limit = max_steps;
        self
    }

    /// The wrapped env.
    pub fn inner(&self) -> &E {
        &self.env
    }
}

impl<E: Env + Clone> Clone for EpisodeRecorder<E> {
    /// A non-recording copy (see the module docs: clones are used for evaluation).
    fn clone(&self) -> Self {
        EpisodeRecorder {
            env: self.env.clone(),
            sink: None,
            last_obs: None,
            current: Vec::new(),
            time_limit: self.time_limit,
        }
    }
}

impl<E: Env + SetState> SetState for EpisodeRecorder<E> {
    /// Sets the wrapped env's state. The episode being recorded cannot be continued from an
    /// arbitrary state, so it is dropped and recording resumes at the next reset.
    fn set_state(&mut self, state: &[f64]) -> rlox_core::Result<()> {
        self.current.clear();
        self.last_obs = None;
        self.env.set_state(state)
    }

    fn state(&self) -> Vec<f64> {
        self.env.state()
    }
}

fn flat<T: FlatObs>(x: &T) -> Vec<f64> {
    let mut buf = vec![0.0f32; x.flat_len()];
    x.write_flat(&mut buf);
    buf.into_iter().map(f64::from).collect()
}

impl<E> Env for EpisodeRecorder<E>
where
    E: Env,
    E::Obs: FlatObs,
    E::Action: FlatObs,
{
    type Obs = E::Obs;
    type Action = E::Action;

    fn id(&self) -> &str {
        self.env.id()
    }

    fn observation_space(&self) -> Space {
        self.env.observation_space()
    }

    fn action_space(&self) -> Space {
        self.env.action_space()
    }

    fn reset(&mut self, seed: Option<u64>) -> rlox_core::Result<(Self::Obs, Info)> {
        let (obs, info) = self.env.reset(seed)?;
        // An unfinished episode that is reset away was abandoned by the trainer: drop it.
        self.current.clear();
        if self.sink.is_some() {
            self.last_obs = Some(obs.clone());
        }
        Ok((obs, info))
    }

    fn step(&mut self, action: &Self::Action) -> rlox_core::Result<Step<Self::Obs>> {
        let step = self.env.step(action)?;
        if let (Some(sink), Some(prev)) = (&self.sink, self.last_obs.take()) {
            self.current.push(Transition { obs: flat(&prev), action: flat(action), reward: step.reward });
            let at_limit = self.time_limit.is_some_and(|n| self.current.len() >= n);
            let truncated = !step.terminated && (step.truncated || at_limit);
            if step.terminated || truncated {
                let transitions = std::mem::take(&mut self.current);
                sink.push(Episode { episode: 0, transitions, terminated: step.terminated, truncated });
            } else {
                self.last_obs = Some(step.obs.clone());
            }
        }
        Ok(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rlox_core::spaces::Discrete;

    /// A corridor: observation = position; action 1 moves right, 0 stays; the end at 3 terminates,
    /// and a time limit of 5 steps truncates.
    #[derive(Debug, Clone, Default)]
    struct Corridor {
        pos: usize,
        t: usize,
    }

    impl Env for Corridor {
        type Obs = usize;
        type Action = usize;
        fn id(&self) -> &str {
            "corridor"
        }
        fn observation_space(&self) -> Space {
            Space::Discrete(Discrete::new(4))
        }
        fn action_space(&self) -> Space {
            Space::Discrete(Discrete::new(2))
        }
        fn reset(&mut self, _seed: Option<u64>) -> rlox_core::Result<(usize, Info)> {
            *self = Corridor::default();
            Ok((0, Info::new()))
        }
        fn step(&mut self, a: &usize) -> rlox_core::Result<Step<usize>> {
            self.pos += a;
            self.t += 1;
            let terminated = self.pos == 3;
            Ok(Step {
                obs: self.pos,
                reward: -1.0,
                terminated,
                truncated: !terminated && self.t == 5,
                info: Info::new(),
            })
        }
    }

    #[test]
    fn records_terminated_and_truncated_episodes_but_not_clones() {
        let sink = EpisodeSink::new();
        let mut env = EpisodeRecorder::new(Corridor::default(), sink.clone());
        env.reset(None).unwrap();
        for _ in 0..3 {
            env.step(&1).unwrap();
        }
        env.reset(None).unwrap();
        for _ in 0..5 {
            env.step(&0).unwrap();
        }
        // A clone (evaluation) plays an episode that must not be recorded.
        let mut eval = env.clone();
        eval.reset(None).unwrap();
        for _ in 0..3 {
            eval.step(&1).unwrap();
        }
        // An unfinished episode is not recorded either.
        env.reset(None).unwrap();
        env.step(&1).unwrap();

        let episodes = sink.take();
        assert_eq!(episodes.len(), 2);
        let (a, b) = (&episodes[0], &episodes[1]);
        assert!(a.terminated && !a.truncated && b.truncated && !b.terminated);
        assert_eq!((a.episode, b.episode), (0, 1));
        let obs: Vec<f64> = a.transitions.iter().map(|t| t.obs[0]).collect();
        assert_eq!(obs, vec![0.0, 1.0, 2.0]);
        assert!(a.transitions.iter().all(|t| t.action == vec![1.0] && t.reward == -1.0));
        assert_eq!(b.transitions.len(), 5);
        assert!(sink.is_empty());
    }

    #[test]
    fn a_time_limit_counted_outside_truncates_at_the_limit() {
        let sink = EpisodeSink::new();
        let mut env = EpisodeRecorder::new(Corridor::default(), sink.clone()).with_time_limit(Some(3));
        env.reset(None).unwrap();
        for _ in 0..3 {
            env.step(&0).unwrap(); // the caller's limit: truncated at the third step
        }
        env.reset(None).unwrap();
        for _ in 0..3 {
            env.step(&1).unwrap(); // terminates at the third step: terminated wins
        }
        env.reset(None).unwrap();
        env.step(&0).unwrap();
        env.reset(None).unwrap(); // abandoned before the limit: dropped
        let episodes = sink.take();
        assert_eq!(episodes.len(), 2);
        assert!(episodes[0].truncated && !episodes[0].terminated && episodes[0].transitions.len() == 3);
        assert!(episodes[1].terminated && !episodes[1].truncated && episodes[1].transitions.len() == 3);
        // Without a sink nothing is recorded.
        let mut quiet = EpisodeRecorder::maybe(Corridor::default(), None).with_time_limit(Some(1));
        quiet.reset(None).unwrap();
        quiet.step(&0).unwrap();
        assert!(sink.is_empty());
    }

    #[test]
    fn writes_a_readable_parquet_file() {
        let dir = tempfile::tempdir().unwrap();
        let sink = EpisodeSink::new();
        let mut env = EpisodeRecorder::new(Corridor::default(), sink.clone());
        for _ in 0..4 {
            env.reset(None).unwrap();
            for _ in 0..3 {
                env.step(&1).unwrap();
            }
        }
        let path = sink.write(dir.path().join("episodes.parquet"), "run-a", &WriteOptions::default()).unwrap();
        let (schema, batches) = crate::read::read_file(&path).unwrap();
        assert_eq!(schema.fields().len(), episode_schema().fields().len());
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 4);
    }
}
