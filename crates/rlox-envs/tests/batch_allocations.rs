//! The batch step allocates nothing: a counting global allocator sees zero allocations over
//! thousands of `step_into` calls (with autoresets) of every classic-control batch, in both
//! autoreset modes and both CartPole seeding modes.

use rlox_envs::classic_control::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    /// Allocations made by this thread (the test harness's own threads allocate too).
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    ALLOCATIONS.with(|c| c.set(c.get() + 1));
}

fn allocated() -> usize {
    ALLOCATIONS.with(|c| c.get())
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `calls` steps of `env` (after a reset and a warm-up outside the count).
fn allocations<B: BatchEnv>(mut env: B, mode: AutoresetMode, actions: &[B::Action], calls: usize) -> usize {
    let n = env.num_envs();
    let d = env.obs_dim();
    env.set_autoreset_mode(mode);
    let (mut obs, mut rew, mut fin) = (vec![0.0f32; n * d], vec![0.0f32; n], vec![0.0f32; n * d]);
    let (mut term, mut trunc) = (vec![false; n], vec![false; n]);
    env.reset_into(Some(1), &mut obs).unwrap();
    let mut run = |env: &mut B, calls: usize| {
        for c in 0..calls {
            let a = &actions[(c * n) % (actions.len() - n)..][..n];
            let out = StepBuffers {
                obs: &mut obs,
                rewards: &mut rew,
                terminated: &mut term,
                truncated: &mut trunc,
                final_obs: &mut fin,
            };
            env.step_into(a, out).unwrap();
        }
    };
    run(&mut env, 10);
    let before = allocated();
    run(&mut env, calls);
    allocated() - before
}

#[test]
fn batch_steps_do_not_allocate() {
    let discrete: Vec<i64> = (0..4096).map(|i| (i * 7 + i / 3) % 2).collect();
    let three: Vec<i64> = (0..4096).map(|i| (i * 5 + i / 7) % 3).collect();
    let torques: Vec<f32> = (0..4096).map(|i| ((i * 37) % 100) as f32 / 20.0 - 2.5).collect();
    for mode in [AutoresetMode::NextStep, AutoresetMode::SameStep] {
        for seeding in [BatchSeeding::Shared, BatchSeeding::PerEnv] {
            let env = CartPoleVec::with_seeding(37, 500, seeding).unwrap();
            assert_eq!(allocations(env, mode, &discrete, 3000), 0, "CartPole {seeding:?} {mode:?}");
        }
        assert_eq!(allocations(AcrobotVec::with_time_limit(5, 30).unwrap(), mode, &three, 500), 0, "Acrobot");
        assert_eq!(allocations(MountainCarVec::new(9).unwrap(), mode, &three, 1000), 0, "MountainCar");
        let mcc = MountainCarContinuousVec::with_time_limit(9, 50).unwrap();
        assert_eq!(allocations(mcc, mode, &torques, 500), 0, "MountainCarContinuous");
        assert_eq!(allocations(PendulumVec::new(9).unwrap(), mode, &torques, 1000), 0, "Pendulum");
    }
}
