//! The run config of `rlox train` (and `rlox.train` from Python): one flat TOML file.
//!
//! ```toml
//! name = "ppo-cartpole"      # run settings (rlox_core::run::RunSettings), with SB3's/TRL's names as aliases
//! seed = 0
//! total_steps = 100000       # or total_timesteps
//! eval_every = 10000         # or eval_freq
//! algo = "ppo"               # which trainer; optional when exactly one algorithm table is present
//!
//! [env]
//! id = "CartPole-v1"
//!
//! [ppo]                      # the method's own hyper-parameters (rlox_deep::PpoConfig)
//! n_envs = 8
//! ```
//!
//! The algorithms are [`Algo`]: the deep-RL trainers of rlox-deep, and the tabular `[plan]`/`[learn]`
//! job of the book's grid world (the main job's embedded default). A key that no part takes is an error
//! that names the file, the key and its line; run settings written inside an algorithm table (the old
//! layout) are pointed out as such.

use crate::tabular::{LearnSpec, PlanSection};
use anyhow::{bail, Context};
use rlox_core::config::{struct_keys, FlatTable};
use rlox_core::run::{RunDir, RunSettings};
use rlox_deep::{A2cConfig, DqnConfig, PpoConfig, ReinforceConfig, SacConfig, Td3Config};
use rlox_envs::registry::EnvOptions;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Every trainer `rlox train` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algo {
    /// DQN (discrete actions, off-policy).
    Dqn,
    /// REINFORCE (on-policy).
    Reinforce,
    /// A2C (on-policy).
    A2c,
    /// PPO (on-policy).
    Ppo,
    /// DDPG (continuous actions, off-policy).
    Ddpg,
    /// TD3 (continuous actions, off-policy).
    Td3,
    /// SAC (continuous actions, off-policy).
    Sac,
    /// Planning and tabular learning on a finite MDP (`[plan]`, `[learn]`).
    Tabular,
}

impl Algo {
    /// Every algorithm, in the order of their names.
    pub const ALL: [Algo; 8] =
        [Algo::Dqn, Algo::Reinforce, Algo::A2c, Algo::Ppo, Algo::Ddpg, Algo::Td3, Algo::Sac, Algo::Tabular];

    /// The name used in configs, on the command line and in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            Algo::Dqn => "dqn",
            Algo::Reinforce => "reinforce",
            Algo::A2c => "a2c",
            Algo::Ppo => "ppo",
            Algo::Ddpg => "ddpg",
            Algo::Td3 => "td3",
            Algo::Sac => "sac",
            Algo::Tabular => "tabular",
        }
    }

    /// The algorithm named `name`, or an error listing the known ones.
    pub fn parse(name: &str) -> anyhow::Result<Algo> {
        Algo::ALL.into_iter().find(|a| a.name() == name).ok_or_else(|| {
            let known: Vec<&str> = Algo::ALL.iter().map(|a| a.name()).collect();
            anyhow::anyhow!("unknown algorithm '{name}'; known: {}", known.join(", "))
        })
    }

    /// Whether the trainer checkpoints and resumes (every deep-RL trainer).
    pub fn resumable(self) -> bool {
        self != Algo::Tabular
    }

    /// The run settings this algorithm starts from (the sources of the numbers: rl-baselines3-zoo's
    /// budgets for CartPole-v1 and Pendulum-v1, SB3's evaluation cadence).
    pub fn run_defaults(self, env_id: &str) -> RunSettings {
        let base = RunSettings { name: format!("{}-{env_id}", self.name()), ..RunSettings::default() };
        match self {
            Algo::Dqn => RunSettings { total_steps: 50_000, eval_every: 10_000, checkpoint_every: 10_000, ..base },
            Algo::Ppo => RunSettings { total_steps: 100_000, checkpoint_every: 10_000, ..base },
            Algo::A2c => RunSettings { total_steps: 500_000, checkpoint_every: 10_000, ..base },
            Algo::Reinforce => RunSettings { total_steps: 200_000, checkpoint_every: 10_000, ..base },
            Algo::Ddpg | Algo::Td3 | Algo::Sac => {
                RunSettings { total_steps: 20_000, eval_every: 1000, checkpoint_every: 1000, ..base }
            }
            Algo::Tabular => RunSettings { name: "run".into(), ..RunSettings::default() },
        }
    }
}

/// `[env]`: an id and its options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

impl EnvSection {
    /// The options as the registry takes them.
    pub fn options(&self) -> anyhow::Result<EnvOptions> {
        let mut o = EnvOptions::new();
        for (k, v) in &self.options {
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
}

/// The method's own hyper-parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    /// `[dqn]`.
    Dqn(DqnConfig),
    /// `[reinforce]`.
    Reinforce(ReinforceConfig),
    /// `[a2c]`.
    A2c(A2cConfig),
    /// `[ppo]`.
    Ppo(PpoConfig),
    /// `[ddpg]`: TD3's config with DDPG's defaults.
    Ddpg(Td3Config),
    /// `[td3]`.
    Td3(Td3Config),
    /// `[sac]`.
    Sac(SacConfig),
    /// `[plan]` and `[learn]`.
    Tabular {
        /// Planning on the env's model.
        plan: Option<PlanSection>,
        /// Learning from samples.
        learn: Option<LearnSpec>,
    },
}

impl Method {
    /// The algorithm.
    pub fn algo(&self) -> Algo {
        match self {
            Method::Dqn(_) => Algo::Dqn,
            Method::Reinforce(_) => Algo::Reinforce,
            Method::A2c(_) => Algo::A2c,
            Method::Ppo(_) => Algo::Ppo,
            Method::Ddpg(_) => Algo::Ddpg,
            Method::Td3(_) => Algo::Td3,
            Method::Sac(_) => Algo::Sac,
            Method::Tabular { .. } => Algo::Tabular,
        }
    }

    /// The defaults of `algo`.
    pub fn defaults(algo: Algo) -> Method {
        match algo {
            Algo::Dqn => Method::Dqn(DqnConfig::default()),
            Algo::Reinforce => Method::Reinforce(ReinforceConfig::default()),
            Algo::A2c => Method::A2c(A2cConfig::default()),
            Algo::Ppo => Method::Ppo(PpoConfig::default()),
            Algo::Ddpg => Method::Ddpg(rlox_deep::ddpg_config()),
            Algo::Td3 => Method::Td3(Td3Config::default()),
            Algo::Sac => Method::Sac(SacConfig::default()),
            Algo::Tabular => Method::Tabular { plan: None, learn: None },
        }
    }

    fn table(&self) -> anyhow::Result<Vec<(&'static str, toml::Value)>> {
        let v = |x: &dyn erased_serialize::Ser| x.to_value();
        Ok(match self {
            Method::Dqn(c) => vec![("dqn", v(c)?)],
            Method::Reinforce(c) => vec![("reinforce", v(c)?)],
            Method::A2c(c) => vec![("a2c", v(c)?)],
            Method::Ppo(c) => vec![("ppo", v(c)?)],
            Method::Ddpg(c) => vec![("ddpg", v(c)?)],
            Method::Td3(c) => vec![("td3", v(c)?)],
            Method::Sac(c) => vec![("sac", v(c)?)],
            Method::Tabular { plan, learn } => {
                let mut out = Vec::new();
                if let Some(p) = plan {
                    out.push(("plan", v(p)?));
                }
                if let Some(l) = learn {
                    out.push(("learn", v(l)?));
                }
                out
            }
        })
    }
}

mod erased_serialize {
    /// Serialise any config section to a TOML value.
    pub trait Ser {
        fn to_value(&self) -> anyhow::Result<toml::Value>;
    }
    impl<T: serde::Serialize> Ser for T {
        fn to_value(&self) -> anyhow::Result<toml::Value> {
            Ok(toml::Value::try_from(self)?)
        }
    }
}

/// A whole run: its settings, its env, and its method.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Seed, length, cadences, run directory, device.
    pub run: RunSettings,
    /// The environment.
    pub env: EnvSection,
    /// The method and its hyper-parameters.
    pub method: Method,
}

/// Command-line (or Python keyword) overrides of a config.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Train this algorithm (its table's settings if the config has one, else its defaults).
    pub algo: Option<String>,
    /// On this env.
    pub env: Option<String>,
    /// For this many steps.
    pub total_steps: Option<u64>,
    /// With this seed.
    pub seed: Option<u64>,
    /// Writing the run directory here.
    pub runs_dir: Option<std::path::PathBuf>,
    /// Showing a progress bar or not.
    pub progress: Option<bool>,
}

const ALGO_TABLES: [(&str, Algo); 7] = [
    ("dqn", Algo::Dqn),
    ("reinforce", Algo::Reinforce),
    ("a2c", Algo::A2c),
    ("ppo", Algo::Ppo),
    ("ddpg", Algo::Ddpg),
    ("td3", Algo::Td3),
    ("sac", Algo::Sac),
];

/// Take the sub-table `key` over `base` (keys given replace `base`'s), or `None` when absent.
fn table_over<T: Serialize + serde::de::DeserializeOwned>(
    t: &mut FlatTable,
    key: &'static str,
    base: &T,
) -> anyhow::Result<Option<T>> {
    let Some((value, line)) = t.remove(key) else { return Ok(None) };
    let toml::Value::Table(given) = value else {
        return Err(t.error_at(line, format!("`{key}` must be a table ([{key}])")).into());
    };
    // Run settings written inside an algorithm table (the layout before run settings were shared).
    if let Some(k) = given.keys().find(|k| RunSettings::is_key(k) && !struct_keys::<T>().contains(&k.as_str())) {
        return Err(t
            .table_error(
                key,
                line,
                format!("`{k}` is a run setting; write it at the top of the file, before any table"),
            )
            .into());
    }
    let toml::Value::Table(mut merged) = toml::Value::try_from(base)? else { bail!("defaults of [{key}]") };
    merged.extend(given);
    let parsed = T::deserialize(toml::Value::Table(merged)).map_err(|e| t.table_error(key, line, e))?;
    Ok(Some(parsed))
}

impl TrainConfig {
    /// Parse a flat config table, with `overrides` applied.
    pub fn from_table(mut t: FlatTable, overrides: &Overrides) -> anyhow::Result<TrainConfig> {
        let explicit = match t.remove("algo") {
            Some((toml::Value::String(s), _)) => Some(s),
            Some((_, line)) => return Err(t.error_at(line, "`algo` must be a string (e.g. \"ppo\")").into()),
            None => None,
        };
        let env: EnvSection = t.take_table("env")?.unwrap_or_default();
        let mut methods = Vec::new();
        for (key, algo) in ALGO_TABLES {
            let base = Method::defaults(algo);
            let parsed = match base {
                Method::Dqn(b) => table_over(&mut t, key, &b)?.map(Method::Dqn),
                Method::Reinforce(b) => table_over(&mut t, key, &b)?.map(Method::Reinforce),
                Method::A2c(b) => table_over(&mut t, key, &b)?.map(Method::A2c),
                Method::Ppo(b) => table_over(&mut t, key, &b)?.map(Method::Ppo),
                Method::Ddpg(b) => table_over(&mut t, key, &b)?.map(Method::Ddpg),
                Method::Td3(b) => table_over(&mut t, key, &b)?.map(Method::Td3),
                Method::Sac(b) => table_over(&mut t, key, &b)?.map(Method::Sac),
                Method::Tabular { .. } => None,
            };
            methods.extend(parsed);
        }
        let plan: Option<PlanSection> = t.take_table("plan")?;
        let learn: Option<LearnSpec> = t.take_table("learn")?;
        let chosen = match overrides.algo.as_deref().or(explicit.as_deref()) {
            Some(name) => Some(Algo::parse(name)?),
            None => None,
        };
        let method = match chosen {
            Some(Algo::Tabular) => Method::Tabular { plan, learn },
            Some(algo) => {
                let mut found = methods.into_iter().filter(|m| m.algo() == algo);
                found.next().unwrap_or_else(|| Method::defaults(algo))
            }
            None if methods.len() > 1 => {
                let names: Vec<&str> = methods.iter().map(|m| m.algo().name()).collect();
                bail!(
                    "{}: the config has tables for {}; say which to train with `algo = \"...\"` or --algo",
                    t.origin().display(),
                    names.join(" and ")
                );
            }
            None if methods.len() == 1 => methods.remove(0),
            None => Method::Tabular { plan, learn },
        };
        let algo = method.algo();
        let mut env = env;
        if let Some(id) = &overrides.env {
            env.id = id.clone();
        }
        if algo != Algo::Tabular && env.id == EnvSection::default().id && overrides.env.is_none() {
            env.id = match algo {
                Algo::Ddpg | Algo::Td3 | Algo::Sac => "Pendulum-v1".into(),
                _ => "CartPole-v1".into(),
            };
        }
        let mut run = RunSettings::take(&mut t, &algo.run_defaults(&env.id))?;
        t.finish_with(|k| {
            ALGO_TABLES
                .iter()
                .any(|(name, _)| {
                    let probe: &[&str] = match *name {
                        "dqn" => struct_keys::<DqnConfig>(),
                        "ppo" => struct_keys::<PpoConfig>(),
                        "a2c" => struct_keys::<A2cConfig>(),
                        "reinforce" => struct_keys::<ReinforceConfig>(),
                        "sac" => struct_keys::<SacConfig>(),
                        _ => struct_keys::<Td3Config>(),
                    };
                    probe.contains(&k)
                })
                .then(|| format!("`{k}` is a hyper-parameter: put it in the algorithm's table, e.g. [{}]", algo.name()))
        })?;
        if let Some(n) = overrides.total_steps {
            run.total_steps = n;
        }
        if let Some(s) = overrides.seed {
            run.seed = s;
        }
        if let Some(d) = &overrides.runs_dir {
            run.runs_dir = d.clone();
        }
        if let Some(p) = overrides.progress {
            run.progress = p;
        }
        if algo != Algo::Tabular {
            rlox_envs::registry::spec(&env.id)?;
        }
        Ok(TrainConfig { run, env, method })
    }

    /// Parse TOML text (from `origin`, named in errors).
    pub fn parse(text: &str, origin: &Path, overrides: &Overrides) -> anyhow::Result<TrainConfig> {
        TrainConfig::from_table(FlatTable::parse(text, origin)?, overrides)
    }

    /// Read and parse a TOML file.
    pub fn load(path: &Path, overrides: &Overrides) -> anyhow::Result<TrainConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
        TrainConfig::parse(&text, path, overrides)
    }

    /// The algorithm.
    pub fn algo(&self) -> Algo {
        self.method.algo()
    }

    /// The resolved config as one flat TOML file: run settings, `algo`, `[env]`, the method's table.
    pub fn to_toml(&self) -> anyhow::Result<String> {
        let toml::Value::Table(run) = toml::Value::try_from(&self.run)? else { bail!("run settings") };
        let mut out = toml::Table::new();
        out.extend(run);
        out.insert("algo".into(), toml::Value::String(self.algo().name().into()));
        out.insert("env".into(), toml::Value::try_from(&self.env)?);
        for (k, v) in self.method.table()? {
            out.insert(k.into(), v);
        }
        // Plain keys first, then the tables, so the file reads like a hand-written config.
        let (plain, tables): (Vec<_>, Vec<_>) = out.into_iter().partition(|(_, v)| !v.is_table());
        let mut ordered = toml::Table::new();
        ordered.extend(plain);
        ordered.extend(tables);
        Ok(toml::to_string_pretty(&ordered)?)
    }

    /// Write the resolved config as the run directory's `config.toml`.
    pub fn write(&self, run: &RunDir) -> anyhow::Result<()> {
        rlox_core::checkpoint::atomic_write(run.path().join("config.toml"), self.to_toml()?.as_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<TrainConfig> {
        TrainConfig::parse(text, Path::new("c.toml"), &Overrides::default())
    }

    #[test]
    fn sb3_names_algo_choice_and_round_trip() {
        let c = parse(
            "seed = 3\ntotal_timesteps = 5000\neval_freq = 500\n[env]\nid = \"CartPole-v1\"\n[ppo]\nn_envs = 4\n",
        )
        .unwrap();
        assert_eq!(c.algo(), Algo::Ppo);
        assert_eq!(
            (c.run.seed, c.run.total_steps, c.run.eval_every, c.run.name.as_str()),
            (3, 5000, 500, "ppo-CartPole-v1")
        );
        let Method::Ppo(p) = &c.method else { panic!() };
        assert_eq!((p.n_envs, p.n_steps), (4, 32));
        let again = parse(&c.to_toml().unwrap()).unwrap();
        assert_eq!(again, c);
        // DDPG's table starts from DDPG's defaults, not TD3's.
        let d = parse("[ddpg]\nbatch_size = 100\n").unwrap();
        let Method::Ddpg(t) = &d.method else { panic!() };
        assert_eq!((t.n_critics, t.policy_delay, t.batch_size), (1, 1, 100));
        assert_eq!(d.env.id, "Pendulum-v1");
    }

    #[test]
    fn errors_name_file_key_and_line() {
        let e = parse("seed = 1\n[ppo]\ntotal_timesteps = 5\n").unwrap_err().to_string();
        assert!(
            e.contains("c.toml") && e.contains("line 3") && e.contains("run setting") && e.contains("total_timesteps"),
            "{e}"
        );
        let e = parse("seed = 1\nn_envs = 4\n[ppo]\n").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("n_envs") && e.contains("[ppo]"), "{e}");
        let e = parse("[ppo]\n[td3]\n").unwrap_err().to_string();
        assert!(e.contains("ppo and td3"), "{e}");
        let e = parse("algo = \"magic\"\n").unwrap_err().to_string();
        assert!(e.contains("magic") && e.contains("ppo"), "{e}");
        let e = parse("[ppo]\nn_envs = \"four\"\n").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("n_envs"), "{e}");
        let e = parse("seed = 1\n[ppo]\ngamma = 0.9\ntotal_timesteps = 5\n").unwrap_err().to_string();
        assert!(e.contains("line 4") && e.contains("run setting"), "{e}");
    }
}
