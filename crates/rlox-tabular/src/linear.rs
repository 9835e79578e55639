//! Value function approximation with linear features (book chapter 8), on plain `Vec<f64>`.
//!
//! * **Features** ([`Features`], [`GridFeatures`], [`FeatureSpec`]) of a grid world's cell, with
//!   `x` = column and `y` = row (book section 8.2):
//!   - polynomial of degree 1, 2, 3: `[1, x, y]`, `[1, x, y, x^2, y^2, xy]`,
//!     `[1, x, y, x^2, y^2, xy, x^3, y^3, x^2 y, x y^2]`, with `x, y` mapped linearly onto `[-1, 1]`
//!     (first column/row to -1, last to +1);
//!   - Fourier of order `q`: `cos(pi (c1 x + c2 y))` for `c1, c2` in `0..=q` (`c1` the outer loop),
//!     `(q + 1)^2` features, with `x, y` mapped linearly onto `[0, 1]`;
//!   - tile coding: `tilings` grids of `tiles x tiles` tiles over the unit square (cell centres at
//!     `(c - 1/2) / cols`, `(r - 1/2) / rows`), tiling `k` shifted by `k/tilings` of a tile width
//!     along the diagonal, or by `(k, 3k) mod tilings` with `asymmetric` (Sutton and Barto's advice);
//!     each tiling has `(tiles + 1)^2` tiles so that the shifted grid still covers the square;
//!   - one-hot: the tabular case, `phi(s) = e_s`; TD-Linear with it is TD(0).
//! * **State-action features** for control ([`StateActionFeatures`]): the book does not say how its
//!   Sarsa/Q-learning examples (Figs 8.9, 8.10) feed the action to the Fourier features, so two encodings
//!   are offered ([`ActionEncoding`]): [`ActionBlocks`], one block of state features per action,
//!   `phi(s, a) = e_a (x) phi(s)`, so `q(s, a) = phi(s)^T w_a` (any state features), and [`JointFourier`]
//!   (the default), a Fourier basis of `(x, y, a)` with the action normalised to `[0, 1]` as the book's
//!   DQN example feeds it. On the 5x5 grid both Fourier-5 encodings can represent any `q` exactly; the
//!   joint one learns much faster at the book's alpha (see [`ActionEncoding`] for the measurements).
//! * **Model quantities**: the policy's transition matrix, its stationary distribution
//!   ([`stationary_distribution`] by power iteration on the lazy chain `(I + P)/2`, which has the same
//!   stationary distribution and is aperiodic; [`stationary_distribution_exact`] by a linear solve), and
//!   the projected TD fixed point `w* = (Phi^T D (I - gamma P) Phi)^-1 Phi^T D r` ([`td_fixed_point`]).
//! * **Learners**: [`td_linear`] (book Algorithm in section 8.2), [`lstd`] from samples and
//!   [`lstd_from_model`] from expected statistics, and [`linear_control`] (Sarsa and Q-learning with
//!   linear function approximation, book Algorithms 8.2 and 8.3).
//!
//! Dense systems are solved with [`solve_dense`] (Gaussian elimination, partial pivoting): the systems here
//! have as many unknowns as features (a few dozen to a few hundred).

use crate::bellman::r_pi;
use crate::monte_carlo::ExploringStart;
use crate::schedule::{EpsilonSchedule, StepSize};
use crate::td::{discrete_sizes, epsilon_greedy, rmse, LearningHistory};
use rand::Rng as _;
use rand_distr::{Distribution, Normal};
use rlox_core::env::Env;
use rlox_core::mdp::{Mdp, TabularMdp};
use rlox_core::policy::{argmax_lowest, TabularPolicy};
use rlox_core::seeding::{derive_seed, rng_from_seed, Rng};
use rlox_core::{Error, Result};
use rlox_envs::gridworld::{Cell, GridWorld};
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

// ------------------------------------------------------------------------------------------------
// Dense linear algebra
// ------------------------------------------------------------------------------------------------

/// Solve `A x = b` for a dense row-major `n x n` matrix `A` (Gaussian elimination with partial pivoting).
///
/// Errors on mismatched sizes, non-finite entries, or a (numerically) singular `A`: a pivot below
/// `1e-12` times the largest entry of `A`.
pub fn solve_dense(a: &[f64], b: &[f64]) -> Result<Vec<f64>> {
    let n = b.len();
    if a.len() != n * n {
        return Err(Error::invalid("linear system", format!("a {}-entry matrix for {n} unknowns", a.len())));
    }
    if a.iter().chain(b).any(|x| !x.is_finite()) {
        return Err(Error::invalid("linear system", "the matrix or right-hand side has a non-finite entry"));
    }
    let scale = a.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let w = n + 1;
    let mut m = vec![0.0; n * w];
    for i in 0..n {
        m[i * w..i * w + n].copy_from_slice(&a[i * n..(i + 1) * n]);
        m[i * w + n] = b[i];
    }
    for col in 0..n {
        let pivot = (col..n).max_by(|&p, &q| m[p * w + col].abs().total_cmp(&m[q * w + col].abs())).unwrap_or(col);
        if !(m[pivot * w + col].abs() > 1e-12 * scale) {
            return Err(Error::invalid(
                "linear system",
                format!("the {n}x{n} matrix is singular (no pivot in column {col}); are some features never visited or linearly dependent?"),
            ));
        }
        if pivot != col {
            for k in 0..w {
                m.swap(pivot * w + k, col * w + k);
            }
        }
        let d = m[col * w + col];
        for row in col + 1..n {
            let f = m[row * w + col] / d;
            if f != 0.0 {
                for k in col..w {
                    m[row * w + k] -= f * m[col * w + k];
                }
            }
        }
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|j| m[i * w + j] * x[j]).sum();
        x[i] = (m[i * w + n] - s) / m[i * w + i];
    }
    Ok(x)
}

#[inline]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

// ------------------------------------------------------------------------------------------------
// Features
// ------------------------------------------------------------------------------------------------

/// A feature map of the states `0..n_states()` into `R^dim()`.
pub trait Features {
    /// Number of states the map is defined on.
    fn n_states(&self) -> usize;
    /// Length of a feature vector.
    fn dim(&self) -> usize;
    /// Write `phi(s)` into `out` (length [`Features::dim`]).
    fn features(&self, s: usize, out: &mut [f64]);
}

/// The feature matrix `Phi` (row-major `n_states x dim`, row `s` = `phi(s)^T`).
pub fn feature_matrix<F: Features + ?Sized>(f: &F) -> Vec<f64> {
    let (n, k) = (f.n_states(), f.dim());
    let mut phi = vec![0.0; n * k];
    for s in 0..n {
        f.features(s, &mut phi[s * k..(s + 1) * k]);
    }
    phi
}

/// A feature map of the state-action pairs `(s, a)`, `s < n_states()`, `a < n_actions()`.
pub trait StateActionFeatures {
    /// Number of states.
    fn n_states(&self) -> usize;
    /// Number of actions.
    fn n_actions(&self) -> usize;
    /// Length of a feature vector.
    fn dim(&self) -> usize;
    /// Write `phi(s, a)` into `out` (length [`StateActionFeatures::dim`]).
    fn features(&self, s: usize, a: usize, out: &mut [f64]);
}

/// `phi(s, a) = e_a (x) phi(s)`: the state features in block `a` of `n_actions` blocks, zeros elsewhere,
/// so that `q(s, a) = phi(s)^T w_a` with one weight block per action.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionBlocks<F> {
    state: F,
    n_actions: usize,
}

impl<F: Features> ActionBlocks<F> {
    /// Blocks of `state` features for `n_actions` actions (errors on 0 actions).
    pub fn new(state: F, n_actions: usize) -> Result<Self> {
        if n_actions == 0 {
            return Err(Error::invalid("actions", "state-action features need at least one action"));
        }
        Ok(ActionBlocks { state, n_actions })
    }

    /// The state features.
    pub fn state_features(&self) -> &F {
        &self.state
    }
}

impl<F: Features> StateActionFeatures for ActionBlocks<F> {
    fn n_states(&self) -> usize {
        self.state.n_states()
    }
    fn n_actions(&self) -> usize {
        self.n_actions
    }
    fn dim(&self) -> usize {
        self.n_actions * self.state.dim()
    }
    fn features(&self, s: usize, a: usize, out: &mut [f64]) {
        let k = self.state.dim();
        out.fill(0.0);
        self.state.features(s, &mut out[a * k..(a + 1) * k]);
    }
}

/// The Fourier basis of order `q` on the three normalised inputs `(x, y, z)`, `z = a / (n_actions - 1)`
/// (the action as a third coordinate in `[0, 1]`, as the book's DQN example feeds it):
/// `cos(pi (c1 x + c2 y + c3 z))` for `c1, c2, c3` in `0..=q` (`c1` outermost), `(q + 1)^3` features.
#[derive(Debug, Clone, PartialEq)]
pub struct JointFourier {
    grid: GridFeatures,
    n_actions: usize,
    order: usize,
}

impl JointFourier {
    /// Errors on an empty grid, no actions, or an order outside `1..=64`.
    pub fn new(rows: usize, cols: usize, n_actions: usize, order: usize) -> Result<Self> {
        let grid = GridFeatures::new(FeatureSpec::Fourier { order }, rows, cols)?;
        if n_actions == 0 {
            return Err(Error::invalid("actions", "state-action features need at least one action"));
        }
        Ok(JointFourier { grid, n_actions, order })
    }
}

impl StateActionFeatures for JointFourier {
    fn n_states(&self) -> usize {
        self.grid.n_states()
    }
    fn n_actions(&self) -> usize {
        self.n_actions
    }
    fn dim(&self) -> usize {
        (self.order + 1).pow(3)
    }
    fn features(&self, s: usize, a: usize, out: &mut [f64]) {
        let (x, y) = self.grid.unit_coords(s);
        let z = if self.n_actions > 1 { a as f64 / (self.n_actions - 1) as f64 } else { 0.0 };
        let q = self.order;
        let mut i = 0;
        for c1 in 0..=q {
            for c2 in 0..=q {
                for c3 in 0..=q {
                    out[i] = (PI * (c1 as f64 * x + c2 as f64 * y + c3 as f64 * z)).cos();
                    i += 1;
                }
            }
        }
    }
}

/// How control feeds the action to the features.
///
/// Measured on the book's Figs 8.9-8.10 setting (Fourier order 5, alpha 0.001, eps 0.1, 500 episodes,
/// seeds 0..10, greedy policy from (1,1) reaching the target): joint Fourier 9/10 (Sarsa) and 8/10
/// (Q-learning); blocks 3/10 and 0/10: one block per action sees each action's data only, so it learns
/// about 5x slower at the same alpha. Joint Fourier is therefore the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ActionEncoding {
    /// One block of state features per action ([`ActionBlocks`]); works with every [`FeatureSpec`].
    Blocks,
    /// The action as a third normalised coordinate of a Fourier basis ([`JointFourier`]; Fourier specs
    /// only, use `Blocks` for the others).
    #[default]
    JointFourier,
}

/// Build the state-action features of `spec` on `grid` with `encoding`.
pub fn grid_state_action_features(
    spec: FeatureSpec,
    encoding: ActionEncoding,
    grid: &GridWorld,
) -> Result<Box<dyn StateActionFeatures>> {
    let na = grid.n_actions();
    match (encoding, spec) {
        (ActionEncoding::Blocks, _) => Ok(Box::new(ActionBlocks::new(spec.for_grid(grid)?, na)?)),
        (ActionEncoding::JointFourier, FeatureSpec::Fourier { order }) => {
            Ok(Box::new(JointFourier::new(grid.rows(), grid.cols(), na, order)?))
        }
        (ActionEncoding::JointFourier, other) => Err(Error::invalid(
            "action encoding",
            format!("joint-fourier needs Fourier features, not {other:?}; use blocks"),
        )),
    }
}

/// The state-action feature matrix (row-major `(n_states * n_actions) x dim`, row `s * n_actions + a`).
pub fn state_action_matrix<F: StateActionFeatures + ?Sized>(f: &F) -> Vec<f64> {
    let (ns, na, k) = (f.n_states(), f.n_actions(), f.dim());
    let mut phi = vec![0.0; ns * na * k];
    for s in 0..ns {
        for a in 0..na {
            let row = s * na + a;
            f.features(s, a, &mut phi[row * k..(row + 1) * k]);
        }
    }
    phi
}

/// Which feature map of a grid cell (see the module docs for the exact definitions).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", deny_unknown_fields)]
pub enum FeatureSpec {
    /// Polynomial of `degree` 1, 2 or 3 in `x, y` in `[-1, 1]` (3, 6, 10 features; book Fig 8.7).
    Polynomial {
        /// 1, 2 or 3.
        degree: usize,
    },
    /// Fourier of `order` q >= 1 in `x, y` in `[0, 1]` (`(q+1)^2` features; book Fig 8.8; order 5 in
    /// Figs 8.9-8.10).
    Fourier {
        /// q >= 1.
        order: usize,
    },
    /// Tile coding: `tilings` offset grids of `tiles x tiles` tiles (binary features).
    TileCoding {
        /// Number of tilings (>= 1).
        tilings: usize,
        /// Tiles per dimension of each tiling (>= 1).
        tiles: usize,
        /// Offsets `(k, 3k) mod tilings` instead of `(k, k)` (Sutton and Barto's asymmetric offsets).
        #[serde(default)]
        asymmetric: bool,
    },
    /// One feature per cell (the tabular case).
    OneHot,
}

impl Default for FeatureSpec {
    /// Fourier of order 5: the book's Sarsa/Q-learning with linear FA (Figs 8.9-8.10).
    fn default() -> Self {
        FeatureSpec::Fourier { order: 5 }
    }
}

impl FeatureSpec {
    /// A short label for legends: `"polynomial, 3 features"`, `"Fourier q=3, 16 features"`, ...
    pub fn label(&self, rows: usize, cols: usize) -> String {
        let dim = self.dim(rows, cols);
        match self {
            FeatureSpec::Polynomial { .. } => format!("polynomial, {dim} features"),
            FeatureSpec::Fourier { order } => format!("Fourier q={order}, {dim} features"),
            FeatureSpec::TileCoding { tilings, tiles, .. } => {
                format!("tile coding {tilings}x({tiles}x{tiles}), {dim} features")
            }
            FeatureSpec::OneHot => format!("one-hot, {dim} features"),
        }
    }

    fn dim(&self, rows: usize, cols: usize) -> usize {
        match *self {
            FeatureSpec::Polynomial { degree } => (degree + 1) * (degree + 2) / 2,
            FeatureSpec::Fourier { order } => (order + 1) * (order + 1),
            FeatureSpec::TileCoding { tilings, tiles, .. } => tilings * (tiles + 1) * (tiles + 1),
            FeatureSpec::OneHot => rows * cols,
        }
    }

    /// Errors on a degree outside 1..=3, a Fourier order 0 (only the constant feature), or a tile
    /// coding without tilings or tiles.
    pub fn validate(&self) -> Result<()> {
        match *self {
            FeatureSpec::Polynomial { degree } if !(1..=3).contains(&degree) => Err(Error::invalid(
                "polynomial degree",
                format!("{degree}: use 1, 2 or 3 (3, 6 or 10 features, as in the book)"),
            )),
            FeatureSpec::Fourier { order: 0 } => Err(Error::invalid(
                "Fourier order",
                "0 gives only the constant feature; use an order of at least 1 (the book uses 1, 2, 3 and 5)",
            )),
            FeatureSpec::Fourier { order } if order > 64 => {
                Err(Error::invalid("Fourier order", format!("{order} is above the limit of 64")))
            }
            FeatureSpec::TileCoding { tilings, tiles, .. } if tilings == 0 || tiles == 0 => Err(Error::invalid(
                "tile coding",
                format!("{tilings} tilings of {tiles} tiles: both must be at least 1"),
            )),
            _ => Ok(()),
        }
    }

    /// The feature map on a `rows x cols` grid.
    pub fn build(&self, rows: usize, cols: usize) -> Result<GridFeatures> {
        GridFeatures::new(*self, rows, cols)
    }

    /// The feature map on `grid`'s cells.
    pub fn for_grid(&self, grid: &GridWorld) -> Result<GridFeatures> {
        GridFeatures::new(*self, grid.rows(), grid.cols())
    }
}

/// A [`FeatureSpec`] on a grid of `rows x cols` cells (states row-major, as in [`GridWorld`]).
#[derive(Debug, Clone, PartialEq)]
pub struct GridFeatures {
    spec: FeatureSpec,
    rows: usize,
    cols: usize,
    dim: usize,
}

impl GridFeatures {
    /// Validate and build. Errors on an empty grid or an invalid spec.
    pub fn new(spec: FeatureSpec, rows: usize, cols: usize) -> Result<Self> {
        if rows == 0 || cols == 0 {
            return Err(Error::invalid("grid size", format!("{rows}x{cols}: features need at least one cell")));
        }
        spec.validate()?;
        Ok(GridFeatures { spec, rows, cols, dim: spec.dim(rows, cols) })
    }

    /// The spec.
    pub fn spec(&self) -> FeatureSpec {
        self.spec
    }

    /// A legend label (see [`FeatureSpec::label`]).
    pub fn label(&self) -> String {
        self.spec.label(self.rows, self.cols)
    }

    /// `(x, y)` of state `s` mapped onto `[0, 1]` (first column/row 0, last 1; 0 on a single column/row).
    pub fn unit_coords(&self, s: usize) -> (f64, f64) {
        let (r, c) = (s / self.cols, s % self.cols);
        let unit = |i: usize, n: usize| if n > 1 { i as f64 / (n - 1) as f64 } else { 0.0 };
        (unit(c, self.cols), unit(r, self.rows))
    }

    /// `(x, y)` of state `s` mapped onto `[-1, 1]` (0 on a single column/row).
    pub fn symmetric_coords(&self, s: usize) -> (f64, f64) {
        let (x, y) = self.unit_coords(s);
        let sym = |u: f64, n: usize| if n > 1 { 2.0 * u - 1.0 } else { 0.0 };
        (sym(x, self.cols), sym(y, self.rows))
    }
}

impl Features for GridFeatures {
    fn n_states(&self) -> usize {
        self.rows * self.cols
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn features(&self, s: usize, out: &mut [f64]) {
        debug_assert_eq!(out.len(), self.dim);
        match self.spec {
            FeatureSpec::Polynomial { degree } => {
                let (x, y) = self.symmetric_coords(s);
                let all = [1.0, x, y, x * x, y * y, x * y, x * x * x, y * y * y, x * x * y, x * y * y];
                out.copy_from_slice(&all[..(degree + 1) * (degree + 2) / 2]);
            }
            FeatureSpec::Fourier { order } => {
                let (x, y) = self.unit_coords(s);
                let mut i = 0;
                for c1 in 0..=order {
                    for c2 in 0..=order {
                        out[i] = (PI * (c1 as f64 * x + c2 as f64 * y)).cos();
                        i += 1;
                    }
                }
            }
            FeatureSpec::TileCoding { tilings, tiles, asymmetric } => {
                out.fill(0.0);
                let (r, c) = (s / self.cols, s % self.cols);
                let u = (c as f64 + 0.5) / self.cols as f64;
                let v = (r as f64 + 0.5) / self.rows as f64;
                let per = (tiles + 1) * (tiles + 1);
                for k in 0..tilings {
                    let (ox, oy) = if asymmetric { (k % tilings, (3 * k) % tilings) } else { (k, k) };
                    let shift = |o: usize| o as f64 / tilings as f64;
                    let ix = ((u * tiles as f64 + shift(ox)).floor() as usize).min(tiles);
                    let iy = ((v * tiles as f64 + shift(oy)).floor() as usize).min(tiles);
                    out[k * per + iy * (tiles + 1) + ix] = 1.0;
                }
            }
            FeatureSpec::OneHot => {
                out.fill(0.0);
                out[s] = 1.0;
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Model quantities: P_pi, stationary distribution, TD fixed point
// ------------------------------------------------------------------------------------------------

fn check_policy(mdp: &TabularMdp, policy: &TabularPolicy) -> Result<()> {
    if policy.n_states() != mdp.n_states() || policy.n_actions() != mdp.n_actions() {
        return Err(Error::invalid(
            "policy",
            format!(
                "a {}x{} policy for an MDP with {} states and {} actions",
                policy.n_states(),
                policy.n_actions(),
                mdp.n_states(),
                mdp.n_actions()
            ),
        ));
    }
    Ok(())
}

/// `P_pi[s][s'] = sum_a pi(a|s) p(s'|s, a)`, row-major `n x n`.
pub fn policy_transition_matrix(mdp: &TabularMdp, policy: &TabularPolicy) -> Result<Vec<f64>> {
    check_policy(mdp, policy)?;
    let n = mdp.n_states();
    let mut p = vec![0.0; n * n];
    for s in 0..n {
        for (a, &pa) in policy.probs(s).iter().enumerate() {
            let (next, prob) = mdp.row(s, a);
            for (&j, &q) in next.iter().zip(prob) {
                p[s * n + j as usize] += pa * q;
            }
        }
    }
    Ok(p)
}

fn check_stochastic(p: &[f64], n: usize) -> Result<()> {
    if n == 0 || p.len() != n * n {
        return Err(Error::invalid("transition matrix", format!("{} entries for {n} states", p.len())));
    }
    if let Some(i) = p.iter().position(|x| !x.is_finite()) {
        return Err(Error::invalid(
            "transition matrix",
            format!("entry ({}, {}) is {}, not a finite probability", i / n, i % n, p[i]),
        ));
    }
    for s in 0..n {
        let row = &p[s * n..(s + 1) * n];
        let total: f64 = row.iter().sum();
        if row.iter().any(|x| *x < 0.0) || (total - 1.0).abs() > 1e-9 {
            return Err(Error::invalid("transition matrix", format!("row {s} is not a distribution (sum {total})")));
        }
    }
    Ok(())
}

/// The stationary distribution `d` with `d^T P = d^T` of a row-stochastic `n x n` matrix `P` (row-major),
/// by power iteration on the lazy chain `(I + P) / 2` (same stationary distribution, never periodic),
/// from the uniform distribution until the L1 change of one step is below `tol`.
///
/// Errors on a matrix that is not row-stochastic or has a non-finite entry, and when `max_iterations`
/// steps do not reach `tol`. With several recurrent classes the result depends on the uniform start;
/// [`stationary_distribution_exact`] then reports the ambiguity.
pub fn stationary_distribution(p: &[f64], n: usize, tol: f64, max_iterations: usize) -> Result<Vec<f64>> {
    check_stochastic(p, n)?;
    if !(tol > 0.0) {
        return Err(Error::invalid("tolerance", format!("{tol} must be positive")));
    }
    let mut d = vec![1.0 / n as f64; n];
    let mut next = vec![0.0; n];
    for _ in 0..max_iterations {
        next.copy_from_slice(&d);
        next.iter_mut().for_each(|x| *x *= 0.5);
        for i in 0..n {
            let di = 0.5 * d[i];
            if di != 0.0 {
                for (nj, pij) in next.iter_mut().zip(&p[i * n..(i + 1) * n]) {
                    *nj += di * pij;
                }
            }
        }
        let total: f64 = next.iter().sum();
        next.iter_mut().for_each(|x| *x /= total);
        let change: f64 = d.iter().zip(&next).map(|(a, b)| (a - b).abs()).sum();
        std::mem::swap(&mut d, &mut next);
        if change < tol {
            return Ok(d);
        }
    }
    Err(Error::invalid(
        "stationary distribution",
        format!("power iteration did not reach tolerance {tol} in {max_iterations} steps"),
    ))
}

/// The stationary distribution by solving `(I - P^T) d = 0`, `sum d = 1` directly.
///
/// Errors on a matrix that is not row-stochastic or has a non-finite entry, and when the solution is
/// not unique (several recurrent classes).
pub fn stationary_distribution_exact(p: &[f64], n: usize) -> Result<Vec<f64>> {
    check_stochastic(p, n)?;
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            a[i * n + j] = if i == j { 1.0 } else { 0.0 } - p[j * n + i];
        }
    }
    // Replace the last (redundant) equation by the normalisation.
    a[(n - 1) * n..].fill(1.0);
    let mut b = vec![0.0; n];
    b[n - 1] = 1.0;
    let d = solve_dense(&a, &b).map_err(|_| {
        Error::invalid("stationary distribution", "not unique: the chain has more than one recurrent class")
    })?;
    Ok(d.into_iter().map(|x| x.max(0.0)).collect())
}

/// The stationary distribution of `policy`'s chain on `mdp` (exact solve).
pub fn policy_stationary_distribution(mdp: &TabularMdp, policy: &TabularPolicy) -> Result<Vec<f64>> {
    let p = policy_transition_matrix(mdp, policy)?;
    stationary_distribution_exact(&p, mdp.n_states())
}

/// A linear value estimate `v = Phi w`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FixedPoint {
    /// The weights.
    pub w: Vec<f64>,
    /// `Phi w`, one value per state.
    pub values: Vec<f64>,
    /// The state weighting `D` used.
    pub distribution: Vec<f64>,
}

fn check_features<F: Features + ?Sized>(f: &F, n_states: usize) -> Result<()> {
    if f.n_states() != n_states {
        return Err(Error::invalid(
            "features",
            format!("a feature map of {} states for an environment with {n_states}", f.n_states()),
        ));
    }
    if f.dim() == 0 {
        return Err(Error::invalid("features", "the feature map has dimension 0"));
    }
    Ok(())
}

fn check_distribution(d: &[f64], n: usize) -> Result<()> {
    if d.len() != n || d.iter().any(|x| !(*x >= 0.0 && x.is_finite())) || (d.iter().sum::<f64>() - 1.0).abs() > 1e-9 {
        return Err(Error::invalid("state distribution", format!("{d:?} is not a distribution over {n} states")));
    }
    Ok(())
}

fn check_gamma_open(gamma: f64) -> Result<()> {
    if !(0.0..1.0).contains(&gamma) {
        return Err(Error::invalid("gamma", format!("{gamma} is outside [0, 1)")));
    }
    Ok(())
}

/// The TD fixed point `w* = (Phi^T D (I - gamma P_pi) Phi)^-1 Phi^T D r_pi` with `D` the policy's
/// stationary distribution: the point TD-Linear converges to (book section 8.2, the projected Bellman
/// equation `Phi w = Proj_D (r_pi + gamma P_pi Phi w)`).
///
/// Errors when gamma is outside [0, 1), the features do not fit the MDP, the stationary distribution is
/// not unique, or the system is singular (a feature that is zero on every state with positive weight).
pub fn td_fixed_point<F: Features + ?Sized>(
    mdp: &TabularMdp,
    policy: &TabularPolicy,
    gamma: f64,
    features: &F,
) -> Result<FixedPoint> {
    let d = policy_stationary_distribution(mdp, policy)?;
    td_fixed_point_weighted(mdp, policy, gamma, features, &d)
}

/// [`td_fixed_point`] with a given state weighting `d` (e.g. the empirical distribution of the samples).
pub fn td_fixed_point_weighted<F: Features + ?Sized>(
    mdp: &TabularMdp,
    policy: &TabularPolicy,
    gamma: f64,
    features: &F,
    d: &[f64],
) -> Result<FixedPoint> {
    check_gamma_open(gamma)?;
    let n = mdp.n_states();
    check_features(features, n)?;
    check_distribution(d, n)?;
    let p = policy_transition_matrix(mdp, policy)?;
    let r = r_pi(mdp, policy);
    let k = features.dim();
    let phi = feature_matrix(features);
    // M = (I - gamma P) Phi, n x k.
    let mut m = phi.clone();
    for s in 0..n {
        for j in 0..n {
            let pj = p[s * n + j];
            if pj != 0.0 {
                for c in 0..k {
                    m[s * k + c] -= gamma * pj * phi[j * k + c];
                }
            }
        }
    }
    let (mut a, mut b) = (vec![0.0; k * k], vec![0.0; k]);
    for s in 0..n {
        if d[s] == 0.0 {
            continue;
        }
        for i in 0..k {
            let wi = d[s] * phi[s * k + i];
            b[i] += wi * r[s];
            for j in 0..k {
                a[i * k + j] += wi * m[s * k + j];
            }
        }
    }
    let w = solve_dense(&a, &b)?;
    let values = (0..n).map(|s| dot(&phi[s * k..(s + 1) * k], &w)).collect();
    Ok(FixedPoint { w, values, distribution: d.to_vec() })
}

/// LSTD from the model: the expected LSTD statistics
/// `A = sum_{s,a,s'} d(s) pi(a|s) p(s'|s,a) phi(s) (phi(s) - gamma phi(s'))^T`, `b = sum d(s) pi(a|s) r(s,a) phi(s)`,
/// under the policy's stationary distribution, then `w = A^-1 b` (plus `ridge I` on `A`).
///
/// Accumulated transition by transition (a different code path from [`td_fixed_point`], which it equals).
pub fn lstd_from_model<F: Features + ?Sized>(
    mdp: &TabularMdp,
    policy: &TabularPolicy,
    gamma: f64,
    features: &F,
    ridge: f64,
) -> Result<FixedPoint> {
    check_gamma_open(gamma)?;
    let n = mdp.n_states();
    check_features(features, n)?;
    check_ridge(ridge)?;
    let d = policy_stationary_distribution(mdp, policy)?;
    let k = features.dim();
    let phi = feature_matrix(features);
    let mut acc = LstdAccumulator::new(k, ridge);
    let na = mdp.n_actions();
    for s in 0..n {
        for (a, &pa) in policy.probs(s).iter().enumerate() {
            let weight = d[s] * pa;
            if weight == 0.0 {
                continue;
            }
            let (next, prob) = mdp.row(s, a);
            for (&j, &q) in next.iter().zip(prob) {
                let j = j as usize;
                acc.add(
                    &phi[s * k..(s + 1) * k],
                    &phi[j * k..(j + 1) * k],
                    mdp.rewards()[s * na + a],
                    gamma,
                    weight * q,
                );
            }
        }
    }
    let w = acc.solve()?;
    let values = (0..n).map(|s| dot(&phi[s * k..(s + 1) * k], &w)).collect();
    Ok(FixedPoint { w, values, distribution: d })
}

fn check_ridge(ridge: f64) -> Result<()> {
    if !(ridge >= 0.0 && ridge.is_finite()) {
        return Err(Error::invalid("ridge", format!("{ridge} must be a finite number >= 0")));
    }
    Ok(())
}

struct LstdAccumulator {
    k: usize,
    a: Vec<f64>,
    b: Vec<f64>,
    ridge: f64,
}

impl LstdAccumulator {
    fn new(k: usize, ridge: f64) -> Self {
        LstdAccumulator { k, a: vec![0.0; k * k], b: vec![0.0; k], ridge }
    }

    /// `A += weight phi (phi - gamma phi')^T`, `b += weight r phi` (`phi_next` ignored when `gamma_eff` is 0).
    #[inline]
    fn add(&mut self, phi: &[f64], phi_next: &[f64], r: f64, gamma_eff: f64, weight: f64) {
        for i in 0..self.k {
            let wi = weight * phi[i];
            if wi == 0.0 {
                continue;
            }
            self.b[i] += wi * r;
            let row = &mut self.a[i * self.k..(i + 1) * self.k];
            for ((aij, pj), qj) in row.iter_mut().zip(phi).zip(phi_next) {
                *aij += wi * (pj - gamma_eff * qj);
            }
        }
    }

    fn solve(mut self) -> Result<Vec<f64>> {
        for i in 0..self.k {
            self.a[i * self.k + i] += self.ridge;
        }
        solve_dense(&self.a, &self.b)
    }
}

// ------------------------------------------------------------------------------------------------
// Learners
// ------------------------------------------------------------------------------------------------

/// How the weights start.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", deny_unknown_fields)]
pub enum WeightInit {
    /// All zero.
    Zeros,
    /// Each weight drawn from `N(mean, std^2)` (seeded; the book's TD-Linear uses `N(0, 1)`).
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation (>= 0).
        std: f64,
    },
}

impl WeightInit {
    fn validate(&self) -> Result<()> {
        if let WeightInit::Normal { mean, std } = *self {
            if !(mean.is_finite() && std >= 0.0 && std.is_finite()) {
                return Err(Error::invalid(
                    "weight init",
                    format!("N({mean}, {std}^2) needs a finite mean and std >= 0"),
                ));
            }
        }
        Ok(())
    }

    /// `k` initial weights; the normal draws use a ChaCha8 stream seeded with `seed`.
    pub fn draw(&self, k: usize, seed: u64) -> Result<Vec<f64>> {
        self.validate()?;
        Ok(match *self {
            WeightInit::Zeros => vec![0.0; k],
            WeightInit::Normal { mean, std } => {
                let normal = Normal::new(mean, std).map_err(|e| Error::invalid("weight init", e.to_string()))?;
                let mut rng = rng_from_seed(seed);
                (0..k).map(|_| normal.sample(&mut rng)).collect()
            }
        })
    }
}

/// What a linear learner returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinearResult {
    /// The weights (state features for prediction; `n_actions` blocks of state features for control).
    pub w: Vec<f64>,
    /// State values: `Phi w` for prediction, `max_a q(s, a)` for control.
    pub values: Vec<f64>,
    /// Action values `q(s, a) = phi(s)^T w_a`, row-major (empty for prediction).
    pub q: Vec<f64>,
    /// The greedy policy of `q` (lowest action among ties; empty for prediction).
    pub policy: Vec<usize>,
    /// Environment steps taken.
    pub steps: u64,
    /// Curves. `rmse` holds `(steps so far, RMSE)` before learning and after every episode (so
    /// `rmse[k]` is the error after `k` episodes) when a reference was given; `visits` counts state
    /// visits (prediction) or (state, action) visits (control).
    pub history: LearningHistory,
}

fn check_reference(reference: Option<&[f64]>, ns: usize) -> Result<()> {
    if let Some(r) = reference {
        if r.len() != ns {
            return Err(Error::invalid("reference values", format!("{} values for {ns} states", r.len())));
        }
    }
    Ok(())
}

fn check_env_policy(policy: &TabularPolicy, ns: usize, na: usize) -> Result<()> {
    if policy.n_states() != ns || policy.n_actions() != na {
        return Err(Error::invalid(
            "policy",
            format!("{}x{} for an env with {ns} states and {na} actions", policy.n_states(), policy.n_actions()),
        ));
    }
    Ok(())
}

fn linear_values(phi: &[f64], k: usize, w: &[f64]) -> Vec<f64> {
    phi.chunks(k).map(|f| dot(f, w)).collect()
}

/// Settings of [`td_linear`]. Defaults are the book's TD-Linear example (Figs 8.6-8.8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TdLinearConfig {
    /// Discount factor. Default 0.9.
    pub gamma: f64,
    /// Learning rate; for `visits` schedules `n` counts all updates made so far. Default constant 0.0005.
    pub step_size: StepSize,
    /// Number of episodes. Default 500.
    pub episodes: usize,
    /// Steps per episode (an episode ends earlier only when the env terminates). Default 500.
    pub episode_length: usize,
    /// Initial weights. Default `N(0, 1)` per weight.
    pub init: WeightInit,
    /// Run seed. Default 0.
    pub seed: u64,
}

impl Default for TdLinearConfig {
    fn default() -> Self {
        TdLinearConfig {
            gamma: 0.9,
            step_size: StepSize::Constant { alpha: 0.0005 },
            episodes: 500,
            episode_length: 500,
            init: WeightInit::Normal { mean: 0.0, std: 1.0 },
            seed: 0,
        }
    }
}

fn check_run(gamma: f64, episodes: usize, episode_length: usize) -> Result<()> {
    if !(0.0..=1.0).contains(&gamma) {
        return Err(Error::invalid("gamma", format!("{gamma} is outside [0, 1]")));
    }
    if episodes == 0 {
        return Err(Error::invalid("episodes", "must be at least 1"));
    }
    if episode_length == 0 {
        return Err(Error::invalid("episode length", "must be at least 1 step"));
    }
    Ok(())
}

impl TdLinearConfig {
    /// Check every field; errors name the field and value.
    pub fn validate(&self) -> Result<()> {
        check_run(self.gamma, self.episodes, self.episode_length)?;
        self.step_size.validate()?;
        self.init.validate()
    }
}

/// States an episode may start in (not terminal), or an error.
fn start_states<E: ExploringStart>(env: &E, ns: usize) -> Result<Vec<usize>> {
    let starts: Vec<usize> = (0..ns).filter(|&s| !env.is_terminal(s)).collect();
    if starts.is_empty() {
        return Err(Error::invalid("environment", "every state is terminal: no episode can start"));
    }
    Ok(starts)
}

/// Reset the env (seeded on the first episode) and put it in a uniformly drawn non-terminal state.
fn random_start<E>(env: &mut E, starts: &[usize], first: bool, seed: u64, rng: &mut Rng) -> Result<usize>
where
    E: Env<Obs = usize, Action = usize> + ExploringStart,
{
    env.reset(if first { Some(seed) } else { None })?;
    let s = starts[rng.random_range(0..starts.len())];
    env.start_at(s)?;
    Ok(s)
}

/// TD-Linear (book section 8.2): estimate `v_pi(s) ~ phi(s)^T w` with
/// `w += alpha (r + gamma phi(s')^T w - phi(s)^T w) phi(s)`.
///
/// Each episode starts in a uniformly drawn state (the book draws a state-action pair; with the first
/// action drawn from `policy` that is the same thing when `pi` is the behaviour), follows `policy` for
/// `cfg.episode_length` steps (or until the env terminates, without bootstrap), and updates after every
/// step. With `reference` (the true values) the RMSE `sqrt(mean_s (phi(s)^T w - v_pi(s))^2)` is recorded
/// before learning and after every episode.
///
/// Errors on invalid settings, a policy or feature map that does not fit the env, or weights that stop
/// being finite (reduce alpha).
pub fn td_linear<E, F>(
    env: &mut E,
    policy: &TabularPolicy,
    features: &F,
    cfg: &TdLinearConfig,
    reference: Option<&[f64]>,
) -> Result<LinearResult>
where
    E: Env<Obs = usize, Action = usize> + ExploringStart,
    F: Features + ?Sized,
{
    cfg.validate()?;
    let (ns, na) = discrete_sizes(env)?;
    check_env_policy(policy, ns, na)?;
    check_features(features, ns)?;
    check_reference(reference, ns)?;
    let k = features.dim();
    let phi = feature_matrix(features);
    let mut w = cfg.init.draw(k, derive_seed(cfg.seed, 4))?;
    let mut rng = rng_from_seed(derive_seed(cfg.seed, 1));
    let starts = start_states(env, ns)?;
    let mut history = LearningHistory { visits: vec![0; ns], ..Default::default() };
    let record = |h: &mut LearningHistory, steps: u64, w: &[f64]| {
        if let Some(r) = reference {
            h.rmse.push((steps, rmse(&linear_values(&phi, k, w), r)));
        }
    };
    record(&mut history, 0, &w);
    let mut steps = 0u64;
    for episode in 0..cfg.episodes {
        let mut s = random_start(env, &starts, episode == 0, cfg.seed, &mut rng)?;
        let (mut total, mut len) = (0.0, 0);
        while len < cfg.episode_length {
            let a = policy.sample(s, &mut rng);
            let step = env.step(&a)?;
            steps += 1;
            len += 1;
            total += step.reward;
            history.visits[s] += 1;
            let fs = &phi[s * k..(s + 1) * k];
            let next = if step.terminated { 0.0 } else { dot(&phi[step.obs * k..(step.obs + 1) * k], &w) };
            let delta = step.reward + cfg.gamma * next - dot(fs, &w);
            let alpha = cfg.step_size.at(steps);
            for (wi, f) in w.iter_mut().zip(fs) {
                *wi += alpha * delta * f;
            }
            if step.done() {
                break;
            }
            s = step.obs;
        }
        if w.iter().any(|x| !x.is_finite()) {
            return Err(Error::invalid(
                "TD-Linear",
                format!("the weights diverged in episode {}; reduce alpha", episode + 1),
            ));
        }
        history.episode_rewards.push(total);
        history.episode_lengths.push(len);
        record(&mut history, steps, &w);
    }
    let values = linear_values(&phi, k, &w);
    Ok(LinearResult { w, values, q: Vec::new(), policy: Vec::new(), steps, history })
}

/// Settings of [`lstd`] (sampling as in the book's TD-Linear example).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LstdConfig {
    /// Discount factor. Default 0.9.
    pub gamma: f64,
    /// Number of episodes. Default 500.
    pub episodes: usize,
    /// Steps per episode. Default 500.
    pub episode_length: usize,
    /// `ridge I` added to `A` before solving (0: plain LSTD). Default 0.
    pub ridge: f64,
    /// Run seed. Default 0.
    pub seed: u64,
}

impl Default for LstdConfig {
    fn default() -> Self {
        LstdConfig { gamma: 0.9, episodes: 500, episode_length: 500, ridge: 0.0, seed: 0 }
    }
}

impl LstdConfig {
    /// Check every field; errors name the field and value.
    pub fn validate(&self) -> Result<()> {
        check_run(self.gamma, self.episodes, self.episode_length)?;
        check_ridge(self.ridge)
    }
}

/// LSTD (book section 8.4): accumulate `A = sum phi(s_t) (phi(s_t) - gamma phi(s_{t+1}))^T` and
/// `b = sum r_{t+1} phi(s_t)` over the samples (episodes drawn as in [`td_linear`]), then solve `A w = b`.
/// As the samples grow, `w` tends to the TD fixed point under the sampling distribution.
///
/// With `reference`, `history.rmse` holds one point: the RMSE of the solution.
/// Errors on invalid settings or a singular `A` (a feature never seen: add a small `ridge`).
pub fn lstd<E, F>(
    env: &mut E,
    policy: &TabularPolicy,
    features: &F,
    cfg: &LstdConfig,
    reference: Option<&[f64]>,
) -> Result<LinearResult>
where
    E: Env<Obs = usize, Action = usize> + ExploringStart,
    F: Features + ?Sized,
{
    cfg.validate()?;
    let (ns, na) = discrete_sizes(env)?;
    check_env_policy(policy, ns, na)?;
    check_features(features, ns)?;
    check_reference(reference, ns)?;
    let k = features.dim();
    let phi = feature_matrix(features);
    let mut rng = rng_from_seed(derive_seed(cfg.seed, 1));
    let starts = start_states(env, ns)?;
    let mut history = LearningHistory { visits: vec![0; ns], ..Default::default() };
    let mut acc = LstdAccumulator::new(k, cfg.ridge);
    let mut steps = 0u64;
    for episode in 0..cfg.episodes {
        let mut s = random_start(env, &starts, episode == 0, cfg.seed, &mut rng)?;
        let (mut total, mut len) = (0.0, 0);
        while len < cfg.episode_length {
            let a = policy.sample(s, &mut rng);
            let step = env.step(&a)?;
            steps += 1;
            len += 1;
            total += step.reward;
            history.visits[s] += 1;
            let g = if step.terminated { 0.0 } else { cfg.gamma };
            let s2 = step.obs;
            acc.add(&phi[s * k..(s + 1) * k], &phi[s2 * k..(s2 + 1) * k], step.reward, g, 1.0);
            if step.done() {
                break;
            }
            s = s2;
        }
        history.episode_rewards.push(total);
        history.episode_lengths.push(len);
    }
    let w = acc.solve()?;
    let values = linear_values(&phi, k, &w);
    if let Some(r) = reference {
        history.rmse.push((steps, rmse(&values, r)));
    }
    Ok(LinearResult { w, values, q: Vec::new(), policy: Vec::new(), steps, history })
}

/// The control algorithms with linear function approximation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinearControl {
    /// Sarsa (book Algorithm 8.2): target `r + gamma q(s', a', w)`.
    Sarsa,
    /// Q-learning, on-policy version with epsilon-greedy behaviour (book Algorithm 8.3):
    /// target `r + gamma max_a q(s', a, w)`.
    QLearning,
}

/// Settings of [`linear_control`]. Defaults are the book's Figs 8.9-8.10 (the features, Fourier of
/// order 5, are [`FeatureSpec::default`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinearControlConfig {
    /// Discount factor. Default 0.9.
    pub gamma: f64,
    /// Learning rate; for `visits` schedules `n` counts all updates so far. Default constant 0.001.
    pub step_size: StepSize,
    /// Exploration. Default constant 0.1.
    pub epsilon: EpsilonSchedule,
    /// Number of episodes. Default 500.
    pub episodes: usize,
    /// Steps after which an episode is cut (bootstrapping from the last state). Not stated in the book.
    /// Default 10,000.
    pub max_episode_steps: usize,
    /// Initial weights. Default zeros (not stated in the book).
    pub init: WeightInit,
    /// Run seed. Default 0.
    pub seed: u64,
}

impl Default for LinearControlConfig {
    fn default() -> Self {
        LinearControlConfig {
            gamma: 0.9,
            step_size: StepSize::Constant { alpha: 0.001 },
            epsilon: EpsilonSchedule::constant(0.1),
            episodes: 500,
            max_episode_steps: 10_000,
            init: WeightInit::Zeros,
            seed: 0,
        }
    }
}

impl LinearControlConfig {
    /// Check every field; errors name the field and value.
    pub fn validate(&self) -> Result<()> {
        check_run(self.gamma, self.episodes, self.max_episode_steps)?;
        self.step_size.validate()?;
        self.epsilon.validate()?;
        self.init.validate()
    }
}

/// `q(s, .)` into `out`: `q(s, a) = phi(s, a)^T w`, from the state-action feature matrix.
#[inline]
fn q_row(phi: &[f64], k: usize, na: usize, s: usize, w: &[f64], out: &mut [f64]) {
    for (a, o) in out.iter_mut().enumerate() {
        let row = s * na + a;
        *o = dot(&phi[row * k..(row + 1) * k], w);
    }
}

/// Sarsa or Q-learning with linear function approximation `q(s, a) = phi(s, a)^T w` (book section 8.3):
/// `w += alpha (target - q(s, a, w)) phi(s, a)`, acting epsilon-greedily (the book's epsilon-greedy:
/// greedy with probability `1 - eps + eps/|A|`, lowest action among ties). Build `features` with
/// [`grid_state_action_features`] ([`ActionBlocks`] or [`JointFourier`]) or any [`StateActionFeatures`].
///
/// Episodes start from `env.reset` (configure the start cell in the env) and end when the env
/// terminates (no bootstrap) or after `cfg.max_episode_steps` steps (bootstrap). With `reference`
/// (optimal state values) the RMSE of `max_a q(s, a)` is recorded before learning and after every episode.
pub fn linear_control<E, F>(
    env: &mut E,
    algo: LinearControl,
    features: &F,
    cfg: &LinearControlConfig,
    reference: Option<&[f64]>,
) -> Result<LinearResult>
where
    E: Env<Obs = usize, Action = usize>,
    F: StateActionFeatures + ?Sized,
{
    cfg.validate()?;
    let (ns, na) = discrete_sizes(env)?;
    if features.n_states() != ns || features.n_actions() != na {
        return Err(Error::invalid(
            "features",
            format!(
                "state-action features of {} states and {} actions for an env with {ns} and {na}",
                features.n_states(),
                features.n_actions()
            ),
        ));
    }
    if features.dim() == 0 {
        return Err(Error::invalid("features", "the feature map has dimension 0"));
    }
    check_reference(reference, ns)?;
    let k = features.dim();
    let phi = state_action_matrix(features);
    let mut w = cfg.init.draw(k, derive_seed(cfg.seed, 4))?;
    let mut rng = rng_from_seed(derive_seed(cfg.seed, 1));
    let mut history = LearningHistory { visits: vec![0; ns * na], ..Default::default() };
    let q_table = |w: &[f64]| -> Vec<f64> {
        let mut q = vec![0.0; ns * na];
        for s in 0..ns {
            q_row(&phi, k, na, s, w, &mut q[s * na..(s + 1) * na]);
        }
        q
    };
    let record = |h: &mut LearningHistory, steps: u64, w: &[f64]| {
        if let Some(r) = reference {
            h.rmse.push((steps, crate::td::rmse_of_q(&q_table(w), na, r)));
        }
    };
    record(&mut history, 0, &w);
    let (mut q_s, mut q_next) = (vec![0.0; na], vec![0.0; na]);
    let mut steps = 0u64;
    for episode in 0..cfg.episodes {
        let eps = cfg.epsilon.at(episode);
        let (mut s, _) = env.reset(if episode == 0 { Some(cfg.seed) } else { None })?;
        q_row(&phi, k, na, s, &w, &mut q_s);
        let mut a = epsilon_greedy(&q_s, eps, &mut rng);
        let (mut total, mut len) = (0.0, 0);
        loop {
            let step = env.step(&a)?;
            let (s2, r) = (step.obs, step.reward);
            steps += 1;
            len += 1;
            total += r;
            history.visits[s * na + a] += 1;
            let cut = step.truncated || len >= cfg.max_episode_steps;
            let (a2, bootstrap) = if step.terminated {
                (a, 0.0)
            } else {
                q_row(&phi, k, na, s2, &w, &mut q_next);
                match algo {
                    LinearControl::Sarsa => {
                        let a2 = epsilon_greedy(&q_next, eps, &mut rng);
                        (a2, q_next[a2])
                    }
                    LinearControl::QLearning => (a, q_next.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
                }
            };
            let row = s * na + a;
            let fs = &phi[row * k..(row + 1) * k];
            let delta = r + cfg.gamma * bootstrap - dot(fs, &w);
            let alpha = cfg.step_size.at(steps);
            for (wi, f) in w.iter_mut().zip(fs) {
                *wi += alpha * delta * f;
            }
            if step.terminated || cut {
                break;
            }
            s = s2;
            a = match algo {
                // Sarsa drew a' before the update (book Algorithm 8.2); Q-learning acts epsilon-greedily
                // in the updated w (book Algorithm 8.3).
                LinearControl::Sarsa => a2,
                LinearControl::QLearning => {
                    q_row(&phi, k, na, s, &w, &mut q_s);
                    epsilon_greedy(&q_s, eps, &mut rng)
                }
            };
        }
        if w.iter().any(|x| !x.is_finite()) {
            return Err(Error::invalid(
                "linear control",
                format!("the weights diverged in episode {}; reduce alpha", episode + 1),
            ));
        }
        history.episode_rewards.push(total);
        history.episode_lengths.push(len);
        record(&mut history, steps, &w);
    }
    let q = q_table(&w);
    let values = q.chunks(na).map(|row| row.iter().copied().fold(f64::NEG_INFINITY, f64::max)).collect();
    let policy = q.chunks(na).map(argmax_lowest).collect();
    Ok(LinearResult { w, values, q, policy, steps, history })
}

/// Follow `policy` (one action per state) on `grid` from `start` for at most `max_steps` steps, stopping
/// at the target. Returns the visited states (start included) and whether the target was reached.
pub fn greedy_path(grid: &GridWorld, policy: &[usize], start: Cell, max_steps: usize) -> (Vec<usize>, bool) {
    let mut s = grid.state_of(start);
    let mut path = vec![s];
    if s == grid.target_state() {
        return (path, true);
    }
    for _ in 0..max_steps {
        let Some(&a) = policy.get(s) else { break };
        s = grid.outcome(s, a).0;
        path.push(s);
        if s == grid.target_state() {
            return (path, true);
        }
    }
    (path, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_layouts() {
        let f = GridFeatures::new(FeatureSpec::Polynomial { degree: 3 }, 5, 5).unwrap();
        let mut out = vec![0.0; 10];
        // s = row 2 (0-based 1), col 5 (0-based 4): x = 1, y = -0.5.
        f.features(9, &mut out);
        assert_eq!(out, vec![1.0, 1.0, -0.5, 1.0, 0.25, -0.5, 1.0, -0.125, -0.5, 0.25]);
        let f = GridFeatures::new(FeatureSpec::Fourier { order: 2 }, 5, 5).unwrap();
        let mut out = vec![0.0; 9];
        f.features(9, &mut out); // x = 1, y = 0.25
        let want: Vec<f64> =
            (0..=2).flat_map(|c1| (0..=2).map(move |c2| (PI * (c1 as f64 * 1.0 + c2 as f64 * 0.25)).cos())).collect();
        assert_eq!(out, want);
        let t = GridFeatures::new(FeatureSpec::TileCoding { tilings: 4, tiles: 2, asymmetric: true }, 5, 5).unwrap();
        assert_eq!(t.dim(), 36);
        let mut out = vec![0.0; 36];
        for s in 0..25 {
            t.features(s, &mut out);
            assert_eq!(out.iter().sum::<f64>(), 4.0);
        }
        assert!(FeatureSpec::Fourier { order: 0 }.validate().is_err());
        assert!(FeatureSpec::Polynomial { degree: 4 }.validate().is_err());
        assert!(GridFeatures::new(FeatureSpec::OneHot, 0, 3).is_err());
    }

    #[test]
    fn state_action_layouts() {
        let b = ActionBlocks::new(GridFeatures::new(FeatureSpec::Polynomial { degree: 1 }, 5, 5).unwrap(), 5).unwrap();
        assert_eq!(StateActionFeatures::dim(&b), 15);
        let mut out = vec![9.0; 15];
        b.features(0, 2, &mut out); // (1,1): x = y = -1, block 2
        assert_eq!(out, [0., 0., 0., 0., 0., 0., 1., -1., -1., 0., 0., 0., 0., 0., 0.]);
        let j = JointFourier::new(5, 5, 5, 5).unwrap();
        assert_eq!(j.dim(), 216);
        let mut out = vec![0.0; 216];
        j.features(0, 0, &mut out); // x = y = z = 0: every cosine is 1
        assert!(out.iter().all(|x| *x == 1.0));
        j.features(24, 4, &mut out); // x = y = z = 1: cos(pi (c1 + c2 + c3)) = (-1)^(c1 + c2 + c3)
        assert_eq!(out[1], -1.0);
        assert_eq!(out[7], 1.0); // c1 = 0, c2 = 1, c3 = 1
    }

    #[test]
    fn spec_serde() {
        let s: FeatureSpec = serde_json::from_str(r#"{"kind":"fourier","order":3}"#).unwrap();
        assert_eq!(s, FeatureSpec::Fourier { order: 3 });
        assert!(serde_json::from_str::<FeatureSpec>(r#"{"kind":"fourier","order":3,"x":1}"#).is_err());
        let c: TdLinearConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, TdLinearConfig::default());
        assert!(serde_json::from_str::<LinearControlConfig>(r#"{"alpha":0.1}"#).is_err());
    }

    #[test]
    fn solve_dense_works_and_rejects_singular() {
        let x = solve_dense(&[0.0, 2.0, 1.0, 1.0], &[4.0, 3.0]).unwrap();
        assert!((x[0] - 1.0).abs() < 1e-12 && (x[1] - 2.0).abs() < 1e-12);
        assert!(solve_dense(&[1.0, 2.0, 2.0, 4.0], &[1.0, 2.0]).is_err());
        assert!(solve_dense(&[f64::NAN, 0.0, 0.0, 1.0], &[1.0, 2.0]).is_err());
    }
}
