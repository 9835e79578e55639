//! `rlox train --algo {ddpg,td3,sac} --env ID`: the off-policy continuous-control runs.
//!
//! Hyper-parameters come from the config's `[ddpg]`, `[td3]` or `[sac]` table, else the defaults
//! (rl-baselines3-zoo's `Pendulum-v1` settings); `--total-steps` and `--seed` override them. The run
//! directory gets `config.toml`, the metrics (`metrics.jsonl`, `metrics.csv`, `tb/`), checkpoints
//! under `checkpoints/` at every evaluation, and `summary.json` with the same keys as DQN's
//! (`eval_return_mean`, `eval_return_std`, `env_steps`, `steps_per_second`, `wall_seconds`, ...).
//! `--resume PATH` continues from a checkpoint (a run directory, its `checkpoints/`, or a `step-<N>`
//! directory) in a new run directory, up to the config's total steps.
//!
//! The training env is wrapped in rlox-data's `EpisodeRecorder`, so the run directory also gets
//! `episodes/part-00000.parquet` with every finished training episode (evaluation episodes are not
//! recorded).

use crate::cmd_train::TrainConfig;
use anyhow::bail;
use rlox_core::run::RunDir;
use rlox_data::episodes::{EpisodeRecorder, EpisodeSink};
use rlox_deep::offpolicy::make_envs;
use rlox_deep::{Ddpg, Sac, Td3};
use rlox_envs::classic_control as cc;
use rlox_envs::registry::{erase, ControlEnv};
use serde_json::json;
use std::path::Path;

/// The off-policy algorithms this runner knows.
pub const ALGOS: [&str; 3] = ["ddpg", "td3", "sac"];

/// Whether `algo` is one of [`ALGOS`].
pub fn is_offpolicy(algo: &str) -> bool {
    ALGOS.contains(&algo)
}

/// Train `algo` on `env_id`; returns the summary (also in `summary.json`).
pub fn train(
    cfg: &TrainConfig,
    algo: &str,
    env_id: &str,
    total_steps: Option<u64>,
    progress: bool,
    resume: Option<&Path>,
) -> anyhow::Result<serde_json::Value> {
    rlox_envs::registry::spec(env_id)?;
    // Refuse a discrete env before creating a run directory.
    let (plain_env, mut eval_env, scale) = make_envs(algo, env_id)?;
    let sink = EpisodeSink::new();
    let mut env = recorded(env_id, &sink).unwrap_or(plain_env);
    let obs_dim = env.observation_space().flat_dim();
    let envs = (env.as_mut(), eval_env.as_mut());
    let run = RunDir::create(&cfg.runs_dir, &format!("{algo}-{env_id}"))?;
    let checkpoints = run.path().join("checkpoints");
    let mut resolved = cfg.clone();
    resolved.env.id = env_id.to_string();
    let summary = match algo {
        "ddpg" => {
            let mut c = cfg.ddpg.clone().unwrap_or_default();
            c.seed = cfg.seed;
            c.total_timesteps = total_steps.unwrap_or(c.total_timesteps);
            c.checkpoint_dir = Some(checkpoints);
            resolved.ddpg = Some(c.clone());
            run.write_config(&resolved)?;
            let mut log = crate::data_out::run_logger(&run, c.total_timesteps, progress)?;
            Ddpg::new(obs_dim, scale.dim(), &c)?.learn(envs.0, envs.1, &scale, &mut log, resume)?
        }
        "td3" => {
            let mut c = cfg.td3.clone().unwrap_or_default();
            c.seed = cfg.seed;
            c.total_timesteps = total_steps.unwrap_or(c.total_timesteps);
            c.checkpoint_dir = Some(checkpoints);
            resolved.td3 = Some(c.clone());
            run.write_config(&resolved)?;
            let mut log = crate::data_out::run_logger(&run, c.total_timesteps, progress)?;
            Td3::new(obs_dim, scale.dim(), &c)?.learn(envs.0, envs.1, &scale, &mut log, resume)?
        }
        "sac" => {
            let mut c = cfg.sac.clone().unwrap_or_default();
            c.seed = cfg.seed;
            c.total_timesteps = total_steps.unwrap_or(c.total_timesteps);
            c.checkpoint_dir = Some(checkpoints);
            resolved.sac = Some(c.clone());
            run.write_config(&resolved)?;
            let mut log = crate::data_out::run_logger(&run, c.total_timesteps, progress)?;
            Sac::new(obs_dim, scale.dim(), &c)?.learn(envs.0, envs.1, &scale, &mut log, resume)?
        }
        other => bail!("unknown off-policy algorithm '{other}'; known: {}", ALGOS.join(", ")),
    };
    crate::data_out::write_episodes(&run, &sink)?;
    let mut out = serde_json::to_value(&summary)?;
    out["algo"] = json!(algo);
    out["env"] = json!(env_id);
    out["seed"] = json!(cfg.seed);
    out["run_dir"] = json!(run.path().display().to_string());
    run.write_summary(&out)?;
    Ok(out)
}

/// The training env of `env_id` recording its episodes into `sink` (the continuous-action envs;
/// `None` for the others, which `make_envs` has refused already).
fn recorded(env_id: &str, sink: &EpisodeSink) -> Option<Box<dyn ControlEnv>> {
    match env_id {
        "Pendulum-v1" => Some(erase(EpisodeRecorder::new(cc::pendulum_v1(), sink.clone()))),
        "MountainCarContinuous-v0" => Some(erase(EpisodeRecorder::new(cc::mountain_car_continuous_v0(), sink.clone()))),
        _ => None,
    }
}
