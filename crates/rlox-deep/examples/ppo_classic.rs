//! PPO with rl-baselines3-zoo's settings on CartPole-v1 or Acrobot-v1; prints one JSON object with
//! the summary and the env steps at which the mean training return of the last 100 episodes
//! (`rollout/ep_rew_mean`, as SB3 computes it) first reached `--threshold`.
//!
//! `cargo run --release -p rlox-deep --example ppo_classic -- --env CartPole-v1 --seed 0 [--total-steps N] [--threshold R] [--burn]`
//!
//! `--burn` trains through burn's autodiff instead of the fused small-MLP path (for comparison).
//!
//! Used by `bench/pg_sb3.py` for the side-by-side comparison with Stable-Baselines3.

use rlox_core::logger::MemoryLogger;
use rlox_core::run::RunSettings;
use rlox_deep::policies::ActionKind;
use rlox_deep::{OnPolicy, PpoConfig, ResumableVecEnv};
use rlox_envs::classic_control::{Acrobot, CartPole};

/// The zoo's hyper-parameters and budget for `env` (Acrobot without the zoo's VecNormalize, which rlox
/// lacks), and the return threshold.
fn zoo(env: &str) -> Option<(PpoConfig, u64, f64)> {
    match env {
        "CartPole-v1" => Some((PpoConfig::default(), 100_000, 475.0)),
        "Acrobot-v1" => Some((
            PpoConfig {
                n_envs: 16,
                n_steps: 256,
                batch_size: 64,
                n_epochs: 4,
                gamma: 0.99,
                gae_lambda: 0.94,
                learning_rate: 3e-4,
                learning_rate_end: None,
                clip_range: 0.2,
                clip_range_end: None,
                ent_coef: 0.0,
                ..Default::default()
            },
            1_000_000,
            -100.0,
        )),
        _ => None,
    }
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let burn = args.iter().any(|a| a == "--burn");
    args.retain(|a| a != "--burn");
    let mut env = "CartPole-v1".to_string();
    let (mut seed, mut total, mut threshold) = (0u64, None, None);
    let mut i = 0;
    while i + 1 < args.len() {
        let v = &args[i + 1];
        match args[i].as_str() {
            "--env" => env = v.clone(),
            "--seed" => seed = v.parse().expect("--seed N"),
            "--total-steps" => total = Some(v.parse().expect("--total-steps N")),
            "--threshold" => threshold = Some(v.parse::<f64>().expect("--threshold R")),
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    let Some((mut config, budget, default_threshold)) = zoo(&env) else {
        eprintln!("--env must be CartPole-v1 or Acrobot-v1");
        std::process::exit(2);
    };
    config.policy.fused = !burn;
    let run = RunSettings { seed, total_steps: total.unwrap_or(budget), eval_episodes: 10, ..RunSettings::default() };
    let threshold = threshold.unwrap_or(default_threshold);
    let mut log = MemoryLogger::default();
    let summary = match env.as_str() {
        "CartPole-v1" => {
            let mut envs = ResumableVecEnv::new(config.n_envs, CartPole::new, Some(500)).unwrap();
            let mut eval = ResumableVecEnv::new(run.eval_episodes, CartPole::new, Some(500)).unwrap();
            OnPolicy::new(config, &run, 4, ActionKind::Discrete(2))
                .and_then(|mut p| p.learn(&mut envs, &mut eval, &mut log, None))
        }
        _ => {
            let mut envs = ResumableVecEnv::new(config.n_envs, Acrobot::new, Some(500)).unwrap();
            let mut eval = ResumableVecEnv::new(run.eval_episodes, Acrobot::new, Some(500)).unwrap();
            OnPolicy::new(config, &run, 6, ActionKind::Discrete(3))
                .and_then(|mut p| p.learn(&mut envs, &mut eval, &mut log, None))
        }
    };
    match summary {
        Ok(summary) => {
            let reached = log.series("rollout/ep_rew_mean").into_iter().find(|(_, r)| *r >= threshold).map(|(s, _)| s);
            let out = serde_json::json!({ "impl": "rlox", "env": env, "seed": seed, "threshold": threshold,
                "steps_to_threshold": reached, "summary": summary });
            println!("{out}");
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
