//! Model-based planning (book chapter 4): value iteration, policy iteration and truncated policy
//! iteration, each returning the final values and greedy policy plus a per-iteration history.
//!
//! The three are one family: truncated policy iteration with `j` evaluation sweeps is value
//! iteration for `j = 1` and policy iteration as `j -> infinity`. Greedy improvement breaks ties toward
//! the lowest action index (after a tolerance of 1e-9), which reproduces the book's printed policies.

use crate::bellman::{
    backup, closed_form_values, greedy_actions, iterative_evaluation, max_abs_diff, q_from_v, CLOSED_FORM_MAX_STATES,
};
use rlox_core::mdp::{Mdp, TabularMdp};
use rlox_core::policy::TabularPolicy;
use rlox_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// Settings shared by the planning algorithms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlanningOptions {
    /// Discount factor, in [0, 1); value iteration also takes 1 on an episodic model (one with terminal
    /// states, such as CliffWalking or Sutton & Barto's example 6.6). Default 0.9 (the book's).
    pub gamma: f64,
    /// Stop when `||v_k - v_{k-1}||_inf < tol`. Default 1e-10.
    pub tol: f64,
    /// Give up after this many iterations. Default 100,000.
    pub max_iterations: usize,
    /// `v_0`; zeros when absent.
    pub initial_values: Option<Vec<f64>>,
    /// `pi_0` for (truncated) policy iteration, one action per state; all action 0 when absent.
    pub initial_policy: Option<Vec<usize>>,
    /// Values to measure `||v_k - reference||_inf` against in the history (e.g. the optimal values).
    pub reference: Option<Vec<f64>>,
    /// Record every iterate (values and policy). Default true; turn off for large MDPs.
    pub keep_history: bool,
}

impl Default for PlanningOptions {
    fn default() -> Self {
        PlanningOptions {
            gamma: 0.9,
            tol: 1e-10,
            max_iterations: 100_000,
            initial_values: None,
            initial_policy: None,
            reference: None,
            keep_history: true,
        }
    }
}

/// One iteration of a planning algorithm.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IterationRecord {
    /// `v_k` after the iteration.
    pub values: Vec<f64>,
    /// The greedy policy with respect to the iteration's values (`pi_{k+1}`).
    pub policy: Vec<usize>,
    /// `||v_k - v_{k-1}||_inf`.
    pub delta: f64,
    /// `||v_k - reference||_inf` when a reference was given.
    pub error: Option<f64>,
}

/// What a planning algorithm returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanningResult {
    /// Final state values.
    pub values: Vec<f64>,
    /// Final greedy policy, one action per state.
    pub policy: Vec<usize>,
    /// Action values `q(s, a)` of the final values, row-major.
    pub q: Vec<f64>,
    /// Iterations made.
    pub iterations: usize,
    /// Whether the stopping rule was met before `max_iterations`.
    pub converged: bool,
    /// Per-iteration records (empty when `keep_history` is off).
    pub history: Vec<IterationRecord>,
}

/// Which discount factors an algorithm accepts.
#[derive(Clone, Copy, PartialEq)]
enum Discount {
    /// gamma in [0, 1).
    Discounted,
    /// gamma in [0, 1], and 1 only on an episodic model.
    UndiscountedEpisodic,
}

fn validate(mdp: &TabularMdp, o: &PlanningOptions, discount: Discount) -> Result<()> {
    if o.gamma == 1.0 && discount == Discount::UndiscountedEpisodic {
        if !mdp.has_terminal_states() {
            return Err(Error::invalid(
                "gamma",
                "1 needs an episodic model, and this one has no terminal state: its undiscounted values are \
                 infinite or undefined; use gamma < 1",
            ));
        }
    } else if o.gamma == 1.0 {
        return Err(Error::invalid(
            "gamma",
            "1 is outside [0, 1) for policy iteration (an improper policy has no finite values); value \
             iteration accepts gamma 1 on an episodic model",
        ));
    } else if !(0.0..1.0).contains(&o.gamma) {
        return Err(Error::invalid("gamma", format!("{} is outside [0, 1)", o.gamma)));
    }
    if !(o.tol > 0.0) {
        return Err(Error::invalid("tol", format!("{} must be positive", o.tol)));
    }
    if let Some(v) = &o.initial_values {
        if v.len() != mdp.n_states() {
            return Err(Error::invalid("initial values", format!("{} values for {} states", v.len(), mdp.n_states())));
        }
    }
    if let Some(p) = &o.initial_policy {
        if p.len() != mdp.n_states() || p.iter().any(|&a| a >= mdp.n_actions()) {
            return Err(Error::invalid(
                "initial policy",
                format!("needs one action < {} for each of {} states", mdp.n_actions(), mdp.n_states()),
            ));
        }
    }
    if let Some(r) = &o.reference {
        if r.len() != mdp.n_states() {
            return Err(Error::invalid("reference", format!("{} values for {} states", r.len(), mdp.n_states())));
        }
    }
    Ok(())
}

fn record(o: &PlanningOptions, values: &[f64], policy: Vec<usize>, delta: f64) -> IterationRecord {
    IterationRecord {
        values: values.to_vec(),
        policy,
        delta,
        error: o.reference.as_ref().map(|r| max_abs_diff(values, r)),
    }
}

fn finish(
    mdp: &TabularMdp,
    o: &PlanningOptions,
    values: Vec<f64>,
    iterations: usize,
    converged: bool,
    history: Vec<IterationRecord>,
) -> PlanningResult {
    let q = q_from_v(mdp, &values, o.gamma);
    let policy = greedy_actions(&q, mdp.n_actions());
    PlanningResult { values, policy, q, iterations, converged, history }
}

/// One value-iteration sweep `out(s) = max_a [r(s,a) + gamma sum p v]`; returns `||out - v||_inf`.
#[inline]
pub fn value_iteration_sweep(mdp: &TabularMdp, gamma: f64, v: &[f64], out: &mut [f64]) -> f64 {
    let na = mdp.n_actions();
    let rewards = mdp.rewards();
    let mut delta = 0.0f64;
    for (s, o) in out.iter_mut().enumerate() {
        let mut best = f64::NEG_INFINITY;
        for a in 0..na {
            let (next, prob) = mdp.row(s, a);
            let mut ev = 0.0;
            for (&n, &p) in next.iter().zip(prob) {
                ev += p * v[n as usize];
            }
            best = best.max(rewards[s * na + a] + gamma * ev);
        }
        delta = delta.max((best - v[s]).abs());
        *o = best;
    }
    delta
}

/// Value iteration (book Algorithm 4.1): `v_{k+1} = max_pi (r_pi + gamma P_pi v_k)` until
/// `||v_{k+1} - v_k||_inf < tol`.
pub fn value_iteration(mdp: &impl Mdp, options: &PlanningOptions) -> Result<PlanningResult> {
    let mdp = TabularMdp::from_mdp(mdp)?;
    value_iteration_tabular(&mdp, options)
}

/// [`value_iteration`] on an already compiled model (no copy; the benchmark's entry point).
///
/// With gamma = 1 (episodic models only) the sweep is the undiscounted Bellman optimality operator of a
/// stochastic shortest-path problem: it converges when some policy reaches a terminal state with
/// probability one and every policy that does not is infinitely costly (or gains nothing); otherwise it
/// stops after `max_iterations` with `converged == false`.
pub fn value_iteration_tabular(mdp: &TabularMdp, o: &PlanningOptions) -> Result<PlanningResult> {
    validate(mdp, o, Discount::UndiscountedEpisodic)?;
    let n = mdp.n_states();
    let mut v = o.initial_values.clone().unwrap_or_else(|| vec![0.0; n]);
    let mut next = vec![0.0; n];
    let mut history = Vec::new();
    let mut iterations = 0;
    let mut converged = false;
    while iterations < o.max_iterations {
        let delta = value_iteration_sweep(mdp, o.gamma, &v, &mut next);
        if o.keep_history {
            // pi_{k+1} is greedy with respect to v_k; v_{k+1} is its one-step value.
            let policy = greedy_actions(&q_from_v(mdp, &v, o.gamma), mdp.n_actions());
            history.push(record(o, &next, policy, delta));
        }
        std::mem::swap(&mut v, &mut next);
        iterations += 1;
        if !delta.is_finite() {
            return Err(Error::invalid("value iteration", format!("values diverged after {iterations} sweeps")));
        }
        if delta < o.tol {
            converged = true;
            break;
        }
    }
    Ok(finish(mdp, o, v, iterations, converged, history))
}

/// Truncated policy iteration (book Algorithm 4.3) with `sweeps` evaluation sweeps per iteration,
/// each evaluation starting from the previous iteration's values. Stops when
/// `||v_k - v_{k-1}||_inf < tol`.
pub fn truncated_policy_iteration(mdp: &impl Mdp, sweeps: usize, options: &PlanningOptions) -> Result<PlanningResult> {
    if sweeps == 0 {
        return Err(Error::invalid("sweeps", "truncated policy iteration needs at least one evaluation sweep"));
    }
    let mdp = TabularMdp::from_mdp(mdp)?;
    let o = options;
    validate(&mdp, o, Discount::Discounted)?;
    let (n, na) = (mdp.n_states(), mdp.n_actions());
    let mut v = o.initial_values.clone().unwrap_or_else(|| vec![0.0; n]);
    let mut actions = o.initial_policy.clone().unwrap_or_else(|| vec![0; n]);
    let mut scratch = vec![0.0; n];
    let mut history = Vec::new();
    let mut iterations = 0;
    let mut converged = false;
    while iterations < o.max_iterations {
        let policy = TabularPolicy::deterministic(&actions, na)?;
        let previous = v.clone();
        for _ in 0..sweeps {
            backup(&mdp, &policy, o.gamma, &v, &mut scratch);
            std::mem::swap(&mut v, &mut scratch);
        }
        let delta = max_abs_diff(&v, &previous);
        actions = greedy_actions(&q_from_v(&mdp, &v, o.gamma), na);
        iterations += 1;
        if o.keep_history {
            history.push(record(o, &v, actions.clone(), delta));
        }
        if !delta.is_finite() {
            return Err(Error::invalid(
                "truncated policy iteration",
                format!("values diverged after {iterations} iterations"),
            ));
        }
        if delta < o.tol {
            converged = true;
            break;
        }
    }
    Ok(finish(&mdp, o, v, iterations, converged, history))
}

/// Policy iteration (book Algorithm 4.2): evaluate `pi_k` exactly (closed form up to
/// [`CLOSED_FORM_MAX_STATES`] states, iteratively to 1e-12 beyond), improve greedily, stop when the
/// policy is stable. The history holds `v_{pi_k}` and `pi_{k+1}` for each iteration.
pub fn policy_iteration(mdp: &impl Mdp, options: &PlanningOptions) -> Result<PlanningResult> {
    let mdp = TabularMdp::from_mdp(mdp)?;
    let o = options;
    validate(&mdp, o, Discount::Discounted)?;
    let (n, na) = (mdp.n_states(), mdp.n_actions());
    let mut actions = o.initial_policy.clone().unwrap_or_else(|| vec![0; n]);
    let mut v = o.initial_values.clone().unwrap_or_else(|| vec![0.0; n]);
    let mut history = Vec::new();
    let mut iterations = 0;
    let mut converged = false;
    while iterations < o.max_iterations {
        let policy = TabularPolicy::deterministic(&actions, na)?;
        let values = if n <= CLOSED_FORM_MAX_STATES {
            closed_form_values(&mdp, &policy, o.gamma)?
        } else {
            iterative_evaluation(&mdp, &policy, o.gamma, 1e-12, 10_000_000, Some(&v), false)?.values
        };
        let delta = max_abs_diff(&values, &v);
        v = values;
        let improved = greedy_actions(&q_from_v(&mdp, &v, o.gamma), na);
        iterations += 1;
        if o.keep_history {
            history.push(record(o, &v, improved.clone(), delta));
        }
        let stable = improved == actions;
        actions = improved;
        if stable {
            converged = true;
            break;
        }
    }
    Ok(finish(&mdp, o, v, iterations, converged, history))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rlox_envs::gridworld::GridWorld;

    #[test]
    fn truncated_pi_with_one_sweep_from_greedy_start_matches_value_iteration_values() {
        let g = GridWorld::from_preset("book-5x5").unwrap();
        let o = PlanningOptions { tol: 1e-12, ..Default::default() };
        let vi = value_iteration(&g, &o).unwrap();
        let pi = policy_iteration(&g, &o).unwrap();
        let tpi = truncated_policy_iteration(&g, 5, &o).unwrap();
        assert!(max_abs_diff(&vi.values, &pi.values) < 1e-9);
        assert!(max_abs_diff(&vi.values, &tpi.values) < 1e-9);
        assert_eq!(vi.policy, pi.policy);
        assert_eq!(vi.policy, tpi.policy);
    }

    #[test]
    fn rejects_bad_options() {
        let g = GridWorld::from_preset("book-2x2").unwrap();
        for o in [
            PlanningOptions { gamma: 1.0, ..Default::default() },
            PlanningOptions { tol: 0.0, ..Default::default() },
            PlanningOptions { initial_values: Some(vec![0.0; 3]), ..Default::default() },
            PlanningOptions { initial_policy: Some(vec![9; 4]), ..Default::default() },
        ] {
            assert!(value_iteration(&g, &o).is_err() || policy_iteration(&g, &o).is_err());
        }
        assert!(truncated_policy_iteration(&g, 0, &PlanningOptions::default()).is_err());
    }

    #[test]
    fn undiscounted_value_iteration_on_an_episodic_model() {
        // CliffWalking (Sutton & Barto's example 6.6): -1 per step, so with gamma 1 the optimal value of a
        // state is minus its number of steps to the goal along the cliff's edge. The start (3, 0) is 13 steps
        // away (up, 11 right, down); the cell above the goal is 1 step away; the goal itself is 0.
        let env = rlox_envs::toy_text::cliff_walking::cliff_walking_v1();
        let o = PlanningOptions { gamma: 1.0, tol: 1e-12, keep_history: false, ..Default::default() };
        let r = value_iteration(&env, &o).unwrap();
        assert!(r.converged);
        assert_eq!(r.values[36], -13.0);
        assert_eq!(r.values[35], -1.0);
        assert_eq!(r.values[47], 0.0);
        // Policy iteration keeps gamma < 1, and a continuing model has no undiscounted values.
        let err = policy_iteration(&env, &o).unwrap_err().to_string();
        assert!(err.contains("value iteration accepts gamma 1"), "{err}");
        let g = GridWorld::from_preset("book-5x5").unwrap();
        let err = value_iteration(&g, &o).unwrap_err().to_string();
        assert!(err.contains("no terminal state"), "{err}");
    }
}
