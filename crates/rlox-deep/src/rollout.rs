//! What the on-policy trainers share: a resumable batch of envs, rollout collection into a
//! [`RolloutBuffer`], episode statistics, greedy evaluation, and the checkpoint sidecar.
//!
//! ## Why a batch of its own
//! [`ResumableVecEnv`] is a [`VecEnv`] with Gymnasium's `NEXT_STEP` autoreset (like
//! [`rlox_core::vec_env::SyncVecEnv`]) whose complete state fits in a few numbers per env, so that a
//! run killed between two rollouts resumes with *identical* numbers: episode `k` of env `i` is reset
//! with seed `derive_seed(derive_seed(seed, i), k)` (instead of continuing one RNG stream per env,
//! whose position the envs do not expose), the time limit is counted here (the registered limit of
//! the env id), and the physical state goes through [`SetState`]. The distribution of initial
//! states is the env's own; only the draws differ from a `SyncVecEnv` of `*_v1()` envs.

use crate::gae::RolloutBuffer;
use crate::policies::{Acted, ActionKind, BatchActor, PolicyAction};
use rlox_core::env::{Env, FlatObs, SetState};
use rlox_core::logger::Logger;
use rlox_core::seeding::{derive_seed, Rng};
use rlox_core::spaces::Space;
use rlox_core::vec_env::VecEnv;
use rlox_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

// ---------------------------------------------------------------------------------------------
// A batch of envs whose state can be saved and restored
// ---------------------------------------------------------------------------------------------

/// The state of a [`ResumableVecEnv`] (JSON in the checkpoint sidecar).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VecEnvState {
    /// The seed of the last `reset(Some(seed))`.
    pub seed: u64,
    /// Episodes started per env (the current one included).
    pub episodes: Vec<u64>,
    /// Steps of the current episode per env.
    pub elapsed: Vec<usize>,
    /// The next call resets the env (it finished at the last call).
    pub needs_reset: Vec<bool>,
    /// The physical state per env ([`SetState::state`]).
    pub states: Vec<Vec<f64>>,
    /// Current observations, flat.
    pub obs: Vec<f32>,
}

/// A batch of envs whose state can be saved and restored.
pub trait Resumable {
    /// The current state.
    fn save_state(&self) -> VecEnvState;
    /// Continue from `state` (saved by the same kind of batch with the same number of envs).
    fn load_state(&mut self, state: &VecEnvState) -> Result<()>;
    /// Reset now the envs whose episode ended at the last step (instead of at the next call, as
    /// `NEXT_STEP` autoreset would): the off-policy loop stores every step as a transition.
    fn reset_finished(&mut self) -> Result<()>;
}

/// N envs with `NEXT_STEP` autoreset, a time limit, per-episode seeding and saveable state (see the module docs).
pub struct ResumableVecEnv<E: Env> {
    envs: Vec<E>,
    max_episode_steps: Option<usize>,
    obs_dim: usize,
    seed: u64,
    episodes: Vec<u64>,
    elapsed: Vec<usize>,
    needs_reset: Vec<bool>,
    obs: Vec<f32>,
    rewards: Vec<f64>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
}

impl<E> ResumableVecEnv<E>
where
    E: Env + SetState,
    E::Obs: FlatObs,
{
    /// `num_envs` envs from `make` (bare envs, without a `TimeLimit`: the limit is counted here).
    pub fn new(num_envs: usize, make: impl Fn() -> E, max_episode_steps: Option<usize>) -> Result<Self> {
        if num_envs == 0 {
            return Err(Error::invalid("n_envs", "a vector env needs at least one env"));
        }
        let envs: Vec<E> = (0..num_envs).map(|_| make()).collect();
        let obs_dim = envs[0].observation_space().flat_dim();
        Ok(ResumableVecEnv {
            envs,
            max_episode_steps,
            obs_dim,
            seed: 0,
            episodes: vec![0; num_envs],
            elapsed: vec![0; num_envs],
            needs_reset: vec![true; num_envs],
            obs: vec![0.0; num_envs * obs_dim],
            rewards: vec![0.0; num_envs],
            terminated: vec![false; num_envs],
            truncated: vec![false; num_envs],
        })
    }

    fn episode_seed(&self, i: usize, k: u64) -> u64 {
        derive_seed(derive_seed(self.seed, i as u64), k)
    }

    fn reset_one(&mut self, i: usize) -> Result<()> {
        let seed = self.episode_seed(i, self.episodes[i]);
        self.episodes[i] += 1;
        let (o, _) = self.envs[i].reset(Some(seed))?;
        let d = self.obs_dim;
        o.write_flat(&mut self.obs[i * d..(i + 1) * d]);
        self.elapsed[i] = 0;
        self.rewards[i] = 0.0;
        self.terminated[i] = false;
        self.truncated[i] = false;
        self.needs_reset[i] = false;
        Ok(())
    }
}

impl<E> VecEnv for ResumableVecEnv<E>
where
    E: Env + SetState,
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
        if let Some(s) = seed {
            self.seed = s;
            self.episodes.iter_mut().for_each(|k| *k = 0);
        }
        for i in 0..self.envs.len() {
            self.reset_one(i)?;
        }
        Ok(())
    }

    #[allow(clippy::needless_range_loop)]
    fn step(&mut self, actions: &[E::Action]) -> Result<()> {
        if actions.len() != self.envs.len() {
            return Err(Error::invalid(
                "actions",
                format!("got {} actions for {} envs", actions.len(), self.envs.len()),
            ));
        }
        let d = self.obs_dim;
        for i in 0..self.envs.len() {
            if self.needs_reset[i] {
                self.reset_one(i)?;
                continue;
            }
            let s = self.envs[i].step(&actions[i])?;
            s.obs.write_flat(&mut self.obs[i * d..(i + 1) * d]);
            self.elapsed[i] += 1;
            let out_of_time = self.max_episode_steps.is_some_and(|m| self.elapsed[i] >= m);
            self.rewards[i] = s.reward;
            self.terminated[i] = s.terminated;
            self.truncated[i] = s.truncated || (out_of_time && !s.terminated);
            self.needs_reset[i] = self.terminated[i] || self.truncated[i];
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

impl<E> Resumable for ResumableVecEnv<E>
where
    E: Env + SetState,
    E::Obs: FlatObs,
{
    fn save_state(&self) -> VecEnvState {
        VecEnvState {
            seed: self.seed,
            episodes: self.episodes.clone(),
            elapsed: self.elapsed.clone(),
            needs_reset: self.needs_reset.clone(),
            states: self.envs.iter().map(|e| e.state()).collect(),
            obs: self.obs.clone(),
        }
    }

    fn reset_finished(&mut self) -> Result<()> {
        for i in 0..self.envs.len() {
            if self.needs_reset[i] {
                self.reset_one(i)?;
            }
        }
        Ok(())
    }

    fn load_state(&mut self, s: &VecEnvState) -> Result<()> {
        let n = self.envs.len();
        if s.episodes.len() != n || s.elapsed.len() != n || s.needs_reset.len() != n || s.states.len() != n {
            return Err(Error::invalid("checkpoint env_state", format!("it holds another number of envs than {n}")));
        }
        if s.obs.len() != self.obs.len() {
            return Err(Error::invalid("checkpoint env_state.obs", "wrong length for this env"));
        }
        self.seed = s.seed;
        for i in 0..n {
            // Replay the reset of the current episode (the env's RNG then stands where it stood), then the state.
            if s.episodes[i] > 0 {
                let seed = self.episode_seed(i, s.episodes[i] - 1);
                self.envs[i].reset(Some(seed))?;
                self.envs[i].set_state(&s.states[i])?;
            }
        }
        self.episodes = s.episodes.clone();
        self.elapsed = s.elapsed.clone();
        self.needs_reset = s.needs_reset.clone();
        self.obs = s.obs.clone();
        self.rewards.iter_mut().for_each(|r| *r = 0.0);
        self.terminated.iter_mut().for_each(|x| *x = false);
        self.truncated.iter_mut().for_each(|x| *x = false);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Rollout collection
// ---------------------------------------------------------------------------------------------

/// Episode bookkeeping across rollouts (part of a checkpoint).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpisodeStats {
    /// Return so far of each env's current episode.
    pub returns: Vec<f64>,
    /// Length so far of each env's current episode.
    pub lengths: Vec<u64>,
    /// The env finished at the last call: the next call is an autoreset, not a transition.
    pub prev_done: Vec<bool>,
    /// Returns of the last (up to) 100 episodes.
    pub recent: VecDeque<f64>,
    /// Episodes completed.
    pub episodes: u64,
    /// Transitions collected (autoreset calls not counted).
    pub env_steps: u64,
}

impl EpisodeStats {
    /// For `n` freshly reset envs.
    pub fn new(n: usize) -> Self {
        EpisodeStats { returns: vec![0.0; n], lengths: vec![0; n], prev_done: vec![false; n], ..Default::default() }
    }

    /// Mean of the last 100 episode returns (NaN before the first episode ends).
    pub fn mean_return(&self) -> f64 {
        if self.recent.is_empty() {
            f64::NAN
        } else {
            self.recent.iter().sum::<f64>() / self.recent.len() as f64
        }
    }

    /// Env `i`'s episode ended: record its return and start counting the next one.
    pub fn finish(&mut self, i: usize) {
        if self.recent.len() == 100 {
            self.recent.pop_front();
        }
        self.recent.push_back(self.returns[i]);
        self.episodes += 1;
        self.returns[i] = 0.0;
        self.lengths[i] = 0;
    }
}

/// Fill `buf` with `buf.n_steps` calls of `envs` under `policy`, sampling from `rng`; returns `V` of
/// the observations after the last call (the bootstrap values). One forward per call for the whole
/// env batch; the loop allocates nothing after its first call.
pub fn collect_rollout<V>(
    policy: &mut dyn BatchActor,
    kind: &ActionKind,
    envs: &mut V,
    buf: &mut RolloutBuffer,
    stats: &mut EpisodeStats,
    rng: &mut Rng,
) -> Result<Vec<f32>>
where
    V: VecEnv,
    V::Action: PolicyAction,
{
    let (n, d, ad) = (buf.n_envs, buf.obs_dim, buf.action_dim);
    let mut actions: Vec<V::Action> = Vec::with_capacity(n);
    let mut acted = Acted::default();
    for t in 0..buf.n_steps {
        let base = t * n;
        buf.obs[base * d..(base + n) * d].copy_from_slice(envs.observations());
        policy.act_into(&buf.obs[base * d..(base + n) * d], rng, false, &mut acted);
        buf.actions[base * ad..(base + n) * ad].copy_from_slice(&acted.actions);
        buf.values[base..base + n].copy_from_slice(&acted.values);
        buf.log_probs[base..base + n].copy_from_slice(&acted.log_probs);
        actions.clear();
        actions.extend(acted.actions.chunks_exact(ad).map(|a| V::Action::from_policy(kind, a)));
        envs.step(&actions)?;
        let (r, term, trunc) = (envs.rewards(), envs.terminated(), envs.truncated());
        for i in 0..n {
            let k = base + i;
            let valid = !stats.prev_done[i];
            buf.valid[k] = valid;
            if !valid {
                buf.rewards[k] = 0.0;
                buf.terminated[k] = false;
                buf.truncated[k] = false;
                stats.prev_done[i] = false;
                continue;
            }
            buf.rewards[k] = r[i] as f32;
            buf.terminated[k] = term[i];
            buf.truncated[k] = trunc[i];
            stats.env_steps += 1;
            stats.returns[i] += r[i];
            stats.lengths[i] += 1;
            if term[i] || trunc[i] {
                stats.finish(i);
                stats.prev_done[i] = true;
            }
        }
    }
    policy.act_into(envs.observations(), rng, true, &mut acted);
    Ok(acted.values)
}

/// One update's complete episodes, flattened (REINFORCE's experience).
#[derive(Debug, Clone, Default)]
pub struct Episodes {
    /// Observations, `n * obs_dim`.
    pub obs: Vec<f32>,
    /// Raw actions, `n * action_dim`.
    pub actions: Vec<f32>,
    /// Discounted returns-to-go.
    pub returns: Vec<f32>,
    /// Undiscounted episode returns (for logging).
    pub episode_returns: Vec<f64>,
}

/// Discounted returns-to-go of one episode's rewards.
pub fn returns_to_go(rewards: &[f64], gamma: f64) -> Vec<f64> {
    let mut out = vec![0.0; rewards.len()];
    let mut g = 0.0;
    for t in (0..rewards.len()).rev() {
        g = rewards[t] + gamma * g;
        out[t] = g;
    }
    out
}

/// Play one episode per env of `envs` (reset together with `seed`) under `policy`, sampling from
/// `rng`; an env whose episode ended plays on (autoreset) until every env has finished, and those
/// steps are dropped. The episodes' transitions and returns are added to `stats`.
#[allow(clippy::too_many_arguments)]
pub fn collect_episodes<V>(
    policy: &mut dyn BatchActor,
    kind: &ActionKind,
    envs: &mut V,
    seed: u64,
    gamma: f64,
    stats: &mut EpisodeStats,
    rng: &mut Rng,
) -> Result<Episodes>
where
    V: VecEnv,
    V::Action: PolicyAction,
{
    let (n, d, ad) = (envs.num_envs(), envs.obs_dim(), kind.action_dim());
    envs.reset(Some(seed))?;
    let mut obs: Vec<Vec<f32>> = vec![Vec::new(); n];
    let mut acts: Vec<Vec<f32>> = vec![Vec::new(); n];
    let mut rewards: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut active = vec![true; n];
    let mut steps = 0u64;
    let mut acted = Acted::default();
    let mut actions: Vec<V::Action> = Vec::with_capacity(n);
    while active.iter().any(|&a| a) {
        steps += 1;
        if steps > 1_000_000 {
            return Err(Error::invalid("episodes", "an episode ran 1000000 steps; give the env a time limit"));
        }
        policy.act_into(envs.observations(), rng, false, &mut acted);
        for i in (0..n).filter(|&i| active[i]) {
            obs[i].extend_from_slice(&envs.observations()[i * d..(i + 1) * d]);
            acts[i].extend_from_slice(&acted.actions[i * ad..(i + 1) * ad]);
        }
        actions.clear();
        actions.extend(acted.actions.chunks_exact(ad).map(|a| V::Action::from_policy(kind, a)));
        envs.step(&actions)?;
        for i in 0..n {
            if !active[i] {
                continue;
            }
            rewards[i].push(envs.rewards()[i]);
            if envs.terminated()[i] || envs.truncated()[i] {
                active[i] = false;
            }
        }
    }
    let mut e = Episodes::default();
    for i in 0..n {
        e.obs.extend_from_slice(&obs[i]);
        e.actions.extend_from_slice(&acts[i]);
        e.returns.extend(returns_to_go(&rewards[i], gamma).into_iter().map(|g| g as f32));
        let ret: f64 = rewards[i].iter().sum();
        e.episode_returns.push(ret);
        stats.env_steps += rewards[i].len() as u64;
        if stats.recent.len() == 100 {
            stats.recent.pop_front();
        }
        stats.recent.push_back(ret);
        stats.episodes += 1;
    }
    Ok(e)
}

/// Deterministic (argmax / mean action) evaluation: each env of `envs` plays one episode after
/// `reset(Some(seed))`; returns (mean, std) of the returns. Errors if an episode runs `max_steps` calls.
pub fn evaluate<V>(
    policy: &mut dyn BatchActor,
    kind: &ActionKind,
    envs: &mut V,
    seed: u64,
    max_steps: u64,
) -> Result<(f64, f64)>
where
    V: VecEnv,
    V::Action: PolicyAction,
{
    let mut dummy = rlox_core::seeding::rng_from_seed(0);
    let mut acted = Acted::default();
    evaluate_with(envs, seed, max_steps, |obs| {
        policy.act_into(obs, &mut dummy, true, &mut acted);
        acted.actions.chunks_exact(kind.action_dim()).map(|a| V::Action::from_policy(kind, a)).collect()
    })
}

/// Each env of `envs` plays one episode after `reset(Some(seed))`, acting with `act` (the env actions
/// for a batch of observations); returns (mean, std) of the returns. Errors if an episode runs
/// `max_steps` calls.
pub fn evaluate_with<V: VecEnv>(
    envs: &mut V,
    seed: u64,
    max_steps: u64,
    mut act: impl FnMut(&[f32]) -> Vec<V::Action>,
) -> Result<(f64, f64)> {
    let n = envs.num_envs();
    envs.reset(Some(seed))?;
    let mut returns = vec![0.0; n];
    let mut done = vec![false; n];
    let mut steps = 0u64;
    while !done.iter().all(|&x| x) {
        if steps == max_steps {
            return Err(Error::invalid(
                "evaluation",
                format!("an episode ran {max_steps} steps without ending; give the env a time limit"),
            ));
        }
        steps += 1;
        let actions = act(envs.observations());
        envs.step(&actions)?;
        for i in 0..n {
            if !done[i] {
                returns[i] += envs.rewards()[i];
                done[i] = envs.terminated()[i] || envs.truncated()[i];
            }
        }
    }
    Ok(mean_std(&returns))
}

/// Mean and population standard deviation.
pub fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len().max(1) as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Log the episode statistics of a rollout (`rollout/ep_rew_mean`).
pub fn log_rollout(logger: &mut dyn Logger, stats: &EpisodeStats) -> Result<()> {
    let mean = stats.mean_return();
    if mean.is_finite() {
        logger.log(stats.env_steps, &[("rollout/ep_rew_mean", mean), ("time/episodes", stats.episodes as f64)])?;
    }
    Ok(())
}

/// Check `algo`'s action kind against the env's space (`discrete_only`: only Discrete(n)).
pub fn check_action_space(space: &Space, algo: &str, env_id: &str, discrete_only: bool) -> Result<ActionKind> {
    let kind = ActionKind::from_space(space, algo, env_id)?;
    if discrete_only && !kind.is_discrete() {
        return Err(Error::invalid("env", format!("{algo} needs a discrete action space; {env_id} has {space}")));
    }
    Ok(kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rlox_core::env::{Info, Step};
    use rlox_core::spaces::{BoxSpace, Discrete};

    /// A 1-d random walk: reset draws the start from the seed; action 1 moves +1, 0 moves -1;
    /// terminates at |x| >= 3.
    #[derive(Default)]
    struct Walk {
        x: f64,
    }
    impl Env for Walk {
        type Obs = [f32; 1];
        type Action = usize;
        fn id(&self) -> &str {
            "Walk"
        }
        fn observation_space(&self) -> Space {
            BoxSpace::uniform(-3.0, 3.0, 1).into()
        }
        fn action_space(&self) -> Space {
            Discrete::new(2).into()
        }
        fn reset(&mut self, seed: Option<u64>) -> Result<([f32; 1], Info)> {
            self.x = (seed.unwrap_or(0) % 3) as f64 - 1.0;
            Ok(([self.x as f32], Info::new()))
        }
        fn step(&mut self, a: &usize) -> Result<Step<[f32; 1]>> {
            self.x += if *a == 1 { 1.0 } else { -1.0 };
            Ok(Step {
                obs: [self.x as f32],
                reward: 1.0,
                terminated: self.x.abs() >= 3.0,
                truncated: false,
                info: Info::new(),
            })
        }
    }
    impl SetState for Walk {
        fn set_state(&mut self, s: &[f64]) -> Result<()> {
            self.x = s[0];
            Ok(())
        }
        fn state(&self) -> Vec<f64> {
            vec![self.x]
        }
    }

    #[test]
    fn autoreset_time_limit_and_exact_restore() {
        let mut a = ResumableVecEnv::new(2, Walk::default, Some(4)).unwrap();
        a.reset(Some(7)).unwrap();
        let script: Vec<[usize; 2]> = (0..40).map(|t| [t % 3 % 2, (t / 2) % 2]).collect();
        let mut trace_a = Vec::new();
        let mut saved = None;
        for (t, acts) in script.iter().enumerate() {
            if t == 13 {
                saved = Some(a.save_state());
            }
            a.step(acts).unwrap();
            if t >= 13 {
                trace_a.push((a.observations().to_vec(), a.terminated().to_vec(), a.truncated().to_vec()));
            }
        }
        // A truncation happened (the walk oscillates) and an autoreset call has reward 0.
        assert!(trace_a.iter().any(|(_, _, tr)| tr.iter().any(|&x| x)));
        let mut b = ResumableVecEnv::new(2, Walk::default, Some(4)).unwrap();
        b.load_state(&saved.unwrap()).unwrap();
        let mut trace_b = Vec::new();
        for acts in &script[13..] {
            b.step(acts).unwrap();
            trace_b.push((b.observations().to_vec(), b.terminated().to_vec(), b.truncated().to_vec()));
        }
        assert_eq!(trace_a, trace_b);
    }

    #[test]
    fn continuous_only_check_names_algo_and_env() {
        let e = check_action_space(&BoxSpace::uniform(-2.0, 2.0, 1).into(), "dqn-like", "Pendulum-v1", true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("dqn-like") && e.contains("Pendulum-v1"), "{e}");
    }
}
