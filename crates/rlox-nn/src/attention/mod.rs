//! Exact scaled dot-product attention in tiles (FlashAttention-2 order), forward and backward, on
//! the CPU, with memory that grows with the sequence length N and never with N².
//!
//! `O = softmax(scale · Q Kᵀ + mask) V` per (batch, query head), with grouped-query attention
//! (query head `h` reads key/value head `h / (heads / kv_heads)`).
//!
//! * [`forward`]: per (batch, head, query block) the key/value blocks are visited in order while each
//!   row keeps its running maximum, running sum and an unnormalised output; the output is
//!   normalised once at the end and only the row's log-sum-exp (N floats per head) is kept for the
//!   backward pass.
//! * [`backward`]: `D = rowsum(dO ∘ O)` first; then the score tiles are recomputed from Q, K and the
//!   log-sum-exp, and `dV += Pᵀ dO`, `dP = dO Vᵀ`, `dS = P ∘ (dP − D)`, `dQ += scale · dS K`,
//!   `dK += scale · dSᵀ Q`; no N × N buffer exists anywhere.
//! * Masks are described, never materialised ([`Masking`]): every supported mask — causal (with a
//!   cache offset `past`), sliding window, per-sequence key ranges (left or right padding) and
//!   packed variable-length sequences — lets query row `i` see one contiguous interval of keys
//!   `[lo(i), hi(i))`. A tile wholly outside every row's interval is skipped (causal attention
//!   visits about half the tiles), a tile wholly inside needs no masking, and only the tiles that
//!   straddle a boundary are masked element by element. A row with an empty interval outputs zeros
//!   (not NaN) and gets zero gradients.
//! * The tile products run on register-blocked micro-kernels ([`microkernel`]: AVX-512, AVX2/FMA,
//!   portable; chosen at run time), and the work is spread with rayon over (batch, head, query
//!   block) forward and over (batch, key/value head, key block) backward, with one dQ partial per
//!   thread when there are fewer (batch, key/value head) pairs than threads.
//! * [`autodiff`]: the kernel as a burn operation with its own backward, through burn's backend
//!   extension API (see that module for why and how).
//!
//! The data layout is `[batch, heads, N, head_dim]`, contiguous, f32, for Q, O, dO, dQ and
//! `[batch, kv_heads, S, head_dim]` for K, V, dK, dV.

pub mod autodiff;
mod backward;
mod forward;
pub mod microkernel;

pub use autodiff::{flash_attention, supports};
pub use backward::backward;
pub use forward::forward;
pub use microkernel::Isa;

use rlox_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// Sizes of one attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttnShape {
    /// Batch size.
    pub batch: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (`heads` must be a multiple of it).
    pub kv_heads: usize,
    /// Queries per sequence (N).
    pub q_len: usize,
    /// Keys per sequence (S).
    pub k_len: usize,
    /// Features per head.
    pub head_dim: usize,
}

impl AttnShape {
    /// Number of f32 in Q (and O).
    pub fn q_elems(&self) -> usize {
        self.batch * self.heads * self.q_len * self.head_dim
    }
    /// Number of f32 in K (and V).
    pub fn kv_elems(&self) -> usize {
        self.batch * self.kv_heads * self.k_len * self.head_dim
    }
    /// Number of rows (f32 in the log-sum-exp).
    pub fn rows(&self) -> usize {
        self.batch * self.heads * self.q_len
    }
}

/// Which keys each query sees, as a description (nothing N × N is built).
///
/// Query `t` of sequence `b` sees key `j` iff all of the enabled conditions hold:
/// * `causal`: `j <= past + t` (query `t` sits at key position `past + t`; `past` is the number of
///   cached keys before the first query, 0 in training);
/// * `window = Some(w)`: `past + t - j < w` (sliding window; implies causal ordering of positions);
/// * `key_ranges = Some(r)`: `r[b].0 <= j < r[b].1` (padding: left padding starts the range late,
///   right padding ends it early);
/// * `segments = Some(offsets)`: packed variable-length sequences in one row of the batch
///   (`q_len == k_len`, cumulative offsets `0 = o_0 < o_1 < … < o_m = N`): `t` and `j` lie in the same
///   segment. With `causal` the positions are the packed ones, which is the same thing within a
///   segment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Masking {
    /// Causal attention (default off).
    pub causal: bool,
    /// Cached keys before the first query (default 0).
    pub past: usize,
    /// Sliding window length, if any (default none).
    pub window: Option<usize>,
    /// Per-sequence valid key range `[start, end)` (default: all keys).
    pub key_ranges: Option<Vec<(usize, usize)>>,
    /// Cumulative offsets of packed sequences (default: not packed).
    pub segments: Option<Vec<usize>>,
}

impl Masking {
    /// Causal attention without padding.
    pub fn causal() -> Self {
        Masking { causal: true, ..Default::default() }
    }

    /// The interval of keys `[lo, hi)` that query `t` of sequence `b` sees (empty when `lo >= hi`).
    #[inline]
    pub fn row_range(&self, b: usize, t: usize, k_len: usize) -> (usize, usize) {
        let (mut lo, mut hi) = (0, k_len);
        let pos = self.past + t;
        if self.causal || self.window.is_some() {
            hi = hi.min(pos + 1);
        }
        if let Some(w) = self.window {
            lo = lo.max((pos + 1).saturating_sub(w));
        }
        if let Some(r) = &self.key_ranges {
            lo = lo.max(r[b].0);
            hi = hi.min(r[b].1);
        }
        if let Some(offsets) = &self.segments {
            // The segment holding t: offsets[s] <= t < offsets[s + 1].
            let s = offsets.partition_point(|&o| o <= t) - 1;
            lo = lo.max(offsets[s]);
            hi = hi.min(offsets[s + 1]);
        }
        (lo, hi.max(lo))
    }

    /// Check the description against the shape.
    pub fn validate(&self, shape: &AttnShape) -> Result<()> {
        if let Some(r) = &self.key_ranges {
            if r.len() != shape.batch {
                return Err(Error::invalid(
                    "attention key_ranges",
                    format!("{} ranges for a batch of {}", r.len(), shape.batch),
                ));
            }
            if let Some((b, &(s, e))) = r.iter().enumerate().find(|(_, &(s, e))| s > e || e > shape.k_len) {
                return Err(Error::invalid(
                    "attention key_ranges",
                    format!("range {b} is [{s}, {e}) but there are {} keys", shape.k_len),
                ));
            }
        }
        if let Some(o) = &self.segments {
            if shape.q_len != shape.k_len || self.past != 0 {
                return Err(Error::invalid(
                    "attention segments",
                    "packed sequences need as many queries as keys and no cached keys",
                ));
            }
            if o.first() != Some(&0) || o.last() != Some(&shape.q_len) || o.windows(2).any(|w| w[0] >= w[1]) {
                return Err(Error::invalid(
                    "attention segments",
                    format!("offsets {o:?} must rise strictly from 0 to {}", shape.q_len),
                ));
            }
        }
        if self.window == Some(0) {
            return Err(Error::invalid("attention window", "a window of 0 hides every key"));
        }
        Ok(())
    }
}

/// Tile sizes and threading of the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[derive(Default)]
pub struct FlashConfig {
    /// Query rows per forward tile (default 0: chosen from the head dimension, see [`FlashConfig::tiles`]).
    pub block_q: usize,
    /// Keys per forward tile (default 0: chosen from the head dimension).
    pub block_k: usize,
    /// Query rows per backward tile (default 0: chosen).
    pub bwd_block_q: usize,
    /// Keys per backward tile (default 0: chosen).
    pub bwd_block_k: usize,
}

impl FlashConfig {
    /// The tile sizes `(block_q, block_k, bwd_block_q, bwd_block_k)` used for `head_dim`.
    ///
    /// Forward: a K (packed transposed) tile and a V tile of `block_k × d` floats plus a
    /// `block_q × block_k` score tile should sit in L2 next to the `block_q × d` accumulator; with
    /// d = 64 that is 64 × 256 (64 KiB per K/V tile, 64 KiB of scores). Backward keeps more tiles
    /// alive per step (P, dP/dS, their transposes, dK and dV accumulators), so its tiles are
    /// 64 × 64 for d <= 64 and smaller key blocks for larger d.
    pub fn tiles(&self, head_dim: usize) -> (usize, usize, usize, usize) {
        let pick = |v: usize, default: usize| if v == 0 { default } else { v };
        let fwd_k = if head_dim <= 64 { 256 } else { 128 };
        let bwd_k = if head_dim <= 64 { 64 } else { 32 };
        (pick(self.block_q, 64), pick(self.block_k, fwd_k), pick(self.bwd_block_q, 64), pick(self.bwd_block_k, bwd_k))
    }
}

/// Everything the kernel needs besides the tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct FlashParams {
    /// The sizes.
    pub shape: AttnShape,
    /// The mask description.
    pub mask: Masking,
    /// Multiplies `Q Kᵀ` before the softmax (usually `1/sqrt(head_dim)`).
    pub scale: f32,
    /// Tile sizes.
    pub config: FlashConfig,
}

impl FlashParams {
    /// Check the shape, mask and scale.
    pub fn validate(&self) -> Result<()> {
        let s = &self.shape;
        if s.kv_heads == 0 || !s.heads.is_multiple_of(s.kv_heads) {
            return Err(Error::invalid(
                "attention heads",
                format!("{} query heads are not a multiple of {} key/value heads", s.heads, s.kv_heads),
            ));
        }
        if s.head_dim == 0 {
            return Err(Error::invalid("attention head_dim", "must be positive"));
        }
        if !self.scale.is_finite() {
            return Err(Error::invalid("attention scale", format!("{} is not finite", self.scale)));
        }
        self.mask.validate(s)
    }

    fn check_len(&self, what: &str, got: usize, want: usize) -> Result<()> {
        if got != want {
            return Err(Error::invalid(
                format!("attention {what}"),
                format!("{got} floats for shape {:?} (want {want})", self.shape),
            ));
        }
        Ok(())
    }
}

/// The floating-point operations of a forward pass, by the usual convention: `4 N S d` per head
/// (`2 N S d` each for `Q Kᵀ` and `P V`), halved when causal with `N == S`. The backward pass is
/// counted as 2.5 times this.
pub fn forward_flops(shape: &AttnShape, causal: bool) -> f64 {
    let f = 4.0 * shape.q_len as f64 * shape.k_len as f64 * shape.head_dim as f64 * (shape.batch * shape.heads) as f64;
    if causal {
        f / 2.0
    } else {
        f
    }
}

/// A pointer that may cross rayon's threads: each task writes a disjoint region of the buffer.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: used only to hand disjoint sub-slices of one buffer to parallel tasks.
unsafe impl Send for SharedMut {}
// SAFETY: as above.
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// # Safety
    /// `start..start + len` must be inside the buffer and touched by no other live slice.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice(&self, start: usize, len: usize) -> &mut [f32] {
        // SAFETY: upheld by the caller.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), len) }
    }
}
