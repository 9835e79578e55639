//! The backward pass: `D = rowsum(dO ∘ O)` first, then per key/value block the score tiles are
//! recomputed from Q, K and the log-sum-exp and turned into dV, dK (owned by the block) and dQ
//! (shared by all key blocks of a head).
//!
//! Parallelism: with at least as many (batch, key/value head) pairs as threads, one task per pair
//! walks its key blocks in order and owns the dQ rows of its query heads outright. With fewer pairs
//! than threads (a single long sequence) that would leave cores idle, so the tasks become
//! (batch, key/value head, key block) and each thread adds its dQ contributions to a partial
//! buffer of its own; the partials are summed at the end. Either way no N × N buffer exists: the
//! extra memory is O(threads · N · d).

use super::forward::{key_span, mask_row, pack_transposed};
use super::microkernel::{exp_sub, gemm, Isa};
use super::{FlashParams, SharedMut};
use rayon::prelude::*;
use rlox_core::Result;
use std::sync::Mutex;

/// Gradients `(dQ, dK, dV)` of the attention output given its gradient `d_o`, from the inputs, the
/// output `o` and the log-sum-exp `lse` of [`super::forward`]. Shapes as in the forward pass.
#[allow(clippy::type_complexity)]
pub fn backward(
    p: &FlashParams,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    o: &[f32],
    lse: &[f32],
    d_o: &[f32],
) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    p.validate()?;
    let s = p.shape;
    p.check_len("q", q.len(), s.q_elems())?;
    p.check_len("k", k.len(), s.kv_elems())?;
    p.check_len("v", v.len(), s.kv_elems())?;
    p.check_len("o", o.len(), s.q_elems())?;
    p.check_len("d_o", d_o.len(), s.q_elems())?;
    p.check_len("lse", lse.len(), s.rows())?;
    let isa = Isa::detect();
    let d = s.head_dim;
    let (_, _, _, bk) = p.config.tiles(d);

    // D = rowsum(dO ∘ O), one float per row.
    let mut delta = vec![0.0f32; s.rows()];
    delta.par_chunks_mut(1024).enumerate().for_each(|(c, out)| {
        for (r, x) in out.iter_mut().enumerate() {
            let at = (c * 1024 + r) * d;
            *x = d_o[at..at + d].iter().zip(&o[at..at + d]).map(|(a, b)| a * b).sum();
        }
    });

    let mut dq = vec![0.0f32; s.q_elems()];
    let mut dk = vec![0.0f32; s.kv_elems()];
    let mut dv = vec![0.0f32; s.kv_elems()];
    let group = s.heads / s.kv_heads;
    let pairs = s.batch * s.kv_heads;
    let n_kb = s.k_len.div_ceil(bk);
    let group_len = group * s.q_len * d; // dQ floats of the query heads sharing one key/value head
    let inputs = Inputs { q, k, v, d_o, lse, delta: &delta };
    let (dqp, dkp, dvp) = (SharedMut(dq.as_mut_ptr()), SharedMut(dk.as_mut_ptr()), SharedMut(dv.as_mut_ptr()));
    let threads = rayon::current_num_threads();
    if pairs >= threads || n_kb == 1 {
        (0..pairs).into_par_iter().for_each_init(
            || Scratch::new(p),
            |scratch, pair| {
                // SAFETY: the dQ rows of this pair's query heads and its dK/dV belong to this task.
                let dq_group = unsafe { dqp.slice(pair * group_len, group_len) };
                for kb in 0..n_kb {
                    let (j0, cols) = (kb * bk, (s.k_len - kb * bk).min(bk));
                    let at = (pair * s.k_len + j0) * d;
                    // SAFETY: as above.
                    let (dk_t, dv_t) = unsafe { (dkp.slice(at, cols * d), dvp.slice(at, cols * d)) };
                    key_block(isa, p, &inputs, pair, j0, cols, dq_group, dk_t, dv_t, scratch);
                }
            },
        );
    } else {
        let partials: Vec<Mutex<Option<Vec<f32>>>> = (0..threads).map(|_| Mutex::new(None)).collect();
        (0..pairs * n_kb).into_par_iter().for_each_init(
            || Scratch::new(p),
            |scratch, task| {
                let (pair, kb) = (task / n_kb, task % n_kb);
                let (j0, cols) = (kb * bk, (s.k_len - kb * bk).min(bk));
                let at = (pair * s.k_len + j0) * d;
                // SAFETY: this task owns the dK/dV rows of its key block.
                let (dk_t, dv_t) = unsafe { (dkp.slice(at, cols * d), dvp.slice(at, cols * d)) };
                let slot = rayon::current_thread_index().unwrap_or(0) % threads;
                let mut guard = partials[slot].lock().unwrap_or_else(|e| e.into_inner());
                let part = guard.get_or_insert_with(|| vec![0.0f32; s.q_elems()]);
                let dq_group = &mut part[pair * group_len..(pair + 1) * group_len];
                key_block(isa, p, &inputs, pair, j0, cols, dq_group, dk_t, dv_t, scratch);
            },
        );
        let parts: Vec<Vec<f32>> =
            partials.into_iter().filter_map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner())).collect();
        dq.par_chunks_mut(4096).enumerate().for_each(|(c, out)| {
            for part in &parts {
                for (x, y) in out.iter_mut().zip(&part[c * 4096..]) {
                    *x += y;
                }
            }
        });
    }
    Ok((dq, dk, dv))
}

/// The read-only inputs of the backward pass.
struct Inputs<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    d_o: &'a [f32],
    lse: &'a [f32],
    delta: &'a [f32],
}

/// Buffers reused by the tasks of one thread.
struct Scratch {
    /// `scale · Kᵀ` of the key tile, `d × cols`.
    kt: Vec<f32>,
    /// `Vᵀ` of the value tile, `d × cols`.
    vt: Vec<f32>,
    /// Probabilities `P`, `rows × cols`.
    pm: Vec<f32>,
    /// `dP`, then `scale · dS`, `rows × cols`.
    ds: Vec<f32>,
    /// A transposed `rows × cols` tile (`Pᵀ`, then `dSᵀ`), `cols × rows`.
    tr: Vec<f32>,
    /// Key interval of each row of the query block.
    ranges: Vec<(usize, usize)>,
}

impl Scratch {
    fn new(p: &FlashParams) -> Self {
        let d = p.shape.head_dim;
        let (_, _, bq, bk) = p.config.tiles(d);
        Scratch {
            kt: vec![0.0; d * bk],
            vt: vec![0.0; d * bk],
            pm: vec![0.0; bq * bk],
            ds: vec![0.0; bq * bk],
            tr: vec![0.0; bq * bk],
            ranges: vec![(0, 0); bq],
        }
    }
}

/// Keys `j0..j0 + cols` of key/value head `pair` (= batch · kv_heads + kv head): adds their
/// contribution to `dq_group` (the dQ of the query heads of the group, `[group, N, d]`) and
/// accumulates their own `dk`/`dv` tiles (`cols × d`).
#[allow(clippy::too_many_arguments)]
fn key_block(
    isa: Isa,
    p: &FlashParams,
    x: &Inputs,
    pair: usize,
    j0: usize,
    cols: usize,
    dq_group: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
    sc: &mut Scratch,
) {
    let s = p.shape;
    let d = s.head_dim;
    let (_, _, bq, _) = p.config.tiles(d);
    let group = s.heads / s.kv_heads;
    let b = pair / s.kv_heads;
    let kv_at = (pair * s.k_len + j0) * d;
    let (k_t, v_t) = (&x.k[kv_at..kv_at + cols * d], &x.v[kv_at..kv_at + cols * d]);
    pack_transposed(k_t, d, cols, &mut sc.kt);
    sc.kt[..d * cols].iter_mut().for_each(|e| *e *= p.scale);
    pack_transposed(v_t, d, cols, &mut sc.vt);
    for qb in 0..s.q_len.div_ceil(bq) {
        let r0 = qb * bq;
        let rows = (s.q_len - r0).min(bq);
        // Does any row of this query block see any of these keys?
        let mut any = false;
        let mut whole = true;
        for (i, r) in sc.ranges[..rows].iter_mut().enumerate() {
            *r = p.mask.row_range(b, r0 + i, s.k_len);
            let (lo, hi) = *r;
            any |= lo < hi && lo < j0 + cols && hi > j0;
            whole &= lo <= j0 && hi >= j0 + cols;
        }
        if !any || key_span(&sc.ranges[..rows]).is_none() {
            continue;
        }
        for g in 0..group {
            let h = (pair % s.kv_heads) * group + g;
            let row0 = (b * s.heads + h) * s.q_len + r0; // global row index of the tile's first row
            let q_t = &x.q[row0 * d..(row0 + rows) * d];
            let do_t = &x.d_o[row0 * d..(row0 + rows) * d];
            let pm = &mut sc.pm[..rows * cols];
            let ds = &mut sc.ds[..rows * cols];
            // P = exp(scale · Q Kᵀ − lse), 0 where masked.
            gemm(isa, (rows, cols, d), q_t, d, &sc.kt, cols, pm, cols, false);
            for (i, prow) in pm.chunks_exact_mut(cols).enumerate() {
                let (lo, hi) = sc.ranges[i];
                let lse = x.lse[row0 + i];
                if lse == f32::NEG_INFINITY || (!whole && !mask_row(prow, j0, lo, hi)) {
                    prow.fill(0.0);
                    continue;
                }
                exp_sub(isa, prow, lse);
            }
            // dV += Pᵀ dO.
            transpose(pm, rows, cols, &mut sc.tr);
            gemm(isa, (cols, d, rows), &sc.tr, rows, do_t, d, dv, d, true);
            // dP = dO Vᵀ; dS = P ∘ (dP − D), times the scale.
            gemm(isa, (rows, cols, d), do_t, d, &sc.vt, cols, ds, cols, false);
            for (i, (dsrow, prow)) in ds.chunks_exact_mut(cols).zip(pm.chunks_exact(cols)).enumerate() {
                let di = x.delta[row0 + i];
                for (e, &pe) in dsrow.iter_mut().zip(prow) {
                    *e = p.scale * pe * (*e - di);
                }
            }
            // dQ += scale · dS K.
            let dq_t = &mut dq_group[(g * s.q_len + r0) * d..(g * s.q_len + r0 + rows) * d];
            gemm(isa, (rows, d, cols), ds, cols, k_t, d, dq_t, d, true);
            // dK += scale · dSᵀ Q.
            transpose(ds, rows, cols, &mut sc.tr);
            gemm(isa, (cols, d, rows), &sc.tr, rows, q_t, d, dk, d, true);
        }
    }
}

/// `dst` (`cols × rows`) = `src` (`rows × cols`) transposed.
fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    for (i, row) in src.chunks_exact(cols).enumerate().take(rows) {
        for (j, &e) in row.iter().enumerate() {
            dst[j * rows + i] = e;
        }
    }
}
