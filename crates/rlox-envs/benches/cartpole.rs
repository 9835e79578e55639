//! CartPole step throughput: the scalar env (inside its `TimeLimit`, as registered) and the
//! structure-of-arrays batch of 256 envs.
//!
//! Actions come from a precomputed table of random bits so that the benchmark measures the env,
//! not an RNG. Episodes end often under random actions, so both benches include resets.
//! `bench/classic_control_gymnasium.py` runs this next to Gymnasium's CartPole and prints the ratio.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use rand::Rng as _;
use rlox_core::seeding::rng_from_seed;
use rlox_core::vec_env::VecEnv;
use rlox_core::Env;
use rlox_envs::classic_control::{cartpole_v1, CartPoleVec};

const NUM_ENVS: usize = 256;
const ACTION_TABLE: usize = 4096;

fn actions() -> Vec<usize> {
    let mut rng = rng_from_seed(0);
    (0..ACTION_TABLE).map(|_| rng.random_range(0..2)).collect()
}

fn scalar_step(c: &mut Criterion) {
    let table = actions();
    let mut env = cartpole_v1();
    env.reset(Some(0)).unwrap();
    let mut t = 0usize;
    let mut g = c.benchmark_group("cartpole");
    g.throughput(Throughput::Elements(1));
    g.bench_function("scalar_step", |b| {
        b.iter(|| {
            t = (t + 1) & (ACTION_TABLE - 1);
            let s = env.step(black_box(&table[t])).unwrap();
            if s.terminated || s.truncated {
                env.reset(None).unwrap();
            }
            black_box(s.obs)
        })
    });
    g.finish();
}

fn batch_step(c: &mut Criterion) {
    let table = actions();
    let mut venv = CartPoleVec::new(NUM_ENVS).unwrap();
    venv.reset(Some(0)).unwrap();
    let mut t = 0usize;
    let mut g = c.benchmark_group("cartpole");
    g.throughput(Throughput::Elements(NUM_ENVS as u64));
    g.bench_function("batch_step_256", |b| {
        b.iter(|| {
            t = (t + NUM_ENVS) & (ACTION_TABLE - 1);
            venv.step(black_box(&table[t..t + NUM_ENVS])).unwrap();
            black_box(venv.observations()[0])
        })
    });
    g.finish();
}

criterion_group!(benches, scalar_step, batch_step);
criterion_main!(benches);
