//! The book's chapter 9-10 learners on the 5x5 path-finding task, over several seeds, plus the
//! deterministic policy gradient on the scalar linear-quadratic toy.
//!
//! ```text
//! cargo run --release -p rlox-tabular --example actor_critic_path_finding [SEEDS]
//! ```
//!
//! For each algorithm (with `PolicyGradientConfig::tuned`) it prints how many seeds learn a greedy
//! policy whose path from (1,1) reaches the target, which paths they take, the mean return of the first
//! and last tenth of the episodes, the exact value of the learned stochastic policy at the start, and
//! the time; then the learned policy of seed 0.

use rlox_core::env::Env;
use rlox_core::mdp::TabularMdp;
use rlox_core::policy::TabularPolicy;
use rlox_envs::gridworld::{preset, GridWorld};
use rlox_tabular::bellman::closed_form_values;
use rlox_tabular::policy_gradient::{
    deterministic_policy_gradient, learn_actor_critic, ActorCriticAlgo, DpgConfig, PolicyGradientConfig,
    QuadraticFeatures, ScalarLqr,
};
use std::collections::BTreeMap;
use std::time::Instant;

fn path_finding() -> GridWorld {
    let mut c = preset("book-5x5").expect("preset");
    c.start = Some((1, 1));
    c.terminate_at_target = true;
    c.r_target = 0.0;
    c.r_boundary = -10.0;
    c.r_forbidden = -10.0;
    c.r_other = -1.0;
    GridWorld::new(c).expect("valid grid")
}

fn greedy_path(env: &mut GridWorld, policy: &[usize]) -> Option<(usize, f64)> {
    let (mut s, _) = env.reset(Some(0)).ok()?;
    let mut total = 0.0;
    for k in 1..=100 {
        let step = env.step(&policy[s]).ok()?;
        total += step.reward;
        s = step.obs;
        if step.terminated {
            return Some((k, total));
        }
    }
    None
}

fn main() -> rlox_core::Result<()> {
    let seeds: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(20);
    let model = TabularMdp::from_mdp(&path_finding())?;
    let start = path_finding().state_of((1, 1));
    for algo in [ActorCriticAlgo::Reinforce, ActorCriticAlgo::Qac, ActorCriticAlgo::A2c, ActorCriticAlgo::OffPolicyAc] {
        let cfg0 = PolicyGradientConfig::tuned(algo);
        let t = Instant::now();
        let (mut reached, mut paths, mut early, mut late, mut v_start) = (0, BTreeMap::new(), 0.0, 0.0, 0.0);
        let mut first = None;
        for seed in 0..seeds {
            let mut env = path_finding();
            let cfg = PolicyGradientConfig { seed, ..cfg0.clone() };
            let r = learn_actor_critic(&mut env, algo, &cfg, None)?;
            let h = &r.learn.history.episode_rewards;
            let k = cfg.episodes / 10;
            early += h[..k].iter().sum::<f64>() / k as f64;
            late += h[h.len() - k..].iter().sum::<f64>() / k as f64;
            let pi = TabularPolicy::from_probs(25, 5, r.probabilities.clone())?;
            v_start += closed_form_values(&model, &pi, cfg.gamma)?[start];
            match greedy_path(&mut env, &r.learn.policy) {
                Some((len, total)) => {
                    reached += 1;
                    *paths.entry(format!("{len} steps, reward {total}")).or_insert(0) += 1;
                }
                None => *paths.entry("loops".to_string()).or_insert(0) += 1,
            }
            first.get_or_insert_with(|| env.render_text(Some(&r.learn.policy), Some(&r.learn.values)));
        }
        let n = seeds as f64;
        println!(
            "{algo:?}: {reached}/{seeds} reach the target {paths:?}; mean return first/last tenth {:.1} / {:.1}; \
             exact v(start) {:.2} (optimum -6.51); {:.2} s",
            early / n,
            late / n,
            v_start / n,
            t.elapsed().as_secs_f64()
        );
        println!("seed 0 (greedy policy, critic values):\n{}", first.unwrap_or_default());
    }
    let lqr = ScalarLqr::default();
    let t = Instant::now();
    let r = deterministic_policy_gradient(&mut ScalarLqr::default(), &QuadraticFeatures, &DpgConfig::default())?;
    println!(
        "DPG on x' = x + a, r = -(x^2 + a^2), gamma 0.9: theta = {:.4} (optimum {:.4}), critic w = {:?}; {:.3} s",
        r.theta[0],
        -lqr.optimal_gain(0.9),
        r.critic,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
