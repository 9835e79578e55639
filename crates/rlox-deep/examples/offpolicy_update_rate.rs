//! The FLOP rate of DDPG's, TD3's and SAC's gradient steps at rl-baselines3-zoo's Pendulum-v1 shapes
//! (DDPG/TD3: actor and critics [400, 300]; SAC: [256, 256]; batch 256, 3 observations, 1 action),
//! beside the single-thread f32
//! GEMM rate of the same kernel measured in the same process, so a step can be stated as a fraction
//! of the machine's limit (issue 21).
//!
//! `RAYON_NUM_THREADS=1 taskset -c 1 cargo run --release -p rlox-deep --example offpolicy_update_rate [-- --burn]`
//!
//! FLOPs per step count every GEMM the step runs (two per multiply-add): target actor and target
//! critics forward, critics forward and backward (weight gradients, and input gradients below the
//! first layer), and on the actor's steps the actor forward, the critics forward on `(s, mu(s))`,
//! the first critic's backward to its input and the actor's backward. SAC's step: the actor forward on
//! the states and on the next states, the target critics, the critics forward and backward, the
//! critics forward on `(s, a~)` and their backward to the input, the actor's backward (heads and body).
//! Element-wise work (activations, sampling, Adam, the losses) is not counted.

use rand::Rng as _;
use rlox_core::run::RunSettings;
use rlox_core::seeding::rng_from_seed;
use rlox_deep::offpolicy::OffPolicyAgent;
use rlox_deep::replay::Batch;
use rlox_deep::{ddpg_config, Sac, SacConfig, Td3, Td3Config};
use std::time::Instant;

/// `2 Σ in·out` per row of an MLP `widths`.
fn per_row(widths: &[usize]) -> f64 {
    widths.windows(2).map(|w| 2.0 * (w[0] * w[1]) as f64).sum()
}

/// Backward of an MLP per row: weight gradients of every layer, input gradients of all but the first
/// (or of all of them when `to_input`).
fn backward_per_row(widths: &[usize], to_input: bool) -> f64 {
    let w = per_row(widths);
    let first = 2.0 * (widths[0] * widths[1]) as f64;
    w + if to_input { w } else { w - first }
}

fn flops_per_step(c: &Td3Config, od: usize, ad: usize, actor_step: bool) -> f64 {
    let b = c.batch_size as f64;
    let actor: Vec<usize> = std::iter::once(od).chain(c.net_arch.iter().copied()).chain([ad]).collect();
    let critic: Vec<usize> = std::iter::once(od + ad).chain(c.net_arch.iter().copied()).chain([1]).collect();
    let n = c.n_critics as f64;
    let mut f = b * (per_row(&actor) + n * per_row(&critic)); // targets
    f += b * n * (per_row(&critic) + backward_per_row(&critic, false)); // critics
    if actor_step {
        f += b * (per_row(&actor) + n * per_row(&critic) + backward_per_row(&critic, true));
        f += b * backward_per_row(&actor, false);
    }
    f
}

fn sac_flops_per_step(c: &SacConfig, od: usize, ad: usize) -> f64 {
    let b = c.batch_size as f64;
    let latent: Vec<usize> = std::iter::once(od).chain(c.net_arch.iter().copied()).collect();
    let hidden = *c.net_arch.last().expect("hidden layers");
    let heads = 2.0 * per_row(&[hidden, ad]);
    let critic: Vec<usize> = std::iter::once(od + ad).chain(c.net_arch.iter().copied()).chain([1]).collect();
    let actor_forward = per_row(&latent) + heads;
    let mut f = 2.0 * b * actor_forward; // the sample for the states and for the next states
    f += b * 2.0 * per_row(&critic); // target critics
    f += b * 2.0 * (per_row(&critic) + backward_per_row(&critic, false)); // critics
    f += b * 2.0 * (per_row(&critic) + per_row(&critic)); // critics on (s, a~), back to their input
    f += b * (2.0 * heads + backward_per_row(&latent, false)); // actor backward
    f
}

fn gemm_peak() -> f64 {
    use rlox_nn::fused::gemm::{gemm, Init, Layout};
    let isa = rlox_nn::fused::isa();
    let (m, n, k) = (256, 300, 400);
    let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
    let bm: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
    let mut c = vec![0.0f32; m * n];
    let mut best = f64::INFINITY;
    for _ in 0..50 {
        let t = Instant::now();
        for _ in 0..10 {
            gemm(isa, (m, n, k), &a, Layout::RowMajor, k, &bm, n, &mut c, n, Init::Zero);
        }
        best = best.min(t.elapsed().as_secs_f64() / 10.0);
    }
    2.0 * (m * n * k) as f64 / best / 1e9
}

fn main() {
    let burn = std::env::args().any(|a| a == "--burn");
    let (od, ad, b) = (3, 1, 256);
    let mut rng = rng_from_seed(0);
    let batches: Vec<Batch> = (0..16)
        .map(|_| {
            let mut v = |n: usize| (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect::<Vec<f32>>();
            Batch {
                obs: v(b * od),
                actions: v(b * ad),
                rewards: v(b),
                next_obs: v(b * od),
                dones: vec![0.0; b],
                indices: (0..b).collect(),
                weights: vec![1.0; b],
            }
        })
        .collect();
    let peak = gemm_peak();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.to_string()))
        .unwrap_or_default();
    println!("{cpu}; isa {:?}; f32 GEMM 256x300x400, one thread: {peak:.1} GFLOP/s", rlox_nn::fused::isa());
    for (name, base) in [("td3", Td3Config::default()), ("ddpg", ddpg_config())] {
        let config = Td3Config { fused: !burn, ..base };
        let mut agent = Td3::build(name, od, ad, &config, &RunSettings::default()).expect("learner");
        let steps = 2000u64;
        // Warm up, then time.
        for k in 0..50 {
            agent.update(&batches[k % batches.len()], 1e-3, &mut rng).expect("update");
        }
        let t = Instant::now();
        for k in 0..steps as usize {
            agent.update(&batches[k % batches.len()], 1e-3, &mut rng).expect("update");
        }
        let secs = t.elapsed().as_secs_f64();
        let delay = config.policy_delay.max(1);
        let flops: f64 = (0..steps).map(|s| flops_per_step(&config, od, ad, (s + 51) % delay == 0)).sum();
        let rate = flops / secs / 1e9;
        println!(
            "{name:4} {}: {:.0} us per gradient step, {:.1} MFLOP per step, {rate:.1} GFLOP/s = {:.2} of the GEMM rate",
            if burn { "burn " } else { "fused" },
            secs / steps as f64 * 1e6,
            flops / steps as f64 / 1e6,
            rate / peak
        );
    }
    let config = SacConfig { fused: !burn, ..SacConfig::default() };
    let mut agent = Sac::new(od, ad, &config, &RunSettings::default()).expect("learner");
    let steps = 2000usize;
    for k in 0..50 {
        agent.update(&batches[k % batches.len()], 1e-3, &mut rng).expect("update");
    }
    let t = Instant::now();
    for k in 0..steps {
        agent.update(&batches[k % batches.len()], 1e-3, &mut rng).expect("update");
    }
    let secs = t.elapsed().as_secs_f64();
    let flops = sac_flops_per_step(&config, od, ad);
    let rate = flops * steps as f64 / secs / 1e9;
    println!(
        "sac  {}: {:.0} us per gradient step, {:.1} MFLOP per step, {rate:.1} GFLOP/s = {:.2} of the GEMM rate",
        if burn { "burn " } else { "fused" },
        secs / steps as f64 * 1e6,
        flops / 1e6,
        rate / peak
    );
}
