//! Criterion benchmarks of the flash-attention kernel: batch 1, 8 heads, head dim 64, causal and
//! not, forward and forward+backward, N = 512 to 2048 (the bench/ script covers N up to 8192 with
//! PyTorch beside it). Throughput is reported in elements = floating-point operations, so
//! criterion's "elem/s" reads as FLOP/s (forward 4 N² d per head, halved when causal; backward
//! 2.5 times the forward).
//!
//! `RAYON_NUM_THREADS=1 cargo bench -p rlox-nn --bench attention`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rlox_nn::attention::{backward, forward, forward_flops, AttnShape, FlashConfig, FlashParams, Masking};

fn randoms(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("flash_attention");
    group.sample_size(10);
    for &n in &[512usize, 1024, 2048] {
        for causal in [false, true] {
            let shape = AttnShape { batch: 1, heads: 8, kv_heads: 8, q_len: n, k_len: n, head_dim: 64 };
            let p = FlashParams {
                shape,
                mask: Masking { causal, ..Default::default() },
                scale: 0.125,
                config: FlashConfig::default(),
            };
            let (q, k, v, d_o) = (
                randoms(1, shape.q_elems()),
                randoms(2, shape.kv_elems()),
                randoms(3, shape.kv_elems()),
                randoms(4, shape.q_elems()),
            );
            let tag = if causal { "causal" } else { "full" };
            let flops = forward_flops(&shape, causal);
            group.throughput(Throughput::Elements(flops as u64));
            group.bench_function(BenchmarkId::new(format!("fwd_{tag}"), n), |b| {
                b.iter(|| forward(&p, &q, &k, &v).unwrap())
            });
            group.throughput(Throughput::Elements((flops * 3.5) as u64));
            group.bench_function(BenchmarkId::new(format!("fwd_bwd_{tag}"), n), |b| {
                b.iter(|| {
                    let (o, lse) = forward(&p, &q, &k, &v).unwrap();
                    backward(&p, &q, &k, &v, &o, &lse, &d_o).unwrap()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
