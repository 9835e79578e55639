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
//! Rows may carry images (an `images` column, TRL's convention) when the model is a vision-language
//! model: see [`crate::policy`] for how they enter the prompt; the loss is the same.
//!
//! Logged: `loss`, `grad_norm`, `learning_rate`, `num_tokens` (tokens seen so far, TRL's name); with an
//! `eval_file`, `eval/loss` (the mean loss per loss-carrying token over the eval set).
//! Defaults are TRL 1.x's `SFTConfig`: learning rate 2e-5, AdamW (weight decay 0), linear decay,
//! batch 8, `max_length` 1024, 3 epochs, gradient clipping at norm 1, logging every 10 steps.

use crate::config::{Optimization, RunConfig};
use crate::datasets::{sft_examples, tokenize_pair, Dataset, ImageSource, PaddedBatch, Text, Truncation};
use crate::logprobs::{completion_logps, mask_tensor};
use crate::model::Loaded;
use crate::policy::{row_images_for, PolicyModel, VisionInputs};
use crate::trainer::{
    evaluate_batches, EpochSampler, Evaluation, Method, MethodKind, SamplerState, StepOutput, Trainer,
};
use crate::{Error, Result};
use rlox_core::run::RunSettings;
use rlox_lm::LmTokenizer;
use rlox_nn::{Module, Tensor};
use rlox_vlm::ProcessedImage;
use serde::{Deserialize, Serialize};

/// SFT's own settings (the run settings, model, data and optimisation are in [`RunConfig`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SftConfig {
    /// Loss on completion tokens only. *TRL*: true for prompt-completion data.
    pub completion_only_loss: bool,
    /// Pack examples into rows of `max_length`. *TRL*: false.
    pub packing: bool,
    /// Tokens per example (and per packed row). *TRL*: 1024.
    pub max_length: Option<usize>,
    /// Examples (or packed rows) per step. *TRL*: 8.
    pub per_device_train_batch_size: usize,
    /// Passes over the data when `total_steps` (`max_steps`) is 0. *TRL*: 3.
    pub num_train_epochs: u64,
}

impl Default for SftConfig {
    fn default() -> Self {
        SftConfig {
            completion_only_loss: true,
            packing: false,
            max_length: Some(1024),
            per_device_train_batch_size: 8,
            num_train_epochs: 3,
        }
    }
}

/// A whole SFT run's config.
pub type SftRunConfig = RunConfig<SftConfig>;

/// The SFT trainer.
pub type SftTrainer = Trainer<Sft>;

/// A token sequence with a loss mask (`loss[i]`: predicting `ids[i]` counts; `loss[0]` is unused).
#[derive(Debug, Clone, PartialEq)]
pub struct LossSeq {
    /// Token ids.
    pub ids: Vec<u32>,
    /// Loss mask.
    pub loss: Vec<bool>,
    /// The images the sequence shows, in placeholder order (vision-language models).
    pub images: Vec<ImageSource>,
}

/// Tokenise SFT rows into sequences with loss masks; `vision` (a vision-language model's inputs)
/// reads each row's images, without it a row with images is an error.
pub fn tokenize_sft(
    ds: &Dataset,
    tok: &LmTokenizer,
    completion_only: bool,
    max_length: Option<usize>,
    vision: Option<&VisionInputs>,
) -> Result<Vec<LossSeq>> {
    let trunc = Truncation { max_length, ..Default::default() };
    sft_examples(ds)?
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let loc = &ds.locations[i];
            let lm_row = matches!(&e.prompt, Text::Plain(s) if s.is_empty());
            let (images, processed) = row_images_for(vision, ds, i)?;
            let (p, c) = match vision {
                Some(v) => v.tokenize(tok, &e.prompt, Some(&e.completion), &processed, &trunc, loc)?,
                None => tokenize_pair(tok, &e.prompt, &e.completion, &trunc, loc, "completion")?,
            };
            let mut ids = p.clone();
            ids.extend(&c);
            if ids.len() < 2 {
                return Err(Error::invalid(loc.clone(), "fewer than two tokens: nothing to predict"));
            }
            let loss: Vec<bool> =
                (0..ids.len()).map(|k| k > 0 && (lm_row || !completion_only || k >= p.len())).collect();
            Ok(LossSeq { ids, loss, images })
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
                b.images.extend(s.images.iter().cloned());
            }
            None => bins.push(LossSeq {
                ids: s.ids[..take].to_vec(),
                loss: s.loss[..take].to_vec(),
                images: s.images.clone(),
            }),
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

/// Token-mean negative log-likelihood of a batch (and the number of loss tokens); row `b` shows
/// `images[b]` (an empty slice: no row has images).
pub fn nll_loss(
    model: &PolicyModel,
    batch: &PaddedBatch,
    images: &[Vec<ProcessedImage>],
) -> Result<(Tensor<1>, usize)> {
    let lp = completion_logps(model, batch, images, true, 1.0)?;
    let mask = mask_tensor(batch, &lp.device());
    let n: usize = batch.completion_mask.iter().flatten().filter(|&&m| m > 0.0).count();
    if n == 0 {
        return Err(Error::invalid("sft batch", "no tokens carry loss (all completions masked or truncated away)"));
    }
    Ok(((lp * mask).sum().neg().div_scalar(n as f64), n))
}

/// SFT's data and state.
pub struct Sft {
    /// Training sequences (packed if configured).
    pub seqs: Vec<LossSeq>,
    eval: Vec<LossSeq>,
    pad: u32,
    vision: Option<VisionInputs>,
    config: SftConfig,
    sampler: EpochSampler,
    num_tokens: u64,
}

impl Sft {
    /// The processed images of each sequence of a batch (none for a text model).
    fn images(&self, seqs: &[&LossSeq]) -> Result<Vec<Vec<ProcessedImage>>> {
        match &self.vision {
            None => Ok(Vec::new()),
            Some(v) => seqs.iter().map(|s| v.process_all(&s.images, "sft batch")).collect(),
        }
    }
}

/// What SFT keeps between steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftState {
    /// The data order.
    pub data: SamplerState,
    /// Tokens trained on so far (`num_tokens`).
    pub num_tokens: u64,
}

impl Method for Sft {
    type Config = SftConfig;
    type Model = PolicyModel;
    type State = SftState;
    const KIND: MethodKind = MethodKind::Sft;
    const SUMMARY: &'static [(&'static str, &'static str)] = &[("num_tokens", "num_tokens")];

    /// TRL's `SFTConfig`: run name `sft`, seed 42, logging every 10 steps, learning rate 2e-5.
    fn defaults() -> (RunSettings, Optimization) {
        let run = RunSettings { name: "sft".into(), seed: 42, log_every: 10, ..Default::default() };
        (run, Optimization::with_learning_rate(2e-5))
    }

    fn build(config: &RunConfig<SftConfig>, loaded: Loaded) -> Result<(Self, PolicyModel)> {
        let c = &config.method;
        if c.per_device_train_batch_size == 0 {
            return Err(Error::invalid("sft.per_device_train_batch_size", "must be > 0"));
        }
        let prepare = |ds: &Dataset| -> Result<Vec<LossSeq>> {
            let seqs =
                tokenize_sft(ds, &loaded.tokenizer, c.completion_only_loss, c.max_length, loaded.vision.as_ref())?;
            if !c.packing {
                return Ok(seqs);
            }
            let m = c.max_length.ok_or_else(|| Error::invalid("sft.max_length", "packing needs max_length"))?;
            Ok(pack(&seqs, m))
        };
        let seqs = prepare(&Dataset::open(&config.data.train_file, &config.data.dataset_train_split)?)?;
        if seqs.is_empty() {
            return Err(Error::invalid("sft.train_file", "no examples"));
        }
        let eval = match &config.data.eval_file {
            Some(p) => prepare(&Dataset::load(p)?)?,
            None => Vec::new(),
        };
        let sampler = EpochSampler::new(seqs.len(), true, config.run.seed);
        let pad = loaded.tokenizer.pad_token_id;
        let vision = loaded.vision.clone();
        let sft = Sft { seqs, eval, pad, vision, config: c.clone(), sampler, num_tokens: 0 };
        Ok((sft, loaded.model))
    }

    fn epoch_steps(&self) -> Option<u64> {
        Some(self.seqs.len().div_ceil(self.config.per_device_train_batch_size) as u64 * self.config.num_train_epochs)
    }

    fn step(&mut self, model: &PolicyModel, _step: u64) -> Result<StepOutput> {
        let idx = self.sampler.next(self.config.per_device_train_batch_size);
        let seqs: Vec<&LossSeq> = idx.iter().map(|&i| &self.seqs[i]).collect();
        let (loss, _) = nll_loss(model, &loss_batch(&seqs, self.pad), &self.images(&seqs)?)?;
        let tokens: usize = seqs.iter().map(|s| s.ids.len()).sum();
        self.num_tokens += tokens as u64;
        let metrics = vec![("num_tokens".to_string(), self.num_tokens as f64)];
        Ok(StepOutput { loss, metrics, tokens, samples: Vec::new() })
    }

    fn evaluate(&mut self, model: &PolicyModel) -> Result<Option<Evaluation>> {
        let policy = model.valid();
        evaluate_batches(self.eval.len(), self.config.per_device_train_batch_size, |idx| {
            let seqs: Vec<&LossSeq> = idx.iter().map(|&i| &self.eval[i]).collect();
            let (loss, tokens) = nll_loss(&policy, &loss_batch(&seqs, self.pad), &self.images(&seqs)?)?;
            Ok((vec![("loss".into(), loss.into_scalar::<f32>() as f64)], tokens as f64))
        })
    }

    fn state(&self) -> SftState {
        SftState { data: self.sampler.state(), num_tokens: self.num_tokens }
    }

    fn restore(&mut self, state: SftState) -> Result<()> {
        self.num_tokens = state.num_tokens;
        self.sampler.restore(state.data)
    }
}
