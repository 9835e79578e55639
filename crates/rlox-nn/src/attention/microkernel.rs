//! Register-blocked micro-kernels for the small, cache-resident tile products of the attention
//! kernel, and a vectorisable `exp`.
//!
//! Every product the kernel needs (`Q Kᵀ`, `P V`, `dO Vᵀ`, `Pᵀ dO`, `dS K`, `dSᵀ Q`) is written as
//! one row-major `C (+)= A · B` once the operand that would be read column-wise has been transposed
//! into a small packing buffer; so one [`gemm`] serves forward and backward.
//!
//! The block of `C` kept in registers is 6 rows by 2 vectors: 6 × 16 with AVX2/FMA (12 of the 16 ymm
//! registers hold accumulators, 2 hold the row of `B`, 1 the broadcast element of `A`) and 6 × 32
//! with AVX-512 (12 of 32 zmm registers; more rows would not help because the tiles are short). The
//! instruction set is detected once at run time ([`Isa::detect`]); the portable fallback has the same
//! loop structure over fixed-size arrays, which the compiler vectorises for the baseline target.
//! Columns beyond the last full register block are done by the portable loop.

use std::sync::OnceLock;

/// The instruction set a kernel runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Plain Rust (auto-vectorised for the compile target).
    Portable,
    /// AVX2 + FMA (256-bit).
    Avx2,
    /// AVX-512F (512-bit).
    Avx512,
}

impl Isa {
    /// The best instruction set this CPU supports, detected once. The environment variable
    /// `RLOX_ATTENTION_ISA` (`portable`, `avx2`, `avx512`) lowers the choice, for testing each path;
    /// a path the CPU lacks is never chosen.
    pub fn detect() -> Isa {
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(|| {
            let best = Self::best();
            match std::env::var("RLOX_ATTENTION_ISA").as_deref() {
                Ok("portable") => Isa::Portable,
                Ok("avx2") if best != Isa::Portable => Isa::Avx2,
                _ => best,
            }
        })
    }

    /// The best instruction set the CPU supports, ignoring the environment.
    pub fn best() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }

    /// Whether this CPU can run `self`.
    pub fn supported(self) -> bool {
        match self {
            Isa::Portable => true,
            Isa::Avx2 => Self::best() != Isa::Portable,
            Isa::Avx512 => Self::best() == Isa::Avx512,
        }
    }
}

/// Rows of `C` per register block.
const MR: usize = 6;

/// `C[m×n] = (accumulate ? C : 0) + A[m×k] · B[k×n]`, all row-major with leading dimensions
/// `lda`, `ldb`, `ldc`.
///
/// # Panics
/// If a slice is too short for the shape (an internal error: callers size their tiles).
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    isa: Isa,
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(a.len() >= (m - 1) * lda + k, "gemm: A too short");
    assert!(k == 0 || b.len() >= (k - 1) * ldb + n, "gemm: B too short");
    assert!(c.len() >= (m - 1) * ldc + n, "gemm: C too short");
    let done = match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the slices were checked above to cover every index the kernel touches, and the
        // instruction set was detected at run time (`Isa::supported`).
        Isa::Avx512 if Isa::Avx512.supported() => unsafe {
            x86::gemm_avx512(m, n, k, a, lda, b, ldb, c, ldc, accumulate)
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 | Isa::Avx512 if Isa::Avx2.supported() => unsafe {
            x86::gemm_avx2(m, n, k, a, lda, b, ldb, c, ldc, accumulate)
        },
        _ => 0,
    };
    gemm_portable(m, done, n, k, a, lda, b, ldb, c, ldc, accumulate);
}

/// The portable kernel for columns `j0..n` (all of them when `j0 == 0`).
#[allow(clippy::too_many_arguments)]
fn gemm_portable(
    m: usize,
    j0: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    const NR: usize = 8;
    let mut j = j0;
    while j < n {
        let w = (n - j).min(NR);
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(MR);
            let mut acc = [[0.0f32; NR]; MR];
            if accumulate {
                for r in 0..rows {
                    acc[r][..w].copy_from_slice(&c[(i + r) * ldc + j..(i + r) * ldc + j + w]);
                }
            }
            for p in 0..k {
                let mut brow = [0.0f32; NR];
                brow[..w].copy_from_slice(&b[p * ldb + j..p * ldb + j + w]);
                for r in 0..rows {
                    let av = a[(i + r) * lda + p];
                    for (x, y) in acc[r].iter_mut().zip(brow) {
                        *x += av * y;
                    }
                }
            }
            for r in 0..rows {
                c[(i + r) * ldc + j..(i + r) * ldc + j + w].copy_from_slice(&acc[r][..w]);
            }
            i += rows;
        }
        j += w;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::MR;

    /// Rows of `C` per AVX-512 register block when at least that many remain.
    const MR_AVX512: usize = 12;
    use std::arch::x86_64::*;

    /// AVX2 kernel over the full 16-wide column blocks; returns the first column it did not do.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gemm_avx2(
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        lda: usize,
        b: &[f32],
        ldb: usize,
        c: &mut [f32],
        ldc: usize,
        accumulate: bool,
    ) -> usize {
        let nfull = n / 16 * 16;
        let (a, b, c) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(MR);
            // SAFETY: rows i..i+rows and columns 0..nfull lie inside the checked slices.
            unsafe {
                let (a, c) = (a.add(i * lda), c.add(i * ldc));
                match rows {
                    6 => block_avx2::<6>(nfull, k, a, lda, b, ldb, c, ldc, accumulate),
                    5 => block_avx2::<5>(nfull, k, a, lda, b, ldb, c, ldc, accumulate),
                    4 => block_avx2::<4>(nfull, k, a, lda, b, ldb, c, ldc, accumulate),
                    3 => block_avx2::<3>(nfull, k, a, lda, b, ldb, c, ldc, accumulate),
                    2 => block_avx2::<2>(nfull, k, a, lda, b, ldb, c, ldc, accumulate),
                    _ => block_avx2::<1>(nfull, k, a, lda, b, ldb, c, ldc, accumulate),
                }
            }
            i += rows;
        }
        nfull
    }

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn block_avx2<const R: usize>(
        nfull: usize,
        k: usize,
        a: *const f32,
        lda: usize,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
    ) {
        let mut j = 0;
        while j < nfull {
            // SAFETY: the caller guarantees R rows of A/C and columns j..j+16 < nfull are in bounds.
            unsafe {
                let mut c0 = [_mm256_setzero_ps(); R];
                let mut c1 = [_mm256_setzero_ps(); R];
                if accumulate {
                    for r in 0..R {
                        c0[r] = _mm256_loadu_ps(c.add(r * ldc + j));
                        c1[r] = _mm256_loadu_ps(c.add(r * ldc + j + 8));
                    }
                }
                for p in 0..k {
                    let b0 = _mm256_loadu_ps(b.add(p * ldb + j));
                    let b1 = _mm256_loadu_ps(b.add(p * ldb + j + 8));
                    for r in 0..R {
                        let av = _mm256_broadcast_ss(&*a.add(r * lda + p));
                        c0[r] = _mm256_fmadd_ps(av, b0, c0[r]);
                        c1[r] = _mm256_fmadd_ps(av, b1, c1[r]);
                    }
                }
                for r in 0..R {
                    _mm256_storeu_ps(c.add(r * ldc + j), c0[r]);
                    _mm256_storeu_ps(c.add(r * ldc + j + 8), c1[r]);
                }
            }
            j += 16;
        }
    }

    /// AVX-512 kernel over the full 32-wide column blocks, then one 16-wide AVX2 block where 16
    /// columns remain; returns the first column it did not do.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn gemm_avx512(
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        lda: usize,
        b: &[f32],
        ldb: usize,
        c: &mut [f32],
        ldc: usize,
        accumulate: bool,
    ) -> usize {
        let n32 = n / 32 * 32;
        let n16 = n / 16 * 16;
        let (ap, bp, cp) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
        let mut i = 0;
        while i < m {
            // 12-row blocks while they fit (24 of the 32 zmm registers accumulate, so each row of B
            // loaded serves twice as many FMAs as in a 6-row block), then 6-row and smaller ones.
            let rows = if m - i >= MR_AVX512 { MR_AVX512 } else { (m - i).min(MR) };
            // SAFETY: rows i..i+rows and columns 0..n32 lie inside the checked slices.
            unsafe {
                let (a, c) = (ap.add(i * lda), cp.add(i * ldc));
                match rows {
                    MR_AVX512 => block_avx512::<MR_AVX512>(n32, k, a, lda, bp, ldb, c, ldc, accumulate),
                    6 => block_avx512::<6>(n32, k, a, lda, bp, ldb, c, ldc, accumulate),
                    5 => block_avx512::<5>(n32, k, a, lda, bp, ldb, c, ldc, accumulate),
                    4 => block_avx512::<4>(n32, k, a, lda, bp, ldb, c, ldc, accumulate),
                    3 => block_avx512::<3>(n32, k, a, lda, bp, ldb, c, ldc, accumulate),
                    2 => block_avx512::<2>(n32, k, a, lda, bp, ldb, c, ldc, accumulate),
                    _ => block_avx512::<1>(n32, k, a, lda, bp, ldb, c, ldc, accumulate),
                }
            }
            i += rows;
        }
        if n16 > n32 {
            // SAFETY: one 16-wide block at column n32 lies inside the checked slices.
            unsafe {
                let done = gemm_avx2(m, 16, k, a, lda, &b[n32..], ldb, &mut c[n32..], ldc, accumulate);
                debug_assert_eq!(done, 16);
            }
        }
        n16
    }

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    unsafe fn block_avx512<const R: usize>(
        n32: usize,
        k: usize,
        a: *const f32,
        lda: usize,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
    ) {
        let mut j = 0;
        while j < n32 {
            // SAFETY: the caller guarantees R rows of A/C and columns j..j+32 <= n32 are in bounds.
            unsafe {
                let mut c0 = [_mm512_setzero_ps(); R];
                let mut c1 = [_mm512_setzero_ps(); R];
                if accumulate {
                    for r in 0..R {
                        c0[r] = _mm512_loadu_ps(c.add(r * ldc + j));
                        c1[r] = _mm512_loadu_ps(c.add(r * ldc + j + 16));
                    }
                }
                for p in 0..k {
                    let b0 = _mm512_loadu_ps(b.add(p * ldb + j));
                    let b1 = _mm512_loadu_ps(b.add(p * ldb + j + 16));
                    for r in 0..R {
                        let av = _mm512_set1_ps(*a.add(r * lda + p));
                        c0[r] = _mm512_fmadd_ps(av, b0, c0[r]);
                        c1[r] = _mm512_fmadd_ps(av, b1, c1[r]);
                    }
                }
                for r in 0..R {
                    _mm512_storeu_ps(c.add(r * ldc + j), c0[r]);
                    _mm512_storeu_ps(c.add(r * ldc + j + 16), c1[r]);
                }
            }
            j += 32;
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn exp_sub_avx2(x: &mut [f32], m: f32) -> f32 {
        super::exp_sub_body(x, m)
    }

    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn exp_sub_avx512(x: &mut [f32], m: f32) -> f32 {
        super::exp_sub_body(x, m)
    }
}

/// `x[i] = exp(x[i] - m)` in place; returns the sum of the results. `-inf` entries give 0.
///
/// A branch-free polynomial `exp` (relative error about 2e-7 on the range used), written so that
/// the loop vectorises; compiled once per instruction set.
pub fn exp_sub(isa: Isa, x: &mut [f32], m: f32) -> f32 {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the instruction set is supported (checked at run time).
        Isa::Avx512 if Isa::Avx512.supported() => unsafe { x86::exp_sub_avx512(x, m) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 | Isa::Avx512 if Isa::Avx2.supported() => unsafe { x86::exp_sub_avx2(x, m) },
        _ => exp_sub_body(x, m),
    }
}

#[inline(always)]
fn exp_sub_body(x: &mut [f32], m: f32) -> f32 {
    // Sum in 16 lanes so that the reduction vectorises too.
    let mut lanes = [0.0f32; 16];
    let mut chunks = x.chunks_exact_mut(16);
    for chunk in &mut chunks {
        for (v, s) in chunk.iter_mut().zip(lanes.iter_mut()) {
            *v = fast_exp(*v - m);
            *s += *v;
        }
    }
    let mut total = 0.0f32;
    for v in chunks.into_remainder() {
        *v = fast_exp(*v - m);
        total += *v;
    }
    total + lanes.iter().sum::<f32>()
}

/// `exp(x)` for `x <= 0` without a library call: `2^n · p(r)` with `x = n ln2 + r`,
/// `|r| <= ln2 / 2` and a degree-6 Taylor polynomial (relative error below 3e-7). Inputs below
/// -87 (and `-inf`) give 0.
#[inline(always)]
pub fn fast_exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let underflow = x < -87.0;
    let x = x.max(-87.0);
    // Round to nearest by adding and removing 1.5 · 2^23 (vectorises without SSE4.1's round). The
    // sum `t` then holds n in the low bits of its mantissa: bits(t) = bits(1.5 · 2^23) + n. Reading
    // n from there keeps the whole function in vector registers; `n as i32` (a saturating
    // conversion) was compiled to one scalar conversion per element and cost a third of the forward.
    const MAGIC: f32 = 12_582_912.0;
    const MAGIC_BITS: u32 = 0x4B40_0000;
    let t = x * LOG2E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // 2^n for n in [-126, 0] (x was clamped to [-87, 0]): the biased exponent n + 127 in bits 23..31.
    let scale = f32::from_bits(t.to_bits().wrapping_sub(MAGIC_BITS).wrapping_add(127) << 23);
    if underflow {
        0.0
    } else {
        p * scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c0: &[f32], acc: bool) -> Vec<f32> {
        let mut c = if acc { c0.to_vec() } else { vec![0.0; m * n] };
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    c[i * n + j] += a[i * k + p] * b[p * n + j];
                }
            }
        }
        c
    }

    #[test]
    fn every_isa_matches_the_naive_product() {
        let mut seed = 1u32;
        let mut rnd = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        for isa in [Isa::Portable, Isa::Avx2, Isa::Avx512] {
            if !isa.supported() {
                continue;
            }
            for &(m, n, k) in &[(1, 1, 1), (7, 50, 9), (13, 64, 64), (6, 16, 3), (5, 33, 17), (64, 96, 64)] {
                let a: Vec<f32> = (0..m * k).map(|_| rnd()).collect();
                let b: Vec<f32> = (0..k * n).map(|_| rnd()).collect();
                let c0: Vec<f32> = (0..m * n).map(|_| rnd()).collect();
                for acc in [false, true] {
                    let mut c = c0.clone();
                    gemm(isa, (m, n, k), &a, k, &b, n, &mut c, n, acc);
                    let want = naive(m, n, k, &a, &b, &c0, acc);
                    for (x, y) in c.iter().zip(&want) {
                        assert!((x - y).abs() < 1e-4, "{isa:?} {m}x{n}x{k} acc={acc}: {x} vs {y}");
                    }
                }
            }
        }
    }

    #[test]
    fn fast_exp_is_accurate() {
        for isa in [Isa::Portable, Isa::Avx2, Isa::Avx512] {
            if !isa.supported() {
                continue;
            }
            let xs: Vec<f32> = (0..2000).map(|i| -(i as f32) * 0.05).chain([f32::NEG_INFINITY, -100.0]).collect();
            let mut y = xs.clone();
            let sum = exp_sub(isa, &mut y, 0.0);
            let mut want_sum = 0.0f64;
            for (x, y) in xs.iter().zip(&y) {
                let want = (*x as f64).exp();
                want_sum += want;
                let tol = 1e-6 * want + 1e-37;
                assert!((*y as f64 - want).abs() <= tol, "{isa:?} exp({x}) = {y}, want {want}");
            }
            assert!((sum as f64 - want_sum).abs() < 1e-5 * want_sum);
        }
    }
}
