//! `sin` and `cos` of small angles, lane by lane, with the very bits of the C library's.
//!
//! NumPy's `np.sin`/`np.cos` of `float64` call the C library, and on x86-64 Linux that is glibc's
//! IBM Accurate Mathematical Library (`sysdeps/ieee754/dbl-64/s_sin.c`), compiled for CPUs with
//! FMA as a separate variant (`__sin_fma`, `__cos_fma`) in which the compiler fused some
//! multiply-adds. A bit-exact batch CartPole must reproduce those results, and calling the C library
//! once per env costs more than the rest of the step. This module replays glibc's algorithm for
//! `|x| < 0.85546875` on [`Lanes`], operation by operation, with a fused multiply-add exactly where
//! the FMA variant has one (read from its machine code):
//!
//! * `sin`, `|x| < 2^-26`: `x`. `|x| < 0.126`: the odd Taylor polynomial
//!   `x + x²·(x·p(x²))` with `p` evaluated by four fused multiply-adds;
//! * `sin` otherwise and every `cos` (`2^-27 <= |x|`): split `|x| = k/128 + r`, `k = round(128|x|)`
//!   (read from the low bits of `|x| + 1.5·2^45`), take `sin(k/128)` and `cos(k/128)` as
//!   double-double pairs from glibc's table ([`SINCOS_TABLE_BITS`]) and combine them with short
//!   polynomials in `r` (the angle-addition formulas); `cos`, `|x| < 2^-27`: 1.
//!
//! Lanes outside `|x| < 0.85546875` (and NaN) are reported in a mask and left to the caller, who
//! calls the C library for them. Because the replay is only correct if the C library in the process
//! is the one it replays, [`replica_verified`] compares the two on a fixed set of probe angles once
//! per process; the vectorised kernels are used only when every probe agrees (otherwise rlox calls
//! the C library for every env, which is exactly what NumPy does). `tests::replica_matches_libm`
//! compares them on two million angles.

use super::simd::Lanes;
use super::sincos_table::SINCOS_TABLE_BITS;
use std::sync::OnceLock;

/// `|x|` below which the table path applies (glibc's `0x3feb6000` high word).
pub(crate) const SMALL: f64 = 0.855_468_75;
/// `|x|` below which `sin(x) = x` (high word `0x3e500000`).
const SIN_TINY: f64 = 1.490_116_119_384_765_6e-8; // 2^-26
/// `|x|` below which `cos(x) = 1` (high word `0x3e400000`).
const COS_TINY: f64 = 7.450_580_596_923_828e-9; // 2^-27
/// Below this `|x|`, `sin` uses the Taylor polynomial.
const TAYLOR: f64 = 0.126;
/// `1.5 · 2^45`: adding it rounds `|x|` to a multiple of 1/128 whose numerator sits in the low bits.
const BIG: f64 = 52_776_558_133_248.0;

// The polynomial coefficients, as glibc stores them (bit patterns read from its `.rodata`).
const S1: f64 = f64::from_bits(0xbfc5_5555_5555_5555);
const S2: f64 = f64::from_bits(0x3f81_1111_1111_0ece);
const S3: f64 = f64::from_bits(0xbf2a_01a0_19db_08b8);
const S4: f64 = f64::from_bits(0x3ec7_1de2_7b9a_7ed9);
const S5: f64 = f64::from_bits(0xbe5a_ddff_c2fc_df59);
const SN3: f64 = f64::from_bits(0xbfc5_5555_5555_5515);
const SN5: f64 = f64::from_bits(0x3f81_1110_e829_872f);
const CS2: f64 = f64::from_bits(0x3fe0_0000_0000_0000);
const CS4: f64 = f64::from_bits(0xbfa5_5555_5555_5535);
const CS6: f64 = f64::from_bits(0x3f56_c16b_edd9_e239);

/// The table as doubles (the generated file keeps bit patterns).
fn table() -> &'static [f64; 440] {
    static T: OnceLock<[f64; 440]> = OnceLock::new();
    T.get_or_init(|| SINCOS_TABLE_BITS.map(f64::from_bits))
}

/// A pointer to the table for the kernels (valid for the whole process).
pub(crate) fn table_ptr() -> *const f64 {
    table().as_ptr()
}

/// `(sin x, cos x, ok)` lane by lane; lanes where `ok` is false (`|x| >= 0.85546875` or NaN) hold
/// garbage and must be computed by the C library. `tab` is [`table_ptr`].
///
/// # Safety
/// `V` must be usable on this CPU (see [`Lanes`]); `tab` must be [`table_ptr`].
#[inline(always)]
pub(crate) unsafe fn sincos_small<V: Lanes>(x: V, tab: *const f64) -> (V, V, V::Mask) {
    let ax = x.abs();
    let ok = ax.lt(V::splat(SMALL));

    // The shared table split: |x| = k/128 + r.
    let u = ax.add(V::splat(BIG));
    let r = ax.sub(u.sub(V::splat(BIG)));
    // SAFETY: for lanes in `ok`, k <= 109, so 4k + 3 < 440.
    let (sn, ssn, cs, ccs) = unsafe {
        (
            V::gather4(tab, u, ok),
            V::gather4(tab.add(1), u, ok),
            V::gather4(tab.add(2), u, ok),
            V::gather4(tab.add(3), u, ok),
        )
    };

    // sin, table path (do_sin with dx = 0, whose sign follows x <= 0).
    let dx_sin = V::select(x.gt(V::splat(0.0)), V::splat(0.0), V::splat(-0.0));
    let xx = r.mul(r);
    let ps = V::mul_add(xx, V::splat(SN5), V::splat(SN3));
    let s = r.add(V::mul_add(r.mul(xx), ps, dx_sin));
    let pc = V::mul_add(xx, V::mul_add(xx, V::splat(CS6), V::splat(CS4)), V::splat(CS2));
    let c = V::mul_add(r, dx_sin, xx.mul(pc));
    let cor = V::mul_add(s, cs, V::neg_mul_add(c, sn, V::mul_add(s, ccs, ssn)));
    let sin_table = V::copysign(sn.add(cor), x);

    // sin, Taylor path (TAYLOR_SIN with da = 0).
    let x2 = x.mul(x);
    let mut p = V::mul_add(x2, V::splat(S5), V::splat(S4));
    p = V::mul_add(x2, p, V::splat(S3));
    p = V::mul_add(x2, p, V::splat(S2));
    p = V::mul_add(x2, p, V::splat(S1));
    let t1 = V::mul_add(x, p, V::splat(-0.0));
    let sin_taylor = x.add(V::mul_add(x2, t1, V::splat(0.0)));

    let sin = V::select(ax.lt(V::splat(SIN_TINY)), x, V::select(ax.lt(V::splat(TAYLOR)), sin_taylor, sin_table));

    // cos (do_cos with dx = 0, whose sign follows x < 0).
    let dx_cos = V::select(x.ge(V::splat(0.0)), V::splat(0.0), V::splat(-0.0));
    let rc = r.add(dx_cos);
    let xxc = rc.mul(rc);
    let psc = V::mul_add(xxc, V::splat(SN5), V::splat(SN3));
    let sc = V::mul_add(rc.mul(xxc), psc, rc);
    let pcc = V::mul_add(xxc, V::mul_add(xxc, V::splat(CS6), V::splat(CS4)), V::splat(CS2));
    let cc = xxc.mul(pcc);
    let corc = V::neg_mul_add(sc, sn, V::neg_mul_add(cc, cs, V::neg_mul_add(sc, ssn, ccs)));
    let cos = V::select(ax.lt(V::splat(COS_TINY)), V::splat(1.0), cs.add(corc));

    (sin, cos, ok)
}

/// `(sin x, cos x)` for every lane: the replica where it applies, the C library elsewhere.
///
/// # Safety
/// As [`sincos_small`].
#[inline(always)]
pub(crate) unsafe fn sincos<V: Lanes>(x: V, tab: *const f64) -> (V, V) {
    // SAFETY: forwarded.
    let (mut s, mut c, ok) = unsafe { sincos_small(x, tab) };
    let ok = V::bits(ok);
    let all = (1u32 << V::N) - 1;
    if ok != all {
        for i in 0..V::N {
            if ok & (1 << i) == 0 {
                let xi = x.lane(i);
                s = s.with_lane(i, xi.sin());
                c = c.with_lane(i, xi.cos());
            }
        }
    }
    (s, c)
}

/// The angles [`replica_verified`] checks: both sides of every branch point and table step, and a
/// spread of values over the whole small range.
fn probe_angles() -> Vec<f64> {
    let mut xs = vec![0.0, -0.0, SIN_TINY, COS_TINY, TAYLOR, SMALL, 1e-300, 5e-324, 0.1, 0.2, 0.5];
    for &b in &[SIN_TINY, COS_TINY, TAYLOR, SMALL] {
        xs.push(f64::from_bits(b.to_bits() - 1));
        xs.push(f64::from_bits(b.to_bits() + 1));
    }
    for k in 0..110 {
        let m = (k as f64 + 0.5) / 128.0;
        xs.extend([m, f64::from_bits(m.to_bits() - 1), f64::from_bits(m.to_bits() + 1)]);
    }
    // A fixed low-discrepancy spread (golden-ratio steps) over (-SMALL, SMALL) and over tiny angles.
    let mut t = 0.5f64;
    for _ in 0..3000 {
        t = (t + 0.618_033_988_749_894_9) % 1.0;
        xs.push((2.0 * t - 1.0) * SMALL);
        xs.push((2.0 * t - 1.0) * 0.2);
        xs.push((2.0 * t - 1.0) * 1e-4);
    }
    let negatives: Vec<f64> = xs.iter().map(|x| -x).collect();
    xs.extend(negatives);
    xs
}

/// Whether the one-lane replica equals the C library's `sin` and `cos` on every probe angle, bit
/// for bit (computed once per process). The SIMD kernels run the same operations per lane.
pub(crate) fn replica_verified() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        let tab = table_ptr();
        probe_angles().into_iter().all(|x| {
            // SAFETY: f64 lanes are plain arithmetic; tab is the table.
            let (s, c, ok) = unsafe { sincos_small::<f64>(x, tab) };
            !ok || (s.to_bits() == x.sin().to_bits() && c.to_bits() == x.cos().to_bits())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng as _;

    /// The C library in this process is glibc with the FMA variant on x86-64 (the machines rlox is
    /// built and tested on); elsewhere the replica is not expected to match and is not used.
    fn glibc_fma() -> bool {
        cfg!(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))
            && super::super::simd::Isa::best() != super::super::simd::Isa::Portable
    }

    #[test]
    fn replica_matches_libm() {
        if !glibc_fma() {
            return;
        }
        assert!(replica_verified(), "the probe angles disagree with the C library");
        let tab = table_ptr();
        let mut rng = rlox_core::seeding::rng_from_seed(1);
        let mut mismatches = Vec::new();
        for i in 0..2_000_000u32 {
            // Uniform over the small range, over CartPole's angles, and log-uniform down to 2^-40.
            let x = match i % 3 {
                0 => rng.random_range(-SMALL..SMALL),
                1 => rng.random_range(-0.3..0.3),
                _ => rng.random_range(-1.0f64..1.0).signum() * 2f64.powf(rng.random_range(-40.0..0.0)) * 0.85,
            };
            // SAFETY: f64 lanes; tab is the table.
            let (s, c, ok) = unsafe { sincos_small::<f64>(x, tab) };
            assert!(ok);
            if s.to_bits() != x.sin().to_bits() || c.to_bits() != x.cos().to_bits() {
                mismatches.push(x);
            }
        }
        assert!(
            mismatches.is_empty(),
            "{} mismatches, first {:?}",
            mismatches.len(),
            &mismatches[..5.min(mismatches.len())]
        );
    }

    #[test]
    fn out_of_range_lanes_fall_back_to_libm() {
        for x in [0.9, -3.0, 100.0, f64::NAN, f64::INFINITY] {
            // SAFETY: f64 lanes; tab is the table.
            let (s, c, ok) = unsafe { sincos_small::<f64>(x, table_ptr()) };
            let _ = (s, c);
            assert!(!ok, "{x} is outside the replayed range");
            let (s, c) = unsafe { sincos::<f64>(x, table_ptr()) };
            assert_eq!(s.to_bits(), x.sin().to_bits());
            assert_eq!(c.to_bits(), x.cos().to_bits());
        }
    }
}
