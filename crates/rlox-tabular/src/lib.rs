//! # rlox-tabular
//!
//! Reinforcement learning with tables, following S. Zhao's *Mathematical Foundations of
//! Reinforcement Learning*:
//!
//! * [`bellman`]: the Bellman equation: policy evaluation in closed form and by iteration, action
//!   values from state values, greedy improvement, the optimality residual (chapter 2-3);
//! * [`planning`]: value iteration, policy iteration and truncated policy iteration (chapter 4);
//! * [`monte_carlo`]: MC Basic, MC Exploring Starts and MC epsilon-greedy (chapter 5);
//! * [`approx`]: stochastic approximation: the incremental mean, Robbins-Monro, SGD/MBGD/BGD (chapter 6);
//! * [`td`]: TD(0), Sarsa, Expected Sarsa, n-step Sarsa, Q-learning on- and off-policy (chapter 7);
//! * [`linear`]: value function approximation with linear features: TD-Linear, LSTD, the TD fixed
//!   point, the stationary distribution, Sarsa and Q-learning with linear features (chapter 8);
//! * [`policy_gradient`]: softmax policies, REINFORCE, QAC, A2C, off-policy actor-critic and the
//!   deterministic policy gradient (chapters 9-10);
//! * [`learn`]: every model-free learner behind one name-based entry point, and greedy evaluation.
//!
//! Everything works on any finite [`rlox_core::Mdp`], not only the grid world.
#![warn(missing_docs)]
// `!(x >= 0.0)` is deliberate throughout: it rejects NaN together with the out-of-range values.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod bellman;
pub mod planning;

pub use bellman::{closed_form_values, iterative_evaluation, q_from_v, Evaluation};
pub use planning::{
    policy_iteration, truncated_policy_iteration, value_iteration, IterationRecord, PlanningOptions, PlanningResult,
};
pub mod approx;
pub mod learn;
pub mod linear;
pub mod monte_carlo;
pub mod policy_gradient;
pub mod schedule;
pub mod td;
