//! A language model's output layer fused with the log-softmax at the target tokens, in chunks of
//! rows: `logp[i] = log softmax(h[i] · W / T)[target[i]]` without ever holding the `[n, vocab]`
//! logits, forward or backward.
//!
//! Forward, per chunk of `rows` rows: one product into a reused `[rows, vocab]` buffer, then per row
//! its maximum, `sum exp` (the attention kernel's vectorised exponential) and log-sum-exp; only the
//! `n` log-sum-exps are kept. Backward, per chunk: the logits are recomputed, turned into
//! `dlogits = g/T · (onehot(target) − softmax)` in the same buffer, and two products follow:
//! `dh[chunk] = dlogits · Wᵀ` and `dW += (per-chunk outer product)`, the latter accumulated in place
//! into one weight-sized gradient (gemm with `read_dst`). Memory: the weight gradient (which any
//! backward pass needs), `n × hidden` for `dh`, one `[rows, vocab]` buffer and `n` floats.
//!
//! Compared with burn's autodiff of `log_softmax(h · W).gather(target)` this removes the `[n, vocab]`
//! logits, their softmax and their gradient (3 × 1.2 GB for 2048 tokens at Qwen2.5's vocabulary of
//! 151,936); compared with checkpointing each chunk as a block ([`crate::recompute`]) it adds the
//! chunks' weight gradients into one buffer instead of materialising a 545 MB `dW` per chunk and
//! summing them.
//!
//! Both weight layouts of a decoder are served: [`WeightLayout::VocabMajor`] (`[vocab, hidden]`, a
//! tied embedding, read in place) and [`WeightLayout::HiddenMajor`] (`[hidden, vocab]`, an untied
//! output layer stored `[in, out]`). f32, on burn's CPU backend (Flex), with or without autodiff;
//! [`token_logprobs`] returns `None` elsewhere and callers fall back to the plain graph.

use crate::attention::microkernel::{exp_sub, Isa};
use rayon::prelude::*;
use std::sync::Arc;

/// How the output layer's weight is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightLayout {
    /// `[vocab, hidden]` (an embedding used as the output layer: `logits = h · Wᵀ`).
    VocabMajor,
    /// `[hidden, vocab]` (a linear layer stored `[in, out]`: `logits = h · W`).
    HiddenMajor,
}

/// Sizes and settings of one call.
#[derive(Debug, Clone)]
pub struct HeadParams {
    /// Rows of `h` (tokens).
    pub n: usize,
    /// Width of `h`.
    pub hidden: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// Layout of the weight.
    pub layout: WeightLayout,
    /// The logits are divided by it.
    pub temperature: f32,
    /// Rows per chunk.
    pub rows: usize,
    /// One target id per row, each `< vocab`.
    pub targets: Arc<Vec<u32>>,
}

fn parallelism() -> gemm::Parallelism {
    if rayon::current_num_threads() > 1 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    }
}

/// `out[r, vocab] = h[r0 .. r0 + r] · W / T` (row-major, `out.len() == r * vocab`).
fn logits_chunk(h: &[f32], w: &[f32], p: &HeadParams, r0: usize, r: usize, out: &mut [f32]) {
    let (hd, v) = (p.hidden as isize, p.vocab as isize);
    // rhs is W seen as [hidden, vocab]: (k, col) at k * rs + col * cs.
    let (rhs_cs, rhs_rs) = match p.layout {
        WeightLayout::VocabMajor => (hd, 1),
        WeightLayout::HiddenMajor => (1, v),
    };
    // SAFETY: the strides describe `out` (r × vocab), `h[r0..r0 + r]` (r × hidden) and `w`
    // (hidden × vocab in either layout), all in bounds.
    unsafe {
        gemm::gemm(
            r,
            p.vocab,
            p.hidden,
            out.as_mut_ptr(),
            1,
            v,
            false,
            h.as_ptr().add(r0 * p.hidden),
            1,
            hd,
            w.as_ptr(),
            rhs_cs,
            rhs_rs,
            0.0,
            1.0 / p.temperature,
            false,
            false,
            false,
            parallelism(),
        );
    }
}

/// The largest value, in 16 lanes so that it vectorises.
fn row_max(x: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = if v > *l { v } else { *l };
        }
    }
    let tail = chunks.remainder().iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
    lanes.iter().fold(tail, |a, &v| a.max(v))
}

/// `logp[i]` and `lse[i]` (the log-sum-exp of row `i`'s scaled logits) for every row.
pub fn forward(h: &[f32], w: &[f32], p: &HeadParams) -> (Vec<f32>, Vec<f32>) {
    let isa = Isa::detect();
    let (mut logp, mut lse) = (vec![0.0f32; p.n], vec![0.0f32; p.n]);
    let mut buf = vec![0.0f32; p.rows.min(p.n) * p.vocab];
    for r0 in (0..p.n).step_by(p.rows) {
        let r = p.rows.min(p.n - r0);
        let out = &mut buf[..r * p.vocab];
        logits_chunk(h, w, p, r0, r, out);
        out.par_chunks_mut(p.vocab)
            .zip(logp[r0..r0 + r].par_iter_mut().zip(lse[r0..r0 + r].par_iter_mut()))
            .enumerate()
            .for_each(|(i, (row, (lp, ls)))| {
                let target = row[p.targets[r0 + i] as usize];
                let m = row_max(row);
                let s = exp_sub(isa, row, m);
                *ls = m + s.ln();
                *lp = target - *ls;
            });
    }
    (logp, lse)
}

/// `(dh, dW)` for the incoming gradient `dlogp` (`dh`: `[n, hidden]`; `dW`: the weight's layout).
pub fn backward(h: &[f32], w: &[f32], p: &HeadParams, lse: &[f32], dlogp: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let isa = Isa::detect();
    let (hd, v) = (p.hidden as isize, p.vocab as isize);
    let inv_t = 1.0 / p.temperature;
    let mut dh = vec![0.0f32; p.n * p.hidden];
    let mut dw = vec![0.0f32; p.vocab * p.hidden];
    let mut buf = vec![0.0f32; p.rows.min(p.n) * p.vocab];
    for r0 in (0..p.n).step_by(p.rows) {
        let r = p.rows.min(p.n - r0);
        let d = &mut buf[..r * p.vocab];
        logits_chunk(h, w, p, r0, r, d);
        d.par_chunks_mut(p.vocab).enumerate().for_each(|(i, row)| {
            let g = dlogp[r0 + i] * inv_t;
            exp_sub(isa, row, lse[r0 + i]); // the softmax
            row.iter_mut().for_each(|x| *x *= -g);
            row[p.targets[r0 + i] as usize] += g;
        });
        // dh[chunk] (r × hidden) = dlogits (r × vocab) · W seen as [vocab, hidden].
        let (w_cs, w_rs) = match p.layout {
            WeightLayout::VocabMajor => (1, hd),
            WeightLayout::HiddenMajor => (v, 1),
        };
        // SAFETY: every pointer and stride stays inside `dh`, `d`, `w` and `h` (sizes above).
        unsafe {
            gemm::gemm(
                r,
                p.hidden,
                p.vocab,
                dh.as_mut_ptr().add(r0 * p.hidden),
                1,
                hd,
                false,
                d.as_ptr(),
                1,
                v,
                w.as_ptr(),
                w_cs,
                w_rs,
                0.0,
                1.0,
                false,
                false,
                false,
                parallelism(),
            );
            let hc = h.as_ptr().add(r0 * p.hidden);
            match p.layout {
                // dW [vocab, hidden] += dlogitsᵀ (vocab × r) · h[chunk] (r × hidden).
                WeightLayout::VocabMajor => gemm::gemm(
                    p.vocab,
                    p.hidden,
                    r,
                    dw.as_mut_ptr(),
                    1,
                    hd,
                    true,
                    d.as_ptr(),
                    v,
                    1,
                    hc,
                    1,
                    hd,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    parallelism(),
                ),
                // dW [hidden, vocab] += h[chunk]ᵀ (hidden × r) · dlogits (r × vocab).
                WeightLayout::HiddenMajor => gemm::gemm(
                    p.hidden,
                    p.vocab,
                    r,
                    dw.as_mut_ptr(),
                    1,
                    v,
                    true,
                    hc,
                    hd,
                    1,
                    d.as_ptr(),
                    1,
                    v,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    parallelism(),
                ),
            }
        }
    }
    (dh, dw)
}

pub use imp::token_logprobs;

mod imp {
    use super::{backward, forward, HeadParams, WeightLayout};
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::autodiff::Autodiff;
    use burn::backend::flex::FlexTensor;
    use burn::backend::Flex;
    use burn::tensor::{DType, Tensor, TensorData};
    use std::sync::Arc;

    type Ad = Autodiff<Flex, NoCheckpointing>;

    /// The values of a Flex f32 tensor, read in place when contiguous.
    fn values(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
        match t.as_slice::<f32>() {
            Some(s) => std::borrow::Cow::Borrowed(s),
            None => std::borrow::Cow::Owned(t.to_contiguous().as_slice::<f32>().expect("f32").to_vec()),
        }
    }

    #[derive(Debug, Clone)]
    struct State {
        h: FlexTensor,
        w: FlexTensor,
        lse: Arc<Vec<f32>>,
        params: HeadParams,
    }

    #[derive(Debug)]
    struct HeadBackward;

    impl Backward<Flex, 2> for HeadBackward {
        type State = State;

        fn backward(self, ops: Ops<State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
            let [node_h, node_w] = ops.parents;
            let dlogp = grads.consume::<Flex>(&ops.node);
            let st = ops.state;
            let p = &st.params;
            let (dh, dw) = backward(&values(&st.h), &values(&st.w), p, &st.lse, &values(&dlogp));
            if let Some(node) = node_h {
                grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(dh, [p.n, p.hidden])));
            }
            if let Some(node) = node_w {
                let shape = match p.layout {
                    WeightLayout::VocabMajor => [p.vocab, p.hidden],
                    WeightLayout::HiddenMajor => [p.hidden, p.vocab],
                };
                grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(dw, shape)));
            }
        }
    }

    /// `log softmax(h · W / temperature)[targets]`, `[n]`, through the fused kernel (module docs);
    /// `None` when it does not apply (not Flex, not f32, shapes that do not fit, a target outside the
    /// vocabulary): the caller then uses the plain graph.
    pub fn token_logprobs(
        h: &Tensor<2>,
        w: &Tensor<2>,
        layout: WeightLayout,
        targets: &[u32],
        temperature: f32,
        rows: usize,
    ) -> Option<Tensor<1>> {
        if h.dtype() != DType::F32 || w.dtype() != DType::F32 || !crate::attention::supports(&h.device()) {
            return None;
        }
        let [n, hidden] = h.dims();
        let vocab = match (layout, w.dims()) {
            (WeightLayout::VocabMajor, [v, hd]) if hd == hidden => v,
            (WeightLayout::HiddenMajor, [hd, v]) if hd == hidden => v,
            _ => return None,
        };
        if targets.len() != n || targets.iter().any(|&t| t as usize >= vocab) || n == 0 || temperature <= 0.0 {
            return None;
        }
        let params = HeadParams {
            n,
            hidden,
            vocab,
            layout,
            temperature,
            rows: rows.max(1),
            targets: Arc::new(targets.to_vec()),
        };
        let out_of = |logp: Vec<f32>| FlexTensor::from_data(TensorData::new(logp, [n]));
        match (h.clone().try_into_primitive::<Ad>(), w.clone().try_into_primitive::<Ad>()) {
            (Ok(ha), Ok(wa)) => {
                let (hp, wp) = (ha.primitive().clone(), wa.primitive().clone());
                let (logp, lse) = forward(&values(&hp), &values(&wp), &params);
                let out =
                    match HeadBackward.prepare::<NoCheckpointing>([ha.node(), wa.node()]).compute_bound().stateful() {
                        OpsKind::Tracked(prep) => {
                            prep.finish(State { h: hp, w: wp, lse: Arc::new(lse), params }, out_of(logp))
                        }
                        OpsKind::UnTracked(prep) => prep.finish(out_of(logp)),
                    };
                Some(Tensor::from_primitive::<Ad>(out))
            }
            _ => {
                // Without autodiff (or a mix this path does not take): the forward alone.
                let hp = h.clone().inner().try_into_primitive::<Flex>().ok()?;
                let wp = w.clone().inner().try_into_primitive::<Flex>().ok()?;
                if h.is_autodiff() || w.is_autodiff() {
                    return None;
                }
                let (logp, _) = forward(&values(&hp), &values(&wp), &params);
                Some(Tensor::from_primitive::<Flex>(out_of(logp)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{train_device, DeviceKind};
    use burn::tensor::activation::log_softmax;
    use burn::tensor::{Distribution, Int, Tensor, TensorData};

    /// The plain graph: `log_softmax(h · W / T).gather(targets)`.
    fn plain(h: Tensor<2>, w: Tensor<2>, layout: WeightLayout, targets: &[u32], t: f32) -> Tensor<1> {
        let logits = match layout {
            WeightLayout::VocabMajor => h.matmul(w.transpose()),
            WeightLayout::HiddenMajor => h.matmul(w),
        };
        let n = targets.len();
        let idx: Vec<i64> = targets.iter().map(|&x| x as i64).collect();
        let idx = Tensor::<2, Int>::from_data(TensorData::new(idx, [n, 1]), &logits.device());
        log_softmax(logits.div_scalar(t), 1).gather(1, idx).reshape([n])
    }

    fn flat<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    fn worst(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    #[test]
    fn values_and_gradients_equal_the_plain_graph() {
        let device = train_device(DeviceKind::Cpu, 5).unwrap();
        let (n, hidden, vocab) = (23, 16, 301);
        for layout in [WeightLayout::VocabMajor, WeightLayout::HiddenMajor] {
            for (rows, t) in [(1, 1.0f32), (5, 0.7), (64, 1.3)] {
                let h = Tensor::<2>::random([n, hidden], Distribution::Normal(0.0, 1.0), &device).require_grad();
                let shape = if layout == WeightLayout::VocabMajor { [vocab, hidden] } else { [hidden, vocab] };
                let w = Tensor::<2>::random(shape, Distribution::Normal(0.0, 0.5), &device).require_grad();
                let targets: Vec<u32> = (0..n).map(|i| ((i * 37 + 11) % vocab) as u32).collect();
                // A weighted sum, so that each row's incoming gradient differs.
                let coef: Vec<f32> = (0..n).map(|i| 0.5 + (i % 7) as f32 * 0.25).collect();
                let c = Tensor::<1>::from_data(TensorData::new(coef, [n]), &device);
                let fused = token_logprobs(&h, &w, layout, &targets, t, rows).expect("applies on Flex f32");
                let reference = plain(h.clone(), w.clone(), layout, &targets, t);
                let what = format!("{layout:?} rows {rows} T {t}");
                assert!(worst(&flat(fused.clone()), &flat(reference.clone())) < 2e-5, "{what}: values");
                let gf = (fused * c.clone()).sum().backward();
                let gp = (reference * c).sum().backward();
                let dh = worst(&flat(h.grad(&gf).unwrap()), &flat(h.grad(&gp).unwrap()));
                let dw = worst(&flat(w.grad(&gf).unwrap()), &flat(w.grad(&gp).unwrap()));
                assert!(dh < 2e-5 && dw < 2e-5, "{what}: dh {dh}, dw {dw}");
            }
        }
    }

    #[test]
    fn plain_devices_and_bad_input() {
        let device = crate::cpu_device().unwrap();
        let h = Tensor::<2>::random([4, 8], Distribution::Normal(0.0, 1.0), &device);
        let w = Tensor::<2>::random([50, 8], Distribution::Normal(0.0, 1.0), &device);
        let t = [1u32, 2, 3, 49];
        let a = flat(token_logprobs(&h, &w, WeightLayout::VocabMajor, &t, 1.0, 3).unwrap());
        let b = flat(plain(h.clone(), w.clone(), WeightLayout::VocabMajor, &t, 1.0));
        assert!(worst(&a, &b) < 1e-5);
        assert!(token_logprobs(&h, &w, WeightLayout::VocabMajor, &[1, 2, 3, 50], 1.0, 3).is_none());
        assert!(token_logprobs(&h, &w, WeightLayout::HiddenMajor, &t, 1.0, 3).is_none());
        assert!(token_logprobs(&h, &w, WeightLayout::VocabMajor, &t[..3], 1.0, 3).is_none());
    }
}
