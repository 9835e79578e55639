//! The forward pass, FlashAttention-2 order: one task per (batch, head, query block); inside it,
//! the key/value tiles the block can see, each folded into the running softmax of every row.
//!
//! The key tiles are packed transposed (`d × cols`, what the `Q Kᵀ` micro-kernel streams) once per
//! key/value head before the tasks start, not once per query block: every query block of a head
//! reads the same tiles, and re-packing them per block cost about as much as the `Q Kᵀ` product
//! itself. The packed copy is as large as `K`, so memory stays linear in N.

use super::microkernel::{exp_sub, gemm, Isa};
use super::{FlashParams, SharedMut};
use rayon::prelude::*;
use rlox_core::Result;

/// Attention output `O` (`[batch, heads, N, d]`) and the log-sum-exp of every row
/// (`[batch, heads, N]`, `-inf` for a row that sees no key, whose output is 0).
///
/// `q` is `[batch, heads, N, d]`, `k` and `v` are `[batch, kv_heads, S, d]`, all contiguous.
pub fn forward(p: &FlashParams, q: &[f32], k: &[f32], v: &[f32]) -> Result<(Vec<f32>, Vec<f32>)> {
    p.validate()?;
    let s = p.shape;
    p.check_len("q", q.len(), s.q_elems())?;
    p.check_len("k", k.len(), s.kv_elems())?;
    p.check_len("v", v.len(), s.kv_elems())?;
    let isa = Isa::detect();
    let d = s.head_dim;
    let (bq, bk, _, _) = p.config.tiles(d);
    let mut out = vec![0.0f32; s.q_elems()];
    let mut lse = vec![f32::NEG_INFINITY; s.rows()];
    let n_qb = s.q_len.div_ceil(bq);
    let group = s.heads / s.kv_heads;
    let kt = pack_key_tiles(k, s.batch * s.kv_heads, s.k_len, d, bk);
    let (outp, lsep) = (SharedMut(out.as_mut_ptr()), SharedMut(lse.as_mut_ptr()));
    (0..s.batch * s.heads * n_qb).into_par_iter().for_each_init(
        || Scratch::new(bq, bk, d),
        |scratch, task| {
            let (bh, qb) = (task / n_qb, task % n_qb);
            let (b, h) = (bh / s.heads, bh % s.heads);
            let r0 = qb * bq;
            let rows = (s.q_len - r0).min(bq);
            let q_at = (bh * s.q_len + r0) * d;
            let kv_at = (b * s.kv_heads + h / group) * s.k_len * d;
            // SAFETY: the rows r0..r0+rows of head (b, h) belong to this task only.
            let (o, l) = unsafe { (outp.slice(q_at, rows * d), lsep.slice(bh * s.q_len + r0, rows)) };
            let kv = (&kt[kv_at..kv_at + s.k_len * d], &v[kv_at..kv_at + s.k_len * d]);
            query_block(isa, p, b, r0, &q[q_at..q_at + rows * d], kv, o, l, scratch);
        },
    );
    Ok((out, lse))
}

/// Every key head cut into tiles of `bk` keys (the last one shorter), each tile stored transposed
/// (`d × cols`) at the place the tile has in `k` (`heads × S × d`): tile `t` of head `h` starts at
/// `(h S + t bk) d`.
fn pack_key_tiles(k: &[f32], heads: usize, k_len: usize, d: usize, bk: usize) -> Vec<f32> {
    let mut kt = vec![0.0f32; k.len()];
    if k_len * d == 0 {
        return kt;
    }
    debug_assert_eq!(k.len(), heads * k_len * d);
    kt.par_chunks_mut(k_len * d).zip(k.par_chunks(k_len * d)).for_each(|(dst, src)| {
        let mut j0 = 0;
        while j0 < k_len {
            let cols = (k_len - j0).min(bk);
            pack_transposed(&src[j0 * d..(j0 + cols) * d], d, cols, &mut dst[j0 * d..(j0 + cols) * d]);
            j0 += cols;
        }
    });
    kt
}

/// Buffers reused by the tasks of one thread.
struct Scratch {
    /// The query tile times the scale, `rows × d`.
    qs: Vec<f32>,
    /// Scores, then probabilities, `rows × cols`.
    sc: Vec<f32>,
    /// Running row maxima.
    m: Vec<f32>,
    /// Running row sums.
    l: Vec<f32>,
    /// The key interval of each row.
    ranges: Vec<(usize, usize)>,
}

impl Scratch {
    fn new(bq: usize, bk: usize, d: usize) -> Self {
        Scratch {
            qs: vec![0.0; bq * d],
            sc: vec![0.0; bq * bk],
            m: vec![0.0; bq],
            l: vec![0.0; bq],
            ranges: vec![(0, 0); bq],
        }
    }
}

/// Rows `r0..r0 + rows` of one (batch, head): `q` is their `rows × d` tile, `kt` the whole key head
/// packed by [`pack_key_tiles`], `v` the whole `S × d` value head, `o`/`lse` their outputs.
#[allow(clippy::too_many_arguments)]
fn query_block(
    isa: Isa,
    p: &FlashParams,
    b: usize,
    r0: usize,
    q: &[f32],
    (kt, v): (&[f32], &[f32]),
    o: &mut [f32],
    lse: &mut [f32],
    sc: &mut Scratch,
) {
    let d = p.shape.head_dim;
    let rows = lse.len();
    let (_, bk, _, _) = p.config.tiles(d);
    for (i, r) in sc.ranges[..rows].iter_mut().enumerate() {
        *r = p.mask.row_range(b, r0 + i, p.shape.k_len);
    }
    let ranges = &sc.ranges[..rows];
    let Some((kmin, kmax)) = key_span(ranges) else {
        return; // no row sees any key: O = 0, lse = -inf (the initial values)
    };
    for (x, y) in sc.qs[..rows * d].iter_mut().zip(q) {
        *x = y * p.scale;
    }
    sc.m[..rows].fill(f32::NEG_INFINITY);
    sc.l[..rows].fill(0.0);
    let k_len = p.shape.k_len;
    let mut j0 = kmin;
    while j0 < kmax {
        // The packed tile holding key j0, and the keys of it that this block needs.
        let tile = j0 / bk * bk;
        let tile_cols = (k_len - tile).min(bk);
        let cols = (kmax - j0).min(tile + tile_cols - j0);
        let b_tile = &kt[tile * d + (j0 - tile)..(tile + tile_cols) * d];
        let s = &mut sc.sc[..rows * cols];
        gemm(isa, (rows, cols, d), &sc.qs, d, b_tile, tile_cols, s, cols, false);
        let whole = ranges.iter().all(|&(lo, hi)| lo <= j0 && hi >= j0 + cols);
        for (i, srow) in s.chunks_exact_mut(cols).enumerate() {
            let (lo, hi) = ranges[i];
            if !whole && !mask_row(srow, j0, lo, hi) {
                srow.fill(0.0); // this row sees nothing here: a zero row of P adds nothing
                continue;
            }
            let m_new = sc.m[i].max(row_max(srow));
            let alpha = if sc.m[i] == f32::NEG_INFINITY { 0.0 } else { (sc.m[i] - m_new).exp() };
            let sum = exp_sub(isa, srow, m_new);
            sc.l[i] = sc.l[i] * alpha + sum;
            sc.m[i] = m_new;
            if alpha != 1.0 {
                o[i * d..(i + 1) * d].iter_mut().for_each(|x| *x *= alpha);
            }
        }
        gemm(isa, (rows, d, cols), s, cols, &v[j0 * d..], d, o, d, true);
        j0 += cols;
    }
    for i in 0..rows {
        let orow = &mut o[i * d..(i + 1) * d];
        if sc.l[i] > 0.0 {
            let inv = 1.0 / sc.l[i];
            orow.iter_mut().for_each(|x| *x *= inv);
            lse[i] = sc.m[i] + sc.l[i].ln();
        } else {
            orow.fill(0.0);
            lse[i] = f32::NEG_INFINITY;
        }
    }
}

/// The smallest interval of keys covering every row's non-empty interval, or `None` when every row
/// is empty.
pub(super) fn key_span(ranges: &[(usize, usize)]) -> Option<(usize, usize)> {
    ranges.iter().filter(|(lo, hi)| lo < hi).fold(None, |acc, &(lo, hi)| match acc {
        None => Some((lo, hi)),
        Some((a, b)) => Some((a.min(lo), b.max(hi))),
    })
}

/// Set the scores of keys outside `[lo, hi)` to `-inf`; `srow` holds keys `j0..j0 + len`.
/// Returns false when the row sees none of them.
#[inline]
pub(super) fn mask_row(srow: &mut [f32], j0: usize, lo: usize, hi: usize) -> bool {
    let len = srow.len();
    let a = lo.saturating_sub(j0).min(len);
    let e = hi.saturating_sub(j0).min(len);
    if a >= e {
        return false;
    }
    srow[..a].fill(f32::NEG_INFINITY);
    srow[e..].fill(f32::NEG_INFINITY);
    true
}

/// Copy the `cols × d` row-major tile `src` into `dst` as `d × cols`.
#[inline]
pub(super) fn pack_transposed(src: &[f32], d: usize, cols: usize, dst: &mut [f32]) {
    for (j, row) in src.chunks_exact(d).enumerate().take(cols) {
        for (c, &x) in row.iter().enumerate() {
            dst[c * cols + j] = x;
        }
    }
}

/// The maximum of a row, in 16 lanes so that it vectorises.
#[inline]
pub(super) fn row_max(x: &[f32]) -> f32 {
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
