//! Book chapter 7 experiments with TD learners (seeded; tolerances stated per test).

use rlox_core::env::Env;
use rlox_core::mdp::TabularMdp;
use rlox_core::policy::TabularPolicy;
use rlox_envs::gridworld::{preset, GridWorld};
use rlox_tabular::bellman::closed_form_values;
use rlox_tabular::planning::{value_iteration, PlanningOptions};
use rlox_tabular::td::{n_step_sarsa, q_learning_off_policy, td0_state_values, td_control, TdConfig, TdControl};

fn path_finding() -> GridWorld {
    let mut c = preset("book-5x5").unwrap();
    c.start = Some((1, 1));
    c.terminate_at_target = true;
    c.r_target = 0.0;
    c.r_boundary = -10.0;
    c.r_forbidden = -10.0;
    c.r_other = -1.0;
    GridWorld::new(c).unwrap()
}

/// Follow the greedy policy from the start; returns (steps, total reward), or None after 100 steps.
fn greedy_path(env: &mut GridWorld, policy: &[usize]) -> Option<(usize, f64)> {
    let (mut s, _) = env.reset(Some(0)).unwrap();
    let mut total = 0.0;
    for k in 1..=100 {
        let step = env.step(&policy[s]).unwrap();
        total += step.reward;
        s = step.obs;
        if step.terminated {
            return Some((k, total));
        }
    }
    None
}

#[test]
fn off_policy_q_learning_recovers_the_optimal_values_from_uniform_data() {
    let g = GridWorld::from_preset("book-5x5").unwrap();
    let opt = value_iteration(&g, &PlanningOptions { tol: 1e-12, ..Default::default() }).unwrap();
    let m = TabularMdp::from_mdp(&g).unwrap();
    for seed in [0, 1, 2] {
        let mut env = g.clone();
        let cfg = TdConfig { episodes: 1, max_episode_steps: 100_000, seed, ..Default::default() };
        let r = q_learning_off_policy(&mut env, &TabularPolicy::uniform(25, 5), &cfg, Some(&opt.values)).unwrap();
        let last = r.history.rmse.last().unwrap().1;
        // Tolerance from the issue: RMSE of max_a q below 0.05 after 100,000 steps.
        assert!(last < 0.05, "seed {seed}: rmse {last}");
        assert!(r.history.rmse.first().unwrap().1 > 1.0, "the curve starts far from v*");
        // The greedy policy is optimal: its exact values equal v* (there are ties between optimal policies).
        let v = closed_form_values(&m, &TabularPolicy::deterministic(&r.policy, 5).unwrap(), 0.9).unwrap();
        assert!(
            v.iter().zip(&opt.values).all(|(a, b)| (a - b).abs() < 1e-6),
            "seed {seed}: {}",
            g.format_policy(&r.policy)
        );
    }
}

/// The book's chapter 7 path-finding task over seeds 0..10.
///
/// Q-learning finds the 11-step, reward -10 path for every seed. Sarsa and Expected Sarsa learn the
/// values of their epsilon-greedy behaviour and, after only 500 episodes, some states on the way keep
/// stale values that make the greedy path loop: over seeds 0..40 we measured 31/40 (Sarsa) and
/// 34/40 (Expected Sarsa) successes. The thresholds below (5/10 and 7/10) leave room for that rate.
#[test]
fn sarsa_and_q_learning_find_the_shortest_safe_path() {
    for (algo, needed) in [(TdControl::QLearning, 10), (TdControl::Sarsa, 5), (TdControl::ExpectedSarsa, 7)] {
        let mut found = 0;
        for seed in 0..10 {
            let mut env = path_finding();
            let cfg = TdConfig { episodes: 500, seed, ..Default::default() };
            let r = td_control(&mut env, algo, &cfg, None).unwrap();
            assert_eq!(r.history.episode_rewards.len(), 500);
            // Learning shows in the curve: the last 50 episodes are much shorter than the first 50.
            let early: usize = r.history.episode_lengths[..50].iter().sum();
            let late: usize = r.history.episode_lengths[450..].iter().sum();
            assert!(late * 2 < early, "{algo:?}: early {early}, late {late}");
            match greedy_path(&mut env, &r.policy) {
                Some(path) => {
                    // Whenever the greedy path reaches the target, it is the optimal one.
                    assert_eq!(path, (11, -10.0), "{algo:?} seed {seed}: {}", env.format_policy(&r.policy));
                    found += 1;
                }
                None => eprintln!("{algo:?} seed {seed}: greedy path loops: {}", env.format_policy(&r.policy)),
            }
        }
        assert!(found >= needed, "{algo:?}: {found}/10 seeds found the path, need {needed}");
    }
}

#[test]
fn n_step_sarsa_finds_the_path_too() {
    let mut env = path_finding();
    let cfg = TdConfig { episodes: 500, n: 3, seed: 0, ..Default::default() };
    let r = n_step_sarsa(&mut env, &cfg, None).unwrap();
    assert_eq!(greedy_path(&mut env, &r.policy), Some((11, -10.0)), "{}", env.format_policy(&r.policy));
}

#[test]
fn n_step_sarsa_with_n1_equals_sarsa() {
    let mut a = path_finding();
    let mut b = path_finding();
    let cfg = TdConfig { episodes: 50, n: 1, seed: 4, ..Default::default() };
    let x = n_step_sarsa(&mut a, &cfg, None).unwrap();
    let y = td_control(&mut b, TdControl::Sarsa, &cfg, None).unwrap();
    assert_eq!(x.history.episode_lengths, y.history.episode_lengths);
    assert!(x.q.iter().zip(&y.q).all(|(p, q)| (p - q).abs() < 1e-12));
}

#[test]
fn td0_estimates_the_uniform_policy_values() {
    let g = GridWorld::from_preset("book-5x5").unwrap();
    let m = TabularMdp::from_mdp(&g).unwrap();
    let pi = TabularPolicy::uniform(25, 5);
    let truth = closed_form_values(&m, &pi, 0.9).unwrap();
    let mut env = g.clone();
    let cfg = TdConfig {
        episodes: 1,
        max_episode_steps: 200_000,
        step_size: rlox_tabular::schedule::StepSize::Constant { alpha: 0.01 },
        ..Default::default()
    };
    let r = td0_state_values(&mut env, &pi, &cfg, Some(&truth)).unwrap();
    let last = r.history.rmse.last().unwrap().1;
    // Constant alpha 0.01 leaves noise of order sqrt(alpha); 0.5 is far below the initial RMSE (> 2).
    assert!(last < 0.5 && r.history.rmse[0].1 > 2.0, "{last}");
}

#[test]
fn bad_settings_are_rejected() {
    let mut env = path_finding();
    for cfg in [
        TdConfig { epsilon: rlox_tabular::schedule::EpsilonSchedule::constant(1.5), ..Default::default() },
        TdConfig { max_episode_steps: 0, ..Default::default() },
        TdConfig { step_size: rlox_tabular::schedule::StepSize::Constant { alpha: 0.0 }, ..Default::default() },
    ] {
        assert!(td_control(&mut env, TdControl::Sarsa, &cfg, None).is_err());
    }
}
