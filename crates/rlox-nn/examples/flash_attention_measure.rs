//! Time, GFLOP/s and peak memory of one attention configuration, in a fresh process (so that the
//! peak resident set is this configuration's own). bench/flash_attention_torch.py runs it once per
//! row of its table, next to PyTorch's flash kernel.
//!
//! ```text
//! RAYON_NUM_THREADS=1 cargo run --release -p rlox-nn --example flash_attention_measure -- \
//!     --n 2048 --causal --mode fwd-bwd --reps 3 [--impl flash|eager] [--heads 8] [--dim 64]
//! ```
//!
//! Prints one JSON line: the median seconds per call, GFLOP/s by the usual count (forward
//! `4 N² d` per head, halved when causal; backward 2.5 times the forward), the resident set after
//! the inputs were created (`base_mib`) and the peak resident set of the process (`peak_mib`,
//! `VmHWM`). `--impl flash` runs rlox-nn's kernel on plain f32 buffers; `--impl eager` runs the
//! straightforward burn formula (scores, mask, softmax, weighted sum; autodiff for the backward)
//! on the Flex CPU device, which materialises N × N scores.

use rlox_nn::attention::{backward, forward, forward_flops, AttnShape, FlashConfig, FlashParams, Masking};
use rlox_nn::{Tensor, TensorData};
use std::time::Instant;

fn status_mib(field: &str) -> f64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |name: &str, default: &str| -> String {
        args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or(default.to_string())
    };
    let parse = |name: &str, default: &str| -> usize {
        get(name, default).parse().unwrap_or_else(|_| {
            eprintln!("{name}: expected a positive integer");
            std::process::exit(2)
        })
    };
    let n = parse("--n", "1024");
    let heads = parse("--heads", "8");
    let d = parse("--dim", "64");
    let reps = parse("--reps", "3").max(1);
    let causal = args.iter().any(|a| a == "--causal");
    let mode = get("--mode", "fwd");
    let imp = get("--impl", "flash");
    if mode != "fwd" && mode != "fwd-bwd" {
        eprintln!("--mode: expected fwd or fwd-bwd, got {mode}");
        std::process::exit(2);
    }
    let shape = AttnShape { batch: 1, heads, kv_heads: heads, q_len: n, k_len: n, head_dim: d };
    let params = FlashParams {
        shape,
        mask: Masking { causal, ..Default::default() },
        scale: 1.0 / (d as f32).sqrt(),
        config: FlashConfig::default(),
    };
    let q = randoms(1, shape.q_elems());
    let k = randoms(2, shape.kv_elems());
    let v = randoms(3, shape.kv_elems());
    let d_o = randoms(4, shape.q_elems());
    let base = status_mib("VmRSS:");
    let mut times = Vec::new();
    for _ in 0..reps {
        let start = Instant::now();
        match imp.as_str() {
            "flash" => {
                let (o, lse) = forward(&params, &q, &k, &v).expect("valid parameters");
                if mode == "fwd-bwd" {
                    let g = backward(&params, &q, &k, &v, &o, &lse, &d_o).expect("valid parameters");
                    std::hint::black_box(g);
                }
                std::hint::black_box(o);
            }
            "eager" => eager(&params, &q, &k, &v, &d_o, mode == "fwd-bwd"),
            other => {
                eprintln!("--impl: expected flash or eager, got {other}");
                std::process::exit(2);
            }
        }
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let t = times[times.len() / 2];
    let flops = forward_flops(&shape, causal) * if mode == "fwd-bwd" { 3.5 } else { 1.0 };
    println!(
        "{{\"impl\":\"rlox-{imp}\",\"n\":{n},\"causal\":{causal},\"mode\":\"{mode}\",\"threads\":{},\"seconds\":{t:.6},\"gflops\":{:.2},\"base_mib\":{base:.1},\"peak_mib\":{:.1}}}",
        rayon::current_num_threads(),
        flops / t / 1e9,
        status_mib("VmHWM:")
    );
}

/// The straightforward formula through burn (Flex CPU, autodiff for the backward pass).
fn eager(p: &FlashParams, q: &[f32], k: &[f32], v: &[f32], d_o: &[f32], with_backward: bool) {
    let device = if with_backward { rlox_nn::cpu_device().unwrap().autodiff() } else { rlox_nn::cpu_device().unwrap() };
    let s = p.shape;
    let dims = [s.batch, s.heads, s.q_len, s.head_dim];
    let t = |x: &[f32]| Tensor::<4>::from_data(TensorData::new(x.to_vec(), dims), &device);
    let (q, k, v) = (t(q).require_grad(), t(k).require_grad(), t(v).require_grad());
    let mut scores = q.clone().matmul(k.clone().swap_dims(2, 3)).mul_scalar(p.scale as f64);
    if p.mask.causal {
        let n = s.q_len;
        let bias: Vec<f32> = (0..n * n).map(|i| if i % n > i / n { -1e9 } else { 0.0 }).collect();
        scores = scores + Tensor::<4>::from_data(TensorData::new(bias, [1, 1, n, n]), &device);
    }
    let o = rlox_nn::burn::tensor::activation::softmax(scores, 3).matmul(v.clone());
    if with_backward {
        let loss = (o * t(d_o)).sum();
        let grads = loss.backward();
        let g = q.grad(&grads).map(|g| g.into_data());
        std::hint::black_box(g);
    } else {
        std::hint::black_box(o.into_data());
    }
}
