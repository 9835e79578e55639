pub mod classic_control;
pub mod gridworld;
pub mod toy_text;
pub mod registry;
