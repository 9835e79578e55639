//! `rlox train [CONFIG.toml]`: the main job. With no argument it runs the embedded default
//! (`configs/gridworld.toml`): the book's grid world solved by planning and learned from samples,
//! with metrics, plots, a checkpoint of the learned table and a summary in a run directory.

use crate::cmd_learn::{draw_curves, reference_values, LearnSpec, Learner, Reference};
use crate::output::{print_json, Format};
use anyhow::{bail, Context};
use clap::Args;
use rlox_core::checkpoint::atomic_write;
use rlox_core::env::Env;
use rlox_core::logger::Logger;
use rlox_core::mdp::Mdp;
use rlox_core::policy::TabularPolicy;
use rlox_core::run::RunDir;
use rlox_data::episodes::{EpisodeRecorder, EpisodeSink};
use rlox_deep::{train_dqn, A2cConfig, DdpgConfig, DqnConfig, PpoConfig, ReinforceConfig, SacConfig, Td3Config};
use rlox_envs::gridworld::render::{draw, Figure};
use rlox_envs::registry::EnvOptions;
use rlox_tabular::bellman::{closed_form_values, max_abs_diff};
use rlox_tabular::planning::{policy_iteration, truncated_policy_iteration, value_iteration, PlanningOptions};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The embedded default config.
pub const DEFAULT_CONFIG: &str = include_str!("../../../configs/gridworld.toml");

/// Arguments of `rlox train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// A TOML config; the embedded default (configs/gridworld.toml) when absent.
    config: Option<PathBuf>,
    /// A deep-RL algorithm to train (dqn) on --env; its hyper-parameters come from the config's
    /// `[dqn]` table, else the defaults (rl-baselines3-zoo's CartPole-v1 settings).
    #[arg(long)]
    algo: Option<String>,
    /// Environment of a deep-RL run (e.g. CartPole-v1).
    #[arg(long)]
    env: Option<String>,
    /// Environment steps of a deep-RL run (overrides the config).
    #[arg(long)]
    total_steps: Option<u64>,
    /// Override the config's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Override the directory that holds run directories.
    #[arg(long)]
    runs_dir: Option<PathBuf>,
    /// Continue a run from its last checkpoint: an on-policy run directory (reinforce, a2c, ppo; the
    /// algorithm is read from its checkpoint), or for ddpg, td3 and sac (with --algo) a run directory,
    /// its `checkpoints/`, or a `step-<N>` directory.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Output format of the final summary.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// The whole job.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Run name: the run directory is `<runs_dir>/<name>-<timestamp>`.
    pub name: String,
    /// Run seed.
    pub seed: u64,
    /// Where run directories go.
    pub runs_dir: PathBuf,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// The environment.
    pub env: EnvSection,
    /// Planning on the env's model (omit the table to skip).
    pub plan: Option<PlanSection>,
    /// Learning from samples (omit the table to skip).
    pub learn: Option<LearnSpec>,
    /// DQN hyper-parameters for `--algo dqn` (or a config whose `[env] id` is a classic-control env).
    pub dqn: Option<DqnConfig>,
    /// DDPG hyper-parameters for `--algo ddpg`.
    pub ddpg: Option<DdpgConfig>,
    /// TD3 hyper-parameters for `--algo td3`.
    pub td3: Option<Td3Config>,
    /// SAC hyper-parameters for `--algo sac`.
    pub sac: Option<SacConfig>,
    /// PPO hyper-parameters for `--algo ppo` (rlox_deep::PpoConfig; defaults: the zoo's CartPole-v1).
    pub ppo: Option<PpoConfig>,
    /// A2C hyper-parameters for `--algo a2c`.
    pub a2c: Option<A2cConfig>,
    /// REINFORCE hyper-parameters for `--algo reinforce`.
    pub reinforce: Option<ReinforceConfig>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            name: "run".into(),
            seed: 0,
            runs_dir: "runs".into(),
            progress: true,
            env: EnvSection::default(),
            plan: None,
            learn: None,
            dqn: None,
            ddpg: None,
            td3: None,
            sac: None,
            ppo: None,
            a2c: None,
            reinforce: None,
        }
    }
}

/// `[env]`: an id and its options.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnvSection {
    /// Environment id (see `rlox env list`).
    pub id: String,
    /// Options of the env (the keys `rlox env list --format json` shows).
    pub options: BTreeMap<String, toml::Value>,
}

impl Default for EnvSection {
    fn default() -> Self {
        EnvSection { id: "gridworld".into(), options: BTreeMap::new() }
    }
}

/// `[plan]`: which planning algorithm.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlanSection {
    /// value-iteration, policy-iteration or truncated-pi.
    pub algo: String,
    /// Discount factor (default 0.9).
    pub gamma: f64,
    /// Stopping tolerance (default 1e-10).
    pub tol: f64,
    /// Evaluation sweeps of truncated-pi (default 3).
    pub sweeps: usize,
}

impl Default for PlanSection {
    fn default() -> Self {
        PlanSection { algo: "value-iteration".into(), gamma: 0.9, tol: 1e-10, sweeps: 3 }
    }
}

/// Parse a config, naming `origin` in errors.
pub fn parse_config(text: &str, origin: &Path) -> anyhow::Result<TrainConfig> {
    Ok(rlox_core::config::from_toml_str(text, origin)?)
}

fn env_options(section: &EnvSection) -> anyhow::Result<EnvOptions> {
    let mut o = EnvOptions::new();
    for (k, v) in &section.options {
        let text = match v {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(cells) => cells
                .iter()
                .map(|c| match c {
                    toml::Value::Array(rc) => rc.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(","),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(";"),
            other => bail!("env option '{k}' has an unsupported value {other}"),
        };
        o.set(k, text)?;
    }
    Ok(o)
}

/// Run `rlox train`.
pub fn run(a: TrainArgs) -> anyhow::Result<()> {
    let (text, origin) = match &a.config {
        Some(path) => {
            (std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?, path.clone())
        }
        None => (DEFAULT_CONFIG.to_string(), PathBuf::from("<embedded configs/gridworld.toml>")),
    };
    let mut cfg = parse_config(&text, &origin)?;
    if let Some(seed) = a.seed {
        cfg.seed = seed;
    }
    if let Some(dir) = &a.runs_dir {
        cfg.runs_dir = dir.clone();
    }
    let resumed_algo = a.resume.as_deref().and_then(crate::train_onpolicy::algo_of_run);
    let deep_algo = a.algo.clone().or(resumed_algo).or_else(|| {
        let tables = [
            ("dqn", cfg.dqn.is_some()),
            ("ppo", cfg.ppo.is_some()),
            ("a2c", cfg.a2c.is_some()),
            ("reinforce", cfg.reinforce.is_some()),
            ("ddpg", cfg.ddpg.is_some()),
            ("td3", cfg.td3.is_some()),
            ("sac", cfg.sac.is_some()),
        ];
        tables.iter().find(|t| t.1).map(|t| t.0.to_string())
    });
    if let (Some(dir), None) = (&a.resume, &deep_algo) {
        bail!(
            "{} has no on-policy checkpoint (checkpoints/trainer.json) to resume from; to resume ddpg, td3 or sac pass --algo",
            dir.display()
        );
    }
    if let Some(algo) = deep_algo {
        if a.config.is_none() {
            // The embedded tabular job does not apply to a deep-RL run: start from the defaults.
            cfg = TrainConfig { seed: cfg.seed, runs_dir: cfg.runs_dir.clone(), ..Default::default() };
        }
        let env = a.env.clone().unwrap_or_else(|| cfg.env.id.clone());
        let progress = a.format == Format::Text && cfg.progress;
        let summary = if crate::train_onpolicy::is_onpolicy(&algo) {
            crate::train_onpolicy::train_onpolicy(&cfg, &algo, &env, a.total_steps, progress, a.resume.as_deref())?
        } else if crate::train_offpolicy::is_offpolicy(&algo) {
            crate::train_offpolicy::train(&cfg, &algo, &env, a.total_steps, progress, a.resume.as_deref())?
        } else {
            if a.resume.is_some() {
                bail!("--resume continues reinforce, a2c, ppo, ddpg, td3 and sac runs; {algo} cannot resume");
            }
            train_deep(&cfg, &algo, &env, a.total_steps, progress)?
        };
        return match a.format {
            Format::Json => print_json(&summary),
            Format::Text => {
                println!("run directory: {}", summary["run_dir"].as_str().unwrap_or("?"));
                println!(
                    "{algo} on {env}: {} env steps in {:.1} s ({:.0} steps/s); greedy evaluation {:.1} +/- {:.1}",
                    summary["env_steps"],
                    summary["wall_seconds"].as_f64().unwrap_or(0.0),
                    summary["steps_per_second"].as_f64().unwrap_or(0.0),
                    summary["eval_return_mean"].as_f64().unwrap_or(0.0),
                    summary["eval_return_std"].as_f64().unwrap_or(0.0)
                );
                Ok(())
            }
        };
    }
    if a.env.is_some() || a.total_steps.is_some() || a.resume.is_some() {
        bail!("--env and --total-steps go with --algo (e.g. --algo dqn --env CartPole-v1)");
    }
    let summary = train(&cfg, a.format == Format::Text && cfg.progress)?;
    match a.format {
        Format::Json => print_json(&summary),
        Format::Text => {
            println!("run directory: {}", summary["run_dir"].as_str().unwrap_or("?"));
            if let Some(p) = summary.get("plan").filter(|p| !p.is_null()) {
                println!("planning ({}): {} iterations; policy {}", p["algo"], p["iterations"], p["policy"]);
            }
            if let Some(l) = summary.get("learn").filter(|l| !l.is_null()) {
                println!(
                    "learning ({}): {} steps, {:.0} steps/s, final RMSE {}, greedy policy {} (gap to optimal {})",
                    l["algo"],
                    l["steps"],
                    l["steps_per_second"].as_f64().unwrap_or(0.0),
                    l["final_rmse"],
                    l["policy"],
                    l["value_gap_to_optimal"]
                );
            }
            Ok(())
        }
    }
}

/// Train a deep-RL agent (`algo`) on classic-control env `env_id`; returns the summary (also in `summary.json`).
pub fn train_deep(
    cfg: &TrainConfig,
    algo: &str,
    env_id: &str,
    total_steps: Option<u64>,
    progress: bool,
) -> anyhow::Result<serde_json::Value> {
    if algo != "dqn" {
        bail!("unknown deep-RL algorithm '{algo}'; known: dqn, reinforce, a2c, ppo (ddpg, td3, sac are not built yet)");
    }
    let spec = rlox_envs::registry::spec(env_id)?;
    let mut dqn = cfg.dqn.clone().unwrap_or_default();
    dqn.seed = cfg.seed;
    if let Some(n) = total_steps {
        dqn.total_timesteps = n;
    }
    let run = RunDir::create(&cfg.runs_dir, &format!("{algo}-{env_id}"))?;
    dqn.checkpoint_dir = Some(run.path().join("checkpoints"));
    let mut resolved = cfg.clone();
    resolved.env.id = env_id.to_string();
    resolved.dqn = Some(dqn.clone());
    run.write_config(&resolved)?;
    let mut log = crate::data_out::run_logger(&run, dqn.total_timesteps, progress)?;
    // The training episodes (exploration included) go to `episodes/part-00000.parquet`.
    let sink = EpisodeSink::new();
    use rlox_envs::classic_control as cc;
    let summary = match spec.id {
        "CartPole-v1" => train_dqn(EpisodeRecorder::new(cc::cartpole_v1(), sink.clone()), &dqn, &mut log)?,
        "Acrobot-v1" => train_dqn(EpisodeRecorder::new(cc::acrobot_v1(), sink.clone()), &dqn, &mut log)?,
        "MountainCar-v0" => train_dqn(EpisodeRecorder::new(cc::mountain_car_v0(), sink.clone()), &dqn, &mut log)?,
        "MountainCarContinuous-v0" | "Pendulum-v1" => bail!(
            "{algo} needs a discrete action space; {env_id} has a continuous one ({})",
            match rlox_envs::registry::make(env_id, EnvOptions::new())? {
                rlox_envs::registry::AnyEnv::Control(e) => e.action_space().to_string(),
                rlox_envs::registry::AnyEnv::Tabular(e) => e.action_space().to_string(),
            }
        ),
        other => bail!("{algo} trains on the classic-control envs (CartPole-v1, Acrobot-v1, MountainCar-v0); {other} is tabular: use [plan]/[learn] or `rlox learn`"),
    };
    log.flush()?;
    crate::data_out::write_episodes(&run, &sink)?;
    let mut out = serde_json::to_value(&summary)?;
    out["algo"] = json!(algo);
    out["env"] = json!(env_id);
    out["seed"] = json!(cfg.seed);
    out["run_dir"] = json!(run.path().display().to_string());
    run.write_summary(&out)?;
    Ok(out)
}

/// Run the job described by `cfg`; returns the summary (also written to `summary.json`).
pub fn train(cfg: &TrainConfig, progress: bool) -> anyhow::Result<serde_json::Value> {
    if cfg.plan.is_none() && cfg.learn.is_none() {
        bail!("the config has neither a [plan] nor a [learn] table: nothing to do");
    }
    let env_args_options = env_options(&cfg.env)?;
    let mut learner = match cfg.env.id.as_str() {
        "gridworld" => Learner::Grid(Box::new(rlox_envs::registry::make_gridworld_from(env_args_options)?)),
        id => Learner::Other(
            rlox_envs::registry::make(id, env_args_options)?.into_tabular("the tabular [plan]/[learn] job")?,
        ),
    };
    // Validate the learning settings before creating anything on disk.
    let learn_settings = cfg.learn.as_ref().map(|l| l.settings(cfg.seed)).transpose()?;
    let run = RunDir::create(&cfg.runs_dir, &cfg.name)?;
    run.write_config(cfg)?;
    let total_steps = learn_settings.as_ref().map(|s| (s.td.episodes * s.td.max_episode_steps) as u64).unwrap_or(1);
    // Metrics also go to `metrics.parquet` (Hive/Spark-safe, long format), which `rlox sql --table <run dir>`
    // and Spark read directly.
    let mut log = crate::data_out::run_logger(&run, total_steps, progress)?;
    let mdp = learner.mdp()?;
    let mut summary = json!({"run_dir": run.path().display().to_string(), "env": learner.id(), "seed": cfg.seed});

    let mut optimal: Option<Vec<f64>> = None;
    if let Some(plan) = &cfg.plan {
        let o = PlanningOptions { gamma: plan.gamma, tol: plan.tol, ..Default::default() };
        let start = Instant::now();
        let r = match plan.algo.as_str() {
            "value-iteration" => value_iteration(&mdp, &o)?,
            "policy-iteration" => policy_iteration(&mdp, &o)?,
            "truncated-pi" => truncated_policy_iteration(&mdp, plan.sweeps, &o)?,
            other => bail!("[plan] algo '{other}' is not value-iteration, policy-iteration or truncated-pi"),
        };
        for (k, h) in r.history.iter().enumerate() {
            log.log(k as u64 + 1, &[("plan/delta", h.delta)])?;
        }
        if let Learner::Grid(g) = &learner {
            let table = TabularPolicy::deterministic(&r.policy, g.n_actions())?;
            let title = format!("{} (gamma {})", plan.algo, plan.gamma);
            draw(
                g,
                &Figure { policy: Some(table.table()), values: Some(&r.values), title: Some(&title), decimals: 1 },
                &run.plot_path("planned_policy_values.png"),
            )?;
            draw(
                g,
                &Figure { policy: Some(table.table()), values: Some(&r.values), title: Some(&title), decimals: 1 },
                &run.plot_path("planned_policy_values.svg"),
            )?;
        }
        summary["plan"] = json!({
            "algo": plan.algo,
            "iterations": r.iterations,
            "converged": r.converged,
            "seconds": start.elapsed().as_secs_f64(),
            "values": r.values,
            "policy": learner.format_policy(&r.policy),
        });
        optimal = Some(r.values);
    }

    if let (Some(spec), Some(settings)) = (&cfg.learn, &learn_settings) {
        let gamma = settings.td.gamma;
        let reference = match (&optimal, settings.algo.is_control(), &cfg.plan) {
            (Some(v), true, Some(p)) if (p.gamma - gamma).abs() < 1e-15 => Reference::Values(v.clone()),
            _ => reference_values(&mdp, settings.algo, gamma)?,
        };
        if let Some(note) = reference.note() {
            tracing::warn!("{note}");
        }
        let start = Instant::now();
        let r = learner.learn(settings, reference.values())?;
        let wall = start.elapsed().as_secs_f64();
        for (step, e) in &r.history.rmse {
            log.log(*step, &[("learn/rmse", *e)])?;
        }
        let mut steps = 0u64;
        for (reward, len) in r.history.episode_rewards.iter().zip(&r.history.episode_lengths) {
            steps += *len as u64;
            log.log(steps, &[("learn/episode_reward", *reward), ("learn/episode_length", *len as f64)])?;
        }
        let files =
            draw_curves(&run.path().join("plots"), &learner, &r, &format!("{} on {}", spec.algo, learner.id()))?;
        let checkpoint = json!({"algo": spec.algo, "n_states": mdp.n_states(), "n_actions": mdp.n_actions(), "q": r.q, "values": r.values, "seed": cfg.seed});
        atomic_write(run.checkpoint_path("table.json"), serde_json::to_string(&checkpoint)?.as_bytes())?;
        let mut learned = json!({
            "algo": spec.algo,
            "steps": r.steps,
            "wall_seconds": wall,
            "steps_per_second": r.steps as f64 / wall.max(1e-9),
            "final_rmse": r.history.rmse.last().map(|x| x.1),
            "plots": files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        });
        if settings.algo.is_control() {
            let greedy = TabularPolicy::deterministic(&r.policy, mdp.n_actions())?;
            let gap = match reference.values() {
                Some(optimal) if gamma < 1.0 => Some(max_abs_diff(&closed_form_values(&mdp, &greedy, gamma)?, optimal)),
                _ => None,
            };
            let eval =
                learner.evaluate(&r.policy, spec.eval_episodes, settings.td.max_episode_steps.min(1000), cfg.seed)?;
            learned["policy"] = learner.format_policy(&r.policy);
            learned["value_gap_to_optimal"] = json!(gap);
            learned["eval"] = serde_json::to_value(&eval)?;
            log.log(r.steps, &[("eval/mean_return", eval.mean_return)])?;
        }
        summary["learn"] = learned;
    }
    log.flush()?;
    run.write_summary(&summary)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_config_parses() {
        let cfg = parse_config(DEFAULT_CONFIG, Path::new("default")).unwrap();
        assert_eq!(cfg.env.id, "gridworld");
        assert!(cfg.plan.is_some() && cfg.learn.is_some());
    }

    #[test]
    fn unknown_key_and_wrong_type_name_the_key_and_line() {
        let e = parse_config("name = \"x\"\nseeed = 3\n", Path::new("c.toml")).unwrap_err().to_string();
        assert!(e.contains("c.toml") && e.contains("seeed") && e.contains("line 2"), "{e}");
        let e = parse_config("name = \"x\"\n[learn]\nalpha = \"big\"\n", Path::new("c.toml")).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("alpha"), "{e}");
    }
}
