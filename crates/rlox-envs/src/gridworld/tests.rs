//! Unit tests pinning every rule of the book's grid world.

use super::*;

const UP: usize = 0;
const RIGHT: usize = 1;
const DOWN: usize = 2;
const LEFT: usize = 3;
const STAY: usize = 4;

fn book5() -> GridWorld {
    GridWorld::from_preset("book-5x5").unwrap()
}

#[test]
fn state_numbering_is_row_major_from_top_left() {
    let g = book5();
    assert_eq!(g.state_of((1, 1)), 0);
    assert_eq!(g.state_of((1, 5)), 4);
    assert_eq!(g.state_of((2, 1)), 5);
    assert_eq!(g.state_of((4, 3)), 17);
    assert_eq!(g.cell_of(17), (4, 3));
    assert_eq!(g.target_state(), 17);
    assert_eq!(g.n_states(), 25);
    assert_eq!(g.n_actions(), 5);
}

#[test]
fn actions_move_in_book_order() {
    let g = book5();
    let s = g.state_of((3, 2)); // not forbidden
    assert_eq!(g.outcome(s, UP).0, g.state_of((2, 2)));
    assert_eq!(g.outcome(s, RIGHT).0, g.state_of((3, 3)));
    assert_eq!(g.outcome(s, DOWN).0, g.state_of((4, 2)));
    assert_eq!(g.outcome(s, LEFT).0, g.state_of((3, 1)));
    assert_eq!(g.outcome(s, STAY).0, s);
}

#[test]
fn boundary_bounce_stays_and_pays_r_boundary() {
    let mut cfg = preset("book-5x5").unwrap();
    cfg.r_boundary = -3.0;
    let g = GridWorld::new(cfg).unwrap();
    assert_eq!(g.outcome(0, UP), (0, -3.0));
    assert_eq!(g.outcome(0, LEFT), (0, -3.0));
    assert_eq!(g.outcome(4, RIGHT), (4, -3.0));
    assert_eq!(g.outcome(24, DOWN), (24, -3.0));
}

#[test]
fn entering_and_staying_in_forbidden_pays_r_forbidden() {
    let mut cfg = preset("book-5x5").unwrap();
    cfg.r_forbidden = -10.0;
    let g = GridWorld::new(cfg).unwrap();
    let from = g.state_of((1, 2));
    assert_eq!(g.outcome(from, DOWN), (g.state_of((2, 2)), -10.0), "entering");
    let inside = g.state_of((2, 2));
    assert_eq!(g.outcome(inside, STAY), (inside, -10.0), "staying");
    assert_eq!(g.outcome(inside, RIGHT), (g.state_of((2, 3)), -10.0), "forbidden to forbidden");
    assert_eq!(g.outcome(inside, LEFT), (g.state_of((2, 1)), 0.0), "leaving to a normal cell pays r_other");
}

#[test]
fn target_pays_on_entry_and_stay_and_is_not_absorbing() {
    let g = book5();
    let t = g.target_state();
    assert_eq!(g.outcome(g.state_of((5, 3)), UP), (t, 1.0));
    assert_eq!(g.outcome(t, STAY), (t, 1.0));
    assert_eq!(g.outcome(t, UP), (g.state_of((3, 3)), -1.0), "leaving into a forbidden cell");
    assert!(!g.is_absorbing(t));
    let mut buf = Vec::new();
    g.transitions(t, UP, &mut buf);
    assert_eq!(buf, vec![(g.state_of((3, 3)), 1.0)]);
}

#[test]
fn other_moves_pay_r_other() {
    let mut cfg = preset("book-5x5").unwrap();
    cfg.r_other = -0.5;
    let g = GridWorld::new(cfg).unwrap();
    assert_eq!(g.outcome(0, RIGHT), (1, -0.5));
    assert_eq!(g.outcome(0, STAY), (0, -0.5));
}

#[test]
fn border_from_forbidden_default_and_additive() {
    let mut cfg = preset("book-5x5").unwrap();
    cfg.r_forbidden = -10.0;
    let s = GridWorld::new(cfg.clone()).unwrap().state_of((5, 2)); // forbidden, bottom row
    assert_eq!(GridWorld::new(cfg.clone()).unwrap().outcome(s, DOWN), (s, -1.0));
    cfg.additive_border_from_forbidden = true;
    assert_eq!(GridWorld::new(cfg).unwrap().outcome(s, DOWN), (s, -11.0));
}

#[test]
fn forbidden_as_wall_blocks_and_pays_r_forbidden() {
    let mut cfg = preset("book-5x5").unwrap();
    cfg.forbidden_as_wall = true;
    cfg.r_forbidden = -7.0;
    let g = GridWorld::new(cfg).unwrap();
    let from = g.state_of((1, 2));
    assert_eq!(g.outcome(from, DOWN), (from, -7.0));
    assert_eq!(g.outcome(from, RIGHT), (g.state_of((1, 3)), 0.0));
}

#[test]
fn episodic_target_terminates_and_is_absorbing_in_the_model() {
    let mut cfg = preset("book-5x5").unwrap();
    cfg.terminate_at_target = true;
    cfg.start = Some((5, 3));
    let mut g = GridWorld::new(cfg).unwrap();
    let (s0, _) = g.reset(Some(0)).unwrap();
    assert_eq!(s0, g.state_of((5, 3)));
    let step = g.step(&UP).unwrap();
    assert!(step.terminated && !step.truncated);
    assert_eq!(step.reward, 1.0);
    assert!(g.step(&UP).is_err(), "stepping after the end needs a reset");
    assert!(g.is_absorbing(g.target_state()));
    assert_eq!(g.expected_reward(g.target_state(), STAY), 0.0);
}

#[test]
fn linear_grid_has_three_actions() {
    let g = GridWorld::from_preset("book-1x2").unwrap();
    assert_eq!(g.n_actions(), 3);
    assert_eq!(g.outcome(0, 0), (0, -1.0), "left off the grid");
    assert_eq!(g.outcome(0, 2), (1, 1.0), "right into the target");
    assert_eq!(g.outcome(1, 1), (1, 1.0), "stay at the target");
    assert_eq!(g.parse_policy("RS").unwrap(), vec![2, 1]);
    let mut cfg = preset("book-1x2").unwrap();
    cfg.rows = 2;
    cfg.target = (2, 2);
    assert!(GridWorld::new(cfg).is_err(), "linear actions need one row");
}

#[test]
fn policy_strings_round_trip_and_reject_bad_input() {
    let g = book5();
    let text = "RRRDD/UURDD/ULDRD/URSLD/URULL";
    let p = g.parse_policy(text).unwrap();
    assert_eq!(p[0], RIGHT);
    assert_eq!(p[17], STAY);
    assert_eq!(g.format_policy(&p), text);
    let e = g.parse_policy("RRRDD/UURDD").unwrap_err().to_string();
    assert!(e.contains("2 rows"), "{e}");
    let e = g.parse_policy("RRRD/UURDD/ULDRD/URSLD/URULL").unwrap_err().to_string();
    assert!(e.contains("row 1"), "{e}");
    let e = g.parse_policy("RRRDX/UURDD/ULDRD/URSLD/URULL").unwrap_err().to_string();
    assert!(e.contains("'X'") && e.contains("column 5"), "{e}");
}

#[test]
fn invalid_configs_are_rejected_with_reasons() {
    let mut cfg = preset("book-5x5").unwrap();
    cfg.target = (2, 2);
    assert!(GridWorld::new(cfg).unwrap_err().to_string().contains("forbidden"));
    let mut cfg = preset("book-5x5").unwrap();
    cfg.rows = 0;
    assert!(GridWorld::new(cfg).unwrap_err().to_string().contains("at least 1"));
    let mut cfg = preset("book-5x5").unwrap();
    cfg.forbidden.push((6, 1));
    assert!(GridWorld::new(cfg).unwrap_err().to_string().contains("outside"));
    assert!(GridWorld::from_preset("book-9x9").is_err());
    assert!(parse_cells("2,2;x,3").is_err());
    assert_eq!(parse_cells("(2,2) (3,4)").unwrap(), vec![(2, 2), (3, 4)]);
}

#[test]
fn env_rejects_invalid_actions_and_needs_reset() {
    let mut g = book5();
    assert!(matches!(g.step(&0), Err(Error::NeedsReset { .. })));
    g.reset(Some(1)).unwrap();
    assert!(matches!(g.step(&5), Err(Error::InvalidAction { .. })));
}

#[test]
fn seeded_random_starts_are_reproducible() {
    let mut a = book5();
    let mut b = book5();
    let sa: Vec<usize> = (0..20).map(|i| a.reset(if i == 0 { Some(9) } else { None }).unwrap().0).collect();
    let sb: Vec<usize> = (0..20).map(|i| b.reset(if i == 0 { Some(9) } else { None }).unwrap().0).collect();
    assert_eq!(sa, sb);
    assert!(sa.iter().collect::<std::collections::HashSet<_>>().len() > 5, "starts are spread over the grid");
}
