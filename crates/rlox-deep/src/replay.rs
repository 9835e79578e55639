//! Experience replay: a ring buffer of transitions with uniform or prioritised sampling, for every
//! off-policy algorithm (DQN's discrete actions and DDPG/TD3/SAC's continuous ones alike).
//!
//! Transitions are stored structure-of-arrays in flat `f32` vectors (observations and actions
//! row-major), so a sampled batch is gathered into contiguous arrays ready to become tensors. An action
//! is stored as a row of `act_dim` scalars: a discrete action is its index (`act_dim = 1`, exact in
//! `f32` for any realistic action count), a continuous one its `[-1, 1]^d` vector before scaling to the
//! env's bounds (see [`crate::policies::ActionKind`]).
//!
//! * Uniform sampling draws `batch_size` indices with replacement, like SB3's `ReplayBuffer`.
//! * Prioritised sampling (Schaul et al. 2016, proportional variant) draws index `i` with
//!   probability `p_i^alpha / sum_k p_k^alpha` through a sum tree, returns importance weights
//!   `w_i = (N P(i))^-beta / max_k w_k`, and takes new priorities `|td_error| + eps` with
//!   [`ReplayBuffer::update_priorities`]. New transitions enter with the largest priority seen so far.
//!
//! `terminated` is stored as the "done" flag: a time-limit truncation is not a terminal state and
//! bootstraps (SB3's `handle_timeout_termination=True`); store the true final observation of a
//! truncated episode as `next_obs`.

use crate::checkpoint::{blob, Blobs};
use rand::Rng as _;
use rlox_core::seeding::Rng;
use rlox_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Prioritised-replay hyper-parameters (Schaul et al.'s proportional variant).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrioritizedConfig {
    /// Priority exponent `alpha` (0: uniform). Schaul et al.: 0.6.
    pub alpha: f64,
    /// Importance-sampling exponent at the start of training; annealed linearly to 1 by the end. Schaul et al.: 0.4.
    pub beta: f64,
    /// Added to `|td_error|` so that no transition gets probability 0.
    pub eps: f64,
}

impl Default for PrioritizedConfig {
    fn default() -> Self {
        PrioritizedConfig { alpha: 0.6, beta: 0.4, eps: 1e-6 }
    }
}

/// A sampled mini-batch.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Observations, `[batch, obs_dim]` row-major.
    pub obs: Vec<f32>,
    /// Actions taken, `[batch, act_dim]` row-major (a discrete action is its index).
    pub actions: Vec<f32>,
    /// Rewards.
    pub rewards: Vec<f32>,
    /// Next observations, `[batch, obs_dim]` row-major.
    pub next_obs: Vec<f32>,
    /// 1.0 where the transition ended the MDP (`terminated`), else 0.0.
    pub dones: Vec<f32>,
    /// Buffer indices of the samples (for [`ReplayBuffer::update_priorities`]).
    pub indices: Vec<usize>,
    /// Importance-sampling weights (all 1 for uniform sampling).
    pub weights: Vec<f32>,
}

impl Batch {
    /// Number of transitions.
    pub fn len(&self) -> usize {
        self.rewards.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.rewards.is_empty()
    }
}

/// Where a replay buffer stands (in the trainer state; its arrays go to the checkpoint's state file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayMeta {
    /// Stored transitions.
    pub len: usize,
    /// The next slot to write.
    pub pos: usize,
    /// The largest priority seen (prioritised replay).
    pub max_priority: f64,
}

/// A sum tree over `capacity` leaves (a complete binary tree in an array; leaf `i` at `size + i`).
#[derive(Debug, Clone)]
struct SumTree {
    size: usize,
    nodes: Vec<f64>,
}

impl SumTree {
    fn new(capacity: usize) -> Self {
        let size = capacity.next_power_of_two();
        SumTree { size, nodes: vec![0.0; 2 * size] }
    }

    fn total(&self) -> f64 {
        self.nodes[1]
    }

    fn get(&self, i: usize) -> f64 {
        self.nodes[self.size + i]
    }

    fn set(&mut self, i: usize, value: f64) {
        let mut k = self.size + i;
        self.nodes[k] = value;
        while k > 1 {
            k /= 2;
            self.nodes[k] = self.nodes[2 * k] + self.nodes[2 * k + 1];
        }
    }

    /// The leaf where the prefix sum reaches `mass` (`0 <= mass < total`).
    fn find(&self, mut mass: f64) -> usize {
        let mut k = 1;
        while k < self.size {
            let left = self.nodes[2 * k];
            if mass < left || self.nodes[2 * k + 1] <= 0.0 {
                k *= 2;
            } else {
                mass -= left;
                k = 2 * k + 1;
            }
        }
        k - self.size
    }
}

/// A fixed-capacity ring buffer of transitions.
#[derive(Debug, Clone)]
pub struct ReplayBuffer {
    capacity: usize,
    obs_dim: usize,
    act_dim: usize,
    obs: Vec<f32>,
    next_obs: Vec<f32>,
    actions: Vec<f32>,
    rewards: Vec<f32>,
    dones: Vec<f32>,
    pos: usize,
    len: usize,
    prioritized: Option<(PrioritizedConfig, SumTree, f64)>,
}

impl ReplayBuffer {
    /// An empty buffer for `capacity` transitions of `obs_dim`-dimensional observations and
    /// `act_dim`-wide actions (uniform sampling).
    pub fn new(capacity: usize, obs_dim: usize, act_dim: usize) -> Result<Self> {
        if capacity == 0 || obs_dim == 0 || act_dim == 0 {
            return Err(Error::invalid(
                "replay buffer",
                format!("capacity ({capacity}), obs_dim ({obs_dim}) and act_dim ({act_dim}) must be > 0"),
            ));
        }
        Ok(ReplayBuffer {
            capacity,
            obs_dim,
            act_dim,
            obs: vec![0.0; capacity * obs_dim],
            next_obs: vec![0.0; capacity * obs_dim],
            actions: vec![0.0; capacity * act_dim],
            rewards: vec![0.0; capacity],
            dones: vec![0.0; capacity],
            pos: 0,
            len: 0,
            prioritized: None,
        })
    }

    /// An empty buffer with prioritised sampling.
    pub fn prioritized(capacity: usize, obs_dim: usize, act_dim: usize, config: PrioritizedConfig) -> Result<Self> {
        if !(config.alpha >= 0.0) || !(config.beta >= 0.0) || !(config.eps > 0.0) {
            return Err(Error::invalid(
                "prioritized replay",
                format!("{config:?}: need alpha >= 0, beta >= 0, eps > 0"),
            ));
        }
        let mut buffer = ReplayBuffer::new(capacity, obs_dim, act_dim)?;
        buffer.prioritized = Some((config, SumTree::new(capacity), 1.0));
        Ok(buffer)
    }

    /// Capacity in transitions.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Stored transitions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is stored yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Observation width.
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    /// Store a transition, overwriting the oldest once full.
    pub fn push(&mut self, obs: &[f32], action: &[f32], reward: f32, next_obs: &[f32], terminated: bool) {
        let (d, a) = (self.obs_dim, self.act_dim);
        assert!(
            obs.len() == d && next_obs.len() == d && action.len() == a,
            "transition sizes {} / {} / {} != obs_dim {d} / act_dim {a}",
            obs.len(),
            next_obs.len(),
            action.len()
        );
        let i = self.pos;
        self.obs[i * d..(i + 1) * d].copy_from_slice(obs);
        self.next_obs[i * d..(i + 1) * d].copy_from_slice(next_obs);
        self.actions[i * a..(i + 1) * a].copy_from_slice(action);
        self.rewards[i] = reward;
        self.dones[i] = if terminated { 1.0 } else { 0.0 };
        if let Some((config, tree, max_priority)) = &mut self.prioritized {
            tree.set(i, max_priority.powf(config.alpha));
        }
        self.pos = (self.pos + 1) % self.capacity;
        self.len = (self.len + 1).min(self.capacity);
    }

    /// Sample `batch_size` transitions with replacement. `progress` (fraction of training done) anneals
    /// the prioritised-replay `beta` to 1; it is ignored for uniform sampling.
    pub fn sample(&self, batch_size: usize, rng: &mut Rng, progress: f64) -> Batch {
        let mut batch = Batch::default();
        self.sample_into(batch_size, rng, progress, &mut batch);
        batch
    }

    /// [`ReplayBuffer::sample`] into an existing batch (reusing its allocations).
    pub fn sample_into(&self, batch_size: usize, rng: &mut Rng, progress: f64, batch: &mut Batch) {
        assert!(self.len > 0, "sampling from an empty replay buffer");
        batch.indices.clear();
        batch.weights.clear();
        match &self.prioritized {
            None => {
                batch.indices.extend((0..batch_size).map(|_| rng.random_range(0..self.len)));
                batch.weights.resize(batch_size, 1.0);
            }
            Some((config, tree, _)) => {
                // Stratified: one draw in each of batch_size equal slices of the total mass.
                let total = tree.total();
                let segment = total / batch_size as f64;
                for k in 0..batch_size {
                    let mass = (k as f64 + rng.random::<f64>()) * segment;
                    let i = tree.find(mass.min(total * (1.0 - 1e-12))).min(self.len - 1);
                    batch.indices.push(i);
                }
                let beta = config.beta + (1.0 - config.beta) * progress.clamp(0.0, 1.0);
                let n = self.len as f64;
                let w: Vec<f64> = batch.indices.iter().map(|&i| (n * tree.get(i) / total).powf(-beta)).collect();
                let max_w = w.iter().cloned().fold(f64::MIN_POSITIVE, f64::max);
                batch.weights.extend(w.iter().map(|x| (x / max_w) as f32));
            }
        }
        let (d, a) = (self.obs_dim, self.act_dim);
        batch.obs.clear();
        batch.next_obs.clear();
        batch.actions.clear();
        batch.rewards.clear();
        batch.dones.clear();
        for &i in &batch.indices {
            batch.obs.extend_from_slice(&self.obs[i * d..(i + 1) * d]);
            batch.next_obs.extend_from_slice(&self.next_obs[i * d..(i + 1) * d]);
            batch.actions.extend_from_slice(&self.actions[i * a..(i + 1) * a]);
            batch.rewards.push(self.rewards[i]);
            batch.dones.push(self.dones[i]);
        }
    }

    /// Set the priorities of sampled transitions from their TD errors (no-op for uniform sampling).
    pub fn update_priorities(&mut self, indices: &[usize], td_errors: &[f32]) {
        if let Some((config, tree, max_priority)) = &mut self.prioritized {
            for (&i, &e) in indices.iter().zip(td_errors) {
                let p = (e.abs() as f64 + config.eps).min(1e6);
                let p = if p.is_finite() { p } else { *max_priority };
                *max_priority = max_priority.max(p);
                tree.set(i, p.powf(config.alpha));
            }
        }
    }
}

impl ReplayBuffer {
    /// Action width.
    pub fn act_dim(&self) -> usize {
        self.act_dim
    }

    /// Put the stored transitions (and priorities) into `blobs`; returns where the buffer stands.
    pub fn save(&self, blobs: &mut Blobs) -> ReplayMeta {
        let (n, d, a) = (self.len, self.obs_dim, self.act_dim);
        if n > 0 {
            blobs.insert("replay.obs".into(), (vec![n, d], self.obs[..n * d].to_vec()));
            blobs.insert("replay.next_obs".into(), (vec![n, d], self.next_obs[..n * d].to_vec()));
            blobs.insert("replay.actions".into(), (vec![n, a], self.actions[..n * a].to_vec()));
            blobs.insert("replay.rewards".into(), (vec![n], self.rewards[..n].to_vec()));
            blobs.insert("replay.dones".into(), (vec![n], self.dones[..n].to_vec()));
        }
        let mut max_priority = 1.0;
        if let Some((_, tree, max_p)) = &self.prioritized {
            // Priorities as f64 split into two f32 halves would be exact; p^alpha in f32 is not, so keep
            // the leaves' bits: high and low 32 bits of each f64.
            let bits: Vec<f32> = (0..n)
                .flat_map(|i| {
                    let b = tree.get(i).to_bits();
                    [f32::from_bits((b >> 32) as u32), f32::from_bits(b as u32)]
                })
                .collect();
            if n > 0 {
                blobs.insert("replay.priority_bits".into(), (vec![n, 2], bits));
            }
            max_priority = *max_p;
        }
        ReplayMeta { len: n, pos: self.pos, max_priority }
    }

    /// Restore what [`ReplayBuffer::save`] wrote (checkpoint `dir` named in errors).
    pub fn load(&mut self, blobs: &Blobs, meta: &ReplayMeta, dir: &Path) -> Result<()> {
        let (n, pos) = (meta.len, meta.pos);
        if n > self.capacity || pos >= self.capacity {
            return Err(Error::checkpoint(
                dir,
                format!("{n} replay transitions (position {pos}) do not fit a buffer of {}", self.capacity),
            ));
        }
        let (d, a) = (self.obs_dim, self.act_dim);
        if n > 0 {
            self.obs[..n * d].copy_from_slice(blob(blobs, "replay.obs", n * d, dir)?);
            self.next_obs[..n * d].copy_from_slice(blob(blobs, "replay.next_obs", n * d, dir)?);
            self.actions[..n * a].copy_from_slice(blob(blobs, "replay.actions", n * a, dir)?);
            self.rewards[..n].copy_from_slice(blob(blobs, "replay.rewards", n, dir)?);
            self.dones[..n].copy_from_slice(blob(blobs, "replay.dones", n, dir)?);
        }
        if let Some((_, tree, max_p)) = &mut self.prioritized {
            if n > 0 {
                let bits = blob(blobs, "replay.priority_bits", 2 * n, dir)?;
                for i in 0..n {
                    let b = ((bits[2 * i].to_bits() as u64) << 32) | bits[2 * i + 1].to_bits() as u64;
                    tree.set(i, f64::from_bits(b));
                }
            }
            *max_p = meta.max_priority;
        }
        self.len = n;
        self.pos = pos;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rlox_core::seeding::rng_from_seed;

    fn fill(buf: &mut ReplayBuffer, n: usize) {
        for k in 0..n {
            let o = [k as f32, -(k as f32)];
            let o2 = [k as f32 + 0.5, 0.0];
            buf.push(&o, &[(k % 3) as f32], k as f32 * 10.0, &o2, k.is_multiple_of(7));
        }
    }

    #[test]
    fn stores_and_samples_consistent_rows() {
        let mut buf = ReplayBuffer::new(100, 2, 1).unwrap();
        fill(&mut buf, 40);
        assert_eq!(buf.len(), 40);
        let b = buf.sample(64, &mut rng_from_seed(0), 0.0);
        assert_eq!((b.len(), b.obs.len(), b.next_obs.len()), (64, 128, 128));
        for j in 0..64 {
            let k = b.indices[j];
            assert!(k < 40);
            assert_eq!(b.obs[2 * j], k as f32);
            assert_eq!(b.obs[2 * j + 1], -(k as f32));
            assert_eq!(b.next_obs[2 * j], k as f32 + 0.5);
            assert_eq!(b.actions[j], (k % 3) as f32);
            assert_eq!(b.rewards[j], k as f32 * 10.0);
            assert_eq!(b.dones[j], if k.is_multiple_of(7) { 1.0 } else { 0.0 });
            assert_eq!(b.weights[j], 1.0);
        }
        // Seeded: same seed, same batch.
        assert_eq!(
            buf.sample(8, &mut rng_from_seed(3), 0.0).indices,
            buf.sample(8, &mut rng_from_seed(3), 0.0).indices
        );
    }

    #[test]
    fn wraps_around_overwriting_the_oldest() {
        let mut buf = ReplayBuffer::new(10, 2, 1).unwrap();
        fill(&mut buf, 25);
        assert_eq!(buf.len(), 10);
        // Slots hold transitions 20..25 (slots 0..5) and 15..20 (slots 5..10).
        let b = buf.sample(500, &mut rng_from_seed(1), 0.0);
        let mut seen = std::collections::BTreeSet::new();
        for j in 0..b.len() {
            let k = b.obs[2 * j] as usize;
            assert!((15..25).contains(&k), "{k}");
            assert_eq!(b.indices[j], k % 10);
            seen.insert(k);
        }
        assert_eq!(seen.len(), 10, "all slots are sampled");
    }

    #[test]
    fn uniform_sampling_is_roughly_uniform() {
        let mut buf = ReplayBuffer::new(4, 1, 1).unwrap();
        for k in 0..4 {
            buf.push(&[k as f32], &[0.0], 0.0, &[0.0], false);
        }
        let mut counts = [0usize; 4];
        let mut rng = rng_from_seed(9);
        for _ in 0..100 {
            for i in buf.sample(100, &mut rng, 0.0).indices {
                counts[i] += 1;
            }
        }
        for c in counts {
            assert!((2200..2800).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn prioritized_follows_priorities_and_weights() {
        let mut buf =
            ReplayBuffer::prioritized(4, 1, 1, PrioritizedConfig { alpha: 1.0, beta: 1.0, eps: 1e-9 }).unwrap();
        for k in 0..4 {
            buf.push(&[k as f32], &[0.0], 0.0, &[0.0], false);
        }
        buf.update_priorities(&[0, 1, 2, 3], &[1.0, 2.0, 3.0, 4.0]);
        let mut counts = [0usize; 4];
        let mut rng = rng_from_seed(5);
        let mut last = Batch::default();
        for _ in 0..200 {
            last = buf.sample(50, &mut rng, 0.0);
            for &i in &last.indices {
                counts[i] += 1;
            }
        }
        // Expected shares 0.1, 0.2, 0.3, 0.4 of 10000.
        for (i, c) in counts.iter().enumerate() {
            let want = 1000.0 * (i + 1) as f64;
            assert!((*c as f64 - want).abs() < 0.1 * want, "{counts:?}");
        }
        // beta = 1: w_i proportional to 1/p_i, normalised by the largest (the rarest sampled).
        for (j, &i) in last.indices.iter().enumerate() {
            let max_w = last.indices.iter().map(|&k| 1.0 / (k + 1) as f32).fold(0.0, f32::max);
            assert!((last.weights[j] - (1.0 / (i + 1) as f32) / max_w).abs() < 1e-5);
        }
        // A new transition enters with the largest priority seen (4).
        buf.push(&[9.0], &[0.0], 0.0, &[0.0], false);
        assert!((buf.prioritized.as_ref().unwrap().1.get(0) - 4.0).abs() < 1e-6);
    }

    #[test]
    fn bad_sizes_are_errors() {
        assert!(ReplayBuffer::new(0, 3, 1).is_err());
        assert!(ReplayBuffer::prioritized(4, 1, 1, PrioritizedConfig { eps: 0.0, ..Default::default() }).is_err());
    }

    #[test]
    fn save_and_load_round_trip_with_priorities() {
        let mut buf = ReplayBuffer::prioritized(8, 2, 1, PrioritizedConfig::default()).unwrap();
        fill(&mut buf, 11);
        buf.update_priorities(&[1, 4, 6], &[0.3, 2.5, 0.001]);
        let mut blobs = Blobs::new();
        let meta = buf.save(&mut blobs);
        let mut back = ReplayBuffer::prioritized(8, 2, 1, PrioritizedConfig::default()).unwrap();
        back.load(&blobs, &meta, Path::new("ckpt")).unwrap();
        let (a, b) = (buf.sample(32, &mut rng_from_seed(4), 0.5), back.sample(32, &mut rng_from_seed(4), 0.5));
        assert_eq!((a.indices, a.weights, a.obs), (b.indices, b.weights, b.obs));
        let mut small = ReplayBuffer::new(4, 2, 1).unwrap();
        assert!(small.load(&blobs, &meta, Path::new("ckpt")).unwrap_err().to_string().contains("do not fit"));
    }
}
