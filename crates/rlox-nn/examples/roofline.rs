//! The measured roofline of deep RL on this machine: the f32 GEMM rate of the `gemm` crate (what
//! burn-flex multiplies with, compiled as burn builds it) and of rlox's own kernel
//! (`rlox_nn::fused::gemm`), on one and two threads, at the shapes the RL networks use and at square
//! shapes; then each trainer's arithmetic per gradient step and per env step, with the time it takes
//! at the measured rate, so that every deep-RL figure can be stated as a fraction of the limit.
//!
//! `cargo run --release -p rlox-nn --example roofline -- [--quick] [--one-thread] [--json out.json]`
//! (pin it: `taskset -c 1 ... --one-thread`; the two-thread columns need two free cores).
//! `bench/roofline.py` runs it beside XLA and PyTorch at the same shapes.

use rlox_nn::fused::gemm::{self, Init, Layout};
use rlox_nn::fused::{self, FusedMlp, FusedOptimizer, Isa};
use rlox_nn::{Activation, Mlp, MlpConfig, OptimizerConfig, Tensor, TensorData};
use std::time::Instant;

fn randoms(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Seconds per call of `f`: the fastest of `samples` windows of about `window_s` each.
///
/// On a shared machine a long timing always contains time the thread spent descheduled; short
/// windows, many of them, and the fastest one measure what the core does when it runs the code.
fn time_per_call(mut f: impl FnMut(), window_s: f64, samples: usize) -> f64 {
    let t = Instant::now();
    let mut calls = 0usize;
    while t.elapsed().as_secs_f64() < window_s || calls < 3 {
        f();
        calls += 1;
    }
    let per_window = ((calls as f64 * window_s / t.elapsed().as_secs_f64()).ceil() as usize).max(1);
    (0..samples)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_window {
                f();
            }
            t.elapsed().as_secs_f64() / per_window as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// `C = A·B` (row-major, `m×k` by `k×n`) with the gemm crate on one thread.
fn gemm_crate_1(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    // SAFETY: the slices hold m×k, k×n and m×n values, row-major (column stride 1, row stride the width).
    unsafe {
        ::gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            ::gemm::Parallelism::None,
        )
    }
}

/// The gemm crate; two threads split the rows of `C` (burn builds gemm without its rayon feature,
/// so both kernels are split the same way here).
fn gemm_crate(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32], threads: usize) {
    if threads < 2 || m < 2 {
        gemm_crate_1(m, n, k, a, b, c);
        return;
    }
    let half = m.div_ceil(2);
    let (c0, c1) = c.split_at_mut(half * n);
    let (a0, a1) = a.split_at(half * k);
    rayon::join(|| gemm_crate_1(half, n, k, a0, b, c0), || gemm_crate_1(m - half, n, k, a1, b, c1));
}

/// `C = A·B` with rlox's kernel; two threads split the rows of `C`.
fn gemm_rlox(isa: Isa, (m, n, k): (usize, usize, usize), a: &[f32], b: &[f32], c: &mut [f32], threads: usize) {
    if threads < 2 || m < 2 {
        gemm::gemm(isa, (m, n, k), a, Layout::RowMajor, k, b, n, c, n, Init::Zero);
        return;
    }
    let half = m.div_ceil(2);
    let (c0, c1) = c.split_at_mut(half * n);
    let (a0, a1) = a.split_at(half * k);
    rayon::join(
        || gemm::gemm(isa, (half, n, k), a0, Layout::RowMajor, k, b, n, c0, n, Init::Zero),
        || gemm::gemm(isa, (m - half, n, k), a1, Layout::RowMajor, k, b, n, c1, n, Init::Zero),
    );
}

struct Row {
    label: String,
    m: usize,
    n: usize,
    k: usize,
    /// GFLOP/s: gemm crate 1 thread, 2 threads; rlox 1 thread, 2 threads.
    rates: [f64; 4],
}

fn measure(label: &str, (m, n, k): (usize, usize, usize), pool2: Option<&rayon::ThreadPool>, samples: usize) -> Row {
    let isa = fused::isa();
    let a = randoms(1, m * k);
    let b = randoms(2, k * n);
    let mut c = vec![0.0f32; m * n];
    let mut c2 = vec![0.0f32; m * n];
    // Both kernels compute the same product.
    gemm_crate(m, n, k, &a, &b, &mut c, 1);
    gemm_rlox(isa, (m, n, k), &a, &b, &mut c2, 1);
    let max_err = c.iter().zip(&c2).fold(0.0f32, |e, (x, y)| e.max((x - y).abs()));
    assert!(max_err <= 1e-4 * (k as f32).sqrt(), "{label}: the kernels disagree by {max_err}");
    let flops = gemm::flops(m, n, k);
    let window = 0.002;
    let g1 = time_per_call(|| gemm_crate(m, n, k, &a, &b, &mut c, 1), window, samples);
    let r1 = time_per_call(|| gemm_rlox(isa, (m, n, k), &a, &b, &mut c2, 1), window, samples);
    let (g2, r2) = match pool2 {
        Some(pool) => (
            pool.install(|| time_per_call(|| gemm_crate(m, n, k, &a, &b, &mut c, 2), window, samples)),
            pool.install(|| time_per_call(|| gemm_rlox(isa, (m, n, k), &a, &b, &mut c2, 2), window, samples)),
        ),
        None => (f64::INFINITY, f64::INFINITY),
    };
    Row { label: label.to_string(), m, n, k, rates: [g1, g2, r1, r2].map(|t| flops / t / 1e9) }
}

/// An MLP's multiply-adds per row: the sum of `in × out` over its layers.
fn macs(widths: &[usize]) -> f64 {
    widths.windows(2).map(|w| (w[0] * w[1]) as f64).sum()
}

/// A trainer's arithmetic (zoo settings): FLOPs per gradient step, gradient steps and env steps of
/// the run the anchors time, and the GEMM shape that dominates it.
struct Trainer {
    run: &'static str,
    /// FLOPs of one gradient step.
    per_gradient_step: f64,
    gradient_steps: f64,
    env_steps: f64,
    /// Acting FLOPs per env step (forward of the policy at batch 1 or n_envs).
    acting_per_env_step: f64,
    /// The layer GEMMs (m, n, k) of the update that dominate it.
    shape: (usize, usize, usize),
}

fn trainers() -> Vec<Trainer> {
    let fwd = |widths: &[usize], batch: usize| 2.0 * batch as f64 * macs(widths);
    // DQN CartPole-v1 (zoo): 4-256-256-2, batch 64, train_freq 256, gradient_steps 128, learning
    // starts 1000. A gradient step: online forward + backward (parameter gradients and the hidden
    // input gradients: 2x the forward less the first layer's input gradient) and a target forward.
    let q = [4, 256, 256, 2];
    let dqn_step = fwd(&q, 64) * 4.0 - 2.0 * 64.0 * (4.0 * 256.0);
    let dqn_grad_steps = |steps: f64| ((steps - 1000.0) / 256.0).floor() * 128.0;
    // PPO (zoo): n_epochs passes over each rollout in minibatches; a gradient step is the forward
    // and backward of both 64x64 tanh nets (policy and value) over one minibatch.
    let ppo = |obs: usize, act: usize, epochs: f64, batch: usize, steps: f64| {
        let (pi, vf) = ([obs, 64, 64, act], [obs, 64, 64, 1]);
        Trainer {
            run: "",
            per_gradient_step: 3.0 * (fwd(&pi, batch) + fwd(&vf, batch)),
            gradient_steps: epochs * steps / batch as f64,
            env_steps: steps,
            acting_per_env_step: fwd(&pi, 1) + fwd(&vf, 1),
            shape: (64, 64, 64),
        }
    };
    // TD3/DDPG Pendulum-v1 (zoo): actor 3-400-300-1, critics 4-400-300-1, batch 256, learning
    // starts 10000, one gradient step per env step.
    let (actor, critic) = ([3, 400, 300, 1], [4, 400, 300, 1]);
    let (a, c) = (fwd(&actor, 256), fwd(&critic, 256));
    // TD3: target actor A, target critics 2C, critics fwd+bwd 6C; every 2nd step the actor loss:
    // actor fwd A + Q1 fwd C + Q1 input gradient 2C + actor bwd 2A.
    let td3 = a + 8.0 * c + (3.0 * a + 3.0 * c) / 2.0;
    // DDPG: one critic, actor every step: A + C + 3C + (A + C + 2C + 2A).
    let ddpg = 4.0 * a + 7.0 * c;
    // SAC Pendulum-v1 (zoo): actor 3-256-256-2 (mean and log std), critics 4-256-256-1, batch 256,
    // learning starts 100: actor sample on s and s' 2A, target critics 2C, critics fwd+bwd 6C, actor
    // loss through both critics 2C + 4C (input gradients) and actor bwd 2A.
    let (sa, sc) = (fwd(&[3, 256, 256, 2], 256), fwd(&[4, 256, 256, 1], 256));
    let sac = 4.0 * sa + 12.0 * sc;
    let offp = |run, per: f64, steps: f64, starts: f64, actor_macs: f64, shape| Trainer {
        run,
        per_gradient_step: per,
        gradient_steps: steps - starts,
        env_steps: steps,
        acting_per_env_step: 2.0 * actor_macs,
        shape,
    };
    vec![
        Trainer {
            run: "DQN CartPole-v1 20k",
            per_gradient_step: dqn_step,
            gradient_steps: dqn_grad_steps(20_000.0),
            env_steps: 20_000.0,
            acting_per_env_step: fwd(&q, 1),
            shape: (64, 256, 256),
        },
        Trainer {
            run: "DQN CartPole-v1 50k",
            per_gradient_step: dqn_step,
            gradient_steps: dqn_grad_steps(50_000.0),
            env_steps: 50_000.0,
            acting_per_env_step: fwd(&q, 1),
            shape: (64, 256, 256),
        },
        Trainer { run: "PPO CartPole-v1 50k (20 epochs, batch 256)", ..ppo(4, 2, 20.0, 256, 50_000.0) },
        Trainer { run: "PPO Acrobot-v1 200k (4 epochs, batch 64)", ..ppo(6, 3, 4.0, 64, 200_000.0) },
        offp("DDPG Pendulum-v1 15k", ddpg, 15_000.0, 10_000.0, macs(&actor), (256, 300, 400)),
        offp("TD3 Pendulum-v1 15k", td3, 15_000.0, 10_000.0, macs(&actor), (256, 300, 400)),
        offp("SAC Pendulum-v1 15k", sac, 15_000.0, 100.0, macs(&[3, 256, 256, 2]), (256, 256, 256)),
    ]
}

/// One training step (forward, mean-squared-error gradient, backward, Adam) of `members` MLPs
/// `widths` at `batch` rows: seconds per step on the fused path and on the burn path.
fn train_step_times(widths: &[usize], members: usize, batch: usize, samples: usize) -> (f64, f64, f64) {
    let (d_in, d_out) = (widths[0], widths[widths.len() - 1]);
    let config = MlpConfig::new(d_in, &widths[1..widths.len() - 1], d_out).with_activation(Activation::Relu);
    let mut rng = rlox_core::seeding::rng_from_seed(0);
    let mut net = FusedMlp::new(&config, members, &mut rng);
    let x = randoms(1, batch * d_in);
    let y = randoms(2, members * batch * d_out);
    let n_out = y.len() as f32;
    let device = rlox_nn::train_device(rlox_nn::DeviceKind::Cpu, 0).expect("cpu device");
    let mut mlps: Vec<Mlp> = (0..members).map(|m| net.to_mlp(m, &device)).collect();
    let mut opts: Vec<_> = (0..members).map(|_| OptimizerConfig::adam().build()).collect();
    let mut opt = FusedOptimizer::new(OptimizerConfig::adam(), net.num_params());
    let mut ws = net.workspace(batch);
    let mut d = vec![0.0f32; y.len()];
    let flops = 3.0 * net.forward_flops(batch);
    let fused = time_per_call(
        || {
            let out = net.forward(&x, batch, &mut ws);
            for ((d, &o), &t) in d.iter_mut().zip(out).zip(&y) {
                *d = 2.0 * (o - t) / n_out;
            }
            net.backward(&mut ws, &d, true, None);
            opt.step(1e-3, net.params_mut(), ws.grads());
        },
        0.002,
        samples,
    );
    let burn = time_per_call(
        || {
            let xt = Tensor::<2>::from_data(TensorData::new(x.clone(), [batch, d_in]), &device);
            for (m, (mlp, opt)) in mlps.iter_mut().zip(&mut opts).enumerate() {
                let part = y[m * batch * d_out..(m + 1) * batch * d_out].to_vec();
                let yt = Tensor::<2>::from_data(TensorData::new(part, [batch, d_out]), &device);
                let loss = (mlp.forward(xt.clone()) - yt).square().mean();
                let grads = rlox_nn::backward(&loss, &*mlp);
                *mlp = opt.step(1e-3, mlp.clone(), grads);
            }
        },
        0.002,
        samples,
    );
    (fused, burn, flops)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let one_thread = args.iter().any(|a| a == "--one-thread");
    let json_path = args.iter().position(|a| a == "--json").and_then(|i| args.get(i + 1)).cloned();
    let samples = if quick { 30 } else { 100 };
    let pool2 =
        (!one_thread).then(|| rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("a two-thread pool"));
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.to_string()))
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("{cpu}; isa {:?}; load average {}", fused::isa(), load.trim());
    println!("f32 GEMM C[m x n] = A[m x k] B[k x n], row-major; GFLOP/s = 2mnk / time (fastest of {samples} windows of 2 ms)");

    let mut shapes: Vec<(String, (usize, usize, usize))> = Vec::new();
    for batch in [32, 64, 256] {
        for (k, n) in [(4, 64), (64, 64), (4, 256), (256, 256), (4, 400), (400, 300), (300, 400)] {
            shapes.push((format!("fwd b{batch} {k}->{n}"), (batch, n, k)));
        }
    }
    for (k, n) in [(64, 64), (256, 256), (400, 300)] {
        // The weight gradient of a layer: m = in, n = out, k = batch.
        for batch in [32, 64, 256] {
            shapes.push((format!("dW b{batch} {k}->{n}"), (k, n, batch)));
        }
    }
    let squares: &[usize] = if quick { &[256, 512] } else { &[256, 512, 1024, 2048] };
    for &s in squares {
        shapes.push((format!("square {s}"), (s, s, s)));
    }
    println!(
        "{:<22} {:>5} {:>5} {:>5} | {:>8} {:>8} | {:>8} {:>8} | {:>6}",
        "shape", "m", "n", "k", "gemm 1T", "gemm 2T", "rlox 1T", "rlox 2T", "r/g 1T"
    );
    let mut rows = Vec::new();
    for (label, shape) in &shapes {
        let r = measure(label, *shape, pool2.as_ref(), samples);
        println!(
            "{:<22} {:>5} {:>5} {:>5} | {:>8.1} {:>8.1} | {:>8.1} {:>8.1} | {:>6.2}",
            r.label,
            r.m,
            r.n,
            r.k,
            r.rates[0],
            r.rates[1],
            r.rates[2],
            r.rates[3],
            r.rates[2] / r.rates[0]
        );
        rows.push(r);
    }
    let best = |col: usize| rows.iter().map(|r| r.rates[col]).fold(0.0, f64::max);
    println!(
        "best measured: gemm crate {:.1} (1T) / {:.1} (2T), rlox {:.1} (1T) / {:.1} (2T) GFLOP/s",
        best(0),
        best(1),
        best(2),
        best(3)
    );

    if let Some(path) = json_path {
        let rows_json: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                let rate = |x: f64| if x > 0.0 { serde_json::json!(x) } else { serde_json::Value::Null };
                serde_json::json!({
                    "label": r.label, "m": r.m, "n": r.n, "k": r.k,
                    "gemm_1t": rate(r.rates[0]), "gemm_2t": rate(r.rates[1]),
                    "rlox_1t": rate(r.rates[2]), "rlox_2t": rate(r.rates[3]),
                })
            })
            .collect();
        let doc = serde_json::json!({ "cpu": cpu, "isa": format!("{:?}", fused::isa()), "load": load.trim(), "rows": rows_json });
        std::fs::write(&path, serde_json::to_string_pretty(&doc).expect("json")).expect("write the json file");
    }

    println!();
    println!(
        "One training step (forward, MSE gradient, backward, Adam), one thread; fraction of the best GEMM rate above"
    );
    println!(
        "{:<26} {:>10} {:>10} {:>9} {:>12} {:>9}",
        "network", "fused us", "burn us", "burn/fused", "fused GFLOP/s", "fraction"
    );
    let peak = best(2).max(best(0));
    for (name, widths, members, batch) in [
        ("4-64-64-2 b32", vec![4, 64, 64, 2], 1, 32),
        ("4-256-256-2 b64 (DQN)", vec![4, 256, 256, 2], 1, 64),
        ("4-256-256-1 x2 b256 (SAC)", vec![4, 256, 256, 1], 2, 256),
        ("4-400-300-1 x2 b256 (TD3)", vec![4, 400, 300, 1], 2, 256),
    ] {
        let (fused, burn, flops) = train_step_times(&widths, members, batch, samples);
        println!(
            "{:<26} {:>10.1} {:>10.1} {:>9.2} {:>12.1} {:>9.2}",
            name,
            fused * 1e6,
            burn * 1e6,
            burn / fused,
            flops / fused / 1e9,
            flops / fused / 1e9 / peak
        );
    }

    println!();
    println!("Trainers (zoo settings): arithmetic of the updates, and its time at the measured one-thread rate");
    println!(
        "{:<40} {:>12} {:>10} {:>12} {:>12} {:>10} {:>14} {:>10}",
        "run", "MFLOP/grad", "grad steps", "kFLOP/env st", "update GFLOP", "shape", "rate (best 1T)", "time s"
    );
    for t in trainers() {
        let total = t.per_gradient_step * t.gradient_steps + t.acting_per_env_step * t.env_steps;
        let (m, n, k) = t.shape;
        let rate = rows
            .iter()
            .find(|r| (r.m, r.n, r.k) == (m, n, k))
            .map(|r| r.rates[0].max(r.rates[2]))
            .unwrap_or_else(|| best(2).max(best(0)));
        println!(
            "{:<40} {:>12.2} {:>10.0} {:>12.1} {:>12.1} {:>10} {:>14.1} {:>10.2}",
            t.run,
            t.per_gradient_step / 1e6,
            t.gradient_steps,
            total / t.env_steps / 1e3,
            total / 1e9,
            format!("{m}x{n}x{k}"),
            rate,
            total / (rate * 1e9)
        );
    }
}
