//! Supervised fine-tuning, in TRL's `SFTTrainer` shape.
//!
//! Rows are prompt-completion pairs, conversations (`messages`) or plain `text` (see [`crate::datasets`]).
//! The loss is the token-mean cross-entropy over the batch; with `completion_only_loss` (the default,
//! as TRL for prompt-completion data) only completion tokens count, otherwise every token after the
//! first. With `packing`, tokenised examples are concatenated (first-fit-decreasing) into rows of
//! `max_length` tokens to avoid padding; as in TRL's packing without `padding_free`, positions run on
//! across the examples of a row and attention is not reset between them (a packed example can attend
//! to the one before it; keep packing off when that matters).
//!
//! Logged: `loss`, `grad_norm`, `learning_rate`, `num_tokens` (tokens seen so far, TRL's name).
//! Defaults are TRL 1.x's `SFTConfig`: learning rate 2e-5, AdamW (weight decay 0), linear decay,
//! batch 8, `max_length` 1024, 3 epochs, gradient clipping at norm 1.

use crate::common::{learning_rate, optimizer_step, ModelConfig, Run};
use crate::datasets::{sft_examples, tokenize_pair, Dataset, PaddedBatch, Text, Truncation};
use crate::logprobs::{completion_logps, mask_tensor};
use crate::{Error, Result};
use rand::seq::SliceRandom;
use rlox_core::seeding::{derive_seed, rng_from_seed};
use rlox_lm::{CausalLm, LmTokenizer};
use rlox_nn::{DeviceKind, Optimizer, OptimizerConfig, Tensor};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;

/// SFT settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SftConfig {
    /// The model (a directory, or `init` for training from scratch).
    pub model: ModelConfig,
    /// Training data.
    pub train_file: PathBuf,
    /// The split of a dataset directory or cached Hub dataset. *TRL*: `dataset_train_split`, train.
    pub dataset_train_split: String,
    /// Loss on completion tokens only. *TRL*: true for prompt-completion data.
    pub completion_only_loss: bool,
    /// Pack examples into rows of `max_length`. *TRL*: false.
    pub packing: bool,
    /// Tokens per example (and per packed row). *TRL*: 1024.
    pub max_length: Option<usize>,
    /// Examples (or packed rows) per step. *TRL*: 8.
    pub per_device_train_batch_size: usize,
    /// Peak learning rate. *TRL*: 2e-5.
    pub learning_rate: f64,
    /// Warm-up steps.
    pub warmup_steps: u64,
    /// Constant learning rate after warm-up (else linear decay).
    pub constant_lr: bool,
    /// Optimizer steps (0: `num_train_epochs` passes).
    pub max_steps: u64,
    /// Passes over the data when `max_steps` is 0. *TRL*: 3.
    pub num_train_epochs: u64,
    /// Global gradient-norm clip (0: off). *TRL*: 1.
    pub max_grad_norm: f64,
    /// The optimizer. *TRL*: AdamW, weight decay 0.
    pub optimizer: OptimizerConfig,
    /// Seed (initialisation, shuffling).
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

impl Default for SftConfig {
    fn default() -> Self {
        SftConfig {
            model: ModelConfig::default(),
            train_file: PathBuf::new(),
            dataset_train_split: "train".into(),
            completion_only_loss: true,
            packing: false,
            max_length: Some(1024),
            per_device_train_batch_size: 8,
            learning_rate: 2e-5,
            warmup_steps: 0,
            constant_lr: false,
            max_steps: 0,
            num_train_epochs: 3,
            max_grad_norm: 1.0,
            optimizer: OptimizerConfig::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 },
            seed: 42,
            logging_steps: 10,
            save_steps: 0,
            output_dir: PathBuf::from("runs"),
            run_name: "sft".into(),
            device: DeviceKind::Cpu,
        }
    }
}

/// A token sequence with a loss mask (`loss[i]`: predicting `ids[i]` counts; `loss[0]` is unused).
#[derive(Debug, Clone, PartialEq)]
pub struct LossSeq {
    /// Token ids.
    pub ids: Vec<u32>,
    /// Loss mask.
    pub loss: Vec<bool>,
}

/// Tokenise SFT rows into sequences with loss masks.
pub fn tokenize_sft(
    ds: &Dataset,
    tok: &LmTokenizer,
    completion_only: bool,
    max_length: Option<usize>,
) -> Result<Vec<LossSeq>> {
    let trunc = Truncation { max_length, ..Default::default() };
    sft_examples(ds)?
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let loc = &ds.locations[i];
            let lm_row = matches!(&e.prompt, Text::Plain(s) if s.is_empty());
            let (p, c) = tokenize_pair(tok, &e.prompt, &e.completion, &trunc, loc, "completion")?;
            let mut ids = p.clone();
            ids.extend(&c);
            if ids.len() < 2 {
                return Err(Error::invalid(loc.clone(), "fewer than two tokens: nothing to predict"));
            }
            let loss: Vec<bool> =
                (0..ids.len()).map(|k| k > 0 && (lm_row || !completion_only || k >= p.len())).collect();
            Ok(LossSeq { ids, loss })
        })
        .collect()
}

/// Pack sequences into rows of at most `max_length` tokens (first-fit-decreasing by length).
pub fn pack(seqs: &[LossSeq], max_length: usize) -> Vec<LossSeq> {
    let mut order: Vec<usize> = (0..seqs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(seqs[i].ids.len()));
    let mut bins: Vec<LossSeq> = Vec::new();
    for i in order {
        let s = &seqs[i];
        let take = s.ids.len().min(max_length);
        match bins.iter_mut().find(|b| b.ids.len() + take <= max_length) {
            Some(b) => {
                b.ids.extend(&s.ids[..take]);
                b.loss.extend(&s.loss[..take]);
            }
            None => bins.push(LossSeq { ids: s.ids[..take].to_vec(), loss: s.loss[..take].to_vec() }),
        }
    }
    bins
}

/// Sequences as a padded batch whose "completion" is everything after the first token.
pub fn loss_batch(seqs: &[&LossSeq], pad: u32) -> PaddedBatch {
    let pairs: Vec<(Vec<u32>, Vec<u32>)> = seqs.iter().map(|s| (s.ids[..1].to_vec(), s.ids[1..].to_vec())).collect();
    let mut b = PaddedBatch::new(&pairs, pad);
    for (row, s) in b.completion_mask.iter_mut().zip(seqs) {
        for (j, m) in row.iter_mut().enumerate() {
            if j + 1 < s.loss.len() && !s.loss[j + 1] {
                *m = 0.0;
            }
        }
    }
    b
}

/// Token-mean negative log-likelihood of a batch (and the number of loss tokens).
pub fn nll_loss(model: &CausalLm, batch: &PaddedBatch) -> Result<(Tensor<1>, usize)> {
    let lp = completion_logps(model, batch, 1.0)?;
    let mask = mask_tensor(batch, &lp.device());
    let n: usize = batch.completion_mask.iter().flatten().filter(|&&m| m > 0.0).count();
    if n == 0 {
        return Err(Error::invalid("sft batch", "no tokens carry loss (all completions masked or truncated away)"));
    }
    Ok(((lp * mask).sum().neg().div_scalar(n as f64), n))
}

/// The SFT trainer.
pub struct SftTrainer {
    config: SftConfig,
    /// The model.
    pub model: CausalLm,
    /// Training sequences (packed if configured).
    pub seqs: Vec<LossSeq>,
    pad: u32,
    optimizer: Optimizer,
    step: u64,
    tokenizer_dir: PathBuf,
}

impl SftTrainer {
    /// Load the model and data named in `config`.
    pub fn new(config: &SftConfig) -> Result<Self> {
        if config.per_device_train_batch_size == 0 || config.logging_steps == 0 {
            return Err(Error::invalid("sft", "per_device_train_batch_size and logging_steps must be > 0"));
        }
        let device = rlox_nn::train_device(config.device, derive_seed(config.seed, 1))?;
        let loaded = config.model.load(&device)?;
        let ds = Dataset::open(&config.train_file, &config.dataset_train_split)?;
        let mut seqs = tokenize_sft(&ds, &loaded.tokenizer, config.completion_only_loss, config.max_length)?;
        if config.packing {
            let m = config.max_length.ok_or_else(|| Error::invalid("sft.max_length", "packing needs max_length"))?;
            seqs = pack(&seqs, m);
        }
        if seqs.is_empty() {
            return Err(Error::invalid("sft.train_file", "no examples"));
        }
        Ok(SftTrainer {
            config: config.clone(),
            model: loaded.model,
            seqs,
            pad: loaded.tokenizer.pad_token_id,
            optimizer: config.optimizer.build(),
            step: 0,
            tokenizer_dir: loaded.tokenizer_dir,
        })
    }

    /// Total optimizer steps.
    pub fn total_steps(&self) -> u64 {
        if self.config.max_steps > 0 {
            self.config.max_steps
        } else {
            self.seqs.len().div_ceil(self.config.per_device_train_batch_size) as u64 * self.config.num_train_epochs
        }
    }

    /// Train; returns the summary (with `checkpoint`, the final model directory).
    pub fn train(&mut self) -> Result<serde_json::Value> {
        let c = self.config.clone();
        let mut run = Run::create(&c.output_dir, &c.run_name, &c, &self.tokenizer_dir)?;
        let total = self.total_steps();
        let mut rng = rng_from_seed(derive_seed(c.seed, 2));
        let mut order: Vec<usize> = Vec::new();
        let t0 = Instant::now();
        let (mut tokens, mut last) = (0usize, f64::NAN);
        while self.step < total {
            while order.len() < c.per_device_train_batch_size {
                let mut e: Vec<usize> = (0..self.seqs.len()).collect();
                e.shuffle(&mut rng);
                order.extend(e);
            }
            let idx: Vec<usize> = order.drain(..c.per_device_train_batch_size).collect();
            let seqs: Vec<&LossSeq> = idx.iter().map(|&i| &self.seqs[i]).collect();
            let batch = loss_batch(&seqs, self.pad);
            let lr = learning_rate(c.learning_rate, self.step, total, c.warmup_steps, c.constant_lr);
            let (loss, _) = nll_loss(&self.model, &batch)?;
            last = loss.clone().detach().into_scalar::<f32>() as f64;
            let (model, norm) =
                optimizer_step(self.model.clone(), &loss, &mut self.optimizer, lr, c.max_grad_norm, "sft")?;
            self.model = model;
            self.step += 1;
            tokens += seqs.iter().map(|s| s.ids.len()).sum::<usize>();
            if self.step.is_multiple_of(c.logging_steps) || self.step == total {
                run.log(
                    self.step,
                    &[("loss", last), ("grad_norm", norm), ("learning_rate", lr), ("num_tokens", tokens as f64)],
                )?;
            }
            if c.save_steps > 0 && self.step.is_multiple_of(c.save_steps) {
                run.checkpoint(&self.model, &format!("step-{}", self.step))?;
            }
        }
        let wall = t0.elapsed().as_secs_f64();
        let ckpt = run.checkpoint(&self.model, "final")?;
        let summary = serde_json::json!({
            "method": "sft",
            "run_dir": run.dir.path().display().to_string(),
            "checkpoint": ckpt.display().to_string(),
            "steps": self.step,
            "final_loss": last,
            "wall_seconds": wall,
            "tokens_per_second": tokens as f64 / wall.max(1e-9),
        });
        run.finish(&summary)?;
        Ok(summary)
    }
}

impl crate::config::RequiredKeys for SftConfig {
    fn required(&self) -> Vec<(&'static str, bool)> {
        vec![
            ("model_name_or_path (or [model] path)", !self.model.path.as_os_str().is_empty()),
            ("dataset_name (or train_file)", !self.train_file.as_os_str().is_empty()),
        ]
    }
}
