//! Post-training configs from TOML files, in TRL's vocabulary as well as rlox's.
//!
//! A TRL user's keys work unchanged where they mean the same thing here (unknown keys stay errors that
//! name the key and its line):
//!
//! | TRL / transformers key | rlox |
//! |---|---|
//! | `model_name_or_path` | `[model] path` |
//! | `dataset_name` (a path, or a Hub id in the local cache) | `train_file` |
//! | `dataset_train_split` | `dataset_train_split` (default `train`) |
//! | `lr_scheduler_type = "linear" \| "constant" \| "constant_with_warmup"` | `constant_lr = false \| true \| true` |
//! | `optim = "adamw_torch" \| "adamw_torch_fused" \| "adamw_hf" \| "sgd"`, `adam_beta1`, `adam_beta2`, `adam_epsilon`, `weight_decay` | `[optimizer] kind, beta1, beta2, eps, weight_decay` |
//! | `warmup_ratio` (with `max_steps`) | `warmup_steps = ceil(ratio * max_steps)` |
//! | `gradient_accumulation_steps = 1` | (the only value rlox runs) |
//!
//! The others (`learning_rate`, `per_device_train_batch_size`, `num_train_epochs`, `max_steps`,
//! `max_grad_norm`, `warmup_steps`, `seed`, `logging_steps`, `save_steps`, `output_dir`, `run_name`,
//! `beta`, `loss_type`, `max_length`, `num_generations`, ...) already have TRL's names.

use rlox_core::config::FlatTable;
use rlox_core::Result;
use serde::de::DeserializeOwned;
use std::path::Path;

/// What every post-training config must have before a run starts.
pub trait RequiredKeys {
    /// `(key as the user writes it, whether it is set)` for each required setting.
    fn required(&self) -> Vec<(&'static str, bool)>;
}

/// Read a post-training config (rlox's or TRL's key names; see the module docs).
pub fn load<T: DeserializeOwned + RequiredKeys>(path: &Path) -> Result<T> {
    let mut table = FlatTable::load(path)?;
    trl_names(&mut table)?;
    let config: T = table.take()?;
    table.finish()?;
    for (key, set) in config.required() {
        if !set {
            return Err(rlox_core::Error::Config {
                path: path.to_path_buf(),
                message: format!("missing required key `{key}`"),
            });
        }
    }
    Ok(config)
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
        let max_steps = t.remove("max_steps");
        let (Some(ratio), Some((steps, steps_line))) = (ratio, max_steps) else {
            return Err(t.error_at(line, "warmup_ratio needs a number and `max_steps` (or give warmup_steps)"));
        };
        let n = steps.as_integer().unwrap_or(0);
        t.insert("max_steps", steps, steps_line, "max_steps")?;
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
