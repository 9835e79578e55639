//! # rlox-tabular
//!
//! Reinforcement learning with tables, following S. Zhao's *Mathematical Foundations of
//! Reinforcement Learning*:
//!
//! * [`bellman`]: the Bellman equation: policy evaluation in closed form and by iteration, action
//!   values from state values, greedy improvement, the optimality residual (chapter 2-3);
//! * [`planning`]: value iteration, policy iteration and truncated policy iteration (chapter 4);
//! * [`policy_gradient`]: softmax policies, REINFORCE, QAC, A2C, off-policy actor-critic and the
//!   deterministic policy gradient (chapters 9-10).
//!
//! Everything works on any finite [`rlox_core::Mdp`], not only the grid world.

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
pub mod monte_carlo;
pub mod policy_gradient;
pub mod schedule;
pub mod td;
