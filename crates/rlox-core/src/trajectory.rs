//! Trajectories and returns.

/// The discounted return `sum_t gamma^t r_t` of a reward sequence.
pub fn discounted_return(rewards: &[f64], gamma: f64) -> f64 {
    rewards.iter().rev().fold(0.0, |g, r| r + gamma * g)
}

/// The discounted return from every time step: `G_t = r_t + gamma G_{t+1}`.
pub fn returns_to_go(rewards: &[f64], gamma: f64) -> Vec<f64> {
    let mut out = vec![0.0; rewards.len()];
    let mut g = 0.0;
    for t in (0..rewards.len()).rev() {
        g = rewards[t] + gamma * g;
        out[t] = g;
    }
    out
}

/// One episode (or a piece of one): `s_0, a_0, r_1, s_1, a_1, r_2, ...`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trajectory<O, A> {
    /// Observations before each action.
    pub observations: Vec<O>,
    /// Actions taken.
    pub actions: Vec<A>,
    /// Rewards received after each action.
    pub rewards: Vec<f64>,
    /// Whether the last step terminated the MDP.
    pub terminated: bool,
    /// Whether the last step was truncated.
    pub truncated: bool,
}

impl<O, A> Trajectory<O, A> {
    /// An empty trajectory.
    pub fn new() -> Self {
        Trajectory {
            observations: Vec::new(),
            actions: Vec::new(),
            rewards: Vec::new(),
            terminated: false,
            truncated: false,
        }
    }

    /// Record one step.
    pub fn push(&mut self, obs: O, action: A, reward: f64) {
        self.observations.push(obs);
        self.actions.push(action);
        self.rewards.push(reward);
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.rewards.len()
    }

    /// Whether no step was recorded.
    pub fn is_empty(&self) -> bool {
        self.rewards.is_empty()
    }

    /// The undiscounted total reward.
    pub fn total_reward(&self) -> f64 {
        self.rewards.iter().sum()
    }

    /// The discounted return from the first step.
    pub fn discounted_return(&self, gamma: f64) -> f64 {
        discounted_return(&self.rewards, gamma)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns() {
        assert!((discounted_return(&[1.0, 1.0, 1.0], 0.5) - 1.75).abs() < 1e-12);
        assert_eq!(returns_to_go(&[1.0, 0.0, 2.0], 0.5), vec![1.5, 1.0, 2.0]);
    }
}
