//! Stochastic approximation (book chapter 6): the incremental mean, the Robbins-Monro algorithm and
//! stochastic / mini-batch / batch gradient descent.
//!
//! These are the tools behind every sample-based update of the later chapters: the incremental mean
//! is how Monte Carlo averages returns without storing them, Robbins-Monro is the root finder that TD
//! learning and Q-learning are instances of, and SGD is Robbins-Monro applied to `grad J(w) = 0`.
//!
//! * [`incremental_mean`]: `w_{k+1} = w_k - (1/k)(w_k - x_k)`, the mean of the first `k` samples.
//! * [`robbins_monro`]: `w_{k+1} = w_k - a_k g~(w_k, eta_k)` for a noisy observation function the
//!   user supplies; step sizes from a [`StepSize`] or any closure (see [`StepRule`]).
//! * [`gradient_descent`]: SGD, MBGD and BGD on a finite-sum [`Objective`]: the book's mean
//!   estimation ([`MeanEstimation`], `f(w, x) = ||w - x||^2 / 2`) and least squares ([`LeastSquares`]).
//!   Every run returns its iterates and their distance to the exact minimiser.

use crate::schedule::StepSize;
use rand::seq::SliceRandom as _;
use rand::Rng as _;
use rlox_core::seeding::{derive_seed, rng_from_seed, Rng};
use rlox_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// The step size `a_k` at iteration `k = 1, 2, ...`: a [`StepSize`] (serialisable) or any closure.
///
/// Robbins-Monro converges when `sum a_k = inf` and `sum a_k^2 < inf` (e.g. `1/k`); a constant step
/// keeps fluctuating in a neighbourhood of the root, which is why the default is `1/k`.
pub trait StepRule {
    /// `a_k` for `k >= 1`.
    fn step(&self, k: u64) -> f64;
}

impl StepRule for StepSize {
    fn step(&self, k: u64) -> f64 {
        self.at(k)
    }
}

impl<F: Fn(u64) -> f64> StepRule for F {
    fn step(&self, k: u64) -> f64 {
        self(k)
    }
}

/// `a_k = 1/k`, the book's default step size for the chapter 6 examples.
pub const ONE_OVER_K: StepSize = StepSize::Visits { alpha0: 1.0, power: 1.0 };

fn step_at(rule: &dyn StepRule, k: u64) -> Result<f64> {
    let a = rule.step(k);
    if !(a >= 0.0 && a.is_finite()) {
        return Err(Error::invalid("step size", format!("a_{k} = {a}; step sizes must be finite and non-negative")));
    }
    Ok(a)
}

/// The running means of `samples`: element `k - 1` is the mean of the first `k` samples, computed as
/// `w_{k+1} = w_k - (1/k)(w_k - x_k)` without storing the samples (book section 6.1).
pub fn incremental_mean(samples: &[f64]) -> Vec<f64> {
    let mut w = 0.0;
    samples
        .iter()
        .enumerate()
        .map(|(i, x)| {
            w -= (w - x) / (i + 1) as f64;
            w
        })
        .collect()
}

/// [`incremental_mean`] for vectors: element `k - 1` is the mean of the first `k` points.
pub fn incremental_mean_vec(points: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let mut out: Vec<Vec<f64>> = Vec::with_capacity(points.len());
    let mut w = vec![0.0; points.first().map_or(0, Vec::len)];
    for (i, x) in points.iter().enumerate() {
        for (wj, xj) in w.iter_mut().zip(x) {
            *wj -= (*wj - xj) / (i + 1) as f64;
        }
        out.push(w.clone());
    }
    out
}

/// Zero-mean noise to add to an observation (a helper for building noisy `g~`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Noise {
    /// No noise.
    None,
    /// Gaussian with standard deviation `std` (Box-Muller).
    Gaussian {
        /// Standard deviation.
        std: f64,
    },
    /// Uniform on `[-half_width, half_width]`.
    Uniform {
        /// Half the width of the interval.
        half_width: f64,
    },
}

impl Noise {
    /// One draw.
    pub fn sample(&self, rng: &mut Rng) -> f64 {
        match *self {
            Noise::None => 0.0,
            Noise::Gaussian { std } => {
                let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]: ln is finite
                let u2: f64 = rng.random();
                std * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
            }
            Noise::Uniform { half_width } => rng.random_range(-half_width..=half_width),
        }
    }
}

/// What [`robbins_monro`] returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RobbinsMonroHistory {
    /// `w_1, w_2, ..., w_{K+1}` (the initial guess first).
    pub iterates: Vec<f64>,
    /// The noisy observations `g~(w_k, eta_k)`, `k = 1..=K`.
    pub observations: Vec<f64>,
    /// The step sizes `a_k` used.
    pub steps: Vec<f64>,
}

impl RobbinsMonroHistory {
    /// The last iterate.
    pub fn last(&self) -> f64 {
        *self.iterates.last().expect("at least the initial guess")
    }
}

/// The Robbins-Monro algorithm (book section 6.2): find a root of `g(w) = 0` from noisy observations,
/// `w_{k+1} = w_k - a_k g~(w_k, eta_k)`.
///
/// `observe(w, rng)` returns one noisy observation `g~(w, eta)` at `w`, drawing its noise from the
/// seeded `rng` (e.g. `g(w) + Noise::Gaussian { std: 1.0 }.sample(rng)`). The theorem needs `g`
/// increasing with a bounded slope near the root, `sum a_k = inf`, `sum a_k^2 < inf` and zero-mean
/// noise of bounded variance. Errors on a non-finite `w1`, zero iterations, a negative or non-finite
/// step, or a non-finite observation (the iterate blew up).
pub fn robbins_monro(
    w1: f64,
    iterations: usize,
    step: &dyn StepRule,
    seed: u64,
    mut observe: impl FnMut(f64, &mut Rng) -> f64,
) -> Result<RobbinsMonroHistory> {
    if !w1.is_finite() {
        return Err(Error::invalid("w1", format!("{w1} is not finite")));
    }
    if iterations == 0 {
        return Err(Error::invalid("iterations", "must be at least 1"));
    }
    let mut rng = rng_from_seed(derive_seed(seed, 1));
    let mut h = RobbinsMonroHistory {
        iterates: Vec::with_capacity(iterations + 1),
        observations: Vec::with_capacity(iterations),
        steps: Vec::with_capacity(iterations),
    };
    let mut w = w1;
    h.iterates.push(w);
    for k in 1..=iterations as u64 {
        let a = step_at(step, k)?;
        let g = observe(w, &mut rng);
        if !g.is_finite() {
            return Err(Error::invalid("observation", format!("g~(w_{k} = {w}) = {g} is not finite")));
        }
        w -= a * g;
        h.iterates.push(w);
        h.observations.push(g);
        h.steps.push(a);
    }
    Ok(h)
}

// ---------------------------------------------------------------------------------------------
// Gradient descent on finite sums
// ---------------------------------------------------------------------------------------------

/// A finite-sum objective `J(w) = (1/n) sum_i f_i(w)` with a known minimiser.
pub trait Objective {
    /// Dimension of `w`.
    fn dim(&self) -> usize;
    /// Number of terms `n`.
    fn len(&self) -> usize;
    /// Whether there are no terms.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Add `grad f_i(w)` to `out`.
    fn add_gradient(&self, i: usize, w: &[f64], out: &mut [f64]);
    /// The exact minimiser of `J`.
    fn solution(&self) -> Vec<f64>;
}

/// Mean estimation (book section 6.4): `f_i(w) = ||w - x_i||^2 / 2`, minimised by the sample mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeanEstimation {
    /// The samples `x_i`, all of one dimension.
    pub points: Vec<Vec<f64>>,
}

impl MeanEstimation {
    /// Errors on no points or points of different dimensions.
    pub fn new(points: Vec<Vec<f64>>) -> Result<Self> {
        let d = points.first().map_or(0, Vec::len);
        if d == 0 || points.iter().any(|p| p.len() != d) {
            return Err(Error::invalid("points", "need at least one point, all of the same positive dimension"));
        }
        Ok(MeanEstimation { points })
    }

    /// The book's example: `n` points uniform in the square `[-half_width, half_width]^2` (100 in
    /// `[-10, 10]^2` in the book), drawn from `seed`.
    pub fn uniform_square(n: usize, half_width: f64, seed: u64) -> Result<Self> {
        if !(half_width > 0.0 && half_width.is_finite()) {
            return Err(Error::invalid("half_width", format!("{half_width} must be positive")));
        }
        let mut rng = rng_from_seed(derive_seed(seed, 2));
        let points = (0..n).map(|_| (0..2).map(|_| rng.random_range(-half_width..=half_width)).collect()).collect();
        Self::new(points)
    }
}

impl Objective for MeanEstimation {
    fn dim(&self) -> usize {
        self.points[0].len()
    }
    fn len(&self) -> usize {
        self.points.len()
    }
    fn add_gradient(&self, i: usize, w: &[f64], out: &mut [f64]) {
        for ((o, wj), xj) in out.iter_mut().zip(w).zip(&self.points[i]) {
            *o += wj - xj;
        }
    }
    fn solution(&self) -> Vec<f64> {
        let n = self.points.len() as f64;
        (0..self.dim()).map(|j| self.points.iter().map(|p| p[j]).sum::<f64>() / n).collect()
    }
}

/// Linear least squares: `f_i(w) = (x_i^T w - y_i)^2 / 2`, minimised by the normal equations
/// `X^T X w = X^T y` (solved exactly; `X` must have full column rank).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeastSquares {
    /// Feature vectors `x_i` (include a constant 1 for an intercept).
    pub features: Vec<Vec<f64>>,
    /// Targets `y_i`.
    pub targets: Vec<f64>,
}

impl LeastSquares {
    /// Errors on empty data, ragged features, or a feature/target count mismatch.
    pub fn new(features: Vec<Vec<f64>>, targets: Vec<f64>) -> Result<Self> {
        let d = features.first().map_or(0, Vec::len);
        if d == 0 || features.iter().any(|x| x.len() != d) {
            return Err(Error::invalid("features", "need at least one row, all of the same positive length"));
        }
        if features.len() != targets.len() {
            return Err(Error::invalid(
                "targets",
                format!("{} targets for {} feature rows", targets.len(), features.len()),
            ));
        }
        Ok(LeastSquares { features, targets })
    }
}

impl Objective for LeastSquares {
    fn dim(&self) -> usize {
        self.features[0].len()
    }
    fn len(&self) -> usize {
        self.features.len()
    }
    fn add_gradient(&self, i: usize, w: &[f64], out: &mut [f64]) {
        let x = &self.features[i];
        let err: f64 = x.iter().zip(w).map(|(a, b)| a * b).sum::<f64>() - self.targets[i];
        for (o, xj) in out.iter_mut().zip(x) {
            *o += err * xj;
        }
    }
    fn solution(&self) -> Vec<f64> {
        let d = self.dim();
        // Augmented [X^T X | X^T y], Gauss-Jordan with partial pivoting.
        let w = d + 1;
        let mut m = vec![0.0; d * w];
        for (x, y) in self.features.iter().zip(&self.targets) {
            for r in 0..d {
                for c in 0..d {
                    m[r * w + c] += x[r] * x[c];
                }
                m[r * w + d] += x[r] * y;
            }
        }
        for col in 0..d {
            let p = (col..d).max_by(|&a, &b| m[a * w + col].abs().total_cmp(&m[b * w + col].abs())).unwrap_or(col);
            for k in 0..w {
                m.swap(p * w + k, col * w + k);
            }
            let piv = m[col * w + col];
            for r in 0..d {
                if r != col {
                    let f = m[r * w + col] / piv;
                    for k in col..w {
                        m[r * w + k] -= f * m[col * w + k];
                    }
                }
            }
        }
        (0..d).map(|r| m[r * w + d] / m[r * w + r]).collect()
    }
}

/// How mini-batches are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sampling {
    /// Independent uniform indices (with replacement): the book's SGD and MBGD, where even a batch of
    /// size `n` is not the whole data set.
    WithReplacement,
    /// Walk through a fresh random permutation each epoch (without replacement within an epoch).
    Shuffled,
    /// Walk through the data in its stored order, epoch after epoch.
    InOrder,
}

/// Which gradient each iteration uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Batch {
    /// Batch gradient descent: the exact gradient over all `n` terms.
    Full,
    /// Mini-batch gradient descent: the mean gradient over `size` drawn terms (`size = 1`: SGD).
    Mini {
        /// Terms per batch (>= 1).
        size: usize,
        /// How the terms are drawn.
        sampling: Sampling,
    },
}

/// Settings of [`gradient_descent`]. Defaults are the book's SGD example (section 6.4): batch size 1
/// drawn with replacement, `alpha_k = 1/k`, `w_1 = (-20, 20)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GdConfig {
    /// Full batch or mini-batches. Default SGD (mini-batches of 1, with replacement).
    pub batch: Batch,
    /// `alpha_k`. Default `1/k`.
    pub step_size: StepSize,
    /// Number of updates. Default 100.
    pub iterations: usize,
    /// `w_1`. Default `(-20, 20)`, the book's start (far from the data on purpose).
    pub w1: Vec<f64>,
    /// Seed of the sampling. Default 0.
    pub seed: u64,
}

impl Default for GdConfig {
    fn default() -> Self {
        GdConfig {
            batch: Batch::Mini { size: 1, sampling: Sampling::WithReplacement },
            step_size: ONE_OVER_K,
            iterations: 100,
            w1: vec![-20.0, 20.0],
            seed: 0,
        }
    }
}

impl GdConfig {
    /// SGD as in the book (one term per step, with replacement, `1/k`).
    pub fn sgd() -> Self {
        Self::default()
    }

    /// MBGD with batches of `size`, drawn with replacement as in the book.
    pub fn mbgd(size: usize) -> Self {
        GdConfig { batch: Batch::Mini { size, sampling: Sampling::WithReplacement }, ..Self::default() }
    }

    /// BGD (exact gradients).
    pub fn bgd() -> Self {
        GdConfig { batch: Batch::Full, ..Self::default() }
    }

    /// The same settings from another start `w1` and seed.
    pub fn with_w1(self, w1: Vec<f64>, seed: u64) -> Self {
        GdConfig { w1, seed, ..self }
    }

    /// Check the settings against an objective of dimension `dim`.
    pub fn validate(&self, dim: usize) -> Result<()> {
        if self.iterations == 0 {
            return Err(Error::invalid("iterations", "must be at least 1"));
        }
        if let Batch::Mini { size: 0, .. } = self.batch {
            return Err(Error::invalid("batch size", "must be at least 1"));
        }
        self.step_size.validate()?;
        if self.w1.len() != dim || self.w1.iter().any(|x| !x.is_finite()) {
            return Err(Error::invalid("w1", format!("{:?} is not a finite vector of dimension {dim}", self.w1)));
        }
        Ok(())
    }
}

/// What [`gradient_descent`] returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GdHistory {
    /// `w_1, ..., w_{K+1}`.
    pub iterates: Vec<Vec<f64>>,
    /// `||w_k - w*||_2` for every iterate, `w*` the exact minimiser.
    pub distances: Vec<f64>,
    /// The indices used by each update (empty rows for full batches).
    pub batches: Vec<Vec<usize>>,
    /// The exact minimiser `w*`.
    pub solution: Vec<f64>,
}

impl GdHistory {
    /// The last iterate.
    pub fn last(&self) -> &[f64] {
        self.iterates.last().expect("at least w1")
    }
}

fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt()
}

/// Gradient descent on a finite sum: `w_{k+1} = w_k - alpha_k (1/m) sum_{i in I_k} grad f_i(w_k)` with
/// `I_k` all terms (BGD) or a drawn mini-batch (MBGD; SGD when `m = 1`). Seeded.
///
/// On mean estimation with `alpha_k = 1/k`, `w_{k+1}` is the average of all points drawn so far
/// (the first step, `alpha_1 = 1`, forgets `w_1`): SGD is then exactly the incremental mean of its
/// samples, and BGD lands on the sample mean in one step.
pub fn gradient_descent(problem: &impl Objective, cfg: &GdConfig) -> Result<GdHistory> {
    let d = problem.dim();
    cfg.validate(d)?;
    let n = problem.len();
    if n == 0 {
        return Err(Error::invalid("objective", "has no terms"));
    }
    let solution = problem.solution();
    let mut rng = rng_from_seed(derive_seed(cfg.seed, 3));
    let mut order: Vec<usize> = (0..n).collect();
    let mut cursor = n; // forces a (re)shuffle before the first Shuffled draw
    let mut w = cfg.w1.clone();
    let mut grad = vec![0.0; d];
    let mut h = GdHistory {
        iterates: vec![w.clone()],
        distances: vec![distance(&w, &solution)],
        batches: Vec::with_capacity(cfg.iterations),
        solution,
    };
    for k in 1..=cfg.iterations as u64 {
        grad.iter_mut().for_each(|g| *g = 0.0);
        let batch: Vec<usize> = match cfg.batch {
            Batch::Full => {
                (0..n).for_each(|i| problem.add_gradient(i, &w, &mut grad));
                grad.iter_mut().for_each(|g| *g /= n as f64);
                Vec::new()
            }
            Batch::Mini { size, sampling } => {
                let idx: Vec<usize> = (0..size)
                    .map(|_| match sampling {
                        Sampling::WithReplacement => rng.random_range(0..n),
                        Sampling::Shuffled | Sampling::InOrder => {
                            if cursor == n {
                                cursor = 0;
                                if sampling == Sampling::Shuffled {
                                    order.shuffle(&mut rng);
                                }
                            }
                            cursor += 1;
                            order[cursor - 1]
                        }
                    })
                    .collect();
                idx.iter().for_each(|&i| problem.add_gradient(i, &w, &mut grad));
                grad.iter_mut().for_each(|g| *g /= size as f64);
                idx
            }
        };
        let a = step_at(&cfg.step_size, k)?;
        for (wj, gj) in w.iter_mut().zip(&grad) {
            *wj -= a * gj;
        }
        if w.iter().any(|x| !x.is_finite()) {
            return Err(Error::invalid(
                "gradient descent",
                format!("iterate diverged at k = {k}; lower the step size"),
            ));
        }
        h.distances.push(distance(&w, &h.solution));
        h.iterates.push(w.clone());
        h.batches.push(batch);
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_mean_is_the_running_mean() {
        let m = incremental_mean(&[1.0, 2.0, 6.0]);
        assert_eq!(m, vec![1.0, 1.5, 3.0]);
        let v = incremental_mean_vec(&[vec![1.0, 0.0], vec![3.0, 2.0]]);
        assert_eq!(v[1], vec![2.0, 1.0]);
    }

    #[test]
    fn least_squares_solution_fits_an_exact_line() {
        let xs: Vec<Vec<f64>> = (0..5).map(|i| vec![1.0, i as f64]).collect();
        let ys: Vec<f64> = (0..5).map(|i| 2.0 - 0.5 * i as f64).collect();
        let p = LeastSquares::new(xs, ys).unwrap();
        let w = p.solution();
        assert!((w[0] - 2.0).abs() < 1e-12 && (w[1] + 0.5).abs() < 1e-12, "{w:?}");
    }
}
