//! The Bellman equation `v_pi = r_pi + gamma P_pi v_pi` (book chapter 2) and its tools.

use rlox_core::mdp::{Mdp, TabularMdp};
use rlox_core::policy::{argmax_lowest, TabularPolicy};
use rlox_core::{Error, Result};

/// Largest number of states for which [`closed_form_values`] builds the dense `n x n` system.
pub const CLOSED_FORM_MAX_STATES: usize = 4096;

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

fn check_gamma(gamma: f64, closed_form: bool) -> Result<()> {
    let ok = if closed_form { (0.0..1.0).contains(&gamma) } else { (0.0..=1.0).contains(&gamma) };
    if !ok {
        let range =
            if closed_form { "[0, 1) for closed-form evaluation (I - gamma P is singular at 1)" } else { "[0, 1]" };
        return Err(Error::invalid("gamma", format!("{gamma} is outside {range}")));
    }
    Ok(())
}

/// `r_pi(s) = sum_a pi(a|s) r(s, a)`.
pub fn r_pi(mdp: &TabularMdp, policy: &TabularPolicy) -> Vec<f64> {
    let na = mdp.n_actions();
    (0..mdp.n_states())
        .map(|s| policy.probs(s).iter().enumerate().map(|(a, p)| p * mdp.rewards()[s * na + a]).sum())
        .collect()
}

/// One Bellman backup for `policy`: `(r_pi + gamma P_pi v)(s)` for every `s`.
pub fn backup(mdp: &TabularMdp, policy: &TabularPolicy, gamma: f64, v: &[f64], out: &mut [f64]) {
    let na = mdp.n_actions();
    for (s, o) in out.iter_mut().enumerate() {
        let mut total = 0.0;
        for (a, &p) in policy.probs(s).iter().enumerate() {
            if p == 0.0 {
                continue;
            }
            let (next, prob) = mdp.row(s, a);
            let ev: f64 = next.iter().zip(prob).map(|(&n, &q)| q * v[n as usize]).sum();
            total += p * (mdp.rewards()[s * na + a] + gamma * ev);
        }
        *o = total;
    }
}

/// Solve `(I - gamma P_pi) v = r_pi` exactly (Gaussian elimination with partial pivoting).
///
/// Errors when gamma is outside [0, 1), when the MDP has more than [`CLOSED_FORM_MAX_STATES`]
/// states (use [`iterative_evaluation`]), or when the policy does not fit the MDP.
pub fn closed_form_values(mdp: &TabularMdp, policy: &TabularPolicy, gamma: f64) -> Result<Vec<f64>> {
    check_gamma(gamma, true)?;
    check_policy(mdp, policy)?;
    let n = mdp.n_states();
    if n > CLOSED_FORM_MAX_STATES {
        return Err(Error::invalid(
            "evaluation",
            format!("closed form needs a dense {n}x{n} system; use iterative evaluation above {CLOSED_FORM_MAX_STATES} states"),
        ));
    }
    // Row-major augmented matrix [I - gamma P_pi | r_pi].
    let w = n + 1;
    let mut m = vec![0.0; n * w];
    let r = r_pi(mdp, policy);
    for s in 0..n {
        m[s * w + s] = 1.0;
        m[s * w + n] = r[s];
        for (a, &p) in policy.probs(s).iter().enumerate() {
            let (next, prob) = mdp.row(s, a);
            for (&j, &q) in next.iter().zip(prob) {
                m[s * w + j as usize] -= gamma * p * q;
            }
        }
    }
    for col in 0..n {
        let pivot = (col..n).max_by(|&a, &b| m[a * w + col].abs().total_cmp(&m[b * w + col].abs())).unwrap_or(col);
        if m[pivot * w + col].abs() < 1e-300 {
            return Err(Error::invalid("evaluation", "I - gamma P_pi is singular"));
        }
        if pivot != col {
            for k in 0..w {
                m.swap(pivot * w + k, col * w + k);
            }
        }
        let d = m[col * w + col];
        for row in 0..n {
            if row == col {
                continue;
            }
            let f = m[row * w + col] / d;
            if f != 0.0 {
                for k in col..w {
                    m[row * w + k] -= f * m[col * w + k];
                }
            }
        }
    }
    Ok((0..n).map(|s| m[s * w + n] / m[s * w + s]).collect())
}

/// The result of iterative policy evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The final values.
    pub values: Vec<f64>,
    /// Iterates `v_1, v_2, ...` (empty unless requested).
    pub history: Vec<Vec<f64>>,
    /// `||v_k - v_{k-1}||_inf` after each sweep.
    pub deltas: Vec<f64>,
    /// Number of sweeps made.
    pub iterations: usize,
    /// Whether the last delta fell below the tolerance.
    pub converged: bool,
}

/// Iterate `v_{k+1} = r_pi + gamma P_pi v_k` from `v0` (zeros when `None`) until
/// `||v_{k+1} - v_k||_inf < tol` or `max_iterations` sweeps.
///
/// A divergent setting (values no longer finite, as with gamma = 1 and a reward loop) is an error.
pub fn iterative_evaluation(
    mdp: &TabularMdp,
    policy: &TabularPolicy,
    gamma: f64,
    tol: f64,
    max_iterations: usize,
    v0: Option<&[f64]>,
    keep_history: bool,
) -> Result<Evaluation> {
    check_gamma(gamma, false)?;
    check_policy(mdp, policy)?;
    let n = mdp.n_states();
    let mut v = v0.map(<[f64]>::to_vec).unwrap_or_else(|| vec![0.0; n]);
    if v.len() != n {
        return Err(Error::invalid("initial values", format!("{} values for {n} states", v.len())));
    }
    let mut next = vec![0.0; n];
    let mut eval =
        Evaluation { values: Vec::new(), history: Vec::new(), deltas: Vec::new(), iterations: 0, converged: false };
    while eval.iterations < max_iterations {
        backup(mdp, policy, gamma, &v, &mut next);
        let delta = max_abs_diff(&v, &next);
        std::mem::swap(&mut v, &mut next);
        eval.iterations += 1;
        eval.deltas.push(delta);
        if keep_history {
            eval.history.push(v.clone());
        }
        if !delta.is_finite() || v.iter().any(|x| !x.is_finite()) {
            return Err(Error::invalid(
                "evaluation",
                format!("values diverged after {} sweeps (gamma = {gamma})", eval.iterations),
            ));
        }
        if delta < tol {
            eval.converged = true;
            break;
        }
    }
    eval.values = v;
    Ok(eval)
}

/// `||a - b||_inf`.
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// `q(s, a) = r(s, a) + gamma sum_s' p(s'|s, a) v(s')`, row-major.
pub fn q_from_v(mdp: &TabularMdp, v: &[f64], gamma: f64) -> Vec<f64> {
    let na = mdp.n_actions();
    let mut q = vec![0.0; mdp.n_states() * na];
    for s in 0..mdp.n_states() {
        for a in 0..na {
            let (next, prob) = mdp.row(s, a);
            let ev: f64 = next.iter().zip(prob).map(|(&n, &p)| p * v[n as usize]).sum();
            q[s * na + a] = mdp.rewards()[s * na + a] + gamma * ev;
        }
    }
    q
}

/// The greedy policy of a row-major action-value table (ties to the lowest action index).
pub fn greedy_actions(q: &[f64], n_actions: usize) -> Vec<usize> {
    q.chunks(n_actions).map(argmax_lowest).collect()
}

/// `||v - T* v||_inf` where `T* v = max_a q(., a)`: zero exactly at the optimal values.
pub fn optimality_residual(mdp: &TabularMdp, v: &[f64], gamma: f64) -> f64 {
    let q = q_from_v(mdp, v, gamma);
    q.chunks(mdp.n_actions())
        .zip(v)
        .map(|(row, vs)| (row.iter().copied().fold(f64::NEG_INFINITY, f64::max) - vs).abs())
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain() -> TabularMdp {
        // Two states, one action: 0 -> 1 (reward 1), 1 -> 1 (reward 2).
        TabularMdp::new(2, 1, vec![vec![(1, 1.0)], vec![(1, 1.0)]], vec![1.0, 2.0]).unwrap()
    }

    #[test]
    fn closed_form_and_iterative_agree() {
        let m = chain();
        let pi = TabularPolicy::uniform(2, 1);
        let v = closed_form_values(&m, &pi, 0.5).unwrap();
        assert!((v[1] - 4.0).abs() < 1e-12 && (v[0] - 3.0).abs() < 1e-12, "{v:?}");
        let it = iterative_evaluation(&m, &pi, 0.5, 1e-12, 1000, None, false).unwrap();
        assert!(max_abs_diff(&v, &it.values) < 1e-10);
        assert!(it.converged);
    }

    #[test]
    fn bad_gamma_and_divergence_are_errors() {
        let m = chain();
        let pi = TabularPolicy::uniform(2, 1);
        assert!(closed_form_values(&m, &pi, 1.0).unwrap_err().to_string().contains("gamma"));
        assert!(closed_form_values(&m, &pi, -0.1).is_err());
        // gamma = 1 with a positive reward loop grows without bound: bounded sweeps do not converge.
        let e = iterative_evaluation(&m, &pi, 1.0, 1e-9, 100, None, false).unwrap();
        assert!(!e.converged);
        let wrong = TabularPolicy::uniform(3, 1);
        assert!(closed_form_values(&m, &wrong, 0.5).is_err());
    }
}
