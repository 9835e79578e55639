//! # rlox-envs
//!
//! Gymnasium-compatible environments, all behind [`rlox_core::Env`]:
//!
//! * [`gridworld`]: the grid world of S. Zhao's *Mathematical Foundations of Reinforcement
//!   Learning*, with the book's exact semantics, presets, policy strings and book-style pictures;
//! * [`toy_text`]: FrozenLake-v1, CliffWalking-v1 and Taxi-v4, whose models equal Gymnasium 1.4's
//!   transition tables entry by entry (each also an [`rlox_core::Mdp`] for planning);
//! * [`classic_control`]: CartPole-v1, Acrobot-v1, MountainCar-v0, MountainCarContinuous-v0 and
//!   Pendulum-v1, bit-exact with Gymnasium's traces, each also as a structure-of-arrays batch that
//!   steps into caller-provided buffers (CartPole's vectorised across envs);
//! * [`registry`]: `make(id, options)` for every environment, under Gymnasium's ids.
//!
//! Every Gymnasium env draws Gymnasium's own random stream (NumPy's `PCG64` seeded through
//! `SeedSequence`, [`rlox_core::seeding`]), so a seed gives Gymnasium's episode.
#![warn(missing_docs)]

pub mod classic_control;
pub mod gridworld;
pub mod registry;
pub mod toy_text;
