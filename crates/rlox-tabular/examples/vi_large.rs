//! Value iteration on a large random grid world, timed; prints one JSON line.
//!
//! `cargo run --release -p rlox-tabular --example vi_large -- [ROWS COLS [FORBIDDEN_PERCENT [SEED]]]`
//! (defaults 1000 1000 20 0). bench/value_iteration_numpy.py runs it beside NumPy on the same grid.

use rlox_core::mdp::TabularMdp;
use rlox_envs::gridworld::{random_layout, GridWorld};
use rlox_tabular::planning::{value_iteration_tabular, PlanningOptions};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<u64> = std::env::args().skip(1).map(|a| a.parse()).collect::<Result<_, _>>()?;
    let get = |i: usize, d: u64| args.get(i).copied().unwrap_or(d);
    let (rows, cols, pct, seed) = (get(0, 1000) as usize, get(1, 1000) as usize, get(2, 20), get(3, 0));
    let t0 = Instant::now();
    let grid = GridWorld::new(random_layout(rows, cols, pct, seed))?;
    let mdp = TabularMdp::from_mdp(&grid)?;
    let build = t0.elapsed().as_secs_f64();
    let options = PlanningOptions { gamma: 0.9, tol: 1e-10, keep_history: false, ..Default::default() };
    let t1 = Instant::now();
    let r = value_iteration_tabular(&mdp, &options)?;
    let secs = t1.elapsed().as_secs_f64();
    let sum: f64 = r.values.iter().sum();
    println!(
        "{{\"impl\": \"rlox\", \"states\": {}, \"sweeps\": {}, \"seconds\": {secs:.4}, \"sweeps_per_second\": {:.2}, \"build_seconds\": {build:.3}, \"value_sum\": {sum:.6}, \"forbidden\": {}}}",
        rows * cols,
        r.iterations,
        r.iterations as f64 / secs,
        grid.config().forbidden.len()
    );
    Ok(())
}
