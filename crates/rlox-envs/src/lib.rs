pub mod classic_control;
pub mod gridworld;
