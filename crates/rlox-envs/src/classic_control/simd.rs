//! Lanes of `f64` for the vectorised batch kernels: one kernel body, written once against
//! `Lanes`, runs on AVX-512 (8 lanes), AVX2 + FMA (4 lanes) or one plain `f64`.
//!
//! Every operation is one IEEE-754 operation per lane, rounded once, so a kernel computes the
//! same bits on every implementation. Multiplications and additions are separate instructions
//! (Rust never contracts them), and `Lanes::mul_add` is a fused multiply-add only where a kernel
//! asks for one, because the C library code it replays was compiled that way (see `sincos`).
//!
//! The instruction set is chosen once at run time ([`Isa::detect`]), as `rlox-nn`'s attention
//! does; `RLOX_ENVS_ISA=portable|avx2|avx512` lowers the choice (for testing every path), and a
//! path the CPU lacks is never chosen.

use std::sync::OnceLock;

/// The instruction set a batch kernel runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// One env at a time, with the C library's `sin`/`cos` (exactly what NumPy calls).
    Portable,
    /// AVX2 + FMA: four envs per instruction.
    Avx2,
    /// AVX-512 (F, DQ, VL, BW): eight envs per instruction.
    Avx512,
}

impl Isa {
    /// The best instruction set this CPU supports, lowered by `RLOX_ENVS_ISA`; detected once.
    pub fn detect() -> Isa {
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(|| {
            let best = Self::best();
            match std::env::var("RLOX_ENVS_ISA").as_deref() {
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
            if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512dq")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("fma")
            {
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

/// A vector of `f64` lanes and its comparison mask.
///
/// # Safety
/// The SIMD implementations call instructions the CPU may lack: their values may only be created
/// and used inside functions compiled with the matching `#[target_feature]`, after
/// [`Isa::supported`] said yes. Loads, stores and gathers read and write raw pointers.
pub(crate) unsafe trait Lanes: Copy {
    /// Lanes per vector.
    const N: usize;
    /// A per-lane boolean.
    type Mask: Copy;

    /// Every lane `x`.
    fn splat(x: f64) -> Self;
    /// `N` values from `p` (unaligned).
    ///
    /// # Safety
    /// `p..p + N` must be readable.
    unsafe fn load(p: *const f64) -> Self;
    /// Write the `N` lanes to `p` (unaligned).
    ///
    /// # Safety
    /// `p..p + N` must be writable.
    unsafe fn store(self, p: *mut f64);
    /// `self + o`.
    fn add(self, o: Self) -> Self;
    /// `self - o`.
    fn sub(self, o: Self) -> Self;
    /// `self * o`.
    fn mul(self, o: Self) -> Self;
    /// `self / o`.
    fn div(self, o: Self) -> Self;
    /// `a * b + c`, rounded once.
    fn mul_add(a: Self, b: Self, c: Self) -> Self;
    /// `c - a * b`, rounded once.
    fn neg_mul_add(a: Self, b: Self, c: Self) -> Self;
    /// `|self|`.
    fn abs(self) -> Self;
    /// The magnitude of `mag` with the sign of `sign`.
    fn copysign(mag: Self, sign: Self) -> Self;
    /// `self < o` (false for NaN).
    fn lt(self, o: Self) -> Self::Mask;
    /// `self > o` (false for NaN).
    fn gt(self, o: Self) -> Self::Mask;
    /// `self >= o` (false for NaN).
    fn ge(self, o: Self) -> Self::Mask;
    /// Lane-wise or of two masks.
    fn or(a: Self::Mask, b: Self::Mask) -> Self::Mask;
    /// `m ? a : b` lane by lane.
    fn select(m: Self::Mask, a: Self, b: Self) -> Self;
    /// The mask as bits, lane 0 in bit 0.
    fn bits(m: Self::Mask) -> u32;
    /// The mask of the lanes whose bits are set in `bits` (lane 0 in bit 0).
    fn mask_from_bits(bits: u32) -> Self::Mask;
    /// `base[4 * k(u)]` for the lanes in `m` (0.0 elsewhere), where `k(u)` is the low 32 bits of
    /// the bit pattern of `u` (glibc's `SINCOS_TABLE_LOOKUP` index).
    ///
    /// # Safety
    /// For the lanes in `m`, `base + 4 * k(u)` must be readable.
    unsafe fn gather4(base: *const f64, u: Self, m: Self::Mask) -> Self;
    /// Lane `i`.
    fn lane(self, i: usize) -> f64;
    /// `self` with lane `i` set to `x`.
    fn with_lane(self, i: usize, x: f64) -> Self;
    /// Round four component vectors to `f32` and write them as `N` rows `[a_i, b_i, c_i, d_i]`
    /// (the env-major observation layout of a four-component env).
    ///
    /// # Safety
    /// `p..p + 4N` must be writable.
    unsafe fn store_rows4_f32(a: Self, b: Self, c: Self, d: Self, p: *mut f32);
}

/// One `f64` as a one-lane vector: the reference the SIMD implementations must agree with.
// SAFETY: plain scalar arithmetic; the pointer functions require what their docs say.
unsafe impl Lanes for f64 {
    const N: usize = 1;
    type Mask = bool;

    #[inline(always)]
    fn splat(x: f64) -> Self {
        x
    }
    #[inline(always)]
    unsafe fn load(p: *const f64) -> Self {
        // SAFETY: the caller guarantees p is readable.
        unsafe { p.read_unaligned() }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f64) {
        // SAFETY: the caller guarantees p is writable.
        unsafe { p.write_unaligned(self) }
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        self + o
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        self - o
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        self * o
    }
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        self / o
    }
    #[inline(always)]
    fn mul_add(a: Self, b: Self, c: Self) -> Self {
        a.mul_add(b, c)
    }
    #[inline(always)]
    fn neg_mul_add(a: Self, b: Self, c: Self) -> Self {
        (-a).mul_add(b, c)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f64::abs(self)
    }
    #[inline(always)]
    fn copysign(mag: Self, sign: Self) -> Self {
        mag.copysign(sign)
    }
    #[inline(always)]
    fn lt(self, o: Self) -> bool {
        self < o
    }
    #[inline(always)]
    fn gt(self, o: Self) -> bool {
        self > o
    }
    #[inline(always)]
    fn ge(self, o: Self) -> bool {
        self >= o
    }
    #[inline(always)]
    fn or(a: bool, b: bool) -> bool {
        a | b
    }
    #[inline(always)]
    fn select(m: bool, a: Self, b: Self) -> Self {
        if m {
            a
        } else {
            b
        }
    }
    #[inline(always)]
    fn bits(m: bool) -> u32 {
        m as u32
    }
    #[inline(always)]
    fn mask_from_bits(bits: u32) -> bool {
        bits & 1 != 0
    }
    #[inline(always)]
    unsafe fn gather4(base: *const f64, u: Self, m: bool) -> Self {
        if m {
            // SAFETY: the caller guarantees the entry is readable for lanes in m.
            unsafe { *base.add(4 * (u.to_bits() as u32) as usize) }
        } else {
            0.0
        }
    }
    #[inline(always)]
    fn lane(self, _i: usize) -> f64 {
        self
    }
    #[inline(always)]
    fn with_lane(self, _i: usize, x: f64) -> Self {
        x
    }
    #[inline(always)]
    unsafe fn store_rows4_f32(a: Self, b: Self, c: Self, d: Self, p: *mut f32) {
        // SAFETY: the caller guarantees p..p + 4 is writable.
        unsafe {
            p.write_unaligned(a as f32);
            p.add(1).write_unaligned(b as f32);
            p.add(2).write_unaligned(c as f32);
            p.add(3).write_unaligned(d as f32);
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    //! The AVX2 and AVX-512 implementations of [`Lanes`].
    use super::Lanes;
    use std::arch::x86_64::*;

    /// Four lanes in a `ymm` register (AVX2 + FMA); masks are all-ones lanes.
    #[derive(Clone, Copy)]
    pub(crate) struct F64x4(pub __m256d);

    /// Eight lanes in a `zmm` register (AVX-512); masks are `k` registers.
    #[derive(Clone, Copy)]
    pub(crate) struct F64x8(pub __m512d);

    // SAFETY: values of F64x4 are only made inside `#[target_feature(enable = "avx2,fma")]`
    // kernels that run after `Isa::Avx2.supported()`; the pointer functions require what the
    // trait documents.
    unsafe impl Lanes for F64x4 {
        const N: usize = 4;
        type Mask = __m256d;

        #[inline(always)]
        fn splat(x: f64) -> Self {
            unsafe { F64x4(_mm256_set1_pd(x)) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f64) -> Self {
            unsafe { F64x4(_mm256_loadu_pd(p)) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f64) {
            unsafe { _mm256_storeu_pd(p, self.0) }
        }
        #[inline(always)]
        fn add(self, o: Self) -> Self {
            unsafe { F64x4(_mm256_add_pd(self.0, o.0)) }
        }
        #[inline(always)]
        fn sub(self, o: Self) -> Self {
            unsafe { F64x4(_mm256_sub_pd(self.0, o.0)) }
        }
        #[inline(always)]
        fn mul(self, o: Self) -> Self {
            unsafe { F64x4(_mm256_mul_pd(self.0, o.0)) }
        }
        #[inline(always)]
        fn div(self, o: Self) -> Self {
            unsafe { F64x4(_mm256_div_pd(self.0, o.0)) }
        }
        #[inline(always)]
        fn mul_add(a: Self, b: Self, c: Self) -> Self {
            unsafe { F64x4(_mm256_fmadd_pd(a.0, b.0, c.0)) }
        }
        #[inline(always)]
        fn neg_mul_add(a: Self, b: Self, c: Self) -> Self {
            unsafe { F64x4(_mm256_fnmadd_pd(a.0, b.0, c.0)) }
        }
        #[inline(always)]
        fn abs(self) -> Self {
            unsafe { F64x4(_mm256_andnot_pd(_mm256_set1_pd(-0.0), self.0)) }
        }
        #[inline(always)]
        fn copysign(mag: Self, sign: Self) -> Self {
            unsafe {
                let s = _mm256_set1_pd(-0.0);
                F64x4(_mm256_or_pd(_mm256_andnot_pd(s, mag.0), _mm256_and_pd(s, sign.0)))
            }
        }
        #[inline(always)]
        fn lt(self, o: Self) -> __m256d {
            unsafe { _mm256_cmp_pd::<_CMP_LT_OQ>(self.0, o.0) }
        }
        #[inline(always)]
        fn gt(self, o: Self) -> __m256d {
            unsafe { _mm256_cmp_pd::<_CMP_GT_OQ>(self.0, o.0) }
        }
        #[inline(always)]
        fn ge(self, o: Self) -> __m256d {
            unsafe { _mm256_cmp_pd::<_CMP_GE_OQ>(self.0, o.0) }
        }
        #[inline(always)]
        fn or(a: __m256d, b: __m256d) -> __m256d {
            unsafe { _mm256_or_pd(a, b) }
        }
        #[inline(always)]
        fn select(m: __m256d, a: Self, b: Self) -> Self {
            unsafe { F64x4(_mm256_blendv_pd(b.0, a.0, m)) }
        }
        #[inline(always)]
        fn bits(m: __m256d) -> u32 {
            unsafe { _mm256_movemask_pd(m) as u32 }
        }
        #[inline(always)]
        fn mask_from_bits(bits: u32) -> __m256d {
            unsafe {
                let lanes = _mm256_set_epi64x(8, 4, 2, 1);
                let b = _mm256_and_si256(_mm256_set1_epi64x(bits as i64), lanes);
                _mm256_castsi256_pd(_mm256_cmpeq_epi64(b, lanes))
            }
        }
        #[inline(always)]
        unsafe fn gather4(base: *const f64, u: Self, m: __m256d) -> Self {
            unsafe {
                let k = _mm256_and_si256(_mm256_castpd_si256(u.0), _mm256_set1_epi64x(0xffff_ffff));
                let idx = _mm256_slli_epi64::<2>(k);
                F64x4(_mm256_mask_i64gather_pd::<8>(_mm256_setzero_pd(), base, idx, m))
            }
        }
        #[inline(always)]
        fn lane(self, i: usize) -> f64 {
            let mut a = [0.0; 4];
            unsafe { _mm256_storeu_pd(a.as_mut_ptr(), self.0) };
            a[i]
        }
        #[inline(always)]
        fn with_lane(self, i: usize, x: f64) -> Self {
            let mut a = [0.0; 4];
            unsafe {
                _mm256_storeu_pd(a.as_mut_ptr(), self.0);
                a[i] = x;
                F64x4(_mm256_loadu_pd(a.as_ptr()))
            }
        }
        #[inline(always)]
        unsafe fn store_rows4_f32(a: Self, b: Self, c: Self, d: Self, p: *mut f32) {
            unsafe {
                let (a, b, c, d) =
                    (_mm256_cvtpd_ps(a.0), _mm256_cvtpd_ps(b.0), _mm256_cvtpd_ps(c.0), _mm256_cvtpd_ps(d.0));
                let ab_lo = _mm_unpacklo_ps(a, b); // a0 b0 a1 b1
                let cd_lo = _mm_unpacklo_ps(c, d); // c0 d0 c1 d1
                let ab_hi = _mm_unpackhi_ps(a, b); // a2 b2 a3 b3
                let cd_hi = _mm_unpackhi_ps(c, d); // c2 d2 c3 d3
                _mm_storeu_ps(p, _mm_movelh_ps(ab_lo, cd_lo));
                _mm_storeu_ps(p.add(4), _mm_movehl_ps(cd_lo, ab_lo));
                _mm_storeu_ps(p.add(8), _mm_movelh_ps(ab_hi, cd_hi));
                _mm_storeu_ps(p.add(12), _mm_movehl_ps(cd_hi, ab_hi));
            }
        }
    }

    // SAFETY: values of F64x8 are only made inside `#[target_feature(enable =
    // "avx512f,avx512dq,avx512vl,avx512bw,fma")]` kernels that run after `Isa::Avx512.supported()`.
    unsafe impl Lanes for F64x8 {
        const N: usize = 8;
        type Mask = __mmask8;

        #[inline(always)]
        fn splat(x: f64) -> Self {
            unsafe { F64x8(_mm512_set1_pd(x)) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f64) -> Self {
            unsafe { F64x8(_mm512_loadu_pd(p)) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f64) {
            unsafe { _mm512_storeu_pd(p, self.0) }
        }
        #[inline(always)]
        fn add(self, o: Self) -> Self {
            unsafe { F64x8(_mm512_add_pd(self.0, o.0)) }
        }
        #[inline(always)]
        fn sub(self, o: Self) -> Self {
            unsafe { F64x8(_mm512_sub_pd(self.0, o.0)) }
        }
        #[inline(always)]
        fn mul(self, o: Self) -> Self {
            unsafe { F64x8(_mm512_mul_pd(self.0, o.0)) }
        }
        #[inline(always)]
        fn div(self, o: Self) -> Self {
            unsafe { F64x8(_mm512_div_pd(self.0, o.0)) }
        }
        #[inline(always)]
        fn mul_add(a: Self, b: Self, c: Self) -> Self {
            unsafe { F64x8(_mm512_fmadd_pd(a.0, b.0, c.0)) }
        }
        #[inline(always)]
        fn neg_mul_add(a: Self, b: Self, c: Self) -> Self {
            unsafe { F64x8(_mm512_fnmadd_pd(a.0, b.0, c.0)) }
        }
        #[inline(always)]
        fn abs(self) -> Self {
            unsafe { F64x8(_mm512_abs_pd(self.0)) }
        }
        #[inline(always)]
        fn copysign(mag: Self, sign: Self) -> Self {
            unsafe {
                let s = _mm512_set1_pd(-0.0);
                F64x8(_mm512_or_pd(_mm512_andnot_pd(s, mag.0), _mm512_and_pd(s, sign.0)))
            }
        }
        #[inline(always)]
        fn lt(self, o: Self) -> __mmask8 {
            unsafe { _mm512_cmp_pd_mask::<_CMP_LT_OQ>(self.0, o.0) }
        }
        #[inline(always)]
        fn gt(self, o: Self) -> __mmask8 {
            unsafe { _mm512_cmp_pd_mask::<_CMP_GT_OQ>(self.0, o.0) }
        }
        #[inline(always)]
        fn ge(self, o: Self) -> __mmask8 {
            unsafe { _mm512_cmp_pd_mask::<_CMP_GE_OQ>(self.0, o.0) }
        }
        #[inline(always)]
        fn or(a: __mmask8, b: __mmask8) -> __mmask8 {
            a | b
        }
        #[inline(always)]
        fn select(m: __mmask8, a: Self, b: Self) -> Self {
            unsafe { F64x8(_mm512_mask_blend_pd(m, b.0, a.0)) }
        }
        #[inline(always)]
        fn bits(m: __mmask8) -> u32 {
            m as u32
        }
        #[inline(always)]
        fn mask_from_bits(bits: u32) -> __mmask8 {
            bits as __mmask8
        }
        #[inline(always)]
        unsafe fn gather4(base: *const f64, u: Self, m: __mmask8) -> Self {
            unsafe {
                let k = _mm512_and_si512(_mm512_castpd_si512(u.0), _mm512_set1_epi64(0xffff_ffff));
                let idx = _mm512_slli_epi64::<2>(k);
                F64x8(_mm512_mask_i64gather_pd::<8>(_mm512_setzero_pd(), m, idx, base))
            }
        }
        #[inline(always)]
        fn lane(self, i: usize) -> f64 {
            let mut a = [0.0; 8];
            unsafe { _mm512_storeu_pd(a.as_mut_ptr(), self.0) };
            a[i]
        }
        #[inline(always)]
        fn with_lane(self, i: usize, x: f64) -> Self {
            let mut a = [0.0; 8];
            unsafe {
                _mm512_storeu_pd(a.as_mut_ptr(), self.0);
                a[i] = x;
                F64x8(_mm512_loadu_pd(a.as_ptr()))
            }
        }
        #[inline(always)]
        unsafe fn store_rows4_f32(a: Self, b: Self, c: Self, d: Self, p: *mut f32) {
            unsafe {
                // [a0..a7 | b0..b7] and [c0..c7 | d0..d7], then rows j = (a_j, b_j, c_j, d_j).
                let ab = _mm512_insertf32x8::<1>(_mm512_castps256_ps512(_mm512_cvtpd_ps(a.0)), _mm512_cvtpd_ps(b.0));
                let cd = _mm512_insertf32x8::<1>(_mm512_castps256_ps512(_mm512_cvtpd_ps(c.0)), _mm512_cvtpd_ps(d.0));
                let lo = _mm512_setr_epi32(0, 8, 16, 24, 1, 9, 17, 25, 2, 10, 18, 26, 3, 11, 19, 27);
                let hi = _mm512_setr_epi32(4, 12, 20, 28, 5, 13, 21, 29, 6, 14, 22, 30, 7, 15, 23, 31);
                _mm512_storeu_ps(p, _mm512_permutex2var_ps(ab, lo, cd));
                _mm512_storeu_ps(p.add(16), _mm512_permutex2var_ps(ab, hi, cd));
            }
        }
    }
}
