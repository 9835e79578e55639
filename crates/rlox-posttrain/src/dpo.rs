//! Direct Preference Optimization (Rafailov et al. 2023), in TRL's `DPOTrainer` shape.
//!
//! Each step takes `per_device_train_batch_size` preference pairs, runs the chosen and rejected
//! sequences through the policy as one batch (chosen rows first, as TRL's `concatenated_forward`),
//! sums each completion's token log-probs, gets the reference log-probs from a frozen copy of the
//! initial policy (or a separate `ref_model`, or values precomputed once before training with
//! `precompute_ref_log_probs`), and applies the loss of [`crate::losses::dpo_loss_tensor`] (batch mean).
//! Logged with TRL's names: `loss`, `rewards/chosen`, `rewards/rejected`, `rewards/accuracies`,
//! `rewards/margins`, `logps/chosen`, `logps/rejected`, plus `grad_norm` and `learning_rate`.
//!
//! Defaults are TRL 1.x's `DPOConfig` / `TrainingArguments`: beta 0.1, sigmoid loss, learning rate 1e-6,
//! AdamW (weight decay 0), linear decay, no warm-up, batch 8, gradient clipping at norm 1.

use crate::common::{learning_rate, optimizer_step, ModelConfig, Run};
use crate::datasets::{preference_examples, tokenize_pair, Dataset, PaddedBatch, Truncation};
use crate::logprobs::{sequence_logps, tensor1, to_f64};
use crate::losses::{dpo_loss_tensor, DpoBatch, DpoLossType, DpoMetrics};
use crate::{Error, Result};
use rand::seq::SliceRandom;
use rlox_core::seeding::{derive_seed, rng_from_seed};
use rlox_lm::CausalLm;
use rlox_nn::{DeviceKind, Module, Optimizer, OptimizerConfig, Tensor};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;

/// DPO settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DpoConfig {
    /// The policy (and, unless `ref_model` is set, the reference).
    pub model: ModelConfig,
    /// A separate reference model directory.
    pub ref_model: Option<PathBuf>,
    /// Preference dataset (`.jsonl`, `.json`, `.parquet` or a directory).
    pub train_file: PathBuf,
    /// The split of a dataset directory or cached Hub dataset. *TRL*: `dataset_train_split`, train.
    pub dataset_train_split: String,
    /// KL strength. *TRL*: 0.1.
    pub beta: f64,
    /// The loss. *TRL*: sigmoid.
    pub loss_type: DpoLossType,
    /// Label noise for `robust` (and conservative DPO with `sigmoid`). *TRL*: 0.
    pub label_smoothing: f64,
    /// Compute reference log-probs once before training and drop the reference model. *TRL*: false.
    pub precompute_ref_log_probs: bool,
    /// Keep the last this many prompt tokens.
    pub max_prompt_length: Option<usize>,
    /// Keep the first this many completion tokens.
    pub max_completion_length: Option<usize>,
    /// Prompt plus completion at most this long. *TRL*: 1024.
    pub max_length: Option<usize>,
    /// Pairs per step. *TRL*: 8.
    pub per_device_train_batch_size: usize,
    /// Peak learning rate. *TRL*: 1e-6.
    pub learning_rate: f64,
    /// Warm-up steps. *TRL*: 0.
    pub warmup_steps: u64,
    /// Keep the learning rate constant after warm-up instead of decaying linearly. *TRL*: linear.
    pub constant_lr: bool,
    /// Optimizer steps (0: `num_train_epochs` passes over the data).
    pub max_steps: u64,
    /// Passes over the data when `max_steps` is 0. *TRL*: 3.
    pub num_train_epochs: u64,
    /// Global gradient-norm clip (0: off). *TRL*: 1.
    pub max_grad_norm: f64,
    /// The optimizer. *TRL*: AdamW, weight decay 0.
    pub optimizer: OptimizerConfig,
    /// Shuffle the pairs each epoch.
    pub shuffle: bool,
    /// Seed (shuffling).
    pub seed: u64,
    /// Log every this many steps.
    pub logging_steps: u64,
    /// Checkpoint every this many steps (0: only at the end).
    pub save_steps: u64,
    /// Where run directories go.
    pub output_dir: PathBuf,
    /// Run name prefix.
    pub run_name: String,
    /// Device.
    pub device: DeviceKind,
}

impl Default for DpoConfig {
    fn default() -> Self {
        DpoConfig {
            model: ModelConfig::default(),
            ref_model: None,
            train_file: PathBuf::new(),
            dataset_train_split: "train".into(),
            beta: 0.1,
            loss_type: DpoLossType::Sigmoid,
            label_smoothing: 0.0,
            precompute_ref_log_probs: false,
            max_prompt_length: None,
            max_completion_length: None,
            max_length: Some(1024),
            per_device_train_batch_size: 8,
            learning_rate: 1e-6,
            warmup_steps: 0,
            constant_lr: false,
            max_steps: 0,
            num_train_epochs: 3,
            max_grad_norm: 1.0,
            optimizer: OptimizerConfig::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 },
            shuffle: true,
            seed: 42,
            logging_steps: 10,
            save_steps: 0,
            output_dir: PathBuf::from("runs"),
            run_name: "dpo".into(),
            device: DeviceKind::Cpu,
        }
    }
}

impl DpoConfig {
    /// Check the values; errors name the field.
    pub fn validate(&self) -> Result<()> {
        let check =
            |ok: bool, what: &str, why: &str| if ok { Ok(()) } else { Err(Error::invalid(format!("dpo.{what}"), why)) };
        check(self.beta > 0.0, "beta", "must be > 0")?;
        check((0.0..0.5).contains(&self.label_smoothing), "label_smoothing", "must be in [0, 0.5)")?;
        check(self.per_device_train_batch_size > 0, "per_device_train_batch_size", "must be > 0")?;
        check(self.learning_rate >= 0.0, "learning_rate", "must be >= 0")?;
        check(self.max_steps > 0 || self.num_train_epochs > 0, "max_steps", "set max_steps or num_train_epochs")?;
        check(self.logging_steps > 0, "logging_steps", "must be > 0")
    }

    fn truncation(&self) -> Truncation {
        Truncation {
            max_prompt_length: self.max_prompt_length,
            max_completion_length: self.max_completion_length,
            max_length: self.max_length,
        }
    }
}

/// One tokenised pair.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenizedPair {
    /// Prompt ids.
    pub prompt: Vec<u32>,
    /// Chosen completion ids.
    pub chosen: Vec<u32>,
    /// Rejected completion ids.
    pub rejected: Vec<u32>,
    /// Optional margin (reward model).
    pub margin: Option<f64>,
}

/// Tokenise a preference dataset (errors name the row and column).
pub fn tokenize_preferences(
    ds: &Dataset,
    tok: &rlox_lm::LmTokenizer,
    trunc: &Truncation,
) -> Result<Vec<TokenizedPair>> {
    let ex = preference_examples(ds)?;
    ex.iter()
        .enumerate()
        .map(|(i, e)| {
            let loc = &ds.locations[i];
            let (p1, c1) = tokenize_pair(tok, &e.prompt, &e.chosen, trunc, loc, "chosen")?;
            let (p2, r1) = tokenize_pair(tok, &e.prompt, &e.rejected, trunc, loc, "rejected")?;
            // The shared prompt is the common prefix of both (TRL: the min of the two prompt lengths).
            let m = p1.iter().zip(&p2).take_while(|(a, b)| a == b).count();
            let p = p1[..m].to_vec();
            let c: Vec<u32> = p1[m..].iter().chain(&c1).copied().collect();
            let r: Vec<u32> = p2[m..].iter().chain(&r1).copied().collect();
            if p.is_empty() {
                return Err(Error::invalid(loc.clone(), "empty prompt: the completion needs a token to condition on"));
            }
            Ok(TokenizedPair { prompt: p, chosen: c, rejected: r, margin: e.margin })
        })
        .collect()
}

/// The chosen rows then the rejected rows of `pairs` as one padded batch.
pub fn concatenated_batch(pairs: &[&TokenizedPair], pad: u32) -> PaddedBatch {
    let rows: Vec<(Vec<u32>, Vec<u32>)> = pairs
        .iter()
        .map(|p| (p.prompt.clone(), p.chosen.clone()))
        .chain(pairs.iter().map(|p| (p.prompt.clone(), p.rejected.clone())))
        .collect();
    PaddedBatch::new(&rows, pad)
}

/// What one DPO step reports.
#[derive(Debug, Clone, PartialEq)]
pub struct DpoStepStats {
    /// Batch-mean loss.
    pub loss: f64,
    /// The metrics with TRL's names.
    pub metrics: DpoMetrics,
    /// Reference log-probs `(chosen, rejected)` per pair.
    pub ref_logps: Vec<(f64, f64)>,
    /// Gradient norm before clipping (0 before a step).
    pub grad_norm: f64,
    /// Tokens in the batch (prompt + completion, both sides).
    pub tokens: usize,
}

/// The DPO trainer.
pub struct DpoTrainer {
    config: DpoConfig,
    /// The policy being trained.
    pub model: CausalLm,
    reference: Option<CausalLm>,
    precomputed: Option<Vec<(f64, f64)>>,
    /// The tokenised pairs.
    pub pairs: Vec<TokenizedPair>,
    pad: u32,
    optimizer: Optimizer,
    step: u64,
    tokenizer_dir: PathBuf,
}

impl DpoTrainer {
    /// Load the model(s) and the dataset named in `config`.
    pub fn new(config: &DpoConfig) -> Result<Self> {
        config.validate()?;
        let device = rlox_nn::train_device(config.device, derive_seed(config.seed, 1))?;
        let loaded = config.model.load(&device)?;
        let ds = Dataset::open(&config.train_file, &config.dataset_train_split)?;
        let pairs = tokenize_preferences(&ds, &loaded.tokenizer, &config.truncation())?;
        let reference = match &config.ref_model {
            Some(p) => Some(rlox_lm::load_model(p, &device.clone().inner())?),
            None => None,
        };
        Self::from_parts(config, loaded.model, reference, pairs, loaded.tokenizer.pad_token_id, loaded.tokenizer_dir)
    }

    /// A trainer from a model already loaded on an autodiff device and tokenised pairs; `reference`
    /// `None` freezes a copy of `model`.
    pub fn from_parts(
        config: &DpoConfig,
        model: CausalLm,
        reference: Option<CausalLm>,
        pairs: Vec<TokenizedPair>,
        pad: u32,
        tokenizer_dir: PathBuf,
    ) -> Result<Self> {
        config.validate()?;
        if pairs.is_empty() {
            return Err(Error::invalid("dpo.train_file", "the dataset has no pairs"));
        }
        let reference = Some(reference.unwrap_or_else(|| model.valid()));
        let mut t = DpoTrainer {
            config: config.clone(),
            model,
            reference,
            precomputed: None,
            pairs,
            pad,
            optimizer: config.optimizer.build(),
            step: 0,
            tokenizer_dir,
        };
        if config.precompute_ref_log_probs {
            let all: Vec<usize> = (0..t.pairs.len()).collect();
            let mut v = Vec::new();
            for chunk in all.chunks(config.per_device_train_batch_size) {
                v.extend(t.reference_logps(chunk)?);
            }
            t.precomputed = Some(v);
            t.reference = None;
        }
        Ok(t)
    }

    fn reference_logps(&self, idx: &[usize]) -> Result<Vec<(f64, f64)>> {
        if let Some(pre) = &self.precomputed {
            return Ok(idx.iter().map(|&i| pre[i]).collect());
        }
        let r = self.reference.as_ref().expect("a reference model or precomputed log-probs");
        let pairs: Vec<&TokenizedPair> = idx.iter().map(|&i| &self.pairs[i]).collect();
        let lp = to_f64(sequence_logps(r, &concatenated_batch(&pairs, self.pad))?);
        let n = idx.len();
        Ok((0..n).map(|k| (lp[k], lp[n + k])).collect())
    }

    /// The loss tensor and statistics on the pairs `idx`, without stepping.
    pub fn compute_loss(&self, idx: &[usize]) -> Result<(Tensor<1>, DpoStepStats)> {
        let pairs: Vec<&TokenizedPair> = idx.iter().map(|&i| &self.pairs[i]).collect();
        let n = pairs.len();
        let batch = concatenated_batch(&pairs, self.pad);
        let logps = sequence_logps(&self.model, &batch)?;
        let refs = self.reference_logps(idx)?;
        let device = logps.device();
        let pc = logps.clone().narrow(0, 0, n);
        let pr = logps.clone().narrow(0, n, n);
        let (rc, rr): (Vec<f64>, Vec<f64>) = refs.iter().copied().unzip();
        let lc: Vec<f64> = pairs.iter().map(|p| p.chosen.len() as f64).collect();
        let lr: Vec<f64> = pairs.iter().map(|p| p.rejected.len() as f64).collect();
        let c = &self.config;
        let losses = dpo_loss_tensor(
            pc,
            pr,
            tensor1(&rc, &device),
            tensor1(&rr, &device),
            tensor1(&lc, &device),
            tensor1(&lr, &device),
            c.beta,
            c.loss_type,
            c.label_smoothing,
        );
        let loss = losses.mean();
        let lp = to_f64(logps.detach());
        let (pcv, prv) = (lp[..n].to_vec(), lp[n..].to_vec());
        let metrics = DpoMetrics::compute(&DpoBatch { pc: &pcv, pr: &prv, rc: &rc, rr: &rr, lc: &lc, lr: &lr }, c.beta);
        let tokens = batch.valid.iter().flatten().filter(|&&v| v).count();
        let value = loss.clone().detach().into_scalar::<f32>() as f64;
        Ok((loss, DpoStepStats { loss: value, metrics, ref_logps: refs, grad_norm: 0.0, tokens }))
    }

    /// One optimizer step on the pairs `idx`.
    pub fn train_step(&mut self, idx: &[usize], lr: f64) -> Result<DpoStepStats> {
        let (loss, mut stats) = self.compute_loss(idx)?;
        let (model, norm) =
            optimizer_step(self.model.clone(), &loss, &mut self.optimizer, lr, self.config.max_grad_norm, "dpo")?;
        self.model = model;
        self.step += 1;
        stats.grad_norm = norm;
        Ok(stats)
    }

    /// Total optimizer steps of the configured run.
    pub fn total_steps(&self) -> u64 {
        if self.config.max_steps > 0 {
            self.config.max_steps
        } else {
            let per_epoch = self.pairs.len().div_ceil(self.config.per_device_train_batch_size) as u64;
            per_epoch * self.config.num_train_epochs
        }
    }

    /// Train, logging into a new run directory; returns the summary.
    pub fn train(&mut self) -> Result<serde_json::Value> {
        let c = self.config.clone();
        let mut run = Run::create(&c.output_dir, &c.run_name, &c, &self.tokenizer_dir)?;
        let total = self.total_steps();
        let mut rng = rng_from_seed(derive_seed(c.seed, 2));
        let mut order: Vec<usize> = Vec::new();
        let t0 = Instant::now();
        let mut last = None;
        let mut tokens = 0usize;
        while self.step < total {
            while order.len() < c.per_device_train_batch_size {
                let mut epoch: Vec<usize> = (0..self.pairs.len()).collect();
                if c.shuffle {
                    epoch.shuffle(&mut rng);
                }
                order.extend(epoch);
            }
            let idx: Vec<usize> = order.drain(..c.per_device_train_batch_size.min(order.len())).collect();
            let lr = learning_rate(c.learning_rate, self.step, total, c.warmup_steps, c.constant_lr);
            let ts = Instant::now();
            let stats = self.train_step(&idx, lr)?;
            tokens += stats.tokens;
            if self.step.is_multiple_of(c.logging_steps) || self.step == total {
                let mut m: Vec<(&str, f64)> =
                    vec![("loss", stats.loss), ("grad_norm", stats.grad_norm), ("learning_rate", lr)];
                m.extend(stats.metrics.named());
                m.push(("step_time", ts.elapsed().as_secs_f64()));
                run.log(self.step, &m)?;
            }
            if c.save_steps > 0 && self.step.is_multiple_of(c.save_steps) {
                run.checkpoint(&self.model, &format!("step-{}", self.step))?;
            }
            last = Some(stats);
        }
        let wall = t0.elapsed().as_secs_f64();
        let ckpt = run.checkpoint(&self.model, "final")?;
        let last = last.ok_or_else(|| Error::invalid("dpo", "no steps were run"))?;
        let summary = serde_json::json!({
            "method": "dpo",
            "run_dir": run.dir.path().display().to_string(),
            "checkpoint": ckpt.display().to_string(),
            "steps": self.step,
            "final_loss": last.loss,
            "rewards/accuracies": last.metrics.rewards_accuracies,
            "rewards/margins": last.metrics.rewards_margins,
            "wall_seconds": wall,
            "seconds_per_step": wall / self.step.max(1) as f64,
            "tokens_per_second": tokens as f64 / wall.max(1e-9),
        });
        run.finish(&summary)?;
        Ok(summary)
    }
}

impl crate::config::RequiredKeys for DpoConfig {
    fn required(&self) -> Vec<(&'static str, bool)> {
        vec![
            ("model_name_or_path (or [model] path)", !self.model.path.as_os_str().is_empty()),
            ("dataset_name (or train_file)", !self.train_file.as_os_str().is_empty()),
        ]
    }
}
