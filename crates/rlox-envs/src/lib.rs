pub mod gridworld;
