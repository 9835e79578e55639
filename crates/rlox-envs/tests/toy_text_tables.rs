//! FrozenLake, CliffWalking and Taxi against Gymnasium 1.4.0.
//!
//! The fixtures under `tests/fixtures/toy_text/` hold `env.unwrapped.P` as dumped by
//! `tools/toy_text_tables.py`; every entry must match ours exactly (probabilities bit for bit, in
//! Gymnasium's order). The remaining tests cover the behaviour around the tables: time limits,
//! errors, map validation and generation, seeding, sampling and the `Mdp` view.

use rand::Rng as _;
use rlox_core::env::SetState;
use rlox_core::seeding::rng_from_seed;
use rlox_core::{Env, Error, InfoValue, Mdp, TabularMdp};
use rlox_envs::toy_text::frozen_lake::{has_path, validate_map, DOWN, LEFT, RIGHT};
use rlox_envs::toy_text::taxi::{self, decode, encode, IN_TAXI};
use rlox_envs::toy_text::{
    cliff_walking, cliff_walking_slippery_v1, cliff_walking_v1, frozen_lake_8x8_v1, frozen_lake_v1,
    frozen_lake_v1_with, generate_random_map, taxi_v4, taxi_v4_with, CliffWalking, FrozenLake, FrozenLakeConfig, GymP,
    LakeMap, Taxi, TaxiConfig,
};
use serde_json::Value;
use std::path::PathBuf;

fn fixture(stem: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/toy_text").join(format!("{stem}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Compare our table with Gymnasium's, entry by entry, and our time limit with the registered one.
fn assert_same_table(stem: &str, ours: &GymP, max_episode_steps: Option<usize>) {
    let gym = fixture(stem);
    assert_eq!(gym["gymnasium"], "1.4.0", "{stem}: fixture from another Gymnasium version");
    assert_eq!(gym["max_episode_steps"].as_u64().map(|n| n as usize), max_episode_steps, "{stem}: time limit");
    let table = gym["P"].as_array().unwrap();
    assert_eq!(ours.len(), gym["n_states"].as_u64().unwrap() as usize, "{stem}: n_states");
    assert_eq!(ours.len(), table.len(), "{stem}: n_states");
    for (s, (our_row, gym_row)) in ours.iter().zip(table).enumerate() {
        let gym_row = gym_row.as_array().unwrap();
        assert_eq!(our_row.len(), gym["n_actions"].as_u64().unwrap() as usize, "{stem}: n_actions");
        assert_eq!(our_row.len(), gym_row.len(), "{stem}: n_actions");
        for (a, (our_list, gym_list)) in our_row.iter().zip(gym_row).enumerate() {
            let gym_list = gym_list.as_array().unwrap();
            assert_eq!(our_list.len(), gym_list.len(), "{stem}: number of outcomes of P[{s}][{a}]");
            for (i, (&(prob, next, reward, terminated), entry)) in our_list.iter().zip(gym_list).enumerate() {
                let e = entry.as_array().unwrap();
                let what = format!("{stem}: P[{s}][{a}][{i}] = {e:?}, ours ({prob:?}, {next}, {reward}, {terminated})");
                assert_eq!(prob.to_bits(), e[1].as_u64().unwrap(), "{what}: probability bits");
                assert_eq!(next as u64, e[2].as_u64().unwrap(), "{what}: next state");
                assert_eq!(reward, e[3].as_f64().unwrap(), "{what}: reward");
                assert_eq!(terminated, e[4].as_bool().unwrap(), "{what}: terminated");
            }
        }
    }
}

fn frozen(config: FrozenLakeConfig) -> FrozenLake {
    FrozenLake::new(config).unwrap()
}

#[test]
fn frozen_lake_4x4_slippery_matches_gymnasium() {
    let env = frozen_lake_v1();
    assert_same_table("frozen_lake_4x4_slippery", &env.inner().gym_p(), Some(env.max_episode_steps()));
}

#[test]
fn frozen_lake_4x4_deterministic_matches_gymnasium() {
    let env = frozen_lake_v1_with(FrozenLakeConfig { is_slippery: false, ..Default::default() }).unwrap();
    assert_same_table("frozen_lake_4x4_deterministic", &env.inner().gym_p(), Some(env.max_episode_steps()));
}

#[test]
fn frozen_lake_8x8_slippery_matches_gymnasium() {
    let env = frozen_lake_8x8_v1();
    assert_eq!(env.id(), "FrozenLake8x8-v1");
    assert_same_table("frozen_lake_8x8_slippery", &env.inner().gym_p(), Some(env.max_episode_steps()));
}

#[test]
fn frozen_lake_options_match_gymnasium() {
    let config = FrozenLakeConfig { success_rate: 0.75, reward_schedule: [10.0, -1.0, 0.0], ..Default::default() };
    let env = frozen_lake_v1_with(config).unwrap();
    assert_same_table("frozen_lake_4x4_success_075_schedule", &env.inner().gym_p(), Some(100));
    let map = LakeMap::Custom(vec!["SFFHF".into(), "HFGFF".into()]);
    let env = frozen_lake_v1_with(FrozenLakeConfig { map, ..Default::default() }).unwrap();
    assert_same_table("frozen_lake_custom_2x5", &env.inner().gym_p(), Some(100));
}

#[test]
fn cliff_walking_matches_gymnasium() {
    assert_same_table("cliff_walking", &cliff_walking_v1().gym_p(), None);
    let slippery = cliff_walking_slippery_v1();
    assert_eq!(slippery.id(), "CliffWalkingSlippery-v1");
    assert_same_table("cliff_walking_slippery", &slippery.gym_p(), None);
}

#[test]
fn taxi_matches_gymnasium() {
    let env = taxi_v4();
    assert_same_table("taxi", &env.inner().gym_p(), Some(env.max_episode_steps()));
    let rainy = taxi_v4_with(TaxiConfig { is_rainy: true, ..Default::default() }).unwrap();
    assert_same_table("taxi_rainy", &rainy.inner().gym_p(), Some(rainy.max_episode_steps()));
}

#[test]
fn taxi_action_mask_matches_gymnasium() {
    let gym = fixture("taxi");
    for (s, mask) in gym["action_mask"].as_array().unwrap().iter().enumerate() {
        let theirs: Vec<bool> = mask.as_array().unwrap().iter().map(|m| m.as_u64().unwrap() == 1).collect();
        assert_eq!(Taxi::action_mask(s).to_vec(), theirs, "action_mask({s})");
    }
}

/// The expected rewards and merged transitions of the `Mdp` view, computed from Gymnasium's own
/// table in the same order, agree exactly (terminal states aside, which the view makes absorbing).
#[test]
fn mdp_view_is_gymnasium_table_merged() {
    let cases: Vec<(&str, Box<dyn Mdp>)> = vec![
        ("frozen_lake_4x4_slippery", Box::new(frozen(FrozenLakeConfig::default()))),
        ("frozen_lake_8x8_slippery", Box::new(frozen_lake_8x8_v1().inner().clone())),
        ("cliff_walking_slippery", Box::new(cliff_walking_slippery_v1())),
        ("taxi_rainy", Box::new(Taxi::new(TaxiConfig { is_rainy: true, ..Default::default() }).unwrap())),
    ];
    let mut out = Vec::new();
    for (stem, mdp) in cases {
        let gym = fixture(stem);
        for (s, row) in gym["P"].as_array().unwrap().iter().enumerate() {
            for (a, list) in row.as_array().unwrap().iter().enumerate() {
                mdp.transitions(s, a, &mut out);
                if out == [(s, 1.0)] && mdp.expected_reward(s, a) == 0.0 {
                    continue; // absorbing in our view (terminal) or already in Gymnasium's
                }
                let mut merged: Vec<(usize, f64)> = Vec::new();
                let mut reward = 0.0;
                for e in list.as_array().unwrap() {
                    let e = e.as_array().unwrap();
                    let (p, next, r) = (
                        f64::from_bits(e[1].as_u64().unwrap()),
                        e[2].as_u64().unwrap() as usize,
                        e[3].as_f64().unwrap(),
                    );
                    reward += p * r;
                    match merged.iter_mut().find(|(n, _)| *n == next) {
                        Some(slot) => slot.1 += p,
                        None if p > 0.0 => merged.push((next, p)),
                        None => {}
                    }
                }
                assert_eq!(out, merged, "{stem}: transitions({s}, {a})");
                assert_eq!(mdp.expected_reward(s, a), reward, "{stem}: expected_reward({s}, {a})");
            }
        }
    }
}

#[test]
fn every_env_compiles_to_a_tabular_mdp() {
    let mdps: Vec<Box<dyn Mdp>> = vec![
        Box::new(frozen(FrozenLakeConfig::default())),
        Box::new(frozen(FrozenLakeConfig { is_slippery: false, ..Default::default() })),
        Box::new(frozen(FrozenLakeConfig { map: LakeMap::EightByEight, ..Default::default() })),
        Box::new(frozen(FrozenLakeConfig { success_rate: 1.0, ..Default::default() })),
        Box::new(cliff_walking_v1()),
        Box::new(cliff_walking_slippery_v1()),
        Box::new(Taxi::new(TaxiConfig::default()).unwrap()),
        Box::new(Taxi::new(TaxiConfig { is_rainy: true, ..Default::default() }).unwrap()),
    ];
    for mdp in mdps {
        let tab = TabularMdp::from_mdp(mdp.as_ref()).unwrap();
        assert_eq!(tab.n_states(), mdp.n_states());
        assert_eq!(tab.n_actions(), mdp.n_actions());
    }
}

#[test]
fn terminal_states_are_absorbing_in_the_mdp_view() {
    let mut out = Vec::new();
    let cliff = cliff_walking_v1();
    for a in 0..4 {
        cliff.transitions(cliff_walking::GOAL, a, &mut out);
        assert_eq!(out, [(cliff_walking::GOAL, 1.0)]);
        assert_eq!(cliff.expected_reward(cliff_walking::GOAL, a), 0.0);
    }
    // Gymnasium's raw row for the goal is an ordinary move.
    assert_eq!(cliff.gym_p()[cliff_walking::GOAL][cliff_walking::UP], vec![(1.0, 35, -1.0, false)]);
    let taxi = Taxi::new(TaxiConfig::default()).unwrap();
    let delivered = encode(0, 0, 0, 0);
    for a in 0..6 {
        taxi.transitions(delivered, a, &mut out);
        assert_eq!(out, [(delivered, 1.0)]);
        assert_eq!(taxi.expected_reward(delivered, a), 0.0);
    }
}

/// Value iteration (undiscounted) on CliffWalking finds the 13-step path along the cliff.
#[test]
fn cliff_walking_optimal_return_is_minus_13() {
    let mdp = TabularMdp::from_mdp(&cliff_walking_v1()).unwrap();
    let mut v = vec![0.0; mdp.n_states()];
    for _ in 0..200 {
        let next: Vec<f64> = (0..mdp.n_states())
            .map(|s| {
                (0..4)
                    .map(|a| {
                        let (ns, ps) = mdp.row(s, a);
                        mdp.rewards()[s * 4 + a] + ns.iter().zip(ps).map(|(&n, p)| p * v[n as usize]).sum::<f64>()
                    })
                    .fold(f64::NEG_INFINITY, f64::max)
            })
            .collect();
        v = next;
    }
    assert_eq!(v[cliff_walking::START], -13.0);
    assert_eq!(v[cliff_walking::GOAL], 0.0);
}

#[test]
fn registered_time_limits() {
    assert_eq!(frozen_lake_v1().max_episode_steps(), 100);
    assert_eq!(frozen_lake_8x8_v1().max_episode_steps(), 200);
    assert_eq!(taxi_v4().max_episode_steps(), 200);
    // Bumping into the left wall at the start never ends the deterministic lake: the limit does.
    let mut env = frozen_lake_v1_with(FrozenLakeConfig { is_slippery: false, ..Default::default() }).unwrap();
    env.reset(Some(0)).unwrap();
    for t in 1..=100 {
        let step = env.step(&LEFT).unwrap();
        assert_eq!((step.obs, step.terminated, step.truncated), (0, false, t == 100), "step {t}");
    }
    // Illegal pickups in Taxi: -10 each, truncated on step 200.
    let mut env = taxi_v4();
    env.reset(Some(3)).unwrap();
    env.inner_mut().set_state(&[encode(2, 2, 0, 1) as f64]).unwrap();
    for t in 1..=200 {
        let step = env.step(&taxi::PICKUP).unwrap();
        assert_eq!((step.reward, step.terminated, step.truncated), (-10.0, false, t == 200), "step {t}");
    }
}

#[test]
fn invalid_actions_and_missing_resets_are_errors() {
    let mut fl = frozen(FrozenLakeConfig::default());
    assert!(matches!(fl.step(&0), Err(Error::NeedsReset { .. })));
    fl.reset(Some(0)).unwrap();
    assert!(matches!(fl.step(&4), Err(Error::InvalidAction { .. })));
    assert!(matches!(fl.step(&usize::MAX), Err(Error::InvalidAction { .. })));
    let mut cliff = cliff_walking_v1();
    cliff.reset(None).unwrap();
    assert!(matches!(cliff.step(&4), Err(Error::InvalidAction { .. })));
    let mut taxi = taxi_v4();
    taxi.reset(None).unwrap();
    let err = taxi.step(&6).unwrap_err();
    assert!(matches!(err, Error::InvalidAction { .. }));
    assert!(err.to_string().contains("Discrete(6)"), "{err}");
    // After the terminating step: FrozenLake 4x4, deterministic, down-down-right-right-down-right.
    let mut fl = frozen(FrozenLakeConfig { is_slippery: false, ..Default::default() });
    fl.reset(None).unwrap();
    let mut last = None;
    for a in [DOWN, DOWN, RIGHT, RIGHT, DOWN, RIGHT] {
        last = Some(fl.step(&a).unwrap());
    }
    let last = last.unwrap();
    assert_eq!((last.obs, last.reward, last.terminated), (15, 1.0, true));
    let err = fl.step(&LEFT).unwrap_err();
    assert!(matches!(err, Error::NeedsReset { when: "after the episode ended", .. }), "{err}");
    fl.reset(None).unwrap();
    assert!(fl.step(&LEFT).is_ok());
    assert!(fl.set_state(&[16.0]).is_err());
    assert!(fl.set_state(&[1.5]).is_err());
    assert!(fl.set_state(&[]).is_err());
}

#[test]
fn custom_maps_are_validated() {
    let map = |rows: &[&str]| rows.iter().map(|r| r.to_string()).collect::<Vec<_>>();
    let err = |rows: &[&str]| {
        let e =
            FrozenLake::new(FrozenLakeConfig { map: LakeMap::Custom(map(rows)), ..Default::default() }).unwrap_err();
        assert!(matches!(e, Error::Invalid { .. }));
        e.to_string()
    };
    let e = err(&["SFF", "FXF", "FFG"]);
    assert!(e.contains("row 1") && e.contains("'X'") && e.contains("column 1"), "{e}");
    let e = err(&["SFF", "FF", "FFG"]);
    assert!(e.contains("row 1") && e.contains("rectangular"), "{e}");
    let e = err(&["SFF", "FSF", "FFG"]);
    assert!(e.contains("exactly one start") && e.contains("found 2"), "{e}");
    let e = err(&["FFF", "FFF", "FFG"]);
    assert!(e.contains("found 0"), "{e}");
    let e = err(&["SFF", "FFF", "FFH"]);
    assert!(e.contains("no goal"), "{e}");
    let e = err(&["sFF", "FFF", "FFG"]);
    assert!(e.contains("'s'"), "{e}");
    assert!(err(&[]).contains("no rows"));
    assert!(err(&[""]).contains("empty"));
    // Gymnasium allows non-square maps and goals that are not in the corner.
    assert!(validate_map(&map(&["SH", "FF", "GF"])).is_ok());
    let e = FrozenLake::new(FrozenLakeConfig { success_rate: 1.5, ..Default::default() }).unwrap_err();
    assert!(e.to_string().contains("success_rate"), "{e}");
}

#[test]
fn random_maps_have_a_path() {
    for size in 2..=10 {
        for seed in 0..40 {
            let rows = generate_random_map(size, 0.6, seed).unwrap();
            assert_eq!(rows.len(), size);
            assert!(rows.iter().all(|r| r.len() == size));
            assert!(rows[0].starts_with('S') && rows[size - 1].ends_with('G'));
            assert!(validate_map(&rows).is_ok(), "{rows:?}");
            assert!(has_path(&rows), "{rows:?}");
            FrozenLake::new(FrozenLakeConfig { map: LakeMap::Custom(rows), ..Default::default() }).unwrap();
        }
    }
    assert_eq!(generate_random_map(8, 0.8, 5).unwrap(), generate_random_map(8, 0.8, 5).unwrap());
    let distinct: std::collections::HashSet<_> = (0..20).map(|s| generate_random_map(8, 0.8, s).unwrap()).collect();
    assert!(distinct.len() > 15);
    assert_eq!(generate_random_map(4, 1.5, 0).unwrap(), ["SFFF", "FFFF", "FFFF", "FFFG"]);
    assert!(generate_random_map(1, 0.8, 0).is_err());
    assert!(generate_random_map(8, 0.0, 0).is_err());
    assert!(generate_random_map(8, f64::NAN, 0).is_err());
    // A map whose start is walled in by holes has no path.
    assert!(!has_path(&["SH".to_string(), "HG".to_string()]));
}

/// Three episodes of random actions (actions from their own stream).
fn rollout<E: Env<Obs = usize, Action = usize>>(
    env: &mut E,
    seed: u64,
    n_actions: usize,
) -> Vec<(usize, f64, bool, bool)> {
    let mut actions = rng_from_seed(99);
    let mut trace = Vec::new();
    let (obs, _) = env.reset(Some(seed)).unwrap();
    trace.push((obs, 0.0, false, false));
    let mut episodes = 0;
    while episodes < 3 {
        let step = env.step(&actions.random_range(0..n_actions)).unwrap();
        trace.push((step.obs, step.reward, step.terminated, step.truncated));
        if step.done() {
            episodes += 1;
            let (obs, _) = env.reset(None).unwrap();
            trace.push((obs, 0.0, false, false));
        }
    }
    trace
}

#[test]
fn seeded_runs_are_reproducible() {
    let fl = rollout(&mut frozen_lake_8x8_v1(), 7, 4);
    assert_eq!(fl, rollout(&mut frozen_lake_8x8_v1(), 7, 4));
    assert_ne!(fl, rollout(&mut frozen_lake_8x8_v1(), 8, 4));
    let taxi = rollout(&mut taxi_v4(), 7, 6);
    assert_eq!(taxi, rollout(&mut taxi_v4(), 7, 6));
    assert_ne!(taxi, rollout(&mut taxi_v4(), 8, 6));
    let mut slippery_cliff = rlox_core::wrappers::TimeLimit::new(cliff_walking_slippery_v1(), 50);
    let cliff = rollout(&mut slippery_cliff, 7, 4);
    assert_eq!(cliff, rollout(&mut slippery_cliff, 7, 4));
    // Unseeded envs draw fresh OS entropy, as Gymnasium's do: ten resets of two unseeded taxis
    // agree with probability (1/300)^10.
    let starts = |mut t: Taxi| (0..10).map(|_| t.reset(None).unwrap().0).collect::<Vec<_>>();
    assert_ne!(starts(Taxi::new(TaxiConfig::default()).unwrap()), starts(Taxi::new(TaxiConfig::default()).unwrap()));
}

/// `step` samples the rows of the same table the `Mdp` view reports.
#[test]
fn sampled_frequencies_follow_the_table() {
    let mut env = FrozenLake::new(FrozenLakeConfig { success_rate: 0.6, ..Default::default() }).unwrap();
    env.reset(Some(1)).unwrap();
    let (s, a, n) = (6, RIGHT, 30_000);
    let mut expected = Vec::new();
    env.transitions(s, a, &mut expected);
    let mut counts = [0usize; 16];
    for _ in 0..n {
        env.set_state(&[s as f64]).unwrap();
        let step = env.step(&a).unwrap();
        assert!(step.info.get_f64("prob").unwrap() > 0.0);
        counts[step.obs] += 1;
    }
    for (next, p) in expected {
        let freq = counts[next] as f64 / n as f64;
        assert!((freq - p).abs() < 0.015, "P({next} | {s}, {a}) = {p}, sampled {freq}");
    }
    assert_eq!(counts.iter().sum::<usize>(), n);
}

#[test]
fn cliff_sends_back_to_start_without_terminating() {
    let mut env = CliffWalking::new(false);
    let (obs, info) = env.reset(None).unwrap();
    assert_eq!((obs, info.get("prob")), (cliff_walking::START, Some(&InfoValue::Int(1))));
    let step = env.step(&cliff_walking::RIGHT).unwrap();
    assert_eq!((step.obs, step.reward, step.terminated), (cliff_walking::START, -100.0, false));
    let step = env.step(&cliff_walking::UP).unwrap();
    assert_eq!((step.obs, step.reward, step.terminated), (24, -1.0, false));
}

#[test]
fn taxi_episode_details() {
    let mut env = Taxi::new(TaxiConfig::default()).unwrap();
    let mut seen = std::collections::HashSet::new();
    for seed in 0..6000 {
        let (s, info) = env.reset(Some(seed)).unwrap();
        let (_, _, passenger, destination) = decode(s);
        assert!(passenger < IN_TAXI && passenger != destination);
        assert!(matches!(info.get("action_mask"), Some(InfoValue::Floats(m)) if m.len() == 6));
        seen.insert(s);
    }
    assert_eq!(seen.len(), 300);
    // Pick up at R, drive to G (east is walled after one step: go down, around).
    env.reset(Some(0)).unwrap();
    env.set_state(&[encode(0, 0, 0, 1) as f64]).unwrap();
    let route = [
        taxi::PICKUP,
        taxi::SOUTH,
        taxi::SOUTH,
        taxi::EAST,
        taxi::EAST,
        taxi::EAST,
        taxi::EAST,
        taxi::NORTH,
        taxi::NORTH,
        taxi::DROPOFF,
    ];
    let mut total = 0.0;
    let mut last = None;
    for a in route {
        let step = env.step(&a).unwrap();
        total += step.reward;
        last = Some(step);
    }
    let last = last.unwrap();
    assert_eq!(decode(last.obs), (0, 4, 1, 1));
    assert!(last.terminated);
    assert_eq!(total, 20.0 - 9.0);
}

#[test]
fn fickle_passenger_changes_destination_once() {
    let config = TaxiConfig { fickle_passenger: true, fickle_probability: 1.0, ..Default::default() };
    let mut env = Taxi::new(config).unwrap();
    env.reset(Some(0)).unwrap();
    env.set_state(&[encode(0, 0, 0, 1) as f64]).unwrap();
    assert_eq!(decode(env.step(&taxi::PICKUP).unwrap().obs), (0, 0, IN_TAXI, 1));
    let (_, _, _, destination) = decode(env.step(&taxi::SOUTH).unwrap().obs);
    assert_ne!(destination, 1);
    for _ in 0..3 {
        let (_, _, _, again) = decode(env.step(&taxi::NORTH).unwrap().obs);
        assert_eq!(again, destination);
    }
}
