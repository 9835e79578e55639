//! Post-training configs: one flat TOML table, in TRL's vocabulary as well as rlox's.
//!
//! A run's config is five sections side by side in one table (split by [`FlatTable`], each key going
//! to the section that accepts it; a key no section takes is an error naming it and its line):
//!
//! * [`RunSettings`]: name, seed, length, evaluation/checkpoint/logging cadence, output directory,
//!   device; TRL's `run_name`, `output_dir`, `max_steps`, `eval_steps`, `save_steps`, `logging_steps`
//!   are its aliases;
//! * `[model]` ([`ModelConfig`]): the model directory, or a shape to train from scratch;
//! * [`DataConfig`]: the training (and evaluation) data;
//! * [`Optimization`]: learning rate and its schedule, gradient clipping, the optimizer (TRL's
//!   `TrainingArguments` fields the shared training loop uses);
//! * the method's own hyper-parameters ([`crate::sft::SftConfig`], [`crate::reward_model::RewardConfig`],
//!   [`crate::dpo::DpoConfig`], [`crate::grpo::GrpoConfig`]).
//!
//! Each method has its own defaults for the shared sections (TRL's per-trainer defaults: DPO's learning
//! rate is 1e-6, SFT's 2e-5, ...), given by its [`crate::trainer::Method::defaults`].
//!
//! A TRL user's keys work unchanged where they mean the same thing here:
//!
//! | TRL / transformers key | rlox |
//! |---|---|
//! | `model_name_or_path` | `[model] path` |
//! | `dataset_name` (a path, or a Hub id in the local cache) | `train_file` |
//! | `dataset_train_split` | `dataset_train_split` (default `train`) |
//! | `run_name`, `output_dir`, `max_steps`, `eval_steps`, `save_steps`, `logging_steps` | `name`, `runs_dir`, `total_steps`, `eval_every`, `checkpoint_every`, `log_every` |
//! | `lr_scheduler_type = "linear" \| "constant" \| "constant_with_warmup"` | `constant_lr = false \| true \| true` |
//! | `optim = "adamw_torch" \| "adamw_torch_fused" \| "adamw_hf" \| "sgd"`, `adam_beta1`, `adam_beta2`, `adam_epsilon`, `weight_decay` | `[optimizer] kind, beta1, beta2, eps, weight_decay` |
//! | `warmup_ratio` (with `max_steps`) | `warmup_steps = ceil(ratio * max_steps)` |
//! | `gradient_accumulation_steps = 1` | (the only value rlox runs) |
//!
//! The others (`learning_rate`, `per_device_train_batch_size`, `num_train_epochs`, `max_grad_norm`,
//! `warmup_steps`, `seed`, `beta`, `loss_type`, `max_length`, `num_generations`, ...) already have TRL's
//! names. The run directory's `config.toml` holds the resolved config in rlox's names; it loads the same
//! way, which is how `--resume` reads it.

use crate::model::ModelConfig;
use rlox_core::config::FlatTable;
use rlox_core::run::RunSettings;
use rlox_core::Result;
use rlox_nn::OptimizerConfig;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The training (and evaluation) data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Training data: a `.jsonl`, `.json` or `.parquet` file, a directory, or a Hub id in the local
    /// cache. *TRL*: `dataset_name`.
    pub train_file: PathBuf,
    /// The split of a dataset directory or cached Hub dataset. *TRL*: `dataset_train_split`, train.
    pub dataset_train_split: String,
    /// Held-out data in the training data's form, scored at the start, every `eval_every` steps and at
    /// the end (`eval/*` metrics: SFT's loss, the reward model's loss and accuracy, DPO's loss and
    /// rewards, GRPO's rewards of greedy completions).
    pub eval_file: Option<PathBuf>,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig { train_file: PathBuf::new(), dataset_train_split: "train".into(), eval_file: None }
    }
}

/// How the shared training loop optimises (the learning-rate fields of TRL's `TrainingArguments`).
/// Defaults here are TRL's common ones; each method overrides the learning rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Optimization {
    /// Peak learning rate (per method: SFT 2e-5, reward model 1e-5, DPO and GRPO 1e-6, TRL's).
    pub learning_rate: f64,
    /// Linear warm-up steps. *TRL*: 0.
    pub warmup_steps: u64,
    /// Keep the learning rate constant after the warm-up instead of decaying it linearly to 0.
    /// *TRL*: `lr_scheduler_type = "linear"`, i.e. false.
    pub constant_lr: bool,
    /// Global gradient-norm clip (0: off). *TRL*: 1.
    pub max_grad_norm: f64,
    /// The optimizer. *TRL*: AdamW (PyTorch's betas and epsilon) with weight decay 0.
    pub optimizer: OptimizerConfig,
}

impl Default for Optimization {
    fn default() -> Self {
        Optimization {
            learning_rate: 1e-6,
            warmup_steps: 0,
            constant_lr: false,
            max_grad_norm: 1.0,
            optimizer: OptimizerConfig::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 },
        }
    }
}

impl Optimization {
    /// These settings with another learning rate.
    pub fn with_learning_rate(learning_rate: f64) -> Self {
        Optimization { learning_rate, ..Default::default() }
    }
}

/// A post-training run's whole config (see the module docs); `C` is the method's hyper-parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct RunConfig<C> {
    /// Name, seed, length, cadences, output directory, device.
    pub run: RunSettings,
    /// The model.
    pub model: ModelConfig,
    /// The data.
    pub data: DataConfig,
    /// Learning rate, schedule, clipping, optimizer.
    pub optimization: Optimization,
    /// The method's own hyper-parameters.
    pub method: C,
}

/// Run settings that only RL trainers use.
const RL_ONLY: [&str; 2] = ["eval_episodes", "n_eval_episodes"];

/// The `[model]` table of a flat config.
#[derive(Serialize)]
struct ModelSection<'a> {
    model: &'a ModelConfig,
}

impl<C: Serialize + DeserializeOwned> RunConfig<C> {
    /// Read a config file (rlox's or TRL's key names) with the method's defaults `defaults` for the run
    /// settings and the optimisation (see [`crate::trainer::Method::defaults`]).
    pub fn load(path: &Path, defaults: &(RunSettings, Optimization)) -> Result<Self> {
        Self::from_table(FlatTable::load(path)?, defaults)
    }

    /// Build from a flat table already parsed (a file, or values from Python).
    pub fn from_table(mut table: FlatTable, defaults: &(RunSettings, Optimization)) -> Result<Self> {
        for key in RL_ONLY {
            if let Some((_, line)) = table.remove(key) {
                return Err(table.error_at(
                    line,
                    format!("`{key}` is an RL setting (episodes per evaluation); post-training evaluates on eval_file"),
                ));
            }
        }
        trl_names(&mut table)?;
        let run = RunSettings::take(&mut table, &defaults.0)?;
        let model = table.take_table::<ModelConfig>("model")?.unwrap_or_default();
        let data: DataConfig = table.take()?;
        let optimization = table.take_over(&defaults.1)?;
        let method: C = table.take()?;
        let origin = table.origin().to_path_buf();
        table.finish()?;
        let config = RunConfig { run, model, data, optimization, method };
        for (key, set) in [
            ("model_name_or_path (or [model] path)", !config.model.path.as_os_str().is_empty()),
            ("dataset_name (or train_file)", !config.data.train_file.as_os_str().is_empty()),
        ] {
            if !set {
                return Err(rlox_core::Error::Config {
                    path: origin,
                    message: format!("missing required key `{key}`"),
                });
            }
        }
        Ok(config)
    }

    /// The config as one flat TOML table in rlox's names (a run directory's `config.toml`), which
    /// [`RunConfig::load`] reads back to the same values.
    pub fn to_toml(&self) -> Result<String> {
        let mut run =
            toml::Table::try_from(&self.run).map_err(|e| rlox_core::Error::invalid("config", e.to_string()))?;
        for key in RL_ONLY {
            run.remove(key);
        }
        rlox_core::config::flat_to_toml_string(&[
            &run,
            &self.data,
            &self.optimization,
            &self.method,
            &ModelSection { model: &self.model },
        ])
    }
}

fn str_value<'a>(t: &FlatTable, key: &str, v: &'a toml::Value, line: usize) -> Result<&'a str> {
    v.as_str().ok_or_else(|| t.error_at(line, format!("`{key}` must be a string")))
}

/// Rewrite TRL's spellings into rlox's (see the module docs).
pub fn trl_names(t: &mut FlatTable) -> Result<()> {
    t.alias("model_name_or_path", "model.path")?;
    t.alias("dataset_name", "train_file")?;
    if let Some((v, line)) = t.remove("lr_scheduler_type") {
        let constant = match str_value(t, "lr_scheduler_type", &v, line)? {
            "linear" => false,
            "constant" | "constant_with_warmup" => true,
            other => {
                return Err(t.error_at(
                    line,
                    format!(
                        "lr_scheduler_type `{other}` is not supported: use linear, constant or constant_with_warmup"
                    ),
                ))
            }
        };
        t.insert("constant_lr", toml::Value::Boolean(constant), line, "lr_scheduler_type")?;
    }
    if let Some((v, line)) = t.remove("gradient_accumulation_steps") {
        if v.as_integer() != Some(1) {
            return Err(t.error_at(
                line,
                "gradient_accumulation_steps: rlox runs 1 (raise per_device_train_batch_size instead)",
            ));
        }
    }
    optimizer_keys(t)?;
    if let Some((v, line)) = t.remove("warmup_ratio") {
        let ratio = v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
        let key = if t.contains("max_steps") { "max_steps" } else { "total_steps" };
        let max_steps = t.remove(key);
        let (Some(ratio), Some((steps, steps_line))) = (ratio, max_steps) else {
            return Err(t.error_at(line, "warmup_ratio needs a number and `max_steps` (or give warmup_steps)"));
        };
        let n = steps.as_integer().unwrap_or(0);
        t.insert(key, steps, steps_line, "max_steps")?;
        if !(0.0..=1.0).contains(&ratio) {
            return Err(t.error_at(line, format!("warmup_ratio {ratio} is outside [0, 1]")));
        }
        let warmup = (ratio * n as f64).ceil() as i64;
        t.insert("warmup_steps", toml::Value::Integer(warmup), line, "warmup_ratio")?;
    }
    Ok(())
}

/// `optim`, `adam_beta1`, `adam_beta2`, `adam_epsilon`, `weight_decay` into an `[optimizer]` table.
fn optimizer_keys(t: &mut FlatTable) -> Result<()> {
    const KEYS: [(&str, &str); 4] =
        [("adam_beta1", "beta1"), ("adam_beta2", "beta2"), ("adam_epsilon", "eps"), ("weight_decay", "weight_decay")];
    let optim = t.remove("optim");
    let given: Vec<(&str, &str, toml::Value, usize)> =
        KEYS.iter().filter_map(|(k, to)| t.remove(k).map(|(v, l)| (*k, *to, v, l))).collect();
    if optim.is_none() && given.is_empty() {
        return Ok(());
    }
    let line = optim.as_ref().map(|o| o.1).or_else(|| given.first().map(|g| g.3)).unwrap_or(0);
    let kind = match &optim {
        None => "adamw",
        Some((v, l)) => match str_value(t, "optim", v, *l)? {
            "adamw_torch" | "adamw_torch_fused" | "adamw_hf" => "adamw",
            "sgd" => "sgd",
            other => {
                return Err(t.error_at(*l, format!("optim `{other}` is not supported: use adamw_torch or sgd")));
            }
        },
    };
    let mut table = toml::Table::new();
    table.insert("kind".into(), toml::Value::String(kind.into()));
    // transformers' TrainingArguments default weight_decay is 0 (rlox's AdamW default follows PyTorch's 0.01).
    if kind == "adamw" {
        table.insert("weight_decay".into(), toml::Value::Float(0.0));
    }
    for (key, to, v, l) in given {
        if kind == "sgd" && to != "weight_decay" {
            return Err(t.error_at(l, format!("`{key}` is an Adam setting; optim is sgd")));
        }
        table.insert(to.into(), v);
    }
    t.insert("optimizer", toml::Value::Table(table), line, "optim")
}
