//! DQN on CartPole-v1 with rl-baselines3-zoo's settings; prints one JSON object (config + summary).
//!
//! `cargo run --release -p rlox-deep --example dqn_cartpole -- --seed 0 --total-steps 50000 [--eval-freq 0]`
//!
//! Used by `bench/dqn_sb3.py` for the side-by-side comparison with Stable-Baselines3.

use rlox_core::logger::MemoryLogger;
use rlox_deep::{train_dqn, DqnConfig};
use rlox_envs::classic_control::cartpole_v1;

fn main() {
    let mut config = DqnConfig { eval_freq: 0, ..Default::default() };
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
            "--seed" => config.seed = value,
            "--total-steps" => config.total_timesteps = value,
            "--eval-freq" => config.eval_freq = value,
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    let mut logger = MemoryLogger::default();
    match train_dqn(cartpole_v1(), &config, &mut logger) {
        Ok(summary) => {
            let out = serde_json::json!({ "impl": "rlox", "seed": config.seed, "summary": summary });
            println!("{out}");
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
