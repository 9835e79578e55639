//! Gymnasium's spaces: [`Discrete`], [`BoxSpace`] (Gymnasium's `Box`) and [`MultiDiscrete`].
//!
//! Each space answers `contains` and draws seeded samples. Sampling uses the caller's RNG so that
//! one run seed drives every random choice (see [`crate::seeding`]). Sampling matches Gymnasium's
//! *distributions* (uniform over bounded boxes, normal over unbounded sides, exponential over
//! half-bounded sides), not NumPy's random streams.

use rand::Rng;
use serde::{Deserialize, Serialize};
use std::fmt;

/// `{start, start + 1, ..., start + n - 1}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discrete {
    /// Number of elements (> 0).
    pub n: usize,
    /// The smallest element (Gymnasium's `start`, usually 0).
    pub start: i64,
}

impl Discrete {
    /// `{0, ..., n - 1}`.
    pub fn new(n: usize) -> Self {
        Discrete { n, start: 0 }
    }

    /// Whether `x` is an element.
    pub fn contains(&self, x: i64) -> bool {
        x >= self.start && x < self.start + self.n as i64
    }

    /// A uniform element.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> i64 {
        self.start + rng.random_range(0..self.n) as i64
    }
}

/// A box in R^n with per-dimension `f32` bounds (Gymnasium's `Box(low, high, shape, float32)`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoxSpace {
    /// Lower bounds, one per element (may be `-inf`).
    pub low: Vec<f32>,
    /// Upper bounds, one per element (may be `inf`).
    pub high: Vec<f32>,
    /// The shape; its product equals `low.len()`.
    pub shape: Vec<usize>,
}

impl BoxSpace {
    /// A box of the given bounds; the shape is one-dimensional.
    ///
    /// # Panics
    /// Never on valid input; returns an error string through [`BoxSpace::try_new`] instead.
    pub fn new(low: Vec<f32>, high: Vec<f32>) -> Self {
        Self::try_new(low, high).expect("BoxSpace::new: invalid bounds")
    }

    /// A box of the given bounds, checked: equal lengths and `low <= high` element-wise.
    pub fn try_new(low: Vec<f32>, high: Vec<f32>) -> crate::Result<Self> {
        if low.len() != high.len() {
            return Err(crate::Error::invalid(
                "box bounds",
                format!("low has {} elements, high has {}", low.len(), high.len()),
            ));
        }
        if let Some(i) = (0..low.len()).find(|&i| !(low[i] <= high[i])) {
            return Err(crate::Error::invalid(
                "box bounds",
                format!("low[{i}] = {} is not <= high[{i}] = {}", low[i], high[i]),
            ));
        }
        let shape = vec![low.len()];
        Ok(BoxSpace { low, high, shape })
    }

    /// A box with the same bounds in every dimension.
    pub fn uniform(low: f32, high: f32, dim: usize) -> Self {
        Self::new(vec![low; dim], vec![high; dim])
    }

    /// Number of scalar elements.
    pub fn dim(&self) -> usize {
        self.low.len()
    }

    /// Whether `x` has the right length, no NaN and lies inside the bounds.
    pub fn contains(&self, x: &[f32]) -> bool {
        x.len() == self.low.len()
            && x.iter().zip(self.low.iter().zip(&self.high)).all(|(v, (lo, hi))| *v >= *lo && *v <= *hi)
    }

    /// A sample: uniform on bounded sides, shifted exponential on half-bounded, normal on unbounded.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<f32> {
        self.low
            .iter()
            .zip(&self.high)
            .map(|(&lo, &hi)| match (lo.is_finite(), hi.is_finite()) {
                (true, true) => lo + (hi - lo) * rng.random::<f32>(),
                (true, false) => lo + exponential(rng),
                (false, true) => hi - exponential(rng),
                (false, false) => standard_normal(rng),
            })
            .collect()
    }

    /// Clip `x` into the box in place (NaN stays NaN: callers reject it separately).
    pub fn clip(&self, x: &mut [f32]) {
        for (v, (lo, hi)) in x.iter_mut().zip(self.low.iter().zip(&self.high)) {
            *v = v.max(*lo).min(*hi);
        }
    }
}

fn exponential<R: Rng + ?Sized>(rng: &mut R) -> f32 {
    let u: f64 = rng.random();
    (-(1.0 - u).ln()) as f32
}

fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f32 {
    // Box-Muller on two uniforms; exactness of the stream is not a goal here.
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// A vector of independent discrete variables, element `i` in `0..nvec[i]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultiDiscrete {
    /// Number of values of each element (each > 0).
    pub nvec: Vec<usize>,
}

impl MultiDiscrete {
    /// The space with the given sizes.
    pub fn new(nvec: Vec<usize>) -> Self {
        MultiDiscrete { nvec }
    }

    /// Whether `x` has the right length and every element is in range.
    pub fn contains(&self, x: &[i64]) -> bool {
        x.len() == self.nvec.len() && x.iter().zip(&self.nvec).all(|(v, n)| *v >= 0 && (*v as u64) < *n as u64)
    }

    /// A uniform sample.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<i64> {
        self.nvec.iter().map(|&n| rng.random_range(0..n) as i64).collect()
    }
}

/// Any of the spaces, for code that handles environments generically (CLI, registries, VecEnv).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Space {
    /// See [`Discrete`].
    Discrete(Discrete),
    /// See [`BoxSpace`].
    Box(BoxSpace),
    /// See [`MultiDiscrete`].
    MultiDiscrete(MultiDiscrete),
}

impl Space {
    /// Number of scalars an element occupies when flattened (1 for `Discrete`).
    pub fn flat_dim(&self) -> usize {
        match self {
            Space::Discrete(_) => 1,
            Space::Box(b) => b.dim(),
            Space::MultiDiscrete(m) => m.nvec.len(),
        }
    }

    /// The `Discrete` inside, if this is one.
    pub fn as_discrete(&self) -> Option<&Discrete> {
        match self {
            Space::Discrete(d) => Some(d),
            _ => None,
        }
    }

    /// The `BoxSpace` inside, if this is one.
    pub fn as_box(&self) -> Option<&BoxSpace> {
        match self {
            Space::Box(b) => Some(b),
            _ => None,
        }
    }

    /// Whether the space is `Discrete`.
    pub fn is_discrete(&self) -> bool {
        matches!(self, Space::Discrete(_))
    }
}

impl fmt::Display for Space {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Space::Discrete(d) if d.start == 0 => write!(f, "Discrete({})", d.n),
            Space::Discrete(d) => write!(f, "Discrete({}, start={})", d.n, d.start),
            Space::Box(b) => write!(f, "Box({:?}, {:?}, ({},), float32)", b.low, b.high, b.dim()),
            Space::MultiDiscrete(m) => write!(f, "MultiDiscrete({:?})", m.nvec),
        }
    }
}

impl From<Discrete> for Space {
    fn from(d: Discrete) -> Self {
        Space::Discrete(d)
    }
}

impl From<BoxSpace> for Space {
    fn from(b: BoxSpace) -> Self {
        Space::Box(b)
    }
}

impl From<MultiDiscrete> for Space {
    fn from(m: MultiDiscrete) -> Self {
        Space::MultiDiscrete(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeding::rng_from_seed;

    #[test]
    fn discrete_contains_and_samples_inside() {
        let d = Discrete { n: 3, start: -1 };
        assert!(d.contains(-1) && d.contains(1));
        assert!(!d.contains(2) && !d.contains(-2));
        let mut rng = rng_from_seed(1);
        let mut seen = [false; 3];
        for _ in 0..200 {
            let x = d.sample(&mut rng);
            assert!(d.contains(x));
            seen[(x + 1) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s), "every element is drawn in 200 samples");
    }

    #[test]
    fn box_contains_rejects_nan_and_wrong_length() {
        let b = BoxSpace::uniform(-2.0, 2.0, 1);
        assert!(b.contains(&[1.5]));
        assert!(!b.contains(&[f32::NAN]));
        assert!(!b.contains(&[2.5]));
        assert!(!b.contains(&[0.0, 0.0]));
        assert!(BoxSpace::try_new(vec![1.0], vec![0.0]).is_err());
    }

    #[test]
    fn box_samples_respect_bounds_and_seed() {
        let b = BoxSpace::new(vec![-1.0, 0.0, f32::NEG_INFINITY], vec![1.0, f32::INFINITY, f32::INFINITY]);
        let mut r1 = rng_from_seed(7);
        let mut r2 = rng_from_seed(7);
        for _ in 0..100 {
            let x = b.sample(&mut r1);
            assert_eq!(x, b.sample(&mut r2), "same seed, same samples");
            assert!(b.contains(&x), "{x:?}");
        }
    }

    #[test]
    fn multidiscrete_contains() {
        let m = MultiDiscrete::new(vec![2, 3]);
        assert!(m.contains(&[1, 2]));
        assert!(!m.contains(&[2, 0]));
        assert!(!m.contains(&[-1, 0]));
        let mut rng = rng_from_seed(3);
        assert!(m.contains(&m.sample(&mut rng)));
    }
}
