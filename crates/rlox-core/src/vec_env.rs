//! Batches of environments as structure-of-arrays, with Gymnasium's `NEXT_STEP` autoreset.
//!
//! [`VecEnv`] steps N copies with one call. Observations live in one flat `f32` buffer
//! (`num_envs * obs_dim`, env-major), rewards and flags in their own vectors, so a learner reads
//! the whole batch without copying.
//!
//! ## Autoreset (Gymnasium 1.x `AutoresetMode.NEXT_STEP`)
//! When env `i` returns `terminated` or `truncated` at call `t`, its observation at call `t` is the
//! last observation of the finished episode. At call `t + 1` the action for env `i` is ignored, the
//! env is reset, and the call returns the reset observation with reward 0 and both flags false.
//! A learner must therefore skip the transition out of a finished episode (its `done` flag at `t`
//! tells it so), exactly as with Gymnasium's vector envs.
//!
//! ## Seeding
//! [`SyncVecEnv`]`::reset(Some(seed))` seeds env `i` with `seed + i`, as Gymnasium's
//! `SyncVectorEnv` does; `reset(None)` lets every env continue its own stream. (The hand-vectorised
//! `CartPole-v1` batch of `rlox-envs` follows Gymnasium's `CartPoleVectorEnv` by default instead:
//! one generator for the whole batch; see its docs.)

use crate::env::{Env, FlatObs};
use crate::spaces::Space;
use crate::Result;

/// The interface of a batch of environments (implemented by [`SyncVecEnv`] and by the
/// hand-vectorised classic-control batches).
pub trait VecEnv {
    /// The action type of one env.
    type Action: Clone;

    /// Number of environments.
    fn num_envs(&self) -> usize;
    /// Scalars per observation.
    fn obs_dim(&self) -> usize;
    /// The observation space of one env.
    fn single_observation_space(&self) -> Space;
    /// The action space of one env.
    fn single_action_space(&self) -> Space;
    /// Reset every env; a seed reseeds first (env `i` gets `seed + i` in [`SyncVecEnv`]).
    fn reset(&mut self, seed: Option<u64>) -> Result<()>;
    /// Step every env with its action (`actions.len() == num_envs`).
    fn step(&mut self, actions: &[Self::Action]) -> Result<()>;
    /// Observations, `num_envs * obs_dim`, env-major.
    fn observations(&self) -> &[f32];
    /// Rewards of the last step.
    fn rewards(&self) -> &[f64];
    /// Terminated flags of the last step.
    fn terminated(&self) -> &[bool];
    /// Truncated flags of the last step.
    fn truncated(&self) -> &[bool];
}

/// N copies of one environment type stepped in a loop, exposed as structure-of-arrays.
pub struct SyncVecEnv<E: Env> {
    envs: Vec<E>,
    obs_dim: usize,
    obs: Vec<f32>,
    rewards: Vec<f64>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
    needs_reset: Vec<bool>,
}

impl<E> SyncVecEnv<E>
where
    E: Env,
    E::Obs: FlatObs,
{
    /// A batch from already built environments (at least one).
    pub fn new(envs: Vec<E>) -> Result<Self> {
        if envs.is_empty() {
            return Err(crate::Error::invalid("num_envs", "a vector env needs at least one env"));
        }
        let obs_dim = envs[0].observation_space().flat_dim();
        let n = envs.len();
        Ok(SyncVecEnv {
            envs,
            obs_dim,
            obs: vec![0.0; n * obs_dim],
            rewards: vec![0.0; n],
            terminated: vec![false; n],
            truncated: vec![false; n],
            needs_reset: vec![true; n],
        })
    }

    /// The environments.
    pub fn envs(&self) -> &[E] {
        &self.envs
    }
}

impl<E> VecEnv for SyncVecEnv<E>
where
    E: Env,
    E::Obs: FlatObs,
{
    type Action = E::Action;

    fn num_envs(&self) -> usize {
        self.envs.len()
    }
    fn obs_dim(&self) -> usize {
        self.obs_dim
    }
    fn single_observation_space(&self) -> Space {
        self.envs[0].observation_space()
    }
    fn single_action_space(&self) -> Space {
        self.envs[0].action_space()
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<()> {
        let d = self.obs_dim;
        for (i, env) in self.envs.iter_mut().enumerate() {
            // Gymnasium adds in Python integers; an env seed past u64::MAX cannot be passed to `Env::reset`.
            let seed = match seed.map(|s| s.checked_add(i as u64)) {
                Some(None) => {
                    return Err(crate::Error::invalid(
                        "seed",
                        format!("seed {} + env index {i} does not fit in 64 bits", seed.unwrap_or_default()),
                    ))
                }
                Some(s) => s,
                None => None,
            };
            let (o, _) = env.reset(seed)?;
            o.write_flat(&mut self.obs[i * d..(i + 1) * d]);
            self.rewards[i] = 0.0;
            self.terminated[i] = false;
            self.truncated[i] = false;
            self.needs_reset[i] = false;
        }
        Ok(())
    }

    fn step(&mut self, actions: &[E::Action]) -> Result<()> {
        if actions.len() != self.envs.len() {
            return Err(crate::Error::invalid(
                "actions",
                format!("got {} actions for {} envs", actions.len(), self.envs.len()),
            ));
        }
        let d = self.obs_dim;
        for (i, env) in self.envs.iter_mut().enumerate() {
            let out = &mut self.obs[i * d..(i + 1) * d];
            if self.needs_reset[i] {
                let (o, _) = env.reset(None)?;
                o.write_flat(out);
                self.rewards[i] = 0.0;
                self.terminated[i] = false;
                self.truncated[i] = false;
                self.needs_reset[i] = false;
            } else {
                let s = env.step(&actions[i])?;
                s.obs.write_flat(out);
                self.rewards[i] = s.reward;
                self.terminated[i] = s.terminated;
                self.truncated[i] = s.truncated;
                self.needs_reset[i] = s.done();
            }
        }
        Ok(())
    }

    fn observations(&self) -> &[f32] {
        &self.obs
    }
    fn rewards(&self) -> &[f64] {
        &self.rewards
    }
    fn terminated(&self) -> &[bool] {
        &self.terminated
    }
    fn truncated(&self) -> &[bool] {
        &self.truncated
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{Info, Step};
    use crate::spaces::Discrete;
    use crate::wrappers::{RecordEpisodeStatistics, TimeLimit};

    /// Counts up from the reset value; terminates when the count reaches 3.
    struct Counter {
        n: usize,
        resets: usize,
    }

    impl Env for Counter {
        type Obs = usize;
        type Action = usize;
        fn id(&self) -> &str {
            "Counter"
        }
        fn observation_space(&self) -> Space {
            Discrete::new(10).into()
        }
        fn action_space(&self) -> Space {
            Discrete::new(2).into()
        }
        fn reset(&mut self, seed: Option<u64>) -> Result<(usize, Info)> {
            self.resets += 1;
            self.n = seed.unwrap_or(0) as usize % 2;
            Ok((self.n, Info::new()))
        }
        fn step(&mut self, action: &usize) -> Result<Step<usize>> {
            self.n += 1;
            Ok(Step {
                obs: self.n,
                reward: *action as f64,
                terminated: self.n >= 3,
                truncated: false,
                info: Info::new(),
            })
        }
    }

    #[test]
    fn next_step_autoreset_matches_gymnasium() {
        let envs = vec![Counter { n: 0, resets: 0 }, Counter { n: 0, resets: 0 }];
        let mut v = SyncVecEnv::new(envs).unwrap();
        v.reset(Some(0)).unwrap(); // env 0 seeded 0 -> starts at 0, env 1 seeded 1 -> starts at 1
        assert_eq!(v.observations(), &[0.0, 1.0]);
        v.step(&[1, 1]).unwrap();
        assert_eq!(v.observations(), &[1.0, 2.0]);
        v.step(&[1, 1]).unwrap();
        assert_eq!(v.observations(), &[2.0, 3.0]);
        assert_eq!(v.terminated(), &[false, true]);
        // Next call: env 1 ignores its action, resets, and reports reward 0 with both flags false.
        v.step(&[1, 1]).unwrap();
        assert_eq!(v.observations(), &[3.0, 0.0]);
        assert_eq!(v.rewards(), &[1.0, 0.0]);
        assert_eq!(v.terminated(), &[true, false]);
        assert_eq!(v.envs()[1].resets, 2);
        assert!(v.step(&[1]).is_err(), "one action per env");
        // Env 1 of a batch seeded with u64::MAX would need seed 2^64: an error, not a wrapped seed.
        let e = v.reset(Some(u64::MAX)).unwrap_err().to_string();
        assert!(e.contains("does not fit in 64 bits"), "{e}");
    }

    #[test]
    fn time_limit_truncates_and_statistics_record_the_episode() {
        let mut env = RecordEpisodeStatistics::new(TimeLimit::new(Counter { n: 0, resets: 0 }, 2));
        env.reset(None).unwrap();
        let s1 = env.step(&1).unwrap();
        assert!(!s1.truncated && s1.info.is_empty());
        let s2 = env.step(&1).unwrap();
        assert!(s2.truncated && !s2.terminated, "cut by the limit at step 2");
        assert_eq!(s2.info.get_f64("episode_r"), Some(2.0));
        assert_eq!(s2.info.get_f64("episode_l"), Some(2.0));
        env.reset(None).unwrap();
        let mut last = env.step(&0).unwrap();
        while !last.done() {
            last = env.step(&0).unwrap();
        }
        assert_eq!(env.returns, vec![2.0, 0.0]);
    }
}
