pub mod classic_control;
pub mod gridworld;
pub mod registry;
pub mod toy_text;
