//! The flash-attention kernel against a naive f64 reference: forward output and the three gradients,
//! over random shapes (lengths 1, primes, non-multiples of the tile; head dims 32/64/128; causal or
//! not; grouped-query heads; padding, packed sequences, sliding windows, cached prefixes), and
//! through burn's autodiff against the eager tensor formula.
//!
//! Tolerance: for each tensor, `max |kernel − reference| <= 1e-4 · max |reference|` (plus 1e-6
//! absolute for tensors that are all but zero). The kernel computes in f32 with f32 accumulators
//! over at most a few hundred keys, which stays around 1e-6; a wrong mask, a missed tile or a
//! wrong rescaling gives errors of order 1.

use proptest::prelude::*;
use rlox_nn::attention::{backward, flash_attention, forward, AttnShape, FlashConfig, FlashParams, Masking};
use rlox_nn::{Tensor, TensorData};

/// Deterministic uniform numbers in [-1, 1) from a seed (splitmix64).
fn randoms(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Whether query `t` of sequence `b` sees key `j`, written from the definitions (independently of
/// `Masking::row_range`).
fn visible(m: &Masking, b: usize, t: usize, j: usize) -> bool {
    let pos = m.past + t;
    if (m.causal || m.window.is_some()) && j > pos {
        return false;
    }
    if let Some(w) = m.window {
        if j + w <= pos {
            return false;
        }
    }
    if let Some(r) = &m.key_ranges {
        if j < r[b].0 || j >= r[b].1 {
            return false;
        }
    }
    if let Some(o) = &m.segments {
        let seg = |x: usize| o.iter().filter(|&&e| e <= x).count();
        if seg(t) != seg(j) {
            return false;
        }
    }
    true
}

/// The f64 reference of one case: the output, the three gradients, and for dQ and dK the sum of the
/// absolute values of the terms that make each entry (its condition).
struct Reference {
    o: Vec<f64>,
    dq: Vec<f64>,
    dk: Vec<f64>,
    dv: Vec<f64>,
    dq_mass: Vec<f64>,
    dk_mass: Vec<f64>,
}

/// Naive attention in f64: output and the gradients for the output gradient `d_o`.
fn reference(p: &FlashParams, q: &[f32], k: &[f32], v: &[f32], d_o: &[f32]) -> Reference {
    let s = p.shape;
    let d = s.head_dim;
    let group = s.heads / s.kv_heads;
    let scale = p.scale as f64;
    let mut o = vec![0.0; s.q_elems()];
    let (mut dq, mut dk, mut dv) = (vec![0.0; s.q_elems()], vec![0.0; s.kv_elems()], vec![0.0; s.kv_elems()]);
    let (mut dq_mass, mut dk_mass) = (vec![0.0; s.q_elems()], vec![0.0; s.kv_elems()]);
    for b in 0..s.batch {
        for h in 0..s.heads {
            let kvh = h / group;
            for t in 0..s.q_len {
                let qi = ((b * s.heads + h) * s.q_len + t) * d;
                let keys: Vec<usize> = (0..s.k_len).filter(|&j| visible(&p.mask, b, t, j)).collect();
                if keys.is_empty() {
                    continue;
                }
                let kj = |j: usize| ((b * s.kv_heads + kvh) * s.k_len + j) * d;
                let scores: Vec<f64> = keys
                    .iter()
                    .map(|&j| scale * (0..d).map(|c| q[qi + c] as f64 * k[kj(j) + c] as f64).sum::<f64>())
                    .collect();
                let mx = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|x| (x - mx).exp()).collect();
                let z: f64 = e.iter().sum();
                let pr: Vec<f64> = e.iter().map(|x| x / z).collect();
                for (&j, &pj) in keys.iter().zip(&pr) {
                    for c in 0..d {
                        o[qi + c] += pj * v[kj(j) + c] as f64;
                    }
                }
                let dp: Vec<f64> =
                    keys.iter().map(|&j| (0..d).map(|c| d_o[qi + c] as f64 * v[kj(j) + c] as f64).sum()).collect();
                let delta: f64 = pr.iter().zip(&dp).map(|(a, b)| a * b).sum();
                for ((&j, &pj), &dpj) in keys.iter().zip(&pr).zip(&dp) {
                    let ds = pj * (dpj - delta);
                    let ds_mass = pj * (dpj.abs() + delta.abs());
                    for c in 0..d {
                        dv[kj(j) + c] += pj * d_o[qi + c] as f64;
                        dq[qi + c] += scale * ds * k[kj(j) + c] as f64;
                        dk[kj(j) + c] += scale * ds * q[qi + c] as f64;
                        dq_mass[qi + c] += scale * ds_mass * (k[kj(j) + c] as f64).abs();
                        dk_mass[kj(j) + c] += scale * ds_mass * (q[qi + c] as f64).abs();
                    }
                }
            }
        }
    }
    Reference { o, dq, dk, dv, dq_mass, dk_mass }
}

/// Every entry within 1e-4 of the largest reference entry (relative), plus 1e-6, plus, where given,
/// 2e-6 times the entry's mass (the sum of the absolute values of its terms). The last term matters
/// only for entries that cancel: when each query sees a single key, dS = P (dP - D) is exactly 0 in
/// f64, while an f32 kernel computes dP and D = rowsum(dO * O) in different orders and keeps a
/// rounding residue of about 1e-7 of the terms; such a test failed on a gradient that is 0 to 1e-6.
fn assert_close(name: &str, got: &[f32], want: &[f64], mass: Option<&[f64]>, case: &str) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    let top = want.iter().fold(0.0f64, |a, x| a.max(x.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = 1e-4 * top + 1e-6 + mass.map_or(0.0, |m| 2e-6 * m[i]);
        assert!(g.is_finite(), "{name}[{i}] = {g} is not finite ({case})");
        assert!((*g as f64 - w).abs() <= tol, "{name}[{i}] = {g}, reference {w}, tolerance {tol:e} ({case})");
    }
}

/// One random case: sizes, mask, tiles and thread count.
#[derive(Debug, Clone)]
struct Case {
    params: FlashParams,
    threads: usize,
    seed: u64,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    let lens = prop::sample::select(vec![1usize, 2, 3, 7, 13, 17, 31, 61, 64, 65, 97, 127, 131, 257]);
    (
        (1usize..=2, 1usize..=2, 1usize..=3, prop::sample::select(vec![32usize, 64, 128])),
        (lens.clone(), lens, 0usize..4),
        (any::<bool>(), 0usize..4, 0usize..3, any::<bool>()),
        (prop::sample::select(vec![0usize, 16, 32]), prop::sample::select(vec![0usize, 16, 48])),
        (prop::sample::select(vec![1usize, 3]), any::<u64>()),
    )
        .prop_map(
            |(
                (batch, kv_heads, group, head_dim),
                (q_len, k_len0, extra),
                (causal, pad, special, small_scale),
                (bq, bk),
                (threads, seed),
            )| {
                let mut r = randoms(seed ^ 0xA5A5, 16).into_iter().map(|x| (x + 1.0) / 2.0);
                let mut mask = Masking { causal, ..Default::default() };
                let mut k_len = k_len0;
                match special {
                    // A cached prefix: the queries are the last q_len of the keys.
                    1 if causal => {
                        mask.past = extra * 5;
                        k_len = q_len + mask.past;
                    }
                    // Packed sequences (self-attention with segment offsets).
                    2 => {
                        k_len = q_len;
                        let mut offsets = vec![0];
                        let cuts = (r.next().unwrap() * 4.0) as usize;
                        for _ in 0..cuts {
                            let c = 1 + (r.next().unwrap() * q_len as f32) as usize;
                            if c < q_len && !offsets.contains(&c) {
                                offsets.push(c);
                            }
                        }
                        offsets.sort();
                        offsets.push(q_len);
                        mask.segments = Some(offsets);
                    }
                    _ => {}
                }
                if causal && special == 0 && extra == 3 {
                    mask.window = Some(1 + q_len / 3);
                }
                if mask.segments.is_none() {
                    if causal && mask.past == 0 {
                        k_len = q_len; // causal self-attention
                    }
                    // Padding: 1 = right padding, 2 = left padding, 3 = one sequence fully masked.
                    mask.key_ranges = match pad {
                        1 => Some((0..batch).map(|_| (0, (r.next().unwrap() * (k_len + 1) as f32) as usize)).collect()),
                        2 => Some((0..batch).map(|_| ((r.next().unwrap() * k_len as f32) as usize, k_len)).collect()),
                        3 => Some((0..batch).map(|b| if b == 0 { (0, 0) } else { (0, k_len) }).collect()),
                        _ => None,
                    };
                }
                let scale = if small_scale { 0.05 } else { 1.0 / (head_dim as f32).sqrt() };
                let params = FlashParams {
                    shape: AttnShape { batch, heads: kv_heads * group, kv_heads, q_len, k_len, head_dim },
                    mask,
                    scale,
                    config: FlashConfig { block_q: bq, block_k: bk, bwd_block_q: bq, bwd_block_k: bk },
                };
                Case { params, threads, seed }
            },
        )
}

fn check_case(c: &Case) {
    let p = &c.params;
    let s = p.shape;
    let q = randoms(c.seed, s.q_elems()).iter().map(|x| x * 2.0).collect::<Vec<_>>();
    let k = randoms(c.seed.wrapping_add(1), s.kv_elems()).iter().map(|x| x * 2.0).collect::<Vec<_>>();
    let v = randoms(c.seed.wrapping_add(2), s.kv_elems());
    let d_o = randoms(c.seed.wrapping_add(3), s.q_elems());
    let pool = rayon::ThreadPoolBuilder::new().num_threads(c.threads).build().unwrap();
    let (o, lse, dq, dk, dv) = pool.install(|| {
        let (o, lse) = forward(p, &q, &k, &v).unwrap();
        let (dq, dk, dv) = backward(p, &q, &k, &v, &o, &lse, &d_o).unwrap();
        (o, lse, dq, dk, dv)
    });
    assert_eq!(lse.len(), s.rows());
    let r = reference(p, &q, &k, &v, &d_o);
    let case = format!("{:?} threads {}", p, c.threads);
    assert_close("O", &o, &r.o, None, &case);
    assert_close("dQ", &dq, &r.dq, Some(&r.dq_mass), &case);
    assert_close("dK", &dk, &r.dk, Some(&r.dk_mass), &case);
    assert_close("dV", &dv, &r.dv, None, &case);
}

proptest! {
    // Seeded, so that every run checks the same 64 cases (change the seed to explore others).
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(20_261_129),
        ..ProptestConfig::default()
    })]

    #[test]
    fn kernel_matches_f64_reference(c in case_strategy()) {
        check_case(&c);
    }
}

#[test]
fn long_causal_sequence_on_many_threads_matches_reference() {
    // One (batch, kv head) pair and several threads: the backward pass takes the per-thread dQ
    // partial path, with many key blocks per head.
    let params = FlashParams {
        shape: AttnShape { batch: 1, heads: 2, kv_heads: 1, q_len: 509, k_len: 509, head_dim: 64 },
        mask: Masking::causal(),
        scale: 0.125,
        config: FlashConfig::default(),
    };
    check_case(&Case { params, threads: 4, seed: 7 });
}

#[test]
fn one_visible_key_per_row_gives_zero_key_gradients() {
    // Each query sees only key 0, so the softmax is one-hot and dS = P (dP - D) cancels exactly:
    // dK must come out 0 up to rounding (a case proptest once drew with random seeds).
    let params = FlashParams {
        shape: AttnShape { batch: 1, heads: 2, kv_heads: 2, q_len: 131, k_len: 17, head_dim: 128 },
        mask: Masking { key_ranges: Some(vec![(0, 1)]), ..Default::default() },
        scale: 1.0 / (128.0f32).sqrt(),
        config: FlashConfig { block_k: 48, bwd_block_k: 48, ..Default::default() },
    };
    check_case(&Case { params, threads: 3, seed: 11 });
}

#[test]
fn fully_masked_rows_give_zeros() {
    let s = AttnShape { batch: 2, heads: 1, kv_heads: 1, q_len: 5, k_len: 5, head_dim: 32 };
    // Left padding of 3 in sequence 0: its first 3 queries see no key under the causal mask.
    let mask = Masking { causal: true, key_ranges: Some(vec![(3, 5), (0, 5)]), ..Default::default() };
    let p = FlashParams { shape: s, mask, scale: 0.2, config: FlashConfig::default() };
    let q = randoms(1, s.q_elems());
    let k = randoms(2, s.kv_elems());
    let v = randoms(3, s.kv_elems());
    let (o, lse) = forward(&p, &q, &k, &v).unwrap();
    assert!(o[..3 * 32].iter().all(|&x| x == 0.0));
    assert!(o[3 * 32..].iter().all(|x| x.is_finite()) && o[3 * 32..4 * 32].iter().any(|&x| x != 0.0));
    assert!(lse[..3].iter().all(|&x| x == f32::NEG_INFINITY));
    let (dq, dk, dv) = backward(&p, &q, &k, &v, &o, &lse, &randoms(4, s.q_elems())).unwrap();
    assert!(dq[..3 * 32].iter().all(|&x| x == 0.0));
    assert!(dq.iter().chain(&dk).chain(&dv).all(|x| x.is_finite()));
}

#[test]
fn bad_input_is_an_error() {
    let s = AttnShape { batch: 1, heads: 3, kv_heads: 2, q_len: 4, k_len: 4, head_dim: 8 };
    let p = FlashParams { shape: s, mask: Masking::default(), scale: 1.0, config: FlashConfig::default() };
    let e = forward(&p, &[0.0; 96], &[0.0; 64], &[0.0; 64]).unwrap_err().to_string();
    assert!(e.contains("not a multiple"), "{e}");
    let s = AttnShape { heads: 2, ..s };
    let p = FlashParams { shape: s, ..p };
    let e = forward(&p, &[0.0; 10], &[0.0; 64], &[0.0; 64]).unwrap_err().to_string();
    assert!(e.contains("attention q"), "{e}");
    let p = FlashParams { mask: Masking { key_ranges: Some(vec![(0, 9)]), ..Default::default() }, ..p };
    let e = forward(&p, &[0.0; 64], &[0.0; 64], &[0.0; 64]).unwrap_err().to_string();
    assert!(e.contains("[0, 9)"), "{e}");
}

/// The same attention through burn tensors, written with the eager formula (scores, additive mask,
/// softmax, weighted sum), with gradients from burn's autodiff.
fn eager(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, bias: Tensor<4>, scale: f64) -> Tensor<4> {
    let [b, h, t, d] = q.dims();
    let [_, kv, s, _] = k.dims();
    let rep = h / kv;
    let k = k.unsqueeze_dim::<5>(2).expand([b, kv, rep, s, d]).reshape([b, h, s, d]);
    let v = v.unsqueeze_dim::<5>(2).expand([b, kv, rep, s, d]).reshape([b, h, s, d]);
    let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(scale) + bias;
    let _ = t;
    rlox_nn::burn::tensor::activation::softmax(scores, 3).matmul(v)
}

#[test]
fn autodiff_op_matches_eager_burn_gradients() {
    let device = rlox_nn::train_device(rlox_nn::DeviceKind::Cpu, 0).unwrap();
    let (b, h, kv, n, d) = (2, 4, 2, 37, 32);
    let mk = |seed: u64, dims: [usize; 4]| {
        Tensor::<4>::from_data(TensorData::new(randoms(seed, dims.iter().product()), dims), &device).require_grad()
    };
    let mask = Masking { causal: true, key_ranges: Some(vec![(0, n), (5, n)]), ..Default::default() };
    let mut bias = vec![0.0f32; b * n * n];
    for bi in 0..b {
        for t in 0..n {
            for j in 0..n {
                if !visible(&mask, bi, t, j) {
                    bias[(bi * n + t) * n + j] = -1e9;
                }
            }
        }
    }
    let bias = Tensor::<4>::from_data(TensorData::new(bias, [b, 1, n, n]), &device);
    let weights = Tensor::<4>::from_data(TensorData::new(randoms(9, b * h * n * d), [b, h, n, d]), &device);
    let run = |flash: bool| {
        let (q, k, v) = (mk(1, [b, h, n, d]), mk(2, [b, kv, n, d]), mk(3, [b, kv, n, d]));
        let o = if flash {
            flash_attention(q.clone(), k.clone(), v.clone(), &mask, 0.3, FlashConfig::default()).unwrap()
        } else {
            eager(q.clone(), k.clone(), v.clone(), bias.clone().expand([b, h, n, n]), 0.3)
        };
        // Zero the rows that see no key (eager averages them, flash gives 0): they are padding.
        let loss = (o.clone() * weights.clone()).slice([0..b, 0..h, 5..n, 0..d]).sum();
        let grads = loss.backward();
        let g = |t: &Tensor<4>| t.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap();
        (o.slice([0..b, 0..h, 5..n, 0..d]).into_data().try_to_vec::<f32>().unwrap(), g(&q), g(&k), g(&v))
    };
    let (fo, fq, fk, fv) = run(true);
    let (eo, eq, ek, ev) = run(false);
    for (name, x, y) in [("O", &fo, &eo), ("dQ", &fq, &eq), ("dK", &fk, &ek), ("dV", &fv, &ev)] {
        let want: Vec<f64> = y.iter().map(|&e| e as f64).collect();
        assert_close(name, x, &want, None, "autodiff vs eager");
    }
    // The plain (non-autodiff) device runs the same kernel.
    let plain = rlox_nn::cpu_device().unwrap();
    let q = Tensor::<4>::from_data(TensorData::new(randoms(1, b * h * n * d), [b, h, n, d]), &plain);
    let k = Tensor::<4>::from_data(TensorData::new(randoms(2, b * kv * n * d), [b, kv, n, d]), &plain);
    let v = Tensor::<4>::from_data(TensorData::new(randoms(3, b * kv * n * d), [b, kv, n, d]), &plain);
    let o = flash_attention(q, k, v, &mask, 0.3, FlashConfig::default()).unwrap();
    let o = o.slice([0..b, 0..h, 5..n, 0..d]).into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(o, fo);
}
