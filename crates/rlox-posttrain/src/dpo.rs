//! Direct Preference Optimization (Rafailov et al. 2023), in TRL's `DPOTrainer` shape.
//!
//! Each step takes `per_device_train_batch_size` preference pairs, runs the chosen and rejected
//! sequences through the policy as one batch (chosen rows first, as TRL's `concatenated_forward`),
//! sums each completion's token log-probs, gets the reference log-probs from a frozen copy of the
//! initial policy (or a separate `ref_model`, or values precomputed once before training with
//! `precompute_ref_log_probs`), and applies the loss of [`crate::losses::dpo_loss_tensor`] (batch mean).
//! Logged with TRL's names: `loss`, `rewards/chosen`, `rewards/rejected`, `rewards/accuracies`,
//! `rewards/margins`, `logps/chosen`, `logps/rejected`, plus `grad_norm` and `learning_rate`; with an
//! `eval_file`, the same as `eval/loss`, `eval/rewards/chosen`, ... (means over the eval pairs).
//!
//! Defaults are TRL 1.x's `DPOConfig` / `TrainingArguments`: beta 0.1, sigmoid loss, learning rate 1e-6,
//! AdamW (weight decay 0), linear decay, no warm-up, batch 8, gradient clipping at norm 1, logging every
//! 10 steps.

use crate::config::{Optimization, RunConfig};
use crate::datasets::{preference_examples, tokenize_pair, Dataset, PaddedBatch, Truncation};
use crate::logprobs::{sequence_logps, tensor1, to_f64};
use crate::losses::{dpo_loss_tensor, DpoBatch, DpoLossType, DpoMetrics};
use crate::model::Loaded;
use crate::trainer::{
    evaluate_batches, EpochSampler, Evaluation, Method, MethodKind, Metrics, SamplerState, StepOutput, Trainer,
};
use crate::{Error, Result};
use rlox_core::run::RunSettings;
use rlox_lm::CausalLm;
use rlox_nn::{Module, Tensor};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// DPO's own settings (the run settings, model, data and optimisation are in [`RunConfig`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DpoConfig {
    /// A separate reference model directory (else the initial policy is the reference).
    pub ref_model: Option<PathBuf>,
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
    /// Passes over the data when `total_steps` (`max_steps`) is 0. *TRL*: 3.
    pub num_train_epochs: u64,
    /// Shuffle the pairs each epoch. *TRL*: true.
    pub shuffle: bool,
}

impl Default for DpoConfig {
    fn default() -> Self {
        DpoConfig {
            ref_model: None,
            beta: 0.1,
            loss_type: DpoLossType::Sigmoid,
            label_smoothing: 0.0,
            precompute_ref_log_probs: false,
            max_prompt_length: None,
            max_completion_length: None,
            max_length: Some(1024),
            per_device_train_batch_size: 8,
            num_train_epochs: 3,
            shuffle: true,
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
        check(self.per_device_train_batch_size > 0, "per_device_train_batch_size", "must be > 0")
    }

    fn truncation(&self) -> Truncation {
        Truncation {
            max_prompt_length: self.max_prompt_length,
            max_completion_length: self.max_completion_length,
            max_length: self.max_length,
        }
    }
}

/// A whole DPO run's config.
pub type DpoRunConfig = RunConfig<DpoConfig>;

/// The DPO trainer.
pub type DpoTrainer = Trainer<Dpo>;

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

/// What one DPO loss evaluation reports.
#[derive(Debug, Clone, PartialEq)]
pub struct DpoStepStats {
    /// Batch-mean loss.
    pub loss: f64,
    /// The metrics with TRL's names.
    pub metrics: DpoMetrics,
    /// Reference log-probs `(chosen, rejected)` per pair.
    pub ref_logps: Vec<(f64, f64)>,
    /// Tokens in the batch (prompt + completion, both sides).
    pub tokens: usize,
}

/// DPO's data, reference and state.
pub struct Dpo {
    config: DpoConfig,
    reference: Option<CausalLm>,
    /// The tokenised training pairs.
    pub pairs: Vec<TokenizedPair>,
    eval_pairs: Vec<TokenizedPair>,
    /// Reference log-probs computed once (`precompute_ref_log_probs`): of the training and eval pairs.
    precomputed: Option<[Vec<(f64, f64)>; 2]>,
    pad: u32,
    sampler: EpochSampler,
}

/// Which pairs.
#[derive(Debug, Clone, Copy)]
enum Split {
    Train = 0,
    Eval = 1,
}

impl Dpo {
    /// DPO on tokenised training and eval pairs; `reference` `None` freezes a copy of `model` (the
    /// initial policy).
    pub fn new(
        config: &RunConfig<DpoConfig>,
        model: &CausalLm,
        reference: Option<CausalLm>,
        pairs: Vec<TokenizedPair>,
        eval_pairs: Vec<TokenizedPair>,
        pad: u32,
    ) -> Result<Self> {
        let c = &config.method;
        c.validate()?;
        if pairs.is_empty() {
            return Err(Error::invalid("dpo.train_file", "the dataset has no pairs"));
        }
        let sampler = EpochSampler::new(pairs.len(), c.shuffle, config.run.seed);
        let reference = Some(reference.unwrap_or_else(|| model.valid()));
        let mut dpo = Dpo { config: c.clone(), reference, pairs, eval_pairs, precomputed: None, pad, sampler };
        if c.precompute_ref_log_probs {
            let train = dpo.all_reference_logps(Split::Train)?;
            dpo.precomputed = Some([train, dpo.all_reference_logps(Split::Eval)?]);
            dpo.reference = None;
        }
        Ok(dpo)
    }

    fn split(&self, split: Split) -> &[TokenizedPair] {
        match split {
            Split::Train => &self.pairs,
            Split::Eval => &self.eval_pairs,
        }
    }

    fn all_reference_logps(&self, split: Split) -> Result<Vec<(f64, f64)>> {
        let all: Vec<usize> = (0..self.split(split).len()).collect();
        let mut v = Vec::with_capacity(all.len());
        for chunk in all.chunks(self.config.per_device_train_batch_size) {
            v.extend(self.reference_logps(split, chunk)?);
        }
        Ok(v)
    }

    fn reference_logps(&self, split: Split, idx: &[usize]) -> Result<Vec<(f64, f64)>> {
        if let Some(pre) = &self.precomputed {
            return Ok(idx.iter().map(|&i| pre[split as usize][i]).collect());
        }
        let r = self.reference.as_ref().expect("a reference model or precomputed log-probs");
        let pairs: Vec<&TokenizedPair> = idx.iter().map(|&i| &self.split(split)[i]).collect();
        let lp = to_f64(sequence_logps(r, &concatenated_batch(&pairs, self.pad))?);
        let n = idx.len();
        Ok((0..n).map(|k| (lp[k], lp[n + k])).collect())
    }

    /// The loss tensor and statistics of `model` on the training pairs `idx`.
    pub fn compute_loss(&self, model: &CausalLm, idx: &[usize]) -> Result<(Tensor<1>, DpoStepStats)> {
        self.loss_on(model, Split::Train, idx)
    }

    fn loss_on(&self, model: &CausalLm, split: Split, idx: &[usize]) -> Result<(Tensor<1>, DpoStepStats)> {
        let pairs: Vec<&TokenizedPair> = idx.iter().map(|&i| &self.split(split)[i]).collect();
        let n = pairs.len();
        let batch = concatenated_batch(&pairs, self.pad);
        let logps = sequence_logps(model, &batch)?;
        let refs = self.reference_logps(split, idx)?;
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
        Ok((loss, DpoStepStats { loss: value, metrics, ref_logps: refs, tokens }))
    }
}

impl Method for Dpo {
    type Config = DpoConfig;
    type Model = CausalLm;
    type State = SamplerState;
    const KIND: MethodKind = MethodKind::Dpo;
    const SUMMARY: &'static [(&'static str, &'static str)] =
        &[("rewards/accuracies", "rewards/accuracies"), ("rewards/margins", "rewards/margins")];

    /// TRL's `DPOConfig`: run name `dpo`, seed 42, logging every 10 steps, learning rate 1e-6.
    fn defaults() -> (RunSettings, Optimization) {
        let run = RunSettings { name: "dpo".into(), seed: 42, log_every: 10, ..Default::default() };
        (run, Optimization::with_learning_rate(1e-6))
    }

    fn build(config: &RunConfig<DpoConfig>, loaded: Loaded) -> Result<(Self, CausalLm)> {
        let model = loaded.model.into_text("DPO")?;
        config.method.validate()?;
        let ds = Dataset::open(&config.data.train_file, &config.data.dataset_train_split)?;
        let trunc = config.method.truncation();
        let pairs = tokenize_preferences(&ds, &loaded.tokenizer, &trunc)?;
        let eval_pairs = match &config.data.eval_file {
            Some(p) => tokenize_preferences(&Dataset::load(p)?, &loaded.tokenizer, &trunc)?,
            None => Vec::new(),
        };
        let reference = match &config.method.ref_model {
            Some(p) => Some(rlox_lm::load_model(p, &loaded.device.clone().inner())?),
            None => None,
        };
        let pad = loaded.tokenizer.pad_token_id;
        let dpo = Dpo::new(config, &model, reference, pairs, eval_pairs, pad)?;
        Ok((dpo, model))
    }

    fn epoch_steps(&self) -> Option<u64> {
        let per_epoch = self.pairs.len().div_ceil(self.config.per_device_train_batch_size) as u64;
        Some(per_epoch * self.config.num_train_epochs)
    }

    fn step(&mut self, model: &CausalLm, _step: u64) -> Result<StepOutput> {
        let idx = self.sampler.next(self.config.per_device_train_batch_size);
        let (loss, stats) = self.compute_loss(model, &idx)?;
        let metrics = stats.metrics.named().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        Ok(StepOutput { loss, metrics, tokens: stats.tokens, samples: Vec::new() })
    }

    fn evaluate(&mut self, model: &CausalLm) -> Result<Option<Evaluation>> {
        let policy = model.valid();
        evaluate_batches(self.eval_pairs.len(), self.config.per_device_train_batch_size, |idx| {
            let (_, stats) = self.loss_on(&policy, Split::Eval, idx)?;
            let mut metrics: Metrics = vec![("loss".into(), stats.loss)];
            metrics.extend(stats.metrics.named().into_iter().map(|(k, v)| (k.to_string(), v)));
            Ok((metrics, idx.len() as f64))
        })
    }

    fn state(&self) -> SamplerState {
        self.sampler.state()
    }

    fn restore(&mut self, state: SamplerState) -> Result<()> {
        self.sampler.restore(state)
    }
}

impl Trainer<Dpo> {
    /// The loss tensor and statistics of the current policy on the pairs `idx`, without stepping.
    pub fn compute_loss(&self, idx: &[usize]) -> Result<(Tensor<1>, DpoStepStats)> {
        self.method.compute_loss(&self.model, idx)
    }
}
