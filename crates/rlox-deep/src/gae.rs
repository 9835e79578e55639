//! The on-policy rollout buffer (N envs x T steps) and generalised advantage estimation
//! (Schulman et al. 2016).
//!
//! ## GAE
//! For one env's sequence, with `delta_t = r_t + gamma * (1 - terminated_t) * V(s'_t) - V(s_t)`:
//! `A_t = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}` and `returns_t = A_t + V(s_t)`.
//! `s'_t` is the observation after step `t`. When the episode ends at `t` by **termination** the
//! next value is 0; by **truncation** (a time limit) the value of the *final* observation is used
//! (bootstrapping, as SB3 does for `TimeLimit.truncated`), and in both cases the recursion stops
//! (`done_t`). `lambda = 1` gives n-step returns (A2C), `lambda = 0` the one-step TD error.
//!
//! ## Gymnasium's NEXT_STEP autoreset
//! With [`rlox_core::vec_env`]'s autoreset, the call after env `i` finished is a reset: its action
//! is ignored, and it is not a transition. The buffer marks such slots invalid (`valid = false`):
//! they get no advantage and never enter a loss. Conveniently, the observation stored in that slot
//! is the finished episode's final observation, so `V(s'_t)` for a truncated step `t` is simply
//! the value already computed for slot `t + 1` (or the bootstrap value after the last step).

/// Transitions of `n_envs` envs over `n_steps` steps, stored step-major (`slot = t * n_envs + i`).
#[derive(Debug, Clone, Default)]
pub struct RolloutBuffer {
    /// Envs per step.
    pub n_envs: usize,
    /// Steps per rollout.
    pub n_steps: usize,
    /// Scalars per observation.
    pub obs_dim: usize,
    /// Scalars per stored action.
    pub action_dim: usize,
    /// Observations, `slots * obs_dim`.
    pub obs: Vec<f32>,
    /// Raw actions, `slots * action_dim`.
    pub actions: Vec<f32>,
    /// Rewards.
    pub rewards: Vec<f32>,
    /// `V(s)` when acting.
    pub values: Vec<f32>,
    /// `log pi(a | s)` when acting.
    pub log_probs: Vec<f32>,
    /// The step ended the episode by termination.
    pub terminated: Vec<bool>,
    /// The step ended the episode by truncation (time limit).
    pub truncated: Vec<bool>,
    /// The slot holds a transition (false: an autoreset call).
    pub valid: Vec<bool>,
    /// GAE advantages (0 on invalid slots).
    pub advantages: Vec<f32>,
    /// `advantages + values`.
    pub returns: Vec<f32>,
}

impl RolloutBuffer {
    /// An empty buffer of `n_steps * n_envs` slots.
    pub fn new(n_envs: usize, n_steps: usize, obs_dim: usize, action_dim: usize) -> Self {
        let slots = n_envs * n_steps;
        RolloutBuffer {
            n_envs,
            n_steps,
            obs_dim,
            action_dim,
            obs: vec![0.0; slots * obs_dim],
            actions: vec![0.0; slots * action_dim],
            rewards: vec![0.0; slots],
            values: vec![0.0; slots],
            log_probs: vec![0.0; slots],
            terminated: vec![false; slots],
            truncated: vec![false; slots],
            valid: vec![false; slots],
            advantages: vec![0.0; slots],
            returns: vec![0.0; slots],
        }
    }

    /// Number of slots.
    pub fn slots(&self) -> usize {
        self.n_envs * self.n_steps
    }

    /// Indices of the valid slots, in order.
    pub fn valid_indices(&self) -> Vec<usize> {
        (0..self.slots()).filter(|&k| self.valid[k]).collect()
    }

    /// Fill `advantages` and `returns`; `last_values[i]` is `V` of env `i`'s observation after the last step.
    #[allow(clippy::needless_range_loop)] // slot arithmetic reads clearer with indices
    pub fn compute_gae(&mut self, last_values: &[f32], gamma: f32, lambda: f32) {
        let (n, t_max) = (self.n_envs, self.n_steps);
        assert_eq!(last_values.len(), n, "one bootstrap value per env");
        for i in 0..n {
            let mut next_adv = 0.0f32;
            for t in (0..t_max).rev() {
                let k = t * n + i;
                if !self.valid[k] {
                    self.advantages[k] = 0.0;
                    self.returns[k] = 0.0;
                    next_adv = 0.0;
                    continue;
                }
                let next_value = if t + 1 < t_max { self.values[k + n] } else { last_values[i] };
                let done = self.terminated[k] || self.truncated[k];
                let bootstrap = if self.terminated[k] { 0.0 } else { gamma * next_value };
                let delta = self.rewards[k] + bootstrap - self.values[k];
                let carry = if done { 0.0 } else { gamma * lambda * next_adv };
                next_adv = delta + carry;
                self.advantages[k] = next_adv;
                self.returns[k] = next_adv + self.values[k];
            }
        }
    }
}

/// GAE over one env's sequence of transitions: `next_values[t]` is `V` of the observation after
/// step `t` (the final observation when the episode ended there). Returns `(advantages, returns)`.
pub fn gae(
    rewards: &[f64],
    values: &[f64],
    next_values: &[f64],
    terminated: &[bool],
    truncated: &[bool],
    gamma: f64,
    lambda: f64,
) -> (Vec<f64>, Vec<f64>) {
    let n = rewards.len();
    assert!(values.len() == n && next_values.len() == n && terminated.len() == n && truncated.len() == n);
    let mut adv = vec![0.0; n];
    let mut next_adv = 0.0;
    for t in (0..n).rev() {
        let bootstrap = if terminated[t] { 0.0 } else { gamma * next_values[t] };
        let delta = rewards[t] + bootstrap - values[t];
        let carry = if terminated[t] || truncated[t] { 0.0 } else { gamma * lambda * next_adv };
        next_adv = delta + carry;
        adv[t] = next_adv;
    }
    let returns = adv.iter().zip(values).map(|(a, v)| a + v).collect();
    (adv, returns)
}

/// `1 - Var(returns - values) / Var(returns)` (SB3's `explained_variance`; NaN when `Var(returns) = 0`).
pub fn explained_variance(values: &[f32], returns: &[f32]) -> f64 {
    let n = returns.len().max(1) as f64;
    let var = |xs: &mut dyn Iterator<Item = f64>| {
        let v: Vec<f64> = xs.collect();
        let m = v.iter().sum::<f64>() / n;
        v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n
    };
    let var_y = var(&mut returns.iter().map(|&r| r as f64));
    if var_y == 0.0 {
        return f64::NAN;
    }
    let var_diff = var(&mut returns.iter().zip(values).map(|(&r, &v)| r as f64 - v as f64));
    1.0 - var_diff / var_y
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference case of `posttrain_golden.json` (key `gae`): gamma 1, lambda 0.95, an episode
    /// that terminates after its fourth step. Values copied from the fixture, compared at the printed precision.
    const REWARDS: [f64; 4] = [-0.01, -0.02, 0.03, 1.0];
    const VALUES: [f64; 4] = [0.5, 0.6, 0.7, 0.8];
    const ADVANTAGES: [f64; 4] = [0.4548, 0.384, 0.32, 0.2];
    const RETURNS: [f64; 4] = [0.9548, 0.984, 1.02, 1.0];

    #[test]
    fn golden_case() {
        let next_values = [0.6, 0.7, 0.8, 123.0]; // the last is ignored: terminated
        let term = [false, false, false, true];
        let (adv, ret) = gae(&REWARDS, &VALUES, &next_values, &term, &[false; 4], 1.0, 0.95);
        for k in 0..4 {
            assert!((adv[k] - ADVANTAGES[k]).abs() < 5e-5, "{adv:?}");
            assert!((ret[k] - RETURNS[k]).abs() < 5e-5, "{ret:?}");
        }
    }

    #[test]
    fn golden_case_in_the_buffer_with_an_autoreset_slot() {
        // One env, 6 steps: the episode of the fixture, then the autoreset call, then a new episode's first step.
        let mut b = RolloutBuffer::new(1, 6, 1, 1);
        for t in 0..4 {
            b.rewards[t] = REWARDS[t] as f32;
            b.values[t] = VALUES[t] as f32;
            b.valid[t] = true;
        }
        b.terminated[3] = true;
        b.values[4] = 99.0; // the final observation's value: ignored after a termination
        b.valid[4] = false;
        b.valid[5] = true;
        b.rewards[5] = 1.0;
        b.values[5] = 0.25;
        b.compute_gae(&[0.5], 1.0, 0.95);
        for t in 0..4 {
            assert!((b.advantages[t] as f64 - ADVANTAGES[t]).abs() < 5e-5, "{:?}", b.advantages);
            assert!((b.returns[t] as f64 - RETURNS[t]).abs() < 5e-5);
        }
        assert_eq!(b.advantages[4], 0.0);
        // Last step: 1 + 1 * 0.5 - 0.25.
        assert!((b.advantages[5] - 1.25).abs() < 1e-6);
        assert_eq!(b.valid_indices(), vec![0, 1, 2, 3, 5]);
    }

    #[test]
    fn truncation_bootstraps_from_the_final_observation() {
        // Truncated at step 1: delta_1 = r + gamma * V(final) - V(s_1), and the recursion stops there.
        let (adv, _) = gae(&[1.0, 1.0], &[0.0, 0.0], &[0.0, 10.0], &[false, false], &[false, true], 0.9, 1.0);
        assert!((adv[1] - (1.0 + 9.0)).abs() < 1e-12);
        assert!((adv[0] - (1.0 + 0.9 * 10.0)).abs() < 1e-12);
        // The same step terminated: no bootstrap.
        let (adv, _) = gae(&[1.0, 1.0], &[0.0, 0.0], &[0.0, 10.0], &[false, true], &[false, false], 0.9, 1.0);
        assert!((adv[1] - 1.0).abs() < 1e-12 && (adv[0] - 1.9).abs() < 1e-12);
        // In the buffer: env 1 truncated at t = 0, its final observation's value sits in slot t = 1.
        let mut b = RolloutBuffer::new(2, 2, 1, 1);
        b.valid = vec![true, true, true, false];
        b.rewards = vec![1.0, 1.0, 1.0, 0.0];
        b.values = vec![0.0, 0.0, 0.0, 10.0];
        b.truncated[1] = true;
        b.compute_gae(&[0.0, 0.0], 0.9, 0.95);
        assert!((b.advantages[1] - 10.0).abs() < 1e-5, "{:?}", b.advantages);
    }

    #[test]
    fn lambda_one_is_the_discounted_return_minus_value() {
        let r = [1.0, 2.0, 3.0];
        let v = [0.5, 0.25, 0.125];
        let (adv, ret) = gae(&r, &v, &[0.25, 0.125, 4.0], &[false; 3], &[false; 3], 0.5, 1.0);
        // Return at 0: 1 + 0.5 * 2 + 0.25 * 3 + 0.125 * 4 (bootstrap).
        assert!((ret[0] - 3.25).abs() < 1e-12 && (adv[0] - 2.75).abs() < 1e-12);
    }

    #[test]
    fn explained_variance_cases() {
        assert!((explained_variance(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]) - 1.0).abs() < 1e-12);
        assert!(explained_variance(&[0.0, 0.0, 0.0], &[1.0, 2.0, 3.0]).abs() < 1e-12);
        assert!(explained_variance(&[1.0], &[1.0]).is_nan());
    }
}
