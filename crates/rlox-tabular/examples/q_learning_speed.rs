//! Q-learning throughput on FrozenLake-v1 and the book's 5x5 grid world; prints one JSON line.
//!
//! `cargo run --release -p rlox-tabular --example q_learning_speed -- [EPISODES]` (default 20,000
//! FrozenLake episodes, epsilon 0.1, alpha 0.1, gamma 0.99; then 1,000,000 off-policy grid steps).
//! bench/q_learning_gymnasium.py runs it beside a NumPy Q-learning loop on Gymnasium's FrozenLake.

use rlox_core::policy::TabularPolicy;
use rlox_envs::gridworld::GridWorld;
use rlox_envs::toy_text::frozen_lake::frozen_lake_v1;
use rlox_tabular::schedule::{EpsilonSchedule, StepSize};
use rlox_tabular::td::{q_learning_off_policy, td_control, TdConfig, TdControl};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let episodes: usize = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(20_000);
    let cfg = TdConfig {
        gamma: 0.99,
        step_size: StepSize::Constant { alpha: 0.1 },
        epsilon: EpsilonSchedule::constant(0.1),
        episodes,
        record_every: u64::MAX,
        ..Default::default()
    };
    let mut lake = frozen_lake_v1();
    let t = Instant::now();
    let r = td_control(&mut lake, TdControl::QLearning, &cfg, None)?;
    let lake_secs = t.elapsed().as_secs_f64();

    let mut grid = GridWorld::from_preset("book-5x5")?;
    let grid_cfg = TdConfig { gamma: 0.9, episodes: 1, max_episode_steps: 1_000_000, record_every: u64::MAX, ..cfg };
    let t = Instant::now();
    let g = q_learning_off_policy(&mut grid, &TabularPolicy::uniform(25, 5), &grid_cfg, None)?;
    let grid_secs = t.elapsed().as_secs_f64();
    println!(
        "{{\"impl\": \"rlox\", \"frozenlake_episodes\": {episodes}, \"frozenlake_steps\": {}, \"frozenlake_seconds\": {lake_secs:.4}, \"frozenlake_steps_per_second\": {:.0}, \"gridworld_steps\": {}, \"gridworld_seconds\": {grid_secs:.4}, \"gridworld_steps_per_second\": {:.0}}}",
        r.steps,
        r.steps as f64 / lake_secs,
        g.steps,
        g.steps as f64 / grid_secs
    );
    Ok(())
}
