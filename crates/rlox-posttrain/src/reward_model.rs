//! Reward modelling with the Bradley-Terry loss, in TRL's `RewardTrainer` shape.
//!
//! The reward model is the causal LM plus a scalar head read at each sequence's last real token.
//! `rlox-lm` exposes logits, not hidden states, so the head is a linear map of the last token's
//! *logits* (`vocab -> 1`); with tied embeddings that is `h W_e^T w`, a linear function of the hidden
//! state `h` that spans all of them whenever the vocabulary is at least the hidden size, so it is as
//! expressive as transformers' `score` head on `h` (but its weights are not in that layout: checkpoints
//! hold the LM in Hugging Face layout plus `score.safetensors`).
//!
//! Loss `-log σ(r_c - r_r - margin)` (margin from the optional `margin` column), plus
//! `center_rewards_coefficient * mean((r_c + r_r)^2)` when set. Logged: `loss`, `accuracy`, `margin`
//! (mean `r_c - r_r`), `grad_norm`, `learning_rate`. Defaults: batch 8, one epoch, AdamW (weight decay 0),
//! learning rate 1e-5.

use crate::common::{learning_rate, ModelConfig, Run};
use crate::datasets::{Dataset, PaddedBatch, Truncation};
use crate::dpo::{concatenated_batch, tokenize_preferences, TokenizedPair};
use crate::logprobs::{tensor1, to_f64};
use crate::losses::{reward_accuracy, reward_model_loss_tensor};
use crate::{Error, Result};
use rand::seq::SliceRandom;
use rlox_core::seeding::{derive_seed, rng_from_seed};
use rlox_lm::model::Linear;
use rlox_lm::CausalLm;
use rlox_nn::burn;
use rlox_nn::{DeviceKind, Int, Module, Optimizer, OptimizerConfig, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// Reward-model settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewardConfig {
    /// The base model.
    pub model: ModelConfig,
    /// Preference data (`prompt`, `chosen`, `rejected`, optional `margin`).
    pub train_file: PathBuf,
    /// The split of a dataset directory or cached Hub dataset. *TRL*: `dataset_train_split`, train.
    pub dataset_train_split: String,
    /// Reward-centering coefficient (Eisenstein et al. 2023); `None`: off. *TRL*: None.
    pub center_rewards_coefficient: Option<f64>,
    /// Prompt plus completion at most this long. *TRL*: 1024.
    pub max_length: Option<usize>,
    /// Pairs per step. *TRL*: 8.
    pub per_device_train_batch_size: usize,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Warm-up steps.
    pub warmup_steps: u64,
    /// Optimizer steps (0: `num_train_epochs` passes).
    pub max_steps: u64,
    /// Passes over the data when `max_steps` is 0.
    pub num_train_epochs: u64,
    /// Global gradient-norm clip (0: off).
    pub max_grad_norm: f64,
    /// The optimizer.
    pub optimizer: OptimizerConfig,
    /// Seed (head initialisation, shuffling).
    pub seed: u64,
    /// Log every this many steps.
    pub logging_steps: u64,
    /// Where run directories go.
    pub output_dir: PathBuf,
    /// Run name prefix.
    pub run_name: String,
    /// Device.
    pub device: DeviceKind,
}

impl Default for RewardConfig {
    fn default() -> Self {
        RewardConfig {
            model: ModelConfig::default(),
            train_file: PathBuf::new(),
            dataset_train_split: "train".into(),
            center_rewards_coefficient: None,
            max_length: Some(1024),
            per_device_train_batch_size: 8,
            learning_rate: 1e-5,
            warmup_steps: 0,
            max_steps: 0,
            num_train_epochs: 1,
            max_grad_norm: 1.0,
            optimizer: OptimizerConfig::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 },
            seed: 42,
            logging_steps: 10,
            output_dir: PathBuf::from("runs"),
            run_name: "reward".into(),
            device: DeviceKind::Cpu,
        }
    }
}

/// A causal LM with a scalar head on the last token's logits.
#[derive(Module, Debug)]
pub struct RewardModel {
    /// The language model.
    pub lm: CausalLm,
    /// `vocab -> 1`.
    pub score: Linear,
}

impl RewardModel {
    /// Rewards `[B]` of the sequences of `batch` (read at each row's last real token).
    pub fn rewards(&self, batch: &PaddedBatch) -> Result<Tensor<1>> {
        let logits = self.lm.forward(&batch.forward_input(), None)?.logits;
        let [b, _, v] = logits.dims();
        let last: Vec<i64> = batch
            .valid
            .iter()
            .map(|row| row.iter().rposition(|&x| x).unwrap_or(0) as i64)
            .flat_map(|i| std::iter::repeat_n(i, v))
            .collect();
        let idx = Tensor::<3, Int>::from_data(TensorData::new(last, [b, 1, v]), &logits.device());
        let h = logits.gather(1, idx).reshape([b, v]);
        Ok(self.score.forward2(h).reshape([b]))
    }
}

/// The reward-model trainer.
pub struct RewardTrainer {
    config: RewardConfig,
    /// The model.
    pub model: RewardModel,
    pairs: Vec<TokenizedPair>,
    pad: u32,
    optimizer: Optimizer,
    step: u64,
    tokenizer_dir: PathBuf,
}

impl RewardTrainer {
    /// Load the model and data named in `config`.
    pub fn new(config: &RewardConfig) -> Result<Self> {
        if config.per_device_train_batch_size == 0 || config.logging_steps == 0 {
            return Err(Error::invalid("reward", "per_device_train_batch_size and logging_steps must be > 0"));
        }
        let device = rlox_nn::train_device(config.device, derive_seed(config.seed, 1))?;
        let loaded = config.model.load(&device)?;
        let ds = Dataset::open(&config.train_file, &config.dataset_train_split)?;
        let trunc = Truncation { max_length: config.max_length, ..Default::default() };
        let pairs = tokenize_preferences(&ds, &loaded.tokenizer, &trunc)?;
        if pairs.is_empty() {
            return Err(Error::invalid("reward.train_file", "no pairs"));
        }
        let v = loaded.model.config.vocab_size;
        let score = Linear::new(v, 1, true, 1.0 / (v as f64).sqrt(), &device);
        Ok(RewardTrainer {
            config: config.clone(),
            model: RewardModel { lm: loaded.model, score },
            pairs,
            pad: loaded.tokenizer.pad_token_id,
            optimizer: config.optimizer.build(),
            step: 0,
            tokenizer_dir: loaded.tokenizer_dir,
        })
    }

    /// Train; returns the summary.
    pub fn train(&mut self) -> Result<serde_json::Value> {
        let c = self.config.clone();
        let mut run = Run::create(&c.output_dir, &c.run_name, &c, &self.tokenizer_dir)?;
        let bs = c.per_device_train_batch_size;
        let total =
            if c.max_steps > 0 { c.max_steps } else { self.pairs.len().div_ceil(bs) as u64 * c.num_train_epochs };
        let mut rng = rng_from_seed(derive_seed(c.seed, 2));
        let mut order = Vec::new();
        let t0 = Instant::now();
        let (mut last_loss, mut last_acc) = (f64::NAN, f64::NAN);
        while self.step < total {
            while order.len() < bs {
                let mut e: Vec<usize> = (0..self.pairs.len()).collect();
                e.shuffle(&mut rng);
                order.extend(e);
            }
            let idx: Vec<usize> = order.drain(..bs.min(order.len())).collect();
            let pairs: Vec<&TokenizedPair> = idx.iter().map(|&i| &self.pairs[i]).collect();
            let n = pairs.len();
            let batch = concatenated_batch(&pairs, self.pad);
            let r = self.model.rewards(&batch)?;
            let (rc, rr) = (r.clone().narrow(0, 0, n), r.clone().narrow(0, n, n));
            let margins: Option<Vec<f64>> = pairs
                .iter()
                .any(|p| p.margin.is_some())
                .then(|| pairs.iter().map(|p| p.margin.unwrap_or(0.0)).collect());
            let device = r.device();
            let loss = reward_model_loss_tensor(
                rc,
                rr,
                margins.as_ref().map(|m| tensor1(m, &device)),
                c.center_rewards_coefficient,
            );
            let rv = to_f64(r.detach());
            let (cv, jv) = (&rv[..n], &rv[n..]);
            last_acc = reward_accuracy(cv, jv);
            last_loss = loss.clone().detach().into_scalar::<f32>() as f64;
            if !last_loss.is_finite() {
                return Err(Error::invalid("reward", format!("the loss became {last_loss} at step {}", self.step + 1)));
            }
            let lr = learning_rate(c.learning_rate, self.step, total, c.warmup_steps, false);
            let mut grads = rlox_nn::backward(&loss, &self.model);
            let norm = if c.max_grad_norm > 0.0 {
                rlox_nn::clip_grad_norm(&self.model, &mut grads, c.max_grad_norm)
            } else {
                rlox_nn::global_grad_norm(&self.model, &grads)
            };
            self.model = self.optimizer.step(lr, self.model.clone(), grads);
            self.step += 1;
            if self.step.is_multiple_of(c.logging_steps) || self.step == total {
                let margin = cv.iter().zip(jv).map(|(a, b)| a - b).sum::<f64>() / n as f64;
                run.log(
                    self.step,
                    &[
                        ("loss", last_loss),
                        ("accuracy", last_acc),
                        ("margin", margin),
                        ("grad_norm", norm),
                        ("learning_rate", lr),
                    ],
                )?;
            }
        }
        let ckpt = run.checkpoint(&self.model.lm, "final")?;
        rlox_nn::save_safetensors(&self.model.score, ckpt.join("score.safetensors"), &BTreeMap::new())?;
        let wall = t0.elapsed().as_secs_f64();
        let summary = serde_json::json!({
            "method": "reward",
            "run_dir": run.dir.path().display().to_string(),
            "checkpoint": ckpt.display().to_string(),
            "steps": self.step,
            "final_loss": last_loss,
            "accuracy": last_acc,
            "wall_seconds": wall,
        });
        run.finish(&summary)?;
        Ok(summary)
    }
}

impl crate::config::RequiredKeys for RewardConfig {
    fn required(&self) -> Vec<(&'static str, bool)> {
        vec![
            ("model_name_or_path (or [model] path)", !self.model.path.as_os_str().is_empty()),
            ("dataset_name (or train_file)", !self.train_file.as_os_str().is_empty()),
        ]
    }
}
