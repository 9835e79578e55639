//! DQN on CartPole-v1 with rl-baselines3-zoo's settings; prints one JSON object (config + summary).
//!
//! `cargo run --release -p rlox-deep --example dqn_cartpole -- --seed 0 --total-steps 50000 [--eval-freq 0]`
//!
//! Used by `bench/dqn_sb3.py` for the side-by-side comparison with Stable-Baselines3; the JSON carries every
//! training episode's `(env step, return)` for the steps-to-solve figures.

use rlox_core::logger::MemoryLogger;
use rlox_core::run::RunSettings;
use rlox_deep::{ActionKind, Dqn, DqnConfig, OffPolicy, ResumableVecEnv};
use rlox_envs::classic_control::CartPole;

fn main() {
    let config = DqnConfig::default();
    let mut run = RunSettings { total_steps: 50_000, eval_episodes: 10, ..RunSettings::default() };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        let Some(value) = value else {
            eprintln!(
                "usage: dqn_cartpole [--seed N] [--total-steps N] [--eval-freq N]; bad or missing value after {}",
                args[i]
            );
            std::process::exit(2);
        };
        match args[i].as_str() {
            "--seed" => run.seed = value,
            "--total-steps" => run.total_steps = value,
            "--eval-freq" => run.eval_every = value,
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    let mut logger = MemoryLogger::default();
    let result = Dqn::new(4, 2, &config, &run).and_then(|agent| {
        let mut t = OffPolicy::new(agent, &run, 4, ActionKind::Discrete(2))?;
        let mut envs = ResumableVecEnv::new(1, CartPole::new, Some(500))?;
        let mut eval = ResumableVecEnv::new(run.eval_episodes, CartPole::new, Some(500))?;
        t.learn(&mut envs, &mut eval, &mut logger, None)
    });
    match result {
        Ok(summary) => {
            // Every training episode's (env step at its end, return), for the steps-to-solve figures.
            let episodes = logger.series("rollout/ep_return");
            let out = serde_json::json!({ "impl": "rlox", "seed": run.seed, "summary": summary, "episodes": episodes });
            println!("{out}");
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
