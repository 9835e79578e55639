//! The matrix product of the fused MLP: `C[m×n] = init + A[m×k] · B[k×n]`, single-threaded, for
//! the shapes of RL networks (batch 32..256 by widths 4..2048).
//!
//! `B` and `C` are row-major. `A` is either row-major (`A(i, p) = a[i·lda + p]`: the forward
//! `X·W`) or column-major (`A(i, p) = a[p·lda + i]`: the weight gradient `Xᵀ·dZ` reads the stored
//! activations `X` as they are); [`gemm_abt`] takes `B` transposed (the input gradient `dZ·Wᵀ`).
//! A row of `B` is read with vector loads while `A` is broadcast one element at a time. Up to a
//! width and depth of about 500 nothing is packed: every tile fits the L1/L2 caches. Wider or
//! deeper products copy `256 × 32` blocks of `B` into a contiguous panel first (a row stride of
//! 2 KiB or more puts the lines of a column of `B` into a few cache sets, which evict each other:
//! 1024³ ran at a third of the rate without it).
//!
//! The register block is `R` rows of `C` by two vectors: with AVX-512, up to 12 × 32 (24 of the 32
//! zmm registers accumulate); with AVX2+FMA up to 6 × 16 (12 of 16 ymm registers). The columns of
//! `C` are the outer loop so that the `k × 32` panel of `B` stays in L1 while every row block of `A`
//! streams past it. A last partial column block uses masked loads and stores (AVX-512) or
//! `vmaskmov` (AVX2). Rows go in blocks of 12 (AVX-512; 8 where the row count is a multiple of 8
//! and not of 12, as the batches 32, 64 and 256 are) or 6 (AVX2), the remainder as one smaller block.
//! The portable fallback has the same loop structure over fixed-size arrays.

use crate::attention::Isa;

/// How `A` is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `A(i, p) = a[i * lda + p]`.
    RowMajor,
    /// `A(i, p) = a[p * lda + i]` (the transpose of a row-major `k × m` matrix).
    ColMajor,
}

/// What `C` holds before the product is added.
#[derive(Debug, Clone, Copy)]
pub enum Init<'a> {
    /// Zeros: `C = A·B`.
    Zero,
    /// `C`'s current values: `C += A·B`.
    Accumulate,
    /// The row vector `bias` (length `n`) on every row: `C = 1·biasᵀ + A·B`.
    Bias(&'a [f32]),
}

/// `C = init + A·B` (see the module docs); `shape` is `(m, n, k)`.
///
/// # Panics
/// If a slice is too short for the shape and leading dimensions (an internal error: the callers size
/// their buffers).
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    isa: Isa,
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    layout: Layout,
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
    init: Init,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k > 0 {
        let need = match layout {
            Layout::RowMajor => (m - 1) * lda + k,
            Layout::ColMajor => (k - 1) * lda + m,
        };
        assert!(a.len() >= need, "gemm: A has {} values, the shape needs {need}", a.len());
        assert!(b.len() >= (k - 1) * ldb + n, "gemm: B too short");
    }
    assert!(c.len() >= (m - 1) * ldc + n, "gemm: C too short");
    if let Init::Bias(bias) = init {
        assert!(bias.len() >= n, "gemm: bias too short");
    }
    if use_gemm_crate(isa, (m, n, k)) {
        let (a_cs, a_rs) = match layout {
            Layout::RowMajor => (1, lda),
            Layout::ColMajor => (lda, 1),
        };
        return gemm_crate((m, n, k), (a, a_cs, a_rs), (b, 1, ldb), c, ldc, init);
    }
    if ldb >= PACK_LDB || k > PACK_K {
        return gemm_packed(isa, (m, n, k), a, layout, lda, b, ldb, c, ldc, init);
    }
    gemm_unpacked(isa, (m, n, k), a, layout, lda, b, ldb, c, ldc, init);
}

/// Products of at least this many multiply-adds go to the gemm crate where [`use_gemm_crate`] says.
const GEMM_CRATE_MIN_MACS: usize = 1 << 20;

/// Whether this product runs on the `gemm` crate (burn-flex's matrix product, compiled here with
/// its AVX-512 kernels) instead of the kernels below: on Intel cores, for products of a million
/// multiply-adds and more with a depth of 16 or more. Measured on an Intel Xeon (family 6, model
/// 167) with `examples/roofline.rs`: the kernels below, tuned on AMD Zen 5, reach 133-141 GFLOP/s at
/// the 400 x 300 layers of TD3 at batch 256 where the gemm crate reaches 166-168 (its 4 x 16-row by
/// 6-column register block suits Intel's two FMA ports better), while on small products the kernels
/// below are ahead (no dispatch and packing cost). On AMD cores the kernels below are ahead at every
/// RL shape measured. `RLOX_MLP_GEMM=rlox` or `=gemm` overrides the choice. The choice depends only
/// on the CPU and the shape, so a run repeats bit for bit on one machine.
fn use_gemm_crate(isa: Isa, (m, n, k): (usize, usize, usize)) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Choice {
        Rlox,
        Gemm,
        BySize,
    }
    static CHOICE: std::sync::OnceLock<Choice> = std::sync::OnceLock::new();
    let choice = *CHOICE.get_or_init(|| match std::env::var("RLOX_MLP_GEMM").as_deref() {
        Ok("rlox") => Choice::Rlox,
        Ok("gemm") => Choice::Gemm,
        _ if intel() => Choice::BySize,
        _ => Choice::Rlox,
    });
    cfg!(feature = "flex")
        && isa != Isa::Portable
        && match choice {
            Choice::Rlox => false,
            Choice::Gemm => true,
            Choice::BySize => m * n * k >= GEMM_CRATE_MIN_MACS && k >= 16,
        }
}

/// Whether the CPU's vendor string is Intel's.
fn intel() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // CPUID leaf 0 (the vendor string) exists on every x86-64 CPU.
        let r = std::arch::x86_64::__cpuid(0);
        let vendor: Vec<u8> = [r.ebx, r.edx, r.ecx].iter().flat_map(|x| x.to_le_bytes()).collect();
        vendor == b"GenuineIntel"
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `C = init + A·B` on the gemm crate, one thread. `A` and `B` come with their column and row
/// strides (`A(i, p) = a[i·rs + p·cs]`); `C` is row-major with row stride `ldc`.
#[cfg(feature = "flex")]
fn gemm_crate(
    (m, n, k): (usize, usize, usize),
    (a, a_cs, a_rs): (&[f32], usize, usize),
    (b, b_cs, b_rs): (&[f32], usize, usize),
    c: &mut [f32],
    ldc: usize,
    init: Init,
) {
    let read_dst = match init {
        Init::Zero => false,
        Init::Accumulate => true,
        Init::Bias(bias) => {
            for row in 0..m {
                c[row * ldc..row * ldc + n].copy_from_slice(&bias[..n]);
            }
            true
        }
    };
    if k == 0 {
        if !read_dst {
            (0..m).for_each(|row| c[row * ldc..row * ldc + n].fill(0.0));
        }
        return;
    }
    // Bounds: the last element each operand's strides reach is inside its slice.
    assert!((m - 1) * a_rs + (k - 1) * a_cs < a.len(), "gemm: A too short");
    assert!((k - 1) * b_rs + (n - 1) * b_cs < b.len(), "gemm: B too short");
    assert!((m - 1) * ldc + n <= c.len(), "gemm: C too short");
    // SAFETY: every index the strides reach was checked against the slices above; C does not alias
    // A or B (a `&mut` slice).
    unsafe {
        ::gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            read_dst,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            ::gemm::Parallelism::None,
        )
    }
}

#[cfg(not(feature = "flex"))]
fn gemm_crate(
    _: (usize, usize, usize),
    _: (&[f32], usize, usize),
    _: (&[f32], usize, usize),
    _: &mut [f32],
    _: usize,
    _: Init,
) {
    unreachable!("use_gemm_crate is false without the gemm crate")
}

/// Depth of a packed panel of `B` (`KC × 32` values: 32 KiB, half of L1).
const KC: usize = 256;

/// Depth from which `B` is packed whatever its stride: the unpacked `k × 32` block of `B` no longer
/// fits L1 (up to 400, the widths of the RL networks, packing costs more than it saves: 0.69 against
/// 0.95 of the peak at 32 × 300 × 400).
const PACK_K: usize = 512;

/// Leading dimension of `B` from which its panels are packed (a row stride of 2 KiB or more: the
/// lines of one column of `B` fall into a few cache sets and evict each other).
const PACK_LDB: usize = 512;

thread_local! {
    /// The packed panel of `B` of [`gemm_packed`], grown once per thread.
    static PANEL: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The large-matrix path: for each 32-column block of `C` and each `KC`-deep slice of the
/// product, copy that `KC × 32` block of `B` into a contiguous panel (which stays in L1 while every
/// row block of `A` streams past it) and run the kernels on it. Arguments as [`gemm`], checked.
#[allow(clippy::too_many_arguments)]
fn gemm_packed(
    isa: Isa,
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    layout: Layout,
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
    init: Init,
) {
    const W: usize = 32;
    PANEL.with_borrow_mut(|panel| {
        if panel.len() < KC * W {
            panel.resize(KC * W, 0.0);
        }
        let mut j = 0;
        while j < n {
            let w = (n - j).min(W);
            let mut p0 = 0;
            loop {
                let kc = (k - p0).min(KC);
                for p in 0..kc {
                    let row = &b[(p0 + p) * ldb + j..(p0 + p) * ldb + j + w];
                    panel[p * W..p * W + w].copy_from_slice(row);
                }
                let init = match (p0, init) {
                    (0, Init::Bias(bias)) => Init::Bias(&bias[j..]),
                    (0, other) => other,
                    _ => Init::Accumulate,
                };
                let a = match layout {
                    Layout::RowMajor => &a[p0..],
                    Layout::ColMajor => &a[p0 * lda..],
                };
                gemm_unpacked(isa, (m, w, kc), a, layout, lda, panel, W, &mut c[j..], ldc, init);
                p0 += kc;
                if p0 >= k {
                    break;
                }
            }
            j += w;
        }
    });
}

/// [`gemm`] without packing; arguments checked.
#[allow(clippy::too_many_arguments)]
fn gemm_unpacked(
    isa: Isa,
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    layout: Layout,
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
    init: Init,
) {
    let col = layout == Layout::ColMajor;
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: every index the kernels touch was checked by `gemm`, and the instruction set is
        // supported by this CPU (checked at run time).
        Isa::Avx512 if Isa::Avx512.supported() => unsafe {
            x86::gemm_avx512(m, n, k, a.as_ptr(), col, lda, b.as_ptr(), ldb, c.as_mut_ptr(), ldc, init)
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 | Isa::Avx512 if Isa::Avx2.supported() => unsafe {
            x86::gemm_avx2(m, n, k, a.as_ptr(), col, lda, b.as_ptr(), ldb, c.as_mut_ptr(), ldc, init)
        },
        _ => gemm_portable(m, n, k, a, col, lda, b, ldb, c, ldc, init),
    }
}

/// `C = init + A·Bᵀ` for a row-major `A[m×k]` and a row-major `bt[n×k]` (`B = btᵀ`): the input
/// gradient `dZ·Wᵀ` of a layer whose weight `W[in×out]` is `bt`. Each 32-column block of `B` is
/// transposed into `panel` (`k × 32`, grown when too small) and multiplied from there: the panel is
/// written contiguously and read from L1, where transposing all of `W` at once into a `[out, in]`
/// matrix wrote lines of a power-of-two stride that evicted each other (4x slower at 256 × 256).
#[allow(clippy::too_many_arguments)]
pub fn gemm_abt(
    isa: Isa,
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    lda: usize,
    bt: &[f32],
    ldbt: usize,
    c: &mut [f32],
    ldc: usize,
    init: Init,
    panel: &mut Vec<f32>,
) {
    if m == 0 || n == 0 {
        return;
    }
    if use_gemm_crate(isa, (m, n, k)) {
        // B(p, j) = bt[j·ldbt + p]: the gemm crate reads the transpose through its strides.
        return gemm_crate((m, n, k), (a, 1, lda), (bt, ldbt, 1), c, ldc, init);
    }
    const W: usize = 32;
    if panel.len() < k * W {
        panel.resize(k * W, 0.0);
    }
    assert!(c.len() >= (m - 1) * ldc + n, "gemm: C too short");
    let mut j = 0;
    while j < n {
        let w = (n - j).min(W);
        super::vector::transpose_strided(isa, &bt[j * ldbt..], ldbt, w, k, panel, W);
        let init = match init {
            Init::Bias(b) => Init::Bias(&b[j..]),
            other => other,
        };
        gemm_unpacked(isa, (m, w, k), a, Layout::RowMajor, lda, panel, W, &mut c[j..], ldc, init);
        j += w;
    }
}

/// Floating-point operations of one `m × n × k` product (multiply and add counted apart).
pub fn flops(m: usize, n: usize, k: usize) -> f64 {
    2.0 * m as f64 * n as f64 * k as f64
}

/// Row blocks for `m` rows with blocks of at most `mr` rows: the largest size `mr` while it fits,
/// and the rest as one block (the kernels are instantiated for every block height up to `mr`).
#[inline]
fn next_rows(remaining: usize, mr: usize) -> usize {
    remaining.min(mr)
}

#[allow(clippy::too_many_arguments)]
fn gemm_portable(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    col: bool,
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
    init: Init,
) {
    const MR: usize = 4;
    const NR: usize = 8;
    let mut j = 0;
    while j < n {
        let w = (n - j).min(NR);
        let mut i = 0;
        while i < m {
            let rows = next_rows(m - i, MR);
            let mut acc = [[0.0f32; NR]; MR];
            for (r, row) in acc.iter_mut().enumerate().take(rows) {
                match init {
                    Init::Zero => {}
                    Init::Accumulate => row[..w].copy_from_slice(&c[(i + r) * ldc + j..(i + r) * ldc + j + w]),
                    Init::Bias(bias) => row[..w].copy_from_slice(&bias[j..j + w]),
                }
            }
            // Fixed-size arrays in the inner loop (absent rows and columns are zeros), so that it
            // unrolls and vectorises for the baseline target.
            let mut brow = [0.0f32; NR];
            let mut av = [0.0f32; MR];
            for p in 0..k {
                let start = p * ldb + j;
                if w == NR {
                    brow.copy_from_slice(&b[start..start + NR]);
                } else {
                    brow[..w].copy_from_slice(&b[start..start + w]);
                }
                for (r, x) in av.iter_mut().enumerate().take(rows) {
                    *x = if col { a[p * lda + i + r] } else { a[(i + r) * lda + p] };
                }
                for (row, &x) in acc.iter_mut().zip(&av) {
                    for (y, &bv) in row.iter_mut().zip(&brow) {
                        *y += x * bv;
                    }
                }
            }
            for (r, row) in acc.iter().enumerate().take(rows) {
                c[(i + r) * ldc + j..(i + r) * ldc + j + w].copy_from_slice(&row[..w]);
            }
            i += rows;
        }
        j += w;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{next_rows, Init};
    use std::arch::x86_64::*;

    /// `Init` with the bias as a raw pointer, for the kernels.
    #[derive(Clone, Copy)]
    enum Start {
        Zero,
        Accumulate,
        Bias(*const f32),
    }

    fn start(init: Init) -> Start {
        match init {
            Init::Zero => Start::Zero,
            Init::Accumulate => Start::Accumulate,
            Init::Bias(b) => Start::Bias(b.as_ptr()),
        }
    }

    /// Dispatch on the block height (1..=12) to a kernel instantiated for it.
    macro_rules! by_rows {
        ($rows:expr, $kernel:ident :: <_ $(, $g:tt)*> ($($arg:expr),*)) => {
            match $rows {
                12 => $kernel::<12 $(, $g)*>($($arg),*),
                11 => $kernel::<11 $(, $g)*>($($arg),*),
                10 => $kernel::<10 $(, $g)*>($($arg),*),
                9 => $kernel::<9 $(, $g)*>($($arg),*),
                8 => $kernel::<8 $(, $g)*>($($arg),*),
                7 => $kernel::<7 $(, $g)*>($($arg),*),
                rows => by_rows6!(rows, $kernel::<_ $(, $g)*>($($arg),*)),
            }
        };
    }

    /// Dispatch on the block height (1..=6).
    macro_rules! by_rows6 {
        ($rows:expr, $kernel:ident :: <_ $(, $g:tt)*> ($($arg:expr),*)) => {
            match $rows {
                6 => $kernel::<6 $(, $g)*>($($arg),*),
                5 => $kernel::<5 $(, $g)*>($($arg),*),
                4 => $kernel::<4 $(, $g)*>($($arg),*),
                3 => $kernel::<3 $(, $g)*>($($arg),*),
                2 => $kernel::<2 $(, $g)*>($($arg),*),
                _ => $kernel::<1 $(, $g)*>($($arg),*),
            }
        };
    }

    /// Rows per AVX-512 block: 12 while they fit, except that 8 is used where the row count is a
    /// multiple of 8 and not of 12 (batches 32, 64, 256 and widths 64, 256, 400): whole 8-row blocks
    /// beat 12-row blocks with a short last one.
    fn avx512_rows(m: usize) -> usize {
        if !m.is_multiple_of(12) && m.is_multiple_of(8) {
            8
        } else {
            12
        }
    }

    /// See [`super::gemm`]; the caller checked the bounds and the CPU's support of AVX-512F.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn gemm_avx512(
        m: usize,
        n: usize,
        k: usize,
        a: *const f32,
        col: bool,
        lda: usize,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
        init: Init,
    ) {
        let init = start(init);
        let mr = avx512_rows(m);
        let mut j = 0;
        while j < n {
            let w = (n - j).min(32);
            let masks = [mask16(w.min(16)), mask16(w.saturating_sub(16))];
            let mut i = 0;
            while i < m {
                let rows = next_rows(m - i, mr);
                let ai = if col { a.add(i) } else { a.add(i * lda) };
                let ci = c.add(i * ldc + j);
                let bj = b.add(j);
                let init = match init {
                    Start::Bias(p) => Start::Bias(p.add(j)),
                    other => other,
                };
                // SAFETY: rows i..i+rows, columns j..j+w and k steps lie inside the checked slices.
                unsafe {
                    match (w, col) {
                        (32, false) => {
                            by_rows!(rows, block512::<_, 2, true, false>(k, ai, lda, bj, ldb, ci, ldc, masks, init))
                        }
                        (32, true) => {
                            by_rows!(rows, block512::<_, 2, true, true>(k, ai, lda, bj, ldb, ci, ldc, masks, init))
                        }
                        (17.., false) => {
                            by_rows!(rows, block512::<_, 2, false, false>(k, ai, lda, bj, ldb, ci, ldc, masks, init))
                        }
                        (17.., true) => {
                            by_rows!(rows, block512::<_, 2, false, true>(k, ai, lda, bj, ldb, ci, ldc, masks, init))
                        }
                        (_, false) => {
                            by_rows!(rows, block512::<_, 1, false, false>(k, ai, lda, bj, ldb, ci, ldc, masks, init))
                        }
                        (_, true) => {
                            by_rows!(rows, block512::<_, 1, false, true>(k, ai, lda, bj, ldb, ci, ldc, masks, init))
                        }
                    }
                }
                i += rows;
            }
            j += 32;
        }
    }

    #[inline(always)]
    fn mask16(w: usize) -> __mmask16 {
        ((1u32 << w.min(16)) - 1) as __mmask16
    }

    /// One `R × (16·NV)` block of `C`. `FULL`: all `16·NV` columns are valid (unmasked loads of
    /// `B`); otherwise `masks` select the valid columns of each vector. `COL`: `A` is column-major.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    unsafe fn block512<const R: usize, const NV: usize, const FULL: bool, const COL: bool>(
        k: usize,
        a: *const f32,
        lda: usize,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
        masks: [__mmask16; 2],
        init: Start,
    ) {
        // SAFETY (whole body): the caller guarantees R rows of A and C, NV·16 masked columns of B
        // and C, and k steps are in bounds.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); NV]; R];
            match init {
                Start::Zero => {}
                Start::Accumulate => {
                    for (r, row) in acc.iter_mut().enumerate() {
                        for (v, x) in row.iter_mut().enumerate() {
                            *x = _mm512_maskz_loadu_ps(masks[v], c.add(r * ldc + 16 * v));
                        }
                    }
                }
                Start::Bias(bias) => {
                    let mut bv = [_mm512_setzero_ps(); NV];
                    for (v, x) in bv.iter_mut().enumerate() {
                        *x = _mm512_maskz_loadu_ps(masks[v], bias.add(16 * v));
                    }
                    for row in acc.iter_mut() {
                        *row = bv;
                    }
                }
            }
            for p in 0..k {
                let bp = b.add(p * ldb);
                let mut bv = [_mm512_setzero_ps(); NV];
                for (v, x) in bv.iter_mut().enumerate() {
                    *x = if FULL {
                        _mm512_loadu_ps(bp.add(16 * v))
                    } else {
                        _mm512_maskz_loadu_ps(masks[v], bp.add(16 * v))
                    };
                }
                for (r, row) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(if COL { *a.add(p * lda + r) } else { *a.add(r * lda + p) });
                    for (x, bvv) in row.iter_mut().zip(bv) {
                        *x = _mm512_fmadd_ps(av, bvv, *x);
                    }
                }
            }
            for (r, row) in acc.iter().enumerate() {
                for (v, x) in row.iter().enumerate() {
                    if FULL {
                        _mm512_storeu_ps(c.add(r * ldc + 16 * v), *x);
                    } else {
                        _mm512_mask_storeu_ps(c.add(r * ldc + 16 * v), masks[v], *x);
                    }
                }
            }
        }
    }

    /// See [`super::gemm`]; the caller checked the bounds and the CPU's support of AVX2 and FMA.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gemm_avx2(
        m: usize,
        n: usize,
        k: usize,
        a: *const f32,
        col: bool,
        lda: usize,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
        init: Init,
    ) {
        let init = start(init);
        let mut j = 0;
        while j < n {
            let w = (n - j).min(16);
            let masks = [mask8(w.min(8)), mask8(w.saturating_sub(8))];
            let mut i = 0;
            while i < m {
                let rows = next_rows(m - i, 6);
                let ai = if col { a.add(i) } else { a.add(i * lda) };
                let ci = c.add(i * ldc + j);
                let bj = b.add(j);
                let init = match init {
                    Start::Bias(p) => Start::Bias(p.add(j)),
                    other => other,
                };
                // SAFETY: rows i..i+rows, columns j..j+w and k steps lie inside the checked slices.
                unsafe {
                    match (w, col) {
                        (16, false) => {
                            by_rows6!(rows, block256::<_, 2, true, false>(k, ai, lda, bj, ldb, ci, ldc, masks, init))
                        }
                        (16, true) => {
                            by_rows6!(rows, block256::<_, 2, true, true>(k, ai, lda, bj, ldb, ci, ldc, masks, init))
                        }
                        (9.., false) => {
                            by_rows6!(rows, block256::<_, 2, false, false>(k, ai, lda, bj, ldb, ci, ldc, masks, init))
                        }
                        (9.., true) => {
                            by_rows6!(rows, block256::<_, 2, false, true>(k, ai, lda, bj, ldb, ci, ldc, masks, init))
                        }
                        (_, false) => {
                            by_rows6!(rows, block256::<_, 1, false, false>(k, ai, lda, bj, ldb, ci, ldc, masks, init))
                        }
                        (_, true) => {
                            by_rows6!(rows, block256::<_, 1, false, true>(k, ai, lda, bj, ldb, ci, ldc, masks, init))
                        }
                    }
                }
                i += rows;
            }
            j += 16;
        }
    }

    /// An AVX2 lane mask selecting the first `w` of 8 lanes.
    #[inline(always)]
    fn mask8(w: usize) -> [i32; 8] {
        let mut m = [0i32; 8];
        for x in m.iter_mut().take(w) {
            *x = -1;
        }
        m
    }

    /// The AVX2 counterpart of [`block512`] (`R` ≤ 6 rows, vectors of 8).
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn block256<const R: usize, const NV: usize, const FULL: bool, const COL: bool>(
        k: usize,
        a: *const f32,
        lda: usize,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
        masks: [[i32; 8]; 2],
        init: Start,
    ) {
        // SAFETY (whole body): as for `block512`.
        unsafe {
            let mv = [
                _mm256_loadu_si256(masks[0].as_ptr() as *const __m256i),
                _mm256_loadu_si256(masks[1].as_ptr() as *const __m256i),
            ];
            let mut acc = [[_mm256_setzero_ps(); NV]; R];
            match init {
                Start::Zero => {}
                Start::Accumulate => {
                    for (r, row) in acc.iter_mut().enumerate() {
                        for (v, x) in row.iter_mut().enumerate() {
                            *x = _mm256_maskload_ps(c.add(r * ldc + 8 * v), mv[v]);
                        }
                    }
                }
                Start::Bias(bias) => {
                    let mut bv = [_mm256_setzero_ps(); NV];
                    for (v, x) in bv.iter_mut().enumerate() {
                        *x = _mm256_maskload_ps(bias.add(8 * v), mv[v]);
                    }
                    for row in acc.iter_mut() {
                        *row = bv;
                    }
                }
            }
            for p in 0..k {
                let bp = b.add(p * ldb);
                let mut bv = [_mm256_setzero_ps(); NV];
                for (v, x) in bv.iter_mut().enumerate() {
                    *x = if FULL { _mm256_loadu_ps(bp.add(8 * v)) } else { _mm256_maskload_ps(bp.add(8 * v), mv[v]) };
                }
                for (r, row) in acc.iter_mut().enumerate() {
                    let av = _mm256_set1_ps(if COL { *a.add(p * lda + r) } else { *a.add(r * lda + p) });
                    for (x, bvv) in row.iter_mut().zip(bv) {
                        *x = _mm256_fmadd_ps(av, bvv, *x);
                    }
                }
            }
            for (r, row) in acc.iter().enumerate() {
                for (v, x) in row.iter().enumerate() {
                    if FULL {
                        _mm256_storeu_ps(c.add(r * ldc + 8 * v), *x);
                    } else {
                        _mm256_maskstore_ps(c.add(r * ldc + 8 * v), mv[v], *x);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// `C = init + A·B` in f64.
    #[allow(clippy::too_many_arguments)]
    fn naive(
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        layout: Layout,
        lda: usize,
        b: &[f32],
        ldb: usize,
        c0: &[f32],
        ldc: usize,
        init: Init,
    ) -> Vec<f64> {
        let mut c = vec![0.0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = match init {
                    Init::Zero => 0.0,
                    Init::Accumulate => c0[i * ldc + j] as f64,
                    Init::Bias(bias) => bias[j] as f64,
                };
                for p in 0..k {
                    let av = match layout {
                        Layout::RowMajor => a[i * lda + p],
                        Layout::ColMajor => a[p * lda + i],
                    };
                    s += av as f64 * b[p * ldb + j] as f64;
                }
                c[i * n + j] = s;
            }
        }
        c
    }

    #[test]
    fn every_isa_layout_and_init_matches_the_naive_product() {
        let shapes = [
            (1, 1, 1),
            (1, 1, 0),
            (7, 50, 9),
            (13, 64, 64),
            (6, 16, 3),
            (5, 33, 17),
            (64, 96, 64),
            (32, 64, 4),
            (12, 2, 64),
            (25, 47, 31),
            (24, 300, 8),
            (37, 17, 5),
            // Packed panels: deeper than two panels, and a wide B.
            (13, 40, 600),
            (9, 520, 20),
        ];
        for isa in [Isa::Portable, Isa::Avx2, Isa::Avx512] {
            if !isa.supported() {
                continue;
            }
            for (s, &(m, n, k)) in shapes.iter().enumerate() {
                for layout in [Layout::RowMajor, Layout::ColMajor] {
                    // Leading dimensions larger than the shape, to catch stride mix-ups.
                    let lda = match layout {
                        Layout::RowMajor => k + 3,
                        Layout::ColMajor => m + 2,
                    };
                    let (ldb, ldc) = (n + 5, n + 1);
                    let rows_a = if layout == Layout::RowMajor { m } else { k.max(1) };
                    let a = randoms(s as u64 * 7 + 1, rows_a * lda);
                    let b = randoms(s as u64 * 7 + 2, k.max(1) * ldb);
                    let c0 = randoms(s as u64 * 7 + 3, m * ldc);
                    let bias = randoms(s as u64 * 7 + 4, n);
                    for init in [Init::Zero, Init::Accumulate, Init::Bias(&bias)] {
                        let mut c = c0.clone();
                        gemm(isa, (m, n, k), &a, layout, lda, &b, ldb, &mut c, ldc, init);
                        let want = naive(m, n, k, &a, layout, lda, &b, ldb, &c0, ldc, init);
                        for i in 0..m {
                            for j in 0..n {
                                let (x, y) = (c[i * ldc + j] as f64, want[i * n + j]);
                                assert!(
                                    (x - y).abs() < 1e-5 * (1.0 + k as f64).sqrt(),
                                    "{isa:?} {layout:?} {m}x{n}x{k} {init:?} ({i},{j}): {x} vs {y}"
                                );
                            }
                            // Padding columns of C are not written.
                            assert_eq!(
                                c[i * ldc + n..(i + 1) * ldc],
                                c0[i * ldc + n..(i + 1) * ldc],
                                "{isa:?} wrote past column {n}"
                            );
                        }
                    }
                    // The same product from B's transpose.
                    if layout == Layout::RowMajor && k > 0 {
                        let mut bt = vec![0.0f32; n * (k + 2)];
                        for p in 0..k {
                            for j in 0..n {
                                bt[j * (k + 2) + p] = b[p * ldb + j];
                            }
                        }
                        let mut panel = Vec::new();
                        for init in [Init::Zero, Init::Accumulate, Init::Bias(&bias)] {
                            let mut c = c0.clone();
                            gemm_abt(isa, (m, n, k), &a, lda, &bt, k + 2, &mut c, ldc, init, &mut panel);
                            let want = naive(m, n, k, &a, layout, lda, &b, ldb, &c0, ldc, init);
                            for i in 0..m {
                                for j in 0..n {
                                    let (x, y) = (c[i * ldc + j] as f64, want[i * n + j]);
                                    assert!(
                                        (x - y).abs() < 1e-5 * (1.0 + k as f64).sqrt(),
                                        "abt {isa:?} {m}x{n}x{k} {init:?}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
