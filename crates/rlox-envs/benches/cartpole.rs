//! CartPole step throughput: the scalar env (inside its `TimeLimit`, as registered) and the
//! structure-of-arrays batch at 1, 8, 64 and 256 envs, stepped through the caller-buffer API the
//! Python package uses (`BatchEnv::step_into`, `f32` rewards as Gymnasium's vector env returns),
//! with the detected instruction set and with the portable path (one C-library `sin`/`cos` per env).
//! One batch of 256 envs of each other classic-control env is timed too.
//!
//! Actions come from a precomputed table of random bits so that the benchmark measures the env,
//! not an RNG. Episodes end often under random actions, so every bench includes autoresets.
//! Throughput is in env-steps: one call of a batch of `n` envs counts `n`.
//!
//! Time is the CPU time of the benchmarking thread (`CLOCK_THREAD_CPUTIME_ID`), not wall time: on
//! the shared build machine other processes preempt the benchmark, and wall time would count their
//! slices (bench/classic_control_gymnasium.py times Gymnasium with the same clock).
//!
//! `cargo bench -p rlox-envs --bench cartpole` (figures in bench/README.md).

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::Rng as _;
use rlox_core::seeding::rng_from_seed;
use rlox_core::Env;
use rlox_envs::classic_control::{
    cartpole_v1, AcrobotVec, BatchEnv, CartPoleVec, Isa, MountainCarContinuousVec, MountainCarVec, PendulumVec,
    StepBuffers,
};

/// Criterion's measurement on the thread's CPU clock (formatted as durations, like wall time).
struct ThreadCpu {
    wall: WallTime,
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into the valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns() - start
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        self.wall.formatter()
    }
}

type Bench = Criterion<ThreadCpu>;

fn config() -> Bench {
    Criterion::default().with_measurement(ThreadCpu { wall: WallTime })
}

const ACTION_TABLE: usize = 1 << 14;
const BATCH_SIZES: [usize; 4] = [1, 8, 64, 256];

fn discrete_actions(n: usize) -> Vec<i64> {
    let mut rng = rng_from_seed(0);
    (0..ACTION_TABLE).map(|_| rng.random_range(0..n as i64)).collect()
}

fn continuous_actions(high: f32) -> Vec<f32> {
    let mut rng = rng_from_seed(0);
    (0..ACTION_TABLE).map(|_| rng.random_range(-high..high)).collect()
}

fn scalar_step(c: &mut Bench) {
    let table: Vec<usize> = discrete_actions(2).into_iter().map(|a| a as usize).collect();
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

/// Buffers for one batch, as a Python caller would hold them.
struct Buffers {
    obs: Vec<f32>,
    rewards: Vec<f32>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
    final_obs: Vec<f32>,
}

impl Buffers {
    fn new(n: usize, obs_dim: usize) -> Self {
        Buffers {
            obs: vec![0.0; n * obs_dim],
            rewards: vec![0.0; n],
            terminated: vec![false; n],
            truncated: vec![false; n],
            final_obs: Vec::new(),
        }
    }

    fn out(&mut self) -> StepBuffers<'_, f32> {
        StepBuffers {
            obs: &mut self.obs,
            rewards: &mut self.rewards,
            terminated: &mut self.terminated,
            truncated: &mut self.truncated,
            final_obs: &mut self.final_obs,
        }
    }
}

/// Time `env.step_into` over rotating slices of `table`.
fn bench_batch<B: BatchEnv>(
    g: &mut criterion::BenchmarkGroup<'_, ThreadCpu>,
    name: &str,
    mut env: B,
    table: &[B::Action],
) {
    let n = env.num_envs();
    let mut buf = Buffers::new(n, env.obs_dim());
    env.reset_into(Some(0), &mut buf.obs).unwrap();
    let mut t = 0usize;
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function(BenchmarkId::new(name, n), |b| {
        b.iter(|| {
            t = (t + n) % (ACTION_TABLE - n);
            env.step_into(black_box(&table[t..t + n]), buf.out()).unwrap();
            black_box(buf.obs[0])
        })
    });
}

fn batch_step(c: &mut Bench) {
    let table = discrete_actions(2);
    let mut g = c.benchmark_group("cartpole_batch");
    for n in BATCH_SIZES {
        let mut fast = CartPoleVec::new(n).unwrap();
        fast.set_isa(Isa::detect());
        let name = format!("step_into_{:?}", fast.isa()).to_lowercase();
        bench_batch(&mut g, &name, fast, &table);
        let mut portable = CartPoleVec::new(n).unwrap();
        portable.set_isa(Isa::Portable);
        bench_batch(&mut g, "step_into_portable", portable, &table);
    }
    g.finish();
}

fn other_batches(c: &mut Bench) {
    let mut g = c.benchmark_group("classic_control_batch");
    let n = 256;
    bench_batch(&mut g, "acrobot", AcrobotVec::new(n).unwrap(), &discrete_actions(3));
    bench_batch(&mut g, "mountain_car", MountainCarVec::new(n).unwrap(), &discrete_actions(3));
    bench_batch(&mut g, "mountain_car_continuous", MountainCarContinuousVec::new(n).unwrap(), &continuous_actions(1.5));
    bench_batch(&mut g, "pendulum", PendulumVec::new(n).unwrap(), &continuous_actions(3.0));
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = scalar_step, batch_step, other_batches
}
criterion_main!(benches);
