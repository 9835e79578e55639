//! `rlox train --algo {reinforce,a2c,ppo} --env ID`: the on-policy trainers of rlox-deep on the
//! classic-control envs, with a run directory (config, metrics, checkpoints, summary) and `--resume`.
//!
//! On `--resume`, the metrics files written before the interruption are renamed
//! `metrics.before-resume-at-update-N.*` (the loggers start new files), and the checkpoint's
//! config in the run directory is authoritative.
//!
//! The envs run bare (no `TimeLimit` wrapper) inside [`ResumableVecEnv`], which counts the
//! registered time limit itself and can save and restore its whole state, so that a run killed
//! between two updates resumes with identical numbers (see `rlox_deep::rollout`).
//!
//! Each training env is wrapped in rlox-data's `EpisodeRecorder` (told the time limit the vector env
//! counts), so the run directory gets `episodes/part-00000.parquet` with the episodes the training
//! envs finished in this session; evaluation envs are not recorded. (REINFORCE plays on in an env
//! whose episode ended until every env has finished one; the episodes finished then are recorded
//! too, although its update does not use them.)

use crate::cmd_train::TrainConfig;
use anyhow::{bail, Context};
use rlox_core::env::{Env, FlatObs, SetState};
use rlox_core::logger::Logger;
use rlox_core::run::RunDir;
use rlox_data::episodes::{EpisodeRecorder, EpisodeSink};
use rlox_deep::policies::PolicyAction;
use rlox_deep::{A2c, A2cConfig, OnPolicySummary, Ppo, PpoConfig, Reinforce, ReinforceConfig, ResumableVecEnv};
use rlox_envs::classic_control as cc;
use serde_json::json;
use std::path::Path;

/// The on-policy algorithms.
pub const ALGOS: &[&str] = &["reinforce", "a2c", "ppo"];

/// Whether `algo` is one of [`ALGOS`].
pub fn is_onpolicy(algo: &str) -> bool {
    ALGOS.contains(&algo)
}

/// The algorithm of the run in `run_dir`, from its checkpoint sidecar (for `--resume` without `--algo`).
pub fn algo_of_run(run_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(run_dir.join("checkpoints").join("trainer.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["algorithm"].as_str().map(str::to_string)
}

/// The config of `algo` from `cfg` (defaults when the table is absent), with the run's seed,
/// `--total-steps` and the run directory's checkpoint folder filled in.
fn resolve(cfg: &TrainConfig, algo: &str, total_steps: Option<u64>, run: &RunDir) -> TrainConfig {
    let mut out = cfg.clone();
    let ckpt = Some(run.path().join("checkpoints"));
    match algo {
        "ppo" => {
            let mut c = cfg.ppo.clone().unwrap_or_default();
            c.seed = cfg.seed;
            c.total_timesteps = total_steps.unwrap_or(c.total_timesteps);
            c.checkpoint_dir = ckpt;
            out.ppo = Some(c);
        }
        "a2c" => {
            let mut c = cfg.a2c.clone().unwrap_or_default();
            c.seed = cfg.seed;
            c.total_timesteps = total_steps.unwrap_or(c.total_timesteps);
            c.checkpoint_dir = ckpt;
            out.a2c = Some(c);
        }
        _ => {
            let mut c = cfg.reinforce.clone().unwrap_or_default();
            c.seed = cfg.seed;
            c.total_timesteps = total_steps.unwrap_or(c.total_timesteps);
            c.checkpoint_dir = ckpt;
            out.reinforce = Some(c);
        }
    }
    out
}

/// Train `algo` on `env_id`; with `resume`, continue the run in that run directory (its
/// `config.toml` is authoritative) from its last checkpoint. Returns the summary (also in `summary.json`).
pub fn train_onpolicy(
    cfg: &TrainConfig,
    algo: &str,
    env_id: &str,
    total_steps: Option<u64>,
    progress: bool,
    resume: Option<&Path>,
) -> anyhow::Result<serde_json::Value> {
    let (run, resolved) = match resume {
        Some(dir) => {
            let run = RunDir::open(dir)?;
            let path = run.path().join("config.toml");
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let resolved = crate::cmd_train::parse_config(&text, &path)?;
            if !run.path().join("checkpoints").join("trainer.json").exists() {
                bail!("{} has no checkpoint (checkpoints/trainer.json) to resume from", run.path().display());
            }
            (run, resolved)
        }
        None => {
            rlox_envs::registry::spec(env_id)?;
            let run = RunDir::create(&cfg.runs_dir, &format!("{algo}-{env_id}"))?;
            let mut resolved = resolve(cfg, algo, total_steps, &run);
            resolved.env.id = env_id.to_string();
            run.write_config(&resolved)?;
            (run, resolved)
        }
    };
    let env_id = resolved.env.id.clone();
    let spec = rlox_envs::registry::spec(&env_id)?;
    let limit = spec.max_episode_steps;
    let total = match algo {
        "ppo" => resolved.ppo.as_ref().map(|c| c.total_timesteps),
        "a2c" => resolved.a2c.as_ref().map(|c| c.total_timesteps),
        _ => resolved.reinforce.as_ref().map(|c| c.total_timesteps),
    }
    .with_context(|| format!("{} has no [{algo}] table; it is not a run of {algo}", run.path().display()))?;
    if resume.is_some() {
        // The loggers truncate their files: keep the metrics written before the kill under another name.
        let done = rlox_deep::resume::read_state(&run.path().join("checkpoints"))?.n_updates;
        for ext in ["jsonl", "csv", "parquet"] {
            let from = run.path().join(format!("metrics.{ext}"));
            if from.exists() {
                let to = run.path().join(format!("metrics.before-resume-at-update-{done}.{ext}"));
                std::fs::rename(&from, &to).with_context(|| format!("renaming {}", from.display()))?;
            }
        }
    }
    let mut log = crate::data_out::run_logger(&run, total, progress)?;
    let ckpt = resume.map(|_| run.path().join("checkpoints"));
    let ckpt = ckpt.as_deref();
    let sink = EpisodeSink::new();
    let job = OnEnvJob { limit, algo, env_id: &env_id, cfg: &resolved, sink: &sink, resume: ckpt };
    let summary = match env_id.as_str() {
        "CartPole-v1" => job.run(cc::CartPole::new, &mut log)?,
        "Acrobot-v1" => job.run(cc::Acrobot::new, &mut log)?,
        "MountainCar-v0" => job.run(cc::MountainCar::new, &mut log)?,
        "Pendulum-v1" => job.run(cc::Pendulum::new, &mut log)?,
        "MountainCarContinuous-v0" => job.run(cc::MountainCarContinuous::new, &mut log)?,
        other => bail!(
            "{algo} trains on the classic-control envs (CartPole-v1, Acrobot-v1, MountainCar-v0, Pendulum-v1, MountainCarContinuous-v0); {other} is tabular: use [plan]/[learn] or `rlox learn`"
        ),
    };
    log.flush()?;
    crate::data_out::write_episodes(&run, &sink)?;
    let mut out = serde_json::to_value(&summary)?;
    out["algo"] = json!(algo);
    out["env"] = json!(env_id);
    out["seed"] = json!(resolved.seed);
    out["run_dir"] = json!(run.path().display().to_string());
    out["resumed"] = json!(resume.is_some());
    run.write_summary(&out)?;
    Ok(out)
}

/// What one on-policy run needs besides the env constructor.
struct OnEnvJob<'a> {
    limit: Option<usize>,
    algo: &'a str,
    env_id: &'a str,
    cfg: &'a TrainConfig,
    sink: &'a EpisodeSink,
    resume: Option<&'a Path>,
}

impl OnEnvJob<'_> {
    /// Build the recorded training envs and the plain evaluation envs from `make`, then train.
    fn run<E>(&self, make: impl Fn() -> E, log: &mut dyn Logger) -> anyhow::Result<OnPolicySummary>
    where
        E: Env + SetState,
        E::Obs: FlatObs,
        E::Action: PolicyAction + FlatObs,
    {
        let probe = make();
        let kind = rlox_deep::rollout::check_action_space(&probe.action_space(), self.algo, self.env_id, false)?;
        let obs_dim = probe.observation_space().flat_dim();
        let (limit, resume, cfg) = (self.limit, self.resume, self.cfg);
        let train_env = || EpisodeRecorder::new(make(), self.sink.clone()).with_time_limit(limit);
        let eval_env = || EpisodeRecorder::maybe(make(), None);
        Ok(match self.algo {
            "ppo" => {
                let c: &PpoConfig = cfg.ppo.as_ref().expect("resolved");
                let mut envs = ResumableVecEnv::new(c.n_envs, train_env, limit)?;
                let mut eval = ResumableVecEnv::new(c.eval_episodes, eval_env, limit)?;
                Ppo::new(obs_dim, kind, c)?.learn(&mut envs, &mut eval, log, resume)?
            }
            "a2c" => {
                let c: &A2cConfig = cfg.a2c.as_ref().expect("resolved");
                let mut envs = ResumableVecEnv::new(c.n_envs, train_env, limit)?;
                let mut eval = ResumableVecEnv::new(c.eval_episodes, eval_env, limit)?;
                A2c::new(obs_dim, kind, c)?.learn(&mut envs, &mut eval, log, resume)?
            }
            _ => {
                let c: &ReinforceConfig = cfg.reinforce.as_ref().expect("resolved");
                let mut envs = ResumableVecEnv::new(c.n_envs, train_env, limit)?;
                let mut eval = ResumableVecEnv::new(c.eval_episodes, eval_env, limit)?;
                Reinforce::new(obs_dim, kind, c)?.learn(&mut envs, &mut eval, log, resume)?
            }
        })
    }
}
