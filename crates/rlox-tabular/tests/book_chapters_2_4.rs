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
    // Plain rounding of the computed value (values converge from below, as the book's iterations do).
    values
        .iter()
        .map(|v| {
            let s = format!("{v:.decimals$}");
            // The book prints no negative zero.
            if s.trim_start_matches('-').chars().all(|c| c == '0' || c == '.') {
                s.trim_start_matches('-').to_string()
            } else {
                s
            }
        })
        .collect()
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
        let iterative = iterative_evaluation(
            &TabularMdp::from_mdp(&g).unwrap(),
            &TabularPolicy::deterministic(&g.parse_policy(policy).unwrap(), 5).unwrap(),
            0.9,
            1e-12,
            10_000,
            None,
            false,
        )
        .unwrap();
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

/// Values of a deterministic policy string on a grid (closed form).
fn eval(g: &GridWorld, policy: &str, gamma: f64) -> Vec<f64> {
    values_of(g, policy, gamma)
}

#[test]
fn ch2_fig_2_7_bad_policies_have_the_printed_values() {
    let g = grid("book-5x5", |_| {});
    let all_right = printed("-6.6 -7.3 -8.1 -9.0 -10.0 / -8.5 -8.3 -8.1 -9.0 -10.0 / -7.5 -8.3 -8.1 -9.0 -10.0 / -7.5 -7.2 -9.1 -9.0 -10.0 / -7.6 -7.3 -8.1 -9.0 -10.0");
    assert_eq!(rounded(&eval(&g, "RRRRR/RRRRR/RRRRR/RRRRR/RRRRR", 0.9), 1), all_right);
    let mixed = printed("0.0 0.0 0.0 -10.0 -10.0 / -9.0 -10.0 -0.4 -0.5 -10.0 / -10.0 -0.5 0.5 -0.5 0.0 / 0.0 -1.0 -0.5 -0.5 -10.0 / 0.0 0.0 0.0 0.0 0.0");
    assert_eq!(rounded(&eval(&g, "RLLUU/DSRDR/LRDLS/SDUUR/SRSRS", 0.9), 1), mixed);
}

#[test]
fn ch3_fig_3_2_policy_improvement_numbers() {
    let g = grid("book-2x2", |_| {});
    let v = eval(&g, "RD/RS", 0.9);
    assert_eq!(rounded(&v, 1), printed("8.0 10.0 10.0 10.0"));
    let q = rlox_tabular::bellman::q_from_v(&TabularMdp::from_mdp(&g).unwrap(), &v, 0.9);
    assert_eq!(rounded(&q[..5], 1), printed("6.2 8.0 9.0 6.2 7.2"));
}

#[test]
fn ch3_fig_3_4_bcd_other_gammas_and_r_forbidden() {
    let o = |gamma| PlanningOptions { gamma, tol: 1e-13, ..Default::default() };
    // (b) gamma = 0.5
    let g = grid("book-5x5", |_| {});
    let r = value_iteration(&g, &o(0.5)).unwrap();
    assert_eq!(rounded(&r.values, 1), printed("0.0 0.0 0.0 0.0 0.0 / 0.0 0.0 0.0 0.0 0.1 / 0.0 0.0 2.0 0.1 0.1 / 0.0 2.0 2.0 2.0 0.2 / 0.0 1.0 2.0 1.0 0.5"));
    assert_eq!(g.format_policy(&r.policy), "RRRRD/UURRD/ULDRD/URSLD/URULL");
    // (c) gamma = 0: values as printed; the printed policy breaks many ties arbitrarily, so check it is optimal.
    let r = value_iteration(&g, &o(0.0)).unwrap();
    assert_eq!(rounded(&r.values, 1), printed("0.0 0.0 0.0 0.0 0.0 / 0.0 0.0 0.0 0.0 0.0 / 0.0 0.0 1.0 0.0 0.0 / 0.0 1.0 1.0 1.0 0.0 / 0.0 0.0 1.0 0.0 0.0"));
    let book_c = g.parse_policy("DSLDD/UDUSU/SSDSD/DRSLU/URULL").unwrap();
    let q = rlox_tabular::bellman::q_from_v(&TabularMdp::from_mdp(&g).unwrap(), &r.values, 0.0);
    for (s, &a) in book_c.iter().enumerate() {
        assert!((q[s * 5 + a] - r.values[s]).abs() < 1e-12, "book's action at state {s} is greedy");
    }
    // (d) r_forbidden = -10, gamma = 0.9
    let g = grid("book-5x5", |c| c.r_forbidden = -10.0);
    let r = value_iteration(&g, &o(0.9)).unwrap();
    assert_eq!(rounded(&r.values, 1), printed("3.5 3.9 4.3 4.8 5.3 / 3.1 3.5 4.8 5.3 5.9 / 2.8 2.5 10.0 5.9 6.6 / 2.5 10.0 10.0 10.0 7.3 / 2.3 9.0 10.0 9.0 8.1"));
    assert_eq!(g.format_policy(&r.policy), "RRRRD/UURRD/ULDRD/URSLD/URULL");
}

#[test]
fn ch3_fig_3_5_meaningless_detours() {
    let g = grid("book-2x2", |c| c.forbidden.clear());
    assert_eq!(rounded(&eval(&g, "DD/RS", 0.9), 1), printed("9.0 10.0 10.0 10.0"));
    assert_eq!(rounded(&eval(&g, "DL/RS", 0.9), 1), printed("9.0 8.1 10.0 10.0"));
}

#[test]
fn ch4_value_iteration_tables_on_the_2x2_grid() {
    let g = grid("book-2x2", |_| {});
    let r = value_iteration(&g, &PlanningOptions { tol: 1e-12, ..Default::default() }).unwrap();
    let m = TabularMdp::from_mdp(&g).unwrap();
    // Table 4.2: q at k = 0 (v0 = 0).
    let q0 = rlox_tabular::bellman::q_from_v(&m, &[0.0; 4], 0.9);
    assert_eq!(rounded(&q0, 0), printed("-1 -1 0 -1 0 / -1 -1 1 0 -1 / 0 1 -1 -1 0 / -1 -1 -1 0 1"));
    // v1 = (0, 1, 1, 1); pi1: s2 down, s3 right, s4 stay; at s1 down and stay tie (the book picks stay,
    // our lowest-index rule picks down: both are allowed by the book's text).
    assert_eq!(rounded(&r.history[0].values, 1), printed("0.0 1.0 1.0 1.0"));
    assert_eq!(g.format_policy(&r.history[0].policy), "DD/RS");
    // Table 4.3 (k = 1, evaluated) and v2 = (0.9, 1.9, 1.9, 1.9); pi2 = DD/RS is optimal.
    let q1 = rlox_tabular::bellman::q_from_v(&m, &r.history[0].values, 0.9);
    assert_eq!(
        rounded(&q1, 1),
        printed("-1.0 -0.1 0.9 -1.0 0.0 / -0.1 -0.1 1.9 0.0 -0.1 / 0.0 1.9 -0.1 -0.1 0.9 / -0.1 -0.1 -0.1 0.9 1.9")
    );
    assert_eq!(rounded(&r.history[1].values, 1), printed("0.9 1.9 1.9 1.9"));
    assert_eq!(g.format_policy(&r.history[1].policy), "DD/RS");
    assert_eq!(g.format_policy(&r.policy), "DD/RS");
}

#[test]
fn ch4_policy_iteration_on_the_1x2_grid() {
    let g = grid("book-1x2", |_| {});
    let m = TabularMdp::from_mdp(&g).unwrap();
    let left = TabularPolicy::deterministic(&g.parse_policy("LL").unwrap(), 3).unwrap();
    assert_eq!(rounded(&closed_form_values(&m, &left, 0.9).unwrap(), 1), printed("-10.0 -9.0"));
    let it = iterative_evaluation(&m, &left, 0.9, 1e-12, 3, None, true).unwrap();
    assert_eq!(rounded(&it.history[0], 2), printed("-1.00 0.00"));
    assert_eq!(rounded(&it.history[1], 2), printed("-1.90 -0.90"));
    assert_eq!(rounded(&it.history[2], 2), printed("-2.71 -1.71"));
    let q = rlox_tabular::bellman::q_from_v(&m, &closed_form_values(&m, &left, 0.9).unwrap(), 0.9);
    assert_eq!(rounded(&q, 1), printed("-10.0 -9.0 -7.1 / -9.0 -7.1 -9.1"));
    let r = policy_iteration(
        &g,
        &PlanningOptions { initial_policy: Some(g.parse_policy("LL").unwrap()), ..Default::default() },
    )
    .unwrap();
    assert_eq!(g.format_policy(&r.history[0].policy), "RS", "optimal after one iteration");
    assert_eq!(r.iterations, 2, "the second iteration confirms the policy is stable");
}

#[test]
fn ch4_fig_4_4_policy_iteration_panels() {
    // The book's panels pi_0..pi_5, pi_9, pi_10 with their printed values. Its intermediate policies break
    // ties differently from ours, so each printed policy is evaluated and compared with its printed grid.
    let g = grid("book-5x5", |c| c.r_forbidden = -10.0);
    let panels = [
        ("SSSSS/SSSSS/SSSSS/SSSSS/SSSSS", "0.0 0.0 0.0 0.0 0.0 / 0.0 -100.0 -100.0 0.0 0.0 / 0.0 0.0 -100.0 0.0 0.0 / 0.0 -100.0 10.0 -100.0 0.0 / 0.0 -100.0 0.0 0.0 0.0"),
        ("DRRLL/DDRDL/DSDSS/DRSLD/URURS", "0.0 0.0 0.0 0.0 0.0 / 0.0 0.0 0.0 0.0 0.0 / 0.0 0.0 10.0 0.0 0.0 / 0.0 10.0 10.0 10.0 0.0 / 0.0 9.0 10.0 0.0 0.0"),
        ("SSRSS/SUUDL/ULDRL/URSLS/URULU", "0.0 0.0 0.0 0.0 0.0 / 0.0 0.0 0.0 0.0 0.0 / 0.0 0.0 10.0 0.0 0.0 / 0.0 10.0 10.0 10.0 0.0 / 0.0 9.0 10.0 9.0 0.0"),
        ("SRRLS/UUUUL/SSDRU/DRSLD/SRULL", "0.0 0.0 0.0 0.0 0.0 / 0.0 0.0 0.0 0.0 0.0 / 0.0 0.0 10.0 0.0 0.0 / 0.0 10.0 10.0 10.0 7.3 / 0.0 9.0 10.0 9.0 8.1"),
        ("SLLSD/SDRRL/SLDSD/URSLD/URULL", "0.0 0.0 0.0 0.0 0.0 / 0.0 0.0 0.0 0.0 0.0 / 0.0 0.0 10.0 0.0 6.6 / 0.0 10.0 10.0 10.0 7.3 / 0.0 9.0 10.0 9.0 8.1"),
        ("SSRDL/UURDD/DLDRD/SRSLD/SRULL", "0.0 0.0 4.3 4.8 4.3 / 0.0 0.0 4.8 5.3 5.9 / 0.0 0.0 10.0 5.9 6.6 / 0.0 10.0 10.0 10.0 7.3 / 0.0 9.0 10.0 9.0 8.1"),
        ("RRRDD/UURDD/USDRD/SRSLD/SRULL", "3.5 3.9 4.3 4.8 5.3 / 3.1 3.5 4.8 5.3 5.9 / 2.8 0.0 10.0 5.9 6.6 / 0.0 10.0 10.0 10.0 7.3 / 0.0 9.0 10.0 9.0 8.1"),
        ("RRRDD/UURDD/ULDRD/URSLD/URULL", "3.5 3.9 4.3 4.8 5.3 / 3.1 3.5 4.8 5.3 5.9 / 2.8 2.5 10.0 5.9 6.6 / 2.5 10.0 10.0 10.0 7.3 / 2.3 9.0 10.0 9.0 8.1"),
    ];
    for (policy, values) in panels {
        assert_eq!(rounded(&eval(&g, policy, 0.9), 1), printed(values), "{policy}");
    }
    // Our policy iteration from all-stay: its first history entry is v_{pi_0} (the first panel) and it ends
    // at the last panel's values.
    let r = policy_iteration(&g, &PlanningOptions { initial_policy: Some(vec![4; 25]), ..Default::default() }).unwrap();
    assert_eq!(rounded(&r.history[0].values, 1), printed(panels[0].1));
    assert_eq!(rounded(&r.values, 1), printed(panels[7].1));
}

#[test]
fn ch5_fig_5_6_and_5_7_epsilon_greedy_values_need_the_additive_border_rule() {
    // Bellman evaluation of epsilon-greedy policies; these figures use r_boundary + r_forbidden when
    // bouncing off the border from a forbidden cell.
    let g = grid("book-5x5", |c| {
        c.r_forbidden = -10.0;
        c.additive_border_from_forbidden = true;
    });
    let m = TabularMdp::from_mdp(&g).unwrap();
    let eps_values = |greedy: &str, eps: f64| {
        let pi = TabularPolicy::epsilon_greedy(&g.parse_policy(greedy).unwrap(), 5, eps).unwrap();
        closed_form_values(&m, &pi, 0.9).unwrap()
    };
    let greedy = "RRRRD/UURRD/ULDRD/URSLD/URULL";
    assert_eq!(rounded(&eps_values(greedy, 0.1), 1), printed("0.4 0.5 0.9 1.3 1.4 / 0.1 0.0 0.5 1.3 1.7 / 0.1 -0.4 3.4 1.4 1.9 / -0.1 3.4 3.3 3.7 2.2 / -0.3 2.6 3.7 3.1 2.7"));
    assert_eq!(rounded(&eps_values(greedy, 0.2), 1), printed("-2.2 -2.4 -2.1 -1.7 -1.8 / -2.5 -3.0 -3.3 -2.3 -2.0 / -2.3 -3.3 -2.5 -2.8 -2.2 / -2.5 -2.5 -2.8 -2.0 -2.4 / -2.8 -3.2 -2.1 -2.3 -2.2"));
    assert_eq!(rounded(&eps_values(greedy, 0.5), 1), printed("-8.0 -9.0 -8.4 -7.2 -7.8 / -8.7 -10.8 -12.4 -9.6 -8.9 / -8.3 -12.3 -15.3 -12.3 -10.5 / -9.7 -15.5 -17.0 -14.4 -12.2 / -10.9 -16.7 -15.2 -14.3 -12.4"));
    // Fig 5.7 (d): the optimal epsilon-greedy policy for eps = 0.5.
    assert_eq!(rounded(&eps_values("SLRRS/UURRU/SLRRU/ULDRU/URRRS", 0.5), 1), printed("-4.3 -5.5 -4.5 -2.6 -2.3 / -5.6 -7.7 -7.7 -4.1 -2.4 / -5.5 -9.0 -8.0 -5.6 -2.8 / -6.8 -8.9 -9.4 -5.5 -4.2 / -7.9 -10.1 -6.7 -5.1 -3.7"));
    // Without the additive rule the eps = 0.5 grid does not match the book.
    let plain = grid("book-5x5", |c| c.r_forbidden = -10.0);
    let pi = TabularPolicy::epsilon_greedy(&plain.parse_policy(greedy).unwrap(), 5, 0.5).unwrap();
    let v = closed_form_values(&TabularMdp::from_mdp(&plain).unwrap(), &pi, 0.9).unwrap();
    assert_ne!(rounded(&v, 1)[0], "-8.0");
}
