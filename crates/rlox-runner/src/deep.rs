//! Deep-RL runs: the envs built from the config's id the same way for every trainer, the trainer
//! built from its config, a run directory, and resume from that directory's last checkpoint.
//!
//! Training envs are bare registered envs (the time limit counted by the env batch, so that their
//! whole state can be checkpointed) wrapped in rlox-data's `EpisodeRecorder`: every trainer's
//! training episodes go to `episodes/part-*.parquet`. Evaluation envs are plain copies, one per
//! evaluation episode.

use crate::config::{Algo, Method, TrainConfig};
use anyhow::{bail, Context};
use rlox_core::checkpoint::CheckpointDir;
use rlox_core::env::{Env, FlatObs, SetState};
use rlox_core::logger::{Logger, MultiLogger};
use rlox_core::run::RunDir;
use rlox_data::episodes::{EpisodeRecorder, EpisodeSink};
use rlox_deep::offpolicy::OffPolicyAgent;
use rlox_deep::{
    ActionKind, Dqn, OffPolicy, OnPolicy, OnPolicyMethod, PolicyAction, ResumableVecEnv, Sac, Td3, TrainSummary,
};
use rlox_envs::classic_control as cc;
use serde::Deserialize;
use serde_json::{json, Value};

/// Where a run stands: a fresh run directory, or one being resumed.
pub(crate) struct Session {
    pub run: RunDir,
    pub resume: bool,
}

/// The number of metric records a checkpoint was taken after (read before the trainer loads it, so
/// that the metrics files can be cut back first).
#[derive(Deserialize)]
struct Logged {
    logged: u64,
}

/// The logger of a session: fresh files, and on resume the records logged before the checkpoint
/// replayed into them.
fn session_logger(s: &Session, cfg: &TrainConfig) -> anyhow::Result<MultiLogger> {
    let records = if s.resume {
        let ckpt = CheckpointDir::new(s.run.path().join("checkpoints"));
        let logged = ckpt.load_latest::<Logged>()?.state.logged;
        s.run.records_for_resume(logged)?
    } else {
        Vec::new()
    };
    let mut log = crate::sinks::run_logger(&s.run, cfg.run.total_steps, cfg.run.progress)?;
    for r in &records {
        r.replay(&mut log)?;
    }
    log.flush()?;
    Ok(log)
}

/// Run (or resume) the deep-RL job of `cfg` in `session`; returns the summary.
pub(crate) fn run_deep(cfg: &TrainConfig, session: &Session) -> anyhow::Result<Value> {
    let env_id = cfg.env.id.as_str();
    let spec = rlox_envs::registry::spec(env_id)?;
    if !cfg.env.options.is_empty() {
        bail!("[env] options are not supported for deep-RL runs on {env_id}");
    }
    let mut log = session_logger(session, cfg)?;
    let sink = EpisodeSink::new();
    let job = Job { cfg, session, sink: &sink, limit: spec.max_episode_steps };
    let summary = match spec.id {
        "CartPole-v1" => job.run(cc::CartPole::new, &mut log),
        "Acrobot-v1" => job.run(cc::Acrobot::new, &mut log),
        "MountainCar-v0" => job.run(cc::MountainCar::new, &mut log),
        "Pendulum-v1" => job.run(cc::Pendulum::new, &mut log),
        "MountainCarContinuous-v0" => job.run(cc::MountainCarContinuous::new, &mut log),
        other => bail!(
            "{} trains on the classic-control envs (CartPole-v1, Acrobot-v1, MountainCar-v0, Pendulum-v1, \
             MountainCarContinuous-v0); {other} is tabular: use [plan]/[learn] or `rlox learn`",
            cfg.algo().name()
        ),
    };
    // Whatever happened, keep what the session logged and the episodes it recorded.
    log.flush()?;
    crate::sinks::write_episodes(&session.run, &sink)?;
    let summary = summary?;
    let mut out = serde_json::to_value(&summary)?;
    out["algo"] = json!(cfg.algo().name());
    out["env"] = json!(env_id);
    out["seed"] = json!(cfg.run.seed);
    out["run_dir"] = json!(session.run.path().display().to_string());
    out["resumed"] = json!(session.resume);
    session.run.write_summary(&out)?;
    Ok(out)
}

struct Job<'a> {
    cfg: &'a TrainConfig,
    session: &'a Session,
    sink: &'a EpisodeSink,
    limit: Option<usize>,
}

impl Job<'_> {
    /// Build the envs from `make` and the trainer from the config, then train (or resume).
    fn run<E>(&self, make: impl Fn() -> E + Clone, log: &mut dyn Logger) -> anyhow::Result<TrainSummary>
    where
        E: Env + SetState,
        E::Obs: FlatObs,
        E::Action: PolicyAction + FlatObs,
    {
        let cfg = self.cfg;
        let algo = cfg.algo();
        let probe = make();
        let kind = ActionKind::from_space(&probe.action_space(), algo.name(), &cfg.env.id)?;
        let obs_dim = probe.observation_space().flat_dim();
        let limit = self.limit;
        let (sink, make_train) = (self.sink.clone(), make.clone());
        let train_env = move || EpisodeRecorder::new(make_train(), sink.clone()).with_time_limit(limit);
        let eval = ResumableVecEnv::new(cfg.run.eval_episodes, make, limit)?;
        let run = &cfg.run;
        let continuous_only = |k: &ActionKind| -> anyhow::Result<Vec<f32>> {
            match k {
                ActionKind::Continuous { low, .. } => Ok(low.clone()),
                ActionKind::Discrete(_) => bail!(
                    "{} needs a continuous (Box) action space; {} has {}. Use dqn, ppo or a2c for discrete actions",
                    algo.name(),
                    cfg.env.id,
                    probe.action_space()
                ),
            }
        };
        match &cfg.method {
            Method::Ppo(c) => self.on_policy(OnPolicy::new(c.clone(), run, obs_dim, kind)?, train_env, eval, log),
            Method::A2c(c) => self.on_policy(OnPolicy::new(c.clone(), run, obs_dim, kind)?, train_env, eval, log),
            Method::Reinforce(c) => self.on_policy(OnPolicy::new(c.clone(), run, obs_dim, kind)?, train_env, eval, log),
            Method::Dqn(c) => {
                let ActionKind::Discrete(n) = kind else {
                    bail!(
                        "dqn needs a discrete action space; {} has a continuous one ({})",
                        cfg.env.id,
                        probe.action_space()
                    );
                };
                let agent = Dqn::new(obs_dim, n, c, run)?;
                self.off_policy(OffPolicy::new(agent, run, obs_dim, kind)?, train_env, eval, log)
            }
            Method::Td3(c) | Method::Ddpg(c) => {
                let act_dim = continuous_only(&kind)?.len();
                let name = if algo == Algo::Ddpg { "ddpg" } else { "td3" };
                let agent = Td3::build(name, obs_dim, act_dim, c, run)?;
                self.off_policy(OffPolicy::new(agent, run, obs_dim, kind)?, train_env, eval, log)
            }
            Method::Sac(c) => {
                let act_dim = continuous_only(&kind)?.len();
                let agent = Sac::new(obs_dim, act_dim, c, run)?;
                self.off_policy(OffPolicy::new(agent, run, obs_dim, kind)?, train_env, eval, log)
            }
            Method::Tabular { .. } => bail!("the tabular job is not a deep-RL run"),
        }
    }

    fn checkpoints(&self) -> CheckpointDir {
        CheckpointDir::new(self.session.run.path().join("checkpoints"))
    }

    fn on_policy<M, T, W>(
        &self,
        mut trainer: OnPolicy<M>,
        make_train: impl Fn() -> T,
        mut eval: ResumableVecEnv<W>,
        log: &mut dyn Logger,
    ) -> anyhow::Result<TrainSummary>
    where
        M: OnPolicyMethod,
        T: Env + SetState,
        T::Obs: FlatObs,
        T::Action: PolicyAction,
        W: Env<Action = T::Action> + SetState,
        W::Obs: FlatObs,
    {
        let mut envs = ResumableVecEnv::new(trainer.method().n_envs(), make_train, self.limit)?;
        let ckpt = self.checkpoints();
        if self.session.resume {
            trainer.resume(&ckpt, &mut envs).context("resuming")?;
        }
        Ok(trainer.learn(&mut envs, &mut eval, log, Some(&ckpt))?)
    }

    fn off_policy<A, T, W>(
        &self,
        mut trainer: OffPolicy<A>,
        make_train: impl Fn() -> T,
        mut eval: ResumableVecEnv<W>,
        log: &mut dyn Logger,
    ) -> anyhow::Result<TrainSummary>
    where
        A: OffPolicyAgent,
        T: Env + SetState,
        T::Obs: FlatObs,
        T::Action: PolicyAction,
        W: Env<Action = T::Action> + SetState,
        W::Obs: FlatObs,
    {
        let mut envs = ResumableVecEnv::new(1, make_train, self.limit)?;
        let ckpt = self.checkpoints();
        if self.session.resume {
            trainer.resume(&ckpt, &mut envs).context("resuming")?;
        }
        Ok(trainer.learn(&mut envs, &mut eval, log, Some(&ckpt))?)
    }
}
