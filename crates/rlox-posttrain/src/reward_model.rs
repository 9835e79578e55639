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
//! (mean `r_c - r_r`), `grad_norm`, `learning_rate`; with an `eval_file`, `eval/loss`, `eval/accuracy`,
//! `eval/margin` over the eval pairs. Defaults: TRL's `RewardConfig` (batch 8, learning
//! rate 1e-5 as TRL's reward example, AdamW with weight decay 0, logging every 10 steps) with one epoch.

use crate::checkpoint::{checkpoint_error, TrainedModel};
use crate::config::{Optimization, RunConfig};
use crate::datasets::{Dataset, PaddedBatch, Truncation};
use crate::dpo::{concatenated_batch, tokenize_preferences, TokenizedPair};
use crate::logprobs::{tensor1, to_f64};
use crate::losses::{reward_accuracy, reward_model_loss_tensor};
use crate::model::Loaded;
use crate::trainer::{
    evaluate_batches, EpochSampler, Evaluation, Method, MethodKind, Metrics, SamplerState, StepOutput, Trainer,
};
use crate::{Error, Result};
use rlox_core::checkpoint::{atomic_write, read_file};
use rlox_core::run::RunSettings;
use rlox_lm::model::Linear;
use rlox_lm::CausalLm;
use rlox_nn::burn;
use rlox_nn::{Device, Int, Module, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Reward modelling's own settings (the run settings, model, data and optimisation are in [`RunConfig`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewardConfig {
    /// Reward-centering coefficient (Eisenstein et al. 2023); `None`: off. *TRL*: None.
    pub center_rewards_coefficient: Option<f64>,
    /// Prompt plus completion at most this long. *TRL*: 1024.
    pub max_length: Option<usize>,
    /// Pairs per step. *TRL*: 8.
    pub per_device_train_batch_size: usize,
    /// Passes over the data when `total_steps` (`max_steps`) is 0. *TRL's reward example*: 1.
    pub num_train_epochs: u64,
}

impl Default for RewardConfig {
    fn default() -> Self {
        RewardConfig {
            center_rewards_coefficient: None,
            max_length: Some(1024),
            per_device_train_batch_size: 8,
            num_train_epochs: 1,
        }
    }
}

/// A whole reward-model run's config.
pub type RewardRunConfig = RunConfig<RewardConfig>;

/// The reward-model trainer.
pub type RewardTrainer = Trainer<Reward>;

/// A causal LM with a scalar head on the last token's logits.
#[derive(Module, Debug)]
pub struct RewardModel {
    /// The language model.
    pub lm: CausalLm,
    /// `vocab -> 1`.
    pub score: Linear,
}

/// The head's file in a checkpoint, beside the LM in Hugging Face layout.
pub const SCORE_FILE: &str = "score.safetensors";

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

impl TrainedModel for RewardModel {
    fn save(&self, dir: &Path, tokenizer_dir: &Path) -> Result<()> {
        self.lm.save(dir, tokenizer_dir)?;
        atomic_write(dir.join(SCORE_FILE), &rlox_nn::to_safetensors_bytes(&self.score, &BTreeMap::new())?)
    }

    fn load(&self, dir: &Path, device: &Device) -> Result<Self> {
        let lm = self.lm.load(dir, device)?;
        let path = dir.join(SCORE_FILE);
        let bytes = read_file(dir, SCORE_FILE)?;
        let score =
            rlox_nn::checkpoint::load_safetensors_bytes(self.score.clone(), &bytes, &path.display().to_string())
                .map_err(|e| checkpoint_error(&path, e))?;
        Ok(RewardModel { lm, score })
    }
}

/// Reward modelling's data and state.
pub struct Reward {
    config: RewardConfig,
    pairs: Vec<TokenizedPair>,
    eval_pairs: Vec<TokenizedPair>,
    pad: u32,
    sampler: EpochSampler,
}

impl Reward {
    /// The loss on `pairs`, its metrics (`accuracy`, `margin`) and the batch's tokens.
    fn loss(&self, model: &RewardModel, pairs: &[&TokenizedPair]) -> Result<(Tensor<1>, Metrics, usize)> {
        let n = pairs.len();
        let batch = concatenated_batch(pairs, self.pad);
        let r = model.rewards(&batch)?;
        let (rc, rr) = (r.clone().narrow(0, 0, n), r.clone().narrow(0, n, n));
        let margins: Option<Vec<f64>> =
            pairs.iter().any(|p| p.margin.is_some()).then(|| pairs.iter().map(|p| p.margin.unwrap_or(0.0)).collect());
        let device = r.device();
        let loss = reward_model_loss_tensor(
            rc,
            rr,
            margins.as_ref().map(|m| tensor1(m, &device)),
            self.config.center_rewards_coefficient,
        );
        let rv = to_f64(r.detach());
        let (cv, jv) = (&rv[..n], &rv[n..]);
        let margin = cv.iter().zip(jv).map(|(a, b)| a - b).sum::<f64>() / n as f64;
        let metrics = vec![("accuracy".to_string(), reward_accuracy(cv, jv)), ("margin".to_string(), margin)];
        Ok((loss, metrics, batch.valid.iter().flatten().filter(|&&v| v).count()))
    }
}

impl Method for Reward {
    type Config = RewardConfig;
    type Model = RewardModel;
    type State = SamplerState;
    const KIND: MethodKind = MethodKind::Rm;
    const SUMMARY: &'static [(&'static str, &'static str)] = &[("accuracy", "accuracy")];

    /// Run name `reward`, seed 42, logging every 10 steps, learning rate 1e-5.
    fn defaults() -> (RunSettings, Optimization) {
        let run = RunSettings { name: "reward".into(), seed: 42, log_every: 10, ..Default::default() };
        (run, Optimization::with_learning_rate(1e-5))
    }

    fn build(config: &RunConfig<RewardConfig>, loaded: Loaded) -> Result<(Self, RewardModel)> {
        let lm = loaded.model.into_text("reward modelling")?;
        let c = &config.method;
        if c.per_device_train_batch_size == 0 {
            return Err(Error::invalid("rm.per_device_train_batch_size", "must be > 0"));
        }
        let ds = Dataset::open(&config.data.train_file, &config.data.dataset_train_split)?;
        let trunc = Truncation { max_length: c.max_length, ..Default::default() };
        let pairs = tokenize_preferences(&ds, &loaded.tokenizer, &trunc)?;
        if pairs.is_empty() {
            return Err(Error::invalid("rm.train_file", "no pairs"));
        }
        let eval_pairs = match &config.data.eval_file {
            Some(p) => tokenize_preferences(&Dataset::load(p)?, &loaded.tokenizer, &trunc)?,
            None => Vec::new(),
        };
        let v = lm.config.vocab_size;
        let score = Linear::new(v, 1, true, 1.0 / (v as f64).sqrt(), &loaded.device);
        let sampler = EpochSampler::new(pairs.len(), true, config.run.seed);
        let reward = Reward { config: c.clone(), pairs, eval_pairs, pad: loaded.tokenizer.pad_token_id, sampler };
        Ok((reward, RewardModel { lm, score }))
    }

    fn epoch_steps(&self) -> Option<u64> {
        Some(self.pairs.len().div_ceil(self.config.per_device_train_batch_size) as u64 * self.config.num_train_epochs)
    }

    fn step(&mut self, model: &RewardModel, _step: u64) -> Result<StepOutput> {
        let idx = self.sampler.next(self.config.per_device_train_batch_size);
        let pairs: Vec<&TokenizedPair> = idx.iter().map(|&i| &self.pairs[i]).collect();
        let (loss, metrics, tokens) = self.loss(model, &pairs)?;
        Ok(StepOutput { loss, metrics, tokens, samples: Vec::new() })
    }

    fn evaluate(&mut self, model: &RewardModel) -> Result<Option<Evaluation>> {
        let model = model.valid();
        evaluate_batches(self.eval_pairs.len(), self.config.per_device_train_batch_size, |idx| {
            let pairs: Vec<&TokenizedPair> = idx.iter().map(|&i| &self.eval_pairs[i]).collect();
            let (loss, mut metrics, _) = self.loss(&model, &pairs)?;
            metrics.insert(0, ("loss".into(), loss.into_scalar::<f32>() as f64));
            Ok((metrics, pairs.len() as f64))
        })
    }

    fn state(&self) -> SamplerState {
        self.sampler.state()
    }

    fn restore(&mut self, state: SamplerState) -> Result<()> {
        self.sampler.restore(state)
    }
}
