//! The printed numbers of chapters 2-4 of S. Zhao's book, reproduced.
//!
//! "Exactly as printed" means: our values rounded to the book's decimals give the book's strings.

use rlox_core::mdp::TabularMdp;
use rlox_core::policy::TabularPolicy;
use rlox_envs::gridworld::{preset, GridWorld, GridWorldConfig};
use rlox_tabular::bellman::{closed_form_values, iterative_evaluation, optimality_residual};
use rlox_tabular::planning::{policy_iteration, truncated_policy_iteration, value_iteration, PlanningOptions};

fn grid(name: &str, edit: impl FnOnce(&mut GridWorldConfig)) -> GridWorld {
    let mut cfg = preset(name).unwrap();
    edit(&mut cfg);
    GridWorld::new(cfg).unwrap()
}

fn rounded(values: &[f64], decimals: usize) -> Vec<String> {
    // Adding a tiny epsilon keeps exact halves (e.g. 2.35 stored as 2.3499999) on the book's side.
    values.iter().map(|v| format!("{:.decimals$}", v + 1e-9 * v.signum())).collect()
}

fn printed(text: &str) -> Vec<String> {
    text.split(|c: char| c == '/' || c.is_whitespace()).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

fn values_of(g: &GridWorld, policy: &str, gamma: f64) -> Vec<f64> {
    let actions = g.parse_policy(policy).unwrap();
    let pi = TabularPolicy::deterministic(&actions, 5).unwrap();
    closed_form_values(&TabularMdp::from_mdp(g).unwrap(), &pi, gamma).unwrap()
}

#[test]
fn ch2_fig_2_7_good_policies_have_the_printed_values() {
    let g = grid("book-5x5", |_| {});
    let expected = printed("3.5 3.9 4.3 4.8 5.3 / 3.1 3.5 4.8 5.3 5.9 / 2.8 2.5 10.0 5.9 6.6 / 2.5 10.0 10.0 10.0 7.3 / 2.3 9.0 10.0 9.0 8.1");
    for policy in ["RRRDD/UURDD/ULDRD/URSLD/URULL", "RRRRD/UURRD/ULDRD/URSLD/URULL"] {
        let v = values_of(&g, policy, 0.9);
        assert_eq!(rounded(&v, 1), expected, "policy {policy}");
        let iterative = iterative_evaluation(&TabularMdp::from_mdp(&g).unwrap(), &TabularPolicy::deterministic(&g.parse_policy(policy).unwrap(), 5).unwrap(), 0.9, 1e-12, 10_000, None, false).unwrap();
        assert!(iterative.converged);
        assert_eq!(rounded(&iterative.values, 1), expected);
    }
}

#[test]
fn ch2_two_by_two_examples() {
    let g = grid("book-2x2", |_| {});
    // s1 down, s2 down, s3 right, s4 stay.
    let v = values_of(&g, "DD/RS", 0.9);
    assert_eq!(rounded(&v, 4), printed("9.0000 10.0000 10.0000 10.0000"));
    // s1: right or down with probability 1/2 each; the rest as above.
    let m = TabularMdp::from_mdp(&g).unwrap();
    let mut probs = TabularPolicy::deterministic(&g.parse_policy("DD/RS").unwrap(), 5).unwrap().table().to_vec();
    probs[..5].copy_from_slice(&[0.0, 0.5, 0.5, 0.0, 0.0]);
    let pi = TabularPolicy::from_probs(4, 5, probs).unwrap();
    let v = closed_form_values(&m, &pi, 0.9).unwrap();
    assert_eq!(format!("{:.1}", v[0]), "8.5");
}

#[test]
fn ch3_fig_3_4a_optimal_values_and_policy_exactly_as_printed() {
    let g = grid("book-5x5", |_| {});
    let r = value_iteration(&g, &PlanningOptions { tol: 1e-12, ..Default::default() }).unwrap();
    assert!(r.converged);
    assert_eq!(
        rounded(&r.values, 1),
        printed("5.8 5.6 6.2 6.5 5.8 / 6.5 7.2 8.0 7.2 6.5 / 7.2 8.0 10.0 8.0 7.2 / 8.0 10.0 10.0 10.0 8.0 / 7.2 9.0 10.0 9.0 8.1")
    );
    assert_eq!(g.format_policy(&r.policy), "DRDDD/DDDDD/RRDDD/RRSLL/URULL");
    let m = TabularMdp::from_mdp(&g).unwrap();
    assert!(optimality_residual(&m, &r.values, 0.9) < 1e-10);
}

#[test]
fn ch3_affine_rewards_leave_the_optimal_policy_unchanged() {
    let g = grid("book-5x5", |_| {});
    let m = TabularMdp::from_mdp(&g).unwrap();
    let o = PlanningOptions { tol: 1e-12, ..Default::default() };
    let base = value_iteration(&m, &o).unwrap();
    for (a, b) in [(1.0, 1.0), (2.0, -3.0), (0.5, 10.0)] {
        let shifted = value_iteration(&m.map_rewards(|r| a * r + b), &o).unwrap();
        assert_eq!(shifted.policy, base.policy, "a = {a}, b = {b}");
        for (v2, v1) in shifted.values.iter().zip(&base.values) {
            assert!((v2 - (a * v1 + b / (1.0 - 0.9))).abs() < 1e-8);
        }
    }
    // The book's example: every reward + 1 (r_boundary = r_forbidden = 0, r_target = 2, r_other = 1).
    let plus_one = grid("book-5x5", |c| {
        c.r_boundary = 0.0;
        c.r_forbidden = 0.0;
        c.r_target = 2.0;
        c.r_other = 1.0;
    });
    let r = value_iteration(&plus_one, &o).unwrap();
    assert_eq!(r.policy, base.policy);
    assert!((r.values[0] - (base.values[0] + 10.0)).abs() < 1e-8);
}

#[test]
fn ch4_policy_iteration_from_all_stay_reaches_the_optimal_values() {
    let g = grid("book-5x5", |c| c.r_forbidden = -10.0);
    let stay = vec![4; 25];
    let o = PlanningOptions { tol: 1e-12, initial_policy: Some(stay), ..Default::default() };
    let pi = policy_iteration(&g, &o).unwrap();
    let vi = value_iteration(&g, &PlanningOptions { tol: 1e-12, ..Default::default() }).unwrap();
    assert!(pi.converged);
    assert_eq!(pi.policy, vi.policy);
    assert!(pi.values.iter().zip(&vi.values).all(|(a, b)| (a - b).abs() < 1e-8));
    // Truncated PI with j = 1, 3, 6, 100 from the same start reaches the same values.
    for j in [1, 3, 6, 100] {
        let t = truncated_policy_iteration(&g, j, &PlanningOptions { tol: 1e-12, ..o.clone() }).unwrap();
        assert!(t.values.iter().zip(&vi.values).all(|(a, b)| (a - b).abs() < 1e-8), "j = {j}");
    }
}
