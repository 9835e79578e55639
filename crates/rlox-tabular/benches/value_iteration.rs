//! Value iteration to a residual of 1e-10: the book's 5x5 grid and a 1000x1000 random grid (1e6 states).

use criterion::{criterion_group, criterion_main, Criterion};
use rlox_core::mdp::TabularMdp;
use rlox_envs::gridworld::{random_layout, GridWorld};
use rlox_tabular::planning::{value_iteration_tabular, PlanningOptions};
use std::hint::black_box;
use std::time::Duration;

fn options() -> PlanningOptions {
    PlanningOptions { gamma: 0.9, tol: 1e-10, keep_history: false, ..Default::default() }
}

fn book(c: &mut Criterion) {
    let mdp = TabularMdp::from_mdp(&GridWorld::from_preset("book-5x5").unwrap()).unwrap();
    let sweeps = value_iteration_tabular(&mdp, &options()).unwrap().iterations;
    c.bench_function(&format!("value_iteration/book-5x5 ({sweeps} sweeps)"), |b| {
        b.iter(|| value_iteration_tabular(black_box(&mdp), &options()).unwrap())
    });
}

fn large(c: &mut Criterion) {
    let grid = GridWorld::new(random_layout(1000, 1000, 20, 0)).unwrap();
    let mdp = TabularMdp::from_mdp(&grid).unwrap();
    let sweeps = value_iteration_tabular(&mdp, &options()).unwrap().iterations;
    let mut g = c.benchmark_group("value_iteration_1e6_states");
    g.sample_size(10).measurement_time(Duration::from_secs(20)).warm_up_time(Duration::from_secs(1));
    g.bench_function(format!("random-1000x1000 ({sweeps} sweeps)"), |b| {
        b.iter(|| value_iteration_tabular(black_box(&mdp), &options()).unwrap())
    });
    g.finish();
}

criterion_group!(benches, book, large);
criterion_main!(benches);
