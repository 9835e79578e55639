//! One training step (forward, MSE loss gradient, backward, Adam) of the fused MLP path beside
//! rlox-nn's burn path (burn-flex autodiff + the fused host Adam), on the networks of the deep-RL
//! trainers:
//!
//! * `4-64-64-2`, batch 32, ReLU: the compass figure of issue 21 (PyTorch 487-597 us, burn-flex
//!   87-93 us, candle 147-172 us on the reference machine; the target here is <= 20 us);
//! * `4-256-256-2`, batch 64, ReLU: DQN on CartPole (zoo);
//! * `4-400-300-1` x 2 critics, batch 256, ReLU: TD3 on Pendulum (zoo), both critics in one step.
//!
//! Throughput is in elements = floating-point operations (forward + backward GEMMs, 3x the
//! forward), so criterion's "elem/s" reads as FLOP/s. One thread:
//! `RAYON_NUM_THREADS=1 taskset -c 1 cargo bench -p rlox-nn --bench fused_mlp`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rlox_nn::fused::{FusedMlp, FusedOptimizer};
use rlox_nn::{Activation, Mlp, MlpConfig, OptimizerConfig, Tensor, TensorData};

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

struct Shape {
    name: &'static str,
    input: usize,
    hidden: &'static [usize],
    output: usize,
    members: usize,
    batch: usize,
}

const SHAPES: [Shape; 3] = [
    Shape { name: "4-64-64-2_b32", input: 4, hidden: &[64, 64], output: 2, members: 1, batch: 32 },
    Shape { name: "4-256-256-2_b64", input: 4, hidden: &[256, 256], output: 2, members: 1, batch: 64 },
    Shape { name: "2x4-400-300-1_b256", input: 4, hidden: &[400, 300], output: 1, members: 2, batch: 256 },
];

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("mlp_train_step");
    for s in &SHAPES {
        let config = MlpConfig::new(s.input, s.hidden, s.output).with_activation(Activation::Relu);
        let mut rng = rlox_core::seeding::rng_from_seed(0);
        let start = FusedMlp::new(&config, s.members, &mut rng);
        let x = randoms(1, s.batch * s.input);
        let y = randoms(2, s.members * s.batch * s.output);
        let n_out = (s.members * s.batch * s.output) as f32;
        group.throughput(Throughput::Elements((3.0 * start.forward_flops(s.batch)) as u64));

        // Fused: forward, dL/dy of the mean squared error, backward, Adam.
        let mut net = start.clone();
        let mut opt = FusedOptimizer::new(OptimizerConfig::adam(), net.num_params());
        let mut ws = net.workspace(s.batch);
        let mut d_out = vec![0.0f32; y.len()];
        group.bench_function(BenchmarkId::new("fused", s.name), |b| {
            b.iter(|| {
                let out = net.forward(&x, s.batch, &mut ws);
                for ((d, &o), &t) in d_out.iter_mut().zip(out).zip(&y) {
                    *d = 2.0 * (o - t) / n_out;
                }
                net.backward(&mut ws, &d_out, true, None);
                opt.step(1e-3, net.params_mut(), ws.grads());
            })
        });

        // burn: the same step as rlox-deep's trainers take it (host data in, autodiff, fused host Adam).
        let device = rlox_nn::train_device(rlox_nn::DeviceKind::Cpu, 0).unwrap();
        let mut mlps: Vec<Mlp> = (0..s.members).map(|m| start.to_mlp(m, &device)).collect();
        let mut opts: Vec<_> = (0..s.members).map(|_| OptimizerConfig::adam().build()).collect();
        group.bench_function(BenchmarkId::new("burn", s.name), |b| {
            b.iter(|| {
                let xt = Tensor::<2>::from_data(TensorData::new(x.clone(), [s.batch, s.input]), &device);
                for (m, (mlp, opt)) in mlps.iter_mut().zip(&mut opts).enumerate() {
                    let part = y[m * s.batch * s.output..(m + 1) * s.batch * s.output].to_vec();
                    let yt = Tensor::<2>::from_data(TensorData::new(part, [s.batch, s.output]), &device);
                    let loss = (mlp.forward(xt.clone()) - yt).square().mean();
                    let grads = rlox_nn::backward(&loss, &*mlp);
                    *mlp = opt.step(1e-3, mlp.clone(), grads);
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
