//! Element-wise and reduction loops of the fused MLP and its optimizers, each written once in plain
//! Rust that the compiler vectorises and compiled three times: for AVX-512, for AVX2+FMA and for
//! the baseline target, with the instruction set chosen at run time (as the GEMM kernels are).

use crate::attention::microkernel::fast_exp;
use crate::attention::Isa;
use crate::mlp::Activation;

/// `tanh(x)` to about 2 ulp, branch-free so that it vectorises: an odd polynomial for `|x| < 0.625`
/// (the minimax coefficients of Cephes' `tanhf`), `(1 - e) / (1 + e)` with `e = exp(-2|x|)`
/// above. NaN stays NaN.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let ax = x.abs();
    let z = x * x;
    let small = x + x
        * z
        * ((((-5.704_988_7e-3 * z + 2.063_908_8e-2) * z - 5.373_971_5e-2) * z + 1.333_144_2e-1) * z - 3.333_328e-1);
    let e = fast_exp(-2.0 * ax);
    let big = ((1.0 - e) / (1.0 + e)).copysign(x);
    if ax >= 0.625 {
        big
    } else {
        small
    }
}

/// `max(x, 0)` that keeps NaN (as PyTorch's `relu` does).
#[inline(always)]
fn relu(x: f32) -> f32 {
    if x < 0.0 {
        0.0
    } else {
        x
    }
}

#[inline(always)]
fn activate_body(activation: Activation, y: &mut [f32]) {
    match activation {
        Activation::Relu => y.iter_mut().for_each(|v| *v = relu(*v)),
        Activation::Tanh => y.iter_mut().for_each(|v| *v = tanh(*v)),
    }
}

per_isa! {
    /// Apply `activation` in place.
    pub fn activate(activation: Activation, y: &mut [f32]) => activate_body
}

#[inline(always)]
fn activation_backward_body(activation: Activation, y: &[f32], d: &mut [f32]) {
    match activation {
        // The derivative at 0 is taken as 0 (PyTorch, burn).
        Activation::Relu => d.iter_mut().zip(y).for_each(|(d, &y)| *d = if y > 0.0 { *d } else { 0.0 }),
        Activation::Tanh => d.iter_mut().zip(y).for_each(|(d, &y)| *d *= 1.0 - y * y),
    }
}

per_isa! {
    /// `d *= activation'(.)` where `y` holds the activation's outputs (ReLU: `y > 0`; tanh: `1 - y²`).
    pub fn activation_backward(activation: Activation, y: &[f32], d: &mut [f32]) => activation_backward_body
}

#[inline(always)]
fn column_sums_body(x: &[f32], cols: usize, out: &mut [f32]) {
    let out = &mut out[..cols];
    out.fill(0.0);
    for row in x.chunks_exact(cols) {
        out.iter_mut().zip(row).for_each(|(o, &v)| *o += v);
    }
}

per_isa! {
    /// `out[j] = sum_i x[i * cols + j]` over the whole rows of `x` (the bias gradient).
    pub fn column_sums(x: &[f32], cols: usize, out: &mut [f32]) => column_sums_body
}

#[inline(always)]
fn sum_squares_body(x: &[f32]) -> f64 {
    let mut lanes = [0.0f32; 16];
    let mut chunks = x.chunks_exact(256);
    let mut total = 0.0f64;
    // f32 lanes over blocks of 256, summed into f64 per block: vectorised and accurate for any length.
    for block in &mut chunks {
        for c in block.chunks_exact(16) {
            lanes.iter_mut().zip(c).for_each(|(s, &v)| *s += v * v);
        }
        total += lanes.iter().map(|&s| s as f64).sum::<f64>();
        lanes = [0.0; 16];
    }
    total + chunks.remainder().iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>()
}

per_isa! {
    /// `sum x²`, accumulated in f32 lanes over blocks of 256 and in f64 across blocks.
    pub fn sum_squares(x: &[f32]) -> f64 => sum_squares_body
}

#[inline(always)]
fn scale_body(x: &mut [f32], factor: f32) {
    x.iter_mut().for_each(|v| *v *= factor);
}

per_isa! {
    /// `x *= factor`.
    pub fn scale(x: &mut [f32], factor: f32) => scale_body
}

#[inline(always)]
fn add_assign_body(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, &b)| *a += b);
}

per_isa! {
    /// `x += y`.
    pub fn add_assign(x: &mut [f32], y: &[f32]) => add_assign_body
}

#[inline(always)]
fn polyak_body(target: &mut [f32], online: &[f32], tau: f32) {
    let keep = 1.0 - tau;
    target.iter_mut().zip(online).for_each(|(t, &o)| *t = *t * keep + o * tau);
}

per_isa! {
    /// `target = (1 - tau) target + tau online` (the same expression as [`crate::polyak_update`]).
    pub fn polyak(target: &mut [f32], online: &[f32], tau: f32) => polyak_body
}

/// `dst[cols × rows] = srcᵀ` for a row-major `src[rows × cols]`.
pub fn transpose(isa: Isa, src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    transpose_strided(isa, src, cols, rows, cols, dst, rows);
}

/// `dst = srcᵀ` for a `rows × cols` block of `src` with row stride `lds`, written to `dst` with
/// row stride `ldd` (`cols` rows of `rows` values): 8 × 8 blocks transposed in AVX registers (eight
/// loads, 24 shuffles, eight stores per block) where the CPU has AVX2, a plain loop elsewhere and on
/// the edges.
///
/// # Panics
/// If a buffer is too short for the shape and strides.
pub fn transpose_strided(isa: Isa, src: &[f32], lds: usize, rows: usize, cols: usize, dst: &mut [f32], ldd: usize) {
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(lds >= cols && ldd >= rows, "transpose: strides smaller than the block");
    assert!(
        src.len() >= (rows - 1) * lds + cols && dst.len() >= (cols - 1) * ldd + rows,
        "transpose: buffers too short"
    );
    let g = Geometry { lds, ldd };
    #[cfg(target_arch = "x86_64")]
    if isa != Isa::Portable && Isa::Avx2.supported() {
        // SAFETY: the buffers cover the block (checked above) and AVX2 is supported.
        unsafe { x86::transpose_avx2(src, rows, cols, dst, g) };
        return;
    }
    let _ = isa;
    transpose_block(src, dst, g, (0, rows), (0, cols));
}

/// Row strides of a transpose's source and destination.
#[derive(Clone, Copy)]
struct Geometry {
    lds: usize,
    ldd: usize,
}

/// The plain transpose of the block `i0..i1 × j0..j1`.
fn transpose_block(src: &[f32], dst: &mut [f32], g: Geometry, (i0, i1): (usize, usize), (j0, j1): (usize, usize)) {
    for i in i0..i1 {
        for j in j0..j1 {
            dst[j * g.ldd + i] = src[i * g.lds + j];
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Geometry;
    use std::arch::x86_64::*;

    /// The 8 × 8 block of `src` at `(i0, j0)`, transposed into `dst`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn block8(s: *const f32, d: *mut f32, g: Geometry, i0: usize, j0: usize) {
        // SAFETY: the caller guarantees rows i0..i0+8 and columns j0..j0+8 lie inside both buffers.
        unsafe {
            let mut r = [_mm256_setzero_ps(); 8];
            for (k, v) in r.iter_mut().enumerate() {
                *v = _mm256_loadu_ps(s.add((i0 + k) * g.lds + j0));
            }
            let t0 = _mm256_unpacklo_ps(r[0], r[1]);
            let t1 = _mm256_unpackhi_ps(r[0], r[1]);
            let t2 = _mm256_unpacklo_ps(r[2], r[3]);
            let t3 = _mm256_unpackhi_ps(r[2], r[3]);
            let t4 = _mm256_unpacklo_ps(r[4], r[5]);
            let t5 = _mm256_unpackhi_ps(r[4], r[5]);
            let t6 = _mm256_unpacklo_ps(r[6], r[7]);
            let t7 = _mm256_unpackhi_ps(r[6], r[7]);
            let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
            let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
            let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
            let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
            let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
            let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
            let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
            let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
            let out = [
                _mm256_permute2f128_ps::<0x20>(u0, u4),
                _mm256_permute2f128_ps::<0x20>(u1, u5),
                _mm256_permute2f128_ps::<0x20>(u2, u6),
                _mm256_permute2f128_ps::<0x20>(u3, u7),
                _mm256_permute2f128_ps::<0x31>(u0, u4),
                _mm256_permute2f128_ps::<0x31>(u1, u5),
                _mm256_permute2f128_ps::<0x31>(u2, u6),
                _mm256_permute2f128_ps::<0x31>(u3, u7),
            ];
            for (k, v) in out.iter().enumerate() {
                _mm256_storeu_ps(d.add((j0 + k) * g.ldd + i0), *v);
            }
        }
    }

    /// Rows go by 16 where they can: the two 8 × 8 blocks of a column block fill whole 64-byte
    /// lines of `dst` one after the other.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn transpose_avx2(src: &[f32], rows: usize, cols: usize, dst: &mut [f32], g: Geometry) {
        let (r8, c8) = (rows / 8 * 8, cols / 8 * 8);
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        let mut i0 = 0;
        while i0 < r8 {
            let pair = i0 + 16 <= r8;
            for j0 in (0..c8).step_by(8) {
                // SAFETY: rows i0..i0+8 (i0+16 for a pair) and columns j0..j0+8 lie inside both buffers.
                unsafe {
                    block8(s, d, g, i0, j0);
                    if pair {
                        block8(s, d, g, i0 + 8, j0);
                    }
                }
            }
            i0 += if pair { 16 } else { 8 };
        }
        super::transpose_block(src, dst, g, (0, r8), (c8, cols));
        super::transpose_block(src, dst, g, (r8, rows), (0, cols));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISAS: [Isa; 3] = [Isa::Portable, Isa::Avx2, Isa::Avx512];

    #[test]
    fn tanh_is_accurate_and_keeps_nan() {
        for isa in ISAS.into_iter().filter(|i| i.supported()) {
            let xs: Vec<f32> = (-20000..=20000)
                .map(|i| i as f32 * 1e-3)
                .chain([1e-30, -1e-20, 1e-8, 0.0, -0.0, 50.0, -90.0, f32::INFINITY, f32::NEG_INFINITY])
                .collect();
            let mut y = xs.clone();
            activate(isa, Activation::Tanh, &mut y);
            for (x, y) in xs.iter().zip(&y) {
                let want = (*x as f64).tanh();
                let err = (*y as f64 - want).abs();
                assert!(err <= 3e-7 * want.abs() + 1e-45, "{isa:?} tanh({x}) = {y}, want {want}");
            }
            let mut nan = [f32::NAN; 17];
            activate(isa, Activation::Tanh, &mut nan);
            assert!(nan.iter().all(|v| v.is_nan()), "{isa:?}");
            let mut r = [f32::NAN, -1.0, 2.0, -0.0];
            activate(isa, Activation::Relu, &mut r);
            assert!(r[0].is_nan() && r[1] == 0.0 && r[2] == 2.0 && r[3] == 0.0, "{isa:?} {r:?}");
        }
    }

    #[test]
    fn reductions_transpose_and_updates() {
        for isa in ISAS.into_iter().filter(|i| i.supported()) {
            let x: Vec<f32> = (0..1000).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
            let want: f64 = x.iter().map(|&v| v as f64 * v as f64).sum();
            assert!((sum_squares(isa, &x) - want).abs() < 1e-6 * want, "{isa:?}");
            let (rows, cols) = (37, 27);
            let mut sums = vec![9.0; cols];
            column_sums(isa, &x[..rows * cols], cols, &mut sums);
            for (j, s) in sums.iter().enumerate() {
                let w: f32 = (0..rows).map(|i| x[i * cols + j]).sum();
                assert!((s - w).abs() < 1e-4, "{isa:?}");
            }
            let mut t = vec![0.0; rows * cols];
            transpose(isa, &x[..rows * cols], rows, cols, &mut t);
            for i in 0..rows {
                for j in 0..cols {
                    assert_eq!(t[j * rows + i], x[i * cols + j]);
                }
            }
            // A 21 x 19 block out of a wider source into a wider destination.
            let mut t = vec![-1.0; 19 * 30];
            transpose_strided(isa, &x, 27, 21, 19, &mut t, 30);
            for i in 0..21 {
                for j in 0..19 {
                    assert_eq!(t[j * 30 + i], x[i * 27 + j]);
                }
                assert!(t[..18 * 30 + 30].iter().skip(21).step_by(30).all(|&v| v == -1.0));
            }
            let mut d = vec![1.0f32; 4];
            activation_backward(isa, Activation::Tanh, &[0.5, -0.5, 0.0, 1.0], &mut d);
            assert_eq!(d, [0.75, 0.75, 1.0, 0.0]);
            let mut d = vec![2.0f32; 3];
            activation_backward(isa, Activation::Relu, &[0.5, 0.0, -1.0], &mut d);
            assert_eq!(d, [2.0, 0.0, 0.0]);
            let mut tgt = vec![1.0f32; 3];
            polyak(isa, &mut tgt, &[3.0, 5.0, 1.0], 0.25);
            assert_eq!(tgt, [1.5, 2.0, 1.0]);
        }
    }
}
