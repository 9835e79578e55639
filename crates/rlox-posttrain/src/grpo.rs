//! Group Relative Policy Optimization (Shao et al. 2024), in TRL 1.x's `GRPOTrainer` shape.
//!
//! One generation round:
//! 1. take `prompts_per_step` prompts and sample `num_generations` (G) completions for each with the
//!    current policy ([`rlox_lm::generate`], KV cache, `temperature`/`top_p`/`top_k`, EOS stops);
//! 2. score each completion with every reward function (plus the row's extra columns); the reward is
//!    the weighted sum over the functions that apply; a non-finite score stops the run with an error;
//! 3. advantages `(r - group mean) / (std + 1e-4)` with `scale_rewards` group / batch / none;
//! 4. `mask_truncated_completions` drops completions that hit `max_completion_length` without EOS
//!    from the loss (DAPO);
//! 5. the old log-probs are computed once per round when `num_iterations > 1` (otherwise the current
//!    log-probs, detached: the ratio is 1 with gradient), the reference log-probs when `beta != 0`
//!    (no reference model is loaded when `beta = 0`);
//! 6. `num_iterations` (μ) optimizer steps on the same rollout, each minimising
//!    [`crate::losses::grpo_per_token_loss`] reduced by `loss_type`.
//!
//! Step `k` of the run trains on round `k / num_iterations`; with `num_iterations > 1` checkpoints are
//! taken only between rounds (one that falls due inside a round is taken at its end), so that a resumed
//! run starts a fresh round. Evaluation (greedy completions of `eval_file`'s prompts) runs at the start,
//! every `eval_every` (`eval_steps`) steps and at the end.
//!
//! Each round's groups are written to a Parquet rollout store (`rollouts/run=<name>/step=<n>/`) through
//! [`rlox_data::rollouts::RolloutStore`]. Logged with TRL's names: `reward`, `reward_std`,
//! `rewards/<fn>/mean`, `rewards/<fn>/std`, `frac_reward_zero_std`, `completions/mean_length`,
//! `completions/min_length`, `completions/max_length`, `completions/clipped_ratio`, `kl`,
//! `clip_ratio/low_mean`, `clip_ratio/high_mean`, `clip_ratio/region_mean`, plus `loss`, `grad_norm`,
//! `learning_rate`, and, with an `eval_file`, `eval/reward`, `eval/<fn>` on greedy completions (each one also
//! written to `eval_samples.jsonl`), plus `eval/sampled/reward`, `eval/sampled/<fn>` when `eval_num_samples > 0`.
//!
//! Defaults are TRL 1.x's `GRPOConfig` where it has one (beta 0, epsilon 0.2, num_generations 8,
//! temperature 1, scale_rewards group, num_iterations 1, learning rate 1e-6, AdamW with weight decay 0,
//! logging every step); 100 steps.

use crate::config::{Optimization, RunConfig};
use crate::datasets::{prompt_examples, tokenize_prompt, Dataset, ImageSource, PaddedBatch, Row, Text, Truncation};
use crate::logprobs::{completion_logps, mask_tensor, tensor2, to_f64};
use crate::losses::{
    grpo_advantages, grpo_aggregate, grpo_loss, grpo_per_token_loss, GrpoLossSettings, GrpoLossStats, GrpoLossType,
    ScaleRewards,
};
use crate::model::Loaded;
use crate::policy::{row_images_for, PolicyModel, VisionInputs};
use crate::rewards::{score_all, RewardFn, RewardSpec, ScoredBatch};
use crate::trainer::{EpochSampler, Evaluation, Method, MethodKind, Metrics, SamplerState, StepOutput, Trainer};
use crate::{Error, Result};
use rlox_core::run::RunSettings;
use rlox_core::seeding::derive_seed;
use rlox_data::records::{Completion, RolloutGroup};
use rlox_data::rollouts::RolloutStore;
use rlox_lm::generate::FinishReason;
use rlox_lm::{GenerationConfig, LmTokenizer};
use rlox_nn::{Module, Tensor};
use rlox_vlm::ProcessedImage;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// GRPO's own settings (the run settings, model, data and optimisation are in [`RunConfig`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpoConfig {
    /// Besides the greedy completion, sample this many completions per eval prompt with the training
    /// sampler (`temperature`, `top_p`, `top_k`; the same seed at every evaluation) and log their mean
    /// scores as `eval/sampled/reward`, `eval/sampled/<fn>`: the accuracy of the policy GRPO trains,
    /// which greedy decoding can hide (0: greedy only, the default).
    pub eval_num_samples: usize,
    /// The reward functions and their weights.
    pub reward_funcs: Vec<RewardSpec>,
    /// Completions per prompt (G). *TRL*: 8.
    pub num_generations: usize,
    /// Prompts per generation round.
    pub prompts_per_step: usize,
    /// Keep the last this many prompt tokens (`None`: all).
    pub max_prompt_length: Option<usize>,
    /// New tokens per completion at most. *TRL*: 512.
    pub max_completion_length: usize,
    /// Sampling temperature (also divides the logits when scoring). *TRL*: 1.
    pub temperature: f32,
    /// Top-p. *TRL*: 1.
    pub top_p: f32,
    /// Top-k (0: off).
    pub top_k: usize,
    /// KL coefficient. *TRL 1.x*: 0.
    pub beta: f64,
    /// Lower clip range. *TRL*: 0.2.
    pub epsilon: f64,
    /// Upper clip range (`None`: `epsilon`).
    pub epsilon_high: Option<f64>,
    /// Reward scaling. *TRL*: group.
    pub scale_rewards: ScaleRewards,
    /// Loss reduction.
    pub loss_type: GrpoLossType,
    /// Optimizer steps per generation round (μ). *TRL*: 1.
    pub num_iterations: usize,
    /// Leave completions without EOS out of the loss. *TRL*: false.
    pub mask_truncated_completions: bool,
    /// Do not stop at EOS (every completion gets `max_completion_length` tokens; for benchmarks, like
    /// `min_new_tokens` in transformers).
    pub ignore_eos: bool,
    /// Completions written to `samples.jsonl` per logging step.
    pub num_samples_logged: usize,
    /// Write rollouts as Parquet under the run directory.
    pub write_rollouts: bool,
}

impl Default for GrpoConfig {
    fn default() -> Self {
        GrpoConfig {
            eval_num_samples: 0,
            reward_funcs: vec![RewardSpec::Format { weight: 1.0 }],
            num_generations: 8,
            prompts_per_step: 1,
            max_prompt_length: None,
            max_completion_length: 512,
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            beta: 0.0,
            epsilon: 0.2,
            epsilon_high: None,
            scale_rewards: ScaleRewards::Group,
            loss_type: GrpoLossType::Dapo,
            num_iterations: 1,
            mask_truncated_completions: false,
            ignore_eos: false,
            num_samples_logged: 2,
            write_rollouts: true,
        }
    }
}

impl GrpoConfig {
    /// Check the values; errors name the field.
    pub fn validate(&self) -> Result<()> {
        let check = |ok: bool, what: &str, why: &str| {
            if ok {
                Ok(())
            } else {
                Err(Error::invalid(format!("grpo.{what}"), why))
            }
        };
        check(
            self.num_generations >= 2,
            "num_generations",
            "must be >= 2 (advantages compare completions of a prompt)",
        )?;
        check(self.prompts_per_step > 0, "prompts_per_step", "must be > 0")?;
        check(self.max_completion_length > 0, "max_completion_length", "must be > 0")?;
        check(self.temperature > 0.0, "temperature", "must be > 0 (GRPO samples)")?;
        check(self.beta >= 0.0, "beta", "must be >= 0")?;
        check(self.epsilon > 0.0 && self.epsilon < 1.0, "epsilon", "must be in (0, 1)")?;
        check(self.epsilon_high.is_none_or(|e| e > 0.0), "epsilon_high", "must be > 0")?;
        check(self.num_iterations > 0, "num_iterations", "must be > 0")?;
        check(!self.reward_funcs.is_empty(), "reward_funcs", "give at least one reward function")?;
        Ok(())
    }

    /// The loss settings.
    pub fn loss_settings(&self) -> GrpoLossSettings {
        GrpoLossSettings {
            epsilon: self.epsilon,
            epsilon_high: self.epsilon_high.unwrap_or(self.epsilon),
            beta: self.beta,
            loss_type: self.loss_type,
            max_completion_length: self.max_completion_length,
        }
    }
}

/// A whole GRPO run's config.
pub type GrpoRunConfig = RunConfig<GrpoConfig>;

/// The GRPO trainer.
pub type GrpoTrainer = Trainer<Grpo>;

/// A prompt ready for generation.
#[derive(Debug, Clone)]
pub struct PromptItem {
    /// Text shown to reward functions.
    pub text: String,
    /// Token ids.
    pub ids: Vec<u32>,
    /// The dataset row.
    pub row: Row,
    /// The images the prompt shows (vision-language models).
    pub images: Vec<ImageSource>,
    /// Where it came from.
    pub location: String,
}

/// Read and tokenise a prompt-only dataset; checks the reward functions' columns on every row.
/// With `vision` (a vision-language model's inputs) rows may show images (see [`crate::policy`]).
pub fn load_prompts(
    ds: &Dataset,
    tok: &LmTokenizer,
    max_prompt_length: Option<usize>,
    fns: &[(Box<dyn RewardFn>, f64)],
    vision: Option<&VisionInputs>,
) -> Result<Vec<PromptItem>> {
    let cols: Vec<&str> = fns.iter().flat_map(|(f, _)| f.required_columns()).collect();
    ds.require(&cols)?;
    prompt_examples(ds)?
        .into_iter()
        .enumerate()
        .map(|(i, (p, row))| {
            let loc = &ds.locations[i];
            let (images, processed) = row_images_for(vision, ds, i)?;
            let ids = match vision {
                Some(v) => {
                    let trunc = Truncation { max_prompt_length, ..Default::default() };
                    v.tokenize(tok, &p, None, &processed, &trunc, loc)?.0
                }
                None => {
                    let mut ids = tokenize_prompt(tok, &p)?;
                    if let Some(m) = max_prompt_length {
                        if ids.len() > m {
                            ids.drain(..ids.len() - m);
                        }
                    }
                    ids
                }
            };
            if ids.is_empty() {
                return Err(Error::invalid(ds.locations[i].clone(), "empty prompt"));
            }
            let text = match &p {
                Text::Plain(s) => s.clone(),
                Text::Messages(_) => p.plain(),
            };
            Ok(PromptItem { text, ids, row, images, location: loc.clone() })
        })
        .collect()
}

/// One generation round's data.
#[derive(Debug, Clone)]
pub struct Rollout {
    /// Prompt index per completion (`[B*G]`, group-major).
    pub prompt_index: Vec<usize>,
    /// Completion token ids.
    pub completion_ids: Vec<Vec<u32>>,
    /// Decoded completions.
    pub texts: Vec<String>,
    /// Whether each ended with EOS.
    pub terminated: Vec<bool>,
    /// `[functions][B*G]` scores (NaN: not applicable).
    pub per_function: Vec<Vec<f64>>,
    /// Weighted rewards.
    pub rewards: Vec<f64>,
    /// Advantages.
    pub advantages: Vec<f64>,
    /// Per-group reward standard deviations.
    pub group_std: Vec<f64>,
    /// The processed images each completion's prompt shows (`[B*G]`; empty for a text model).
    pub images: Vec<Vec<ProcessedImage>>,
}

/// One generation round: the rollout and what its optimizer steps share.
struct Round {
    rollout: Rollout,
    batch: PaddedBatch,
    old_logps: Option<Vec<f64>>,
    ref_logps: Option<Vec<f64>>,
}

/// GRPO's prompts, rewards, reference and state.
pub struct Grpo {
    config: GrpoConfig,
    seed: u64,
    run_name: String,
    reference: Option<PolicyModel>,
    vision: Option<VisionInputs>,
    /// Reward functions and weights.
    pub reward_fns: Vec<(Box<dyn RewardFn>, f64)>,
    /// Training prompts.
    pub prompts: Vec<PromptItem>,
    eval_prompts: Vec<PromptItem>,
    tokenizer: LmTokenizer,
    sampler: EpochSampler,
    store: Option<RolloutStore>,
    round: Option<Round>,
    generation_seconds: f64,
}

impl Grpo {
    fn eos(&self, model: &PolicyModel) -> Vec<u32> {
        if self.config.ignore_eos {
            return Vec::new();
        }
        let mut eos = self.tokenizer.eos_token_ids.clone();
        eos.extend(model.eos_token_ids());
        eos.sort_unstable();
        eos.dedup();
        eos
    }

    /// Sample G completions for each prompt in `idx` and score them (no parameter update).
    pub fn generate_and_score(&self, model: &PolicyModel, idx: &[usize], seed: u64) -> Result<Rollout> {
        let c = &self.config;
        let g = c.num_generations;
        let policy = model.valid();
        let prompt_index: Vec<usize> = idx.iter().flat_map(|&i| std::iter::repeat_n(i, g)).collect();
        let ids: Vec<Vec<u32>> = prompt_index.iter().map(|&i| self.prompts[i].ids.clone()).collect();
        let gen = GenerationConfig {
            max_new_tokens: c.max_completion_length,
            temperature: c.temperature,
            top_p: c.top_p,
            top_k: c.top_k,
            eos_token_ids: self.eos(model),
            pad_token_id: self.tokenizer.pad_token_id,
            seed,
            ..Default::default()
        };
        let images = self.images_of(&self.prompts, &prompt_index)?;
        let outs = policy.generate(&ids, &images, &gen, &self.tokenizer)?;
        let texts: Vec<String> = outs.iter().map(|o| o.text.clone().unwrap_or_default()).collect();
        let terminated: Vec<bool> = outs.iter().map(|o| o.finish_reason != FinishReason::Length).collect();
        let prompts_text: Vec<String> = prompt_index.iter().map(|&i| self.prompts[i].text.clone()).collect();
        let rows: Vec<&Row> = prompt_index.iter().map(|&i| &self.prompts[i].row).collect();
        let locs: Vec<String> = prompt_index.iter().map(|&i| self.prompts[i].location.clone()).collect();
        let scored = score_all(&self.reward_fns, &prompts_text, &texts, &rows, &locs)?;
        let (advantages, group_std) = grpo_advantages(&scored.total, g, c.scale_rewards);
        Ok(Rollout {
            prompt_index,
            completion_ids: outs.into_iter().map(|o| o.token_ids).collect(),
            texts,
            terminated,
            per_function: scored.per_function,
            rewards: scored.total,
            advantages,
            group_std,
            images,
        })
    }

    /// The padded batch and loss mask of a rollout (truncated completions masked out if configured).
    pub fn rollout_batch(&self, r: &Rollout) -> PaddedBatch {
        let pairs: Vec<(Vec<u32>, Vec<u32>)> = r
            .prompt_index
            .iter()
            .zip(&r.completion_ids)
            .map(|(&i, c)| {
                let c = if c.is_empty() { vec![self.tokenizer.pad_token_id] } else { c.clone() };
                (self.prompts[i].ids.clone(), c)
            })
            .collect();
        let mut batch = PaddedBatch::new(&pairs, self.tokenizer.pad_token_id);
        for (k, m) in batch.completion_mask.iter_mut().enumerate() {
            let drop = r.completion_ids[k].is_empty() || (self.config.mask_truncated_completions && !r.terminated[k]);
            if drop {
                m.iter_mut().for_each(|x| *x = 0.0);
            }
        }
        batch
    }

    /// The processed images of `prompts[i]` for each `i` of `index` (empty when the model is text-only).
    /// A prompt repeated in a row (a group's completions) is decoded once.
    pub fn images_of(&self, prompts: &[PromptItem], index: &[usize]) -> Result<Vec<Vec<ProcessedImage>>> {
        let Some(v) = &self.vision else { return Ok(Vec::new()) };
        let mut out: Vec<Vec<ProcessedImage>> = Vec::with_capacity(index.len());
        for (k, &i) in index.iter().enumerate() {
            let images = match k.checked_sub(1).map(|p| index[p]) {
                Some(previous) if previous == i => out[k - 1].clone(),
                _ => v.process_all(&prompts[i].images, &prompts[i].location)?,
            };
            out.push(images);
        }
        Ok(out)
    }

    /// Per-token log-probs `[B*G, C]` of `batch` under a frozen model (no graph).
    fn frozen_logps(
        &self,
        model: &PolicyModel,
        batch: &PaddedBatch,
        images: &[Vec<ProcessedImage>],
    ) -> Result<Vec<f64>> {
        Ok(to_f64(completion_logps(model, batch, images, false, self.config.temperature as f64)?))
    }

    /// The loss on a rollout given old and reference log-probs (`[B*G*C]` each), without stepping;
    /// row `k` of `batch` shows `images[k]` (an empty slice: text only).
    pub fn compute_loss(
        &self,
        model: &PolicyModel,
        batch: &PaddedBatch,
        images: &[Vec<ProcessedImage>],
        advantages: &[f64],
        old_logps: Option<&[f64]>,
        ref_logps: Option<&[f64]>,
    ) -> Result<(Tensor<1>, GrpoLossStats)> {
        let c = &self.config;
        let rows = advantages.len();
        let cols = batch.completion_len;
        let logp = completion_logps(model, batch, images, false, c.temperature as f64)?;
        let device = logp.device();
        let old = match old_logps {
            Some(o) => tensor2(o, rows, &device),
            None => logp.clone().detach(),
        };
        let refp = ref_logps.map(|r| tensor2(r, rows, &device));
        let adv = tensor2(advantages, rows, &device);
        let mask = mask_tensor(batch, &device);
        let s = c.loss_settings();
        let (per_tok, _) = grpo_per_token_loss(logp.clone(), old, refp, adv, &s);
        let loss = grpo_aggregate(per_tok, mask, c.loss_type, c.max_completion_length, None);
        // The same quantities in f64 for the logged statistics.
        let lp = to_f64(logp.detach());
        let old_v: Vec<f64> = old_logps.map_or_else(|| lp.clone(), <[f64]>::to_vec);
        let mask_v: Vec<f64> = batch.completion_mask.iter().flatten().map(|&m| m as f64).collect();
        let mut stats = grpo_loss(&lp, &old_v, ref_logps, &mask_v, advantages, cols, &s);
        stats.loss = loss.clone().detach().into_scalar::<f32>() as f64;
        Ok((loss, stats))
    }

    /// Greedy completions of the eval prompts: the mean weighted reward and per-function means, and one
    /// row per eval prompt (`prompt`, `completion`, `reward`, each function's score) for
    /// `eval_samples.jsonl`, so that a user can see what the greedy policy gets wrong.
    fn evaluate_with_completions(&self, model: &PolicyModel) -> Result<(Metrics, Vec<serde_json::Value>)> {
        if self.eval_prompts.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let greedy = GenerationConfig {
            max_new_tokens: self.config.max_completion_length,
            temperature: 0.0,
            eos_token_ids: self.eos(model),
            pad_token_id: self.tokenizer.pad_token_id,
            ..Default::default()
        };
        let every: Vec<usize> = (0..self.eval_prompts.len()).collect();
        let (texts, s) = self.generate_and_score_eval(model, &every, &greedy)?;
        let mut out = eval_metrics("eval", &self.reward_fns, &s);
        let n = self.config.eval_num_samples;
        if n > 0 {
            let sampler = GenerationConfig {
                temperature: self.config.temperature,
                top_p: self.config.top_p,
                top_k: self.config.top_k,
                seed: derive_seed(self.seed, 0xE7A1),
                ..greedy
            };
            let repeated: Vec<usize> = every.iter().flat_map(|&i| std::iter::repeat_n(i, n)).collect();
            let (_, sampled) = self.generate_and_score_eval(model, &repeated, &sampler)?;
            out.extend(eval_metrics("eval/sampled", &self.reward_fns, &sampled));
        }
        let samples = (0..texts.len())
            .map(|i| {
                let mut o = serde_json::Map::new();
                o.insert("prompt".into(), self.eval_prompts[i].text.clone().into());
                o.insert("completion".into(), texts[i].clone().into());
                o.insert("reward".into(), serde_json::json!(s.total[i]));
                for (k, (f, _)) in self.reward_fns.iter().enumerate() {
                    o.insert(f.name().into(), serde_json::json!(s.per_function[k][i]));
                }
                serde_json::Value::Object(o)
            })
            .collect();
        Ok((out, samples))
    }

    /// Complete the eval prompts `order[k]` (64 at a time, sequence `k` on random stream `k`) and score them.
    fn generate_and_score_eval(
        &self,
        model: &PolicyModel,
        order: &[usize],
        gen: &GenerationConfig,
    ) -> Result<(Vec<String>, ScoredBatch)> {
        let policy = model.valid();
        let mut texts = Vec::with_capacity(order.len());
        for (c, chunk) in order.chunks(64).enumerate() {
            let ids: Vec<Vec<u32>> = chunk.iter().map(|&i| self.eval_prompts[i].ids.clone()).collect();
            let g = GenerationConfig { stream_offset: (c * 64) as u64, ..gen.clone() };
            let images = self.images_of(&self.eval_prompts, chunk)?;
            let outs = policy.generate(&ids, &images, &g, &self.tokenizer)?;
            texts.extend(outs.into_iter().map(|o| o.text.unwrap_or_default()));
        }
        let prompts: Vec<String> = order.iter().map(|&i| self.eval_prompts[i].text.clone()).collect();
        let rows: Vec<&Row> = order.iter().map(|&i| &self.eval_prompts[i].row).collect();
        let locs: Vec<String> = order.iter().map(|&i| self.eval_prompts[i].location.clone()).collect();
        let scored = score_all(&self.reward_fns, &prompts, &texts, &rows, &locs)?;
        Ok((texts, scored))
    }

    fn rollout_metrics(&self, r: &Rollout) -> Metrics {
        let lens: Vec<f64> = r.completion_ids.iter().map(|c| c.len() as f64).collect();
        let n = lens.len().max(1) as f64;
        let mut m = vec![
            ("reward".to_string(), mean_finite(&r.rewards)),
            ("reward_std".to_string(), r.group_std.iter().sum::<f64>() / r.group_std.len().max(1) as f64),
            (
                "frac_reward_zero_std".to_string(),
                r.group_std.iter().filter(|&&s| s == 0.0).count() as f64 / r.group_std.len().max(1) as f64,
            ),
            ("completions/mean_length".to_string(), lens.iter().sum::<f64>() / n),
            ("completions/min_length".to_string(), lens.iter().copied().fold(f64::INFINITY, f64::min)),
            ("completions/max_length".to_string(), lens.iter().copied().fold(0.0, f64::max)),
            ("completions/clipped_ratio".to_string(), r.terminated.iter().filter(|&&t| !t).count() as f64 / n),
        ];
        for (k, (f, _)) in self.reward_fns.iter().enumerate() {
            let name = f.name();
            let v = &r.per_function[k];
            m.push((format!("rewards/{name}/mean"), mean_finite(v)));
            let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
            m.push((format!("rewards/{name}/std"), crate::losses::std_unbiased(&finite)));
        }
        m
    }
}

impl Method for Grpo {
    type Config = GrpoConfig;
    type Model = PolicyModel;
    type State = SamplerState;
    const KIND: MethodKind = MethodKind::Grpo;
    const SUMMARY: &'static [(&'static str, &'static str)] = &[("last_train_reward", "reward")];

    /// TRL's `GRPOConfig`: run name `grpo`, seed 42, logging every step, learning rate 1e-6; 100 steps.
    fn defaults() -> (RunSettings, Optimization) {
        let run = RunSettings { name: "grpo".into(), seed: 42, total_steps: 100, log_every: 1, ..Default::default() };
        (run, Optimization::with_learning_rate(1e-6))
    }

    fn build(config: &RunConfig<GrpoConfig>, loaded: Loaded) -> Result<(Self, PolicyModel)> {
        let c = &config.method;
        c.validate()?;
        let reward_fns: Vec<(Box<dyn RewardFn>, f64)> = c.reward_funcs.iter().map(RewardSpec::build).collect();
        let ds = Dataset::open(&config.data.train_file, &config.data.dataset_train_split)?;
        let vision = loaded.vision.as_ref();
        let prompts = load_prompts(&ds, &loaded.tokenizer, c.max_prompt_length, &reward_fns, vision)?;
        if prompts.is_empty() {
            return Err(Error::invalid("grpo.train_file", "the dataset has no prompts"));
        }
        let eval_prompts = match &config.data.eval_file {
            Some(p) => load_prompts(&Dataset::load(p)?, &loaded.tokenizer, c.max_prompt_length, &reward_fns, vision)?,
            None => Vec::new(),
        };
        // No reference model at all when beta = 0 (TRL 1.x).
        let reference = (c.beta != 0.0).then(|| loaded.model.valid());
        let grpo = Grpo {
            config: c.clone(),
            seed: config.run.seed,
            run_name: config.run.name.clone(),
            reference,
            vision: loaded.vision.clone(),
            reward_fns,
            sampler: EpochSampler::new(prompts.len(), true, config.run.seed),
            prompts,
            eval_prompts,
            tokenizer: loaded.tokenizer,
            store: None,
            round: None,
            generation_seconds: 0.0,
        };
        Ok((grpo, loaded.model))
    }

    fn epoch_steps(&self) -> Option<u64> {
        None
    }

    /// Open the rollout store; a resumed run first drops the rounds written after its checkpoint.
    fn begin(&mut self, run_dir: &Path, step: u64) -> Result<()> {
        if !self.config.write_rollouts {
            return Ok(());
        }
        let root = run_dir.join("rollouts");
        remove_rounds_from(&root, step)?;
        let names: Vec<&str> = self.reward_fns.iter().map(|(f, _)| f.name()).collect();
        self.store = Some(RolloutStore::new(root, &self.run_name, &names, Default::default())?);
        Ok(())
    }

    fn step(&mut self, model: &PolicyModel, step: u64) -> Result<StepOutput> {
        let c = self.config.clone();
        let first_of_round = step.is_multiple_of(c.num_iterations as u64);
        if first_of_round {
            let t = Instant::now();
            let idx = self.sampler.next(c.prompts_per_step);
            let rollout = self.generate_and_score(model, &idx, derive_seed(self.seed, 1000 + step))?;
            let batch = self.rollout_batch(&rollout);
            let images = &rollout.images;
            let old_logps =
                if c.num_iterations > 1 { Some(self.frozen_logps(&model.valid(), &batch, images)?) } else { None };
            let ref_logps = match &self.reference {
                Some(m) => Some(self.frozen_logps(m, &batch, images)?),
                None => None,
            };
            if let Some(store) = &self.store {
                store.write_step(
                    step as i64,
                    &rollout_groups(step as i64, &self.prompts, &rollout, c.num_generations),
                )?;
            }
            self.generation_seconds += t.elapsed().as_secs_f64();
            self.round = Some(Round { rollout, batch, old_logps, ref_logps });
        }
        let round = self.round.as_ref().ok_or_else(|| {
            Error::invalid("grpo", format!("step {step} is inside a generation round that was not generated"))
        })?;
        let r = &round.rollout;
        let (loss, stats) = self.compute_loss(
            model,
            &round.batch,
            &r.images,
            &r.advantages,
            round.old_logps.as_deref(),
            round.ref_logps.as_deref(),
        )?;
        let mut metrics = self.rollout_metrics(r);
        metrics.extend([
            ("kl".to_string(), stats.kl),
            ("clip_ratio/low_mean".to_string(), stats.clip_low),
            ("clip_ratio/high_mean".to_string(), stats.clip_high),
            ("clip_ratio/region_mean".to_string(), stats.clip_region),
        ]);
        let samples = if first_of_round {
            (0..r.texts.len().min(c.num_samples_logged))
                .map(|k| {
                    serde_json::json!({
                        "prompt": self.prompts[r.prompt_index[k]].text,
                        "completion": r.texts[k],
                        "reward": r.rewards[k],
                        "advantage": r.advantages[k],
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        let tokens = round.batch.valid.iter().flatten().filter(|&&v| v).count();
        Ok(StepOutput { loss, metrics, tokens, samples })
    }

    fn evaluate(&mut self, model: &PolicyModel) -> Result<Option<Evaluation>> {
        if self.eval_prompts.is_empty() {
            return Ok(None);
        }
        let (metrics, samples) = self.evaluate_with_completions(model)?;
        Ok(Some(Evaluation { metrics, samples }))
    }

    fn at_boundary(&self, steps_done: u64) -> bool {
        steps_done.is_multiple_of(self.config.num_iterations as u64)
    }

    fn state(&self) -> SamplerState {
        self.sampler.state()
    }

    fn restore(&mut self, state: SamplerState) -> Result<()> {
        self.sampler.restore(state)
    }

    fn summary_extra(&self) -> Vec<(&'static str, serde_json::Value)> {
        vec![("generation_seconds", self.generation_seconds.into())]
    }
}

impl Trainer<Grpo> {
    /// Whether a reference model is held (only when `beta != 0`).
    pub fn has_reference(&self) -> bool {
        self.method.reference.is_some()
    }

    /// Sample G completions for each prompt in `idx` with the current policy and score them.
    pub fn generate_and_score(&self, idx: &[usize], seed: u64) -> Result<Rollout> {
        self.method.generate_and_score(&self.model, idx, seed)
    }

    /// The padded batch and loss mask of a rollout.
    pub fn rollout_batch(&self, r: &Rollout) -> PaddedBatch {
        self.method.rollout_batch(r)
    }

    /// The loss of the current policy on a rollout and its batch (see [`Grpo::compute_loss`]).
    pub fn compute_loss(
        &self,
        rollout: &Rollout,
        batch: &PaddedBatch,
        old_logps: Option<&[f64]>,
        ref_logps: Option<&[f64]>,
    ) -> Result<(Tensor<1>, GrpoLossStats)> {
        self.method.compute_loss(&self.model, batch, &rollout.images, &rollout.advantages, old_logps, ref_logps)
    }

    /// Greedy (and sampled) scores of the current policy on the eval prompts.
    pub fn evaluate(&self) -> Result<Metrics> {
        Ok(self.method.evaluate_with_completions(&self.model)?.0)
    }
}

/// Remove the rollout partitions `step=<n>` with `n >= step` under `root` (of every run name).
fn remove_rounds_from(root: &Path, step: u64) -> Result<()> {
    let Ok(runs) = std::fs::read_dir(root) else { return Ok(()) };
    for run in runs.flatten() {
        let Ok(steps) = std::fs::read_dir(run.path()) else { continue };
        for s in steps.flatten() {
            let name = s.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix("step=").and_then(|n| n.parse::<u64>().ok());
            if n.is_some_and(|n| n >= step) {
                std::fs::remove_dir_all(s.path()).map_err(|e| Error::io(s.path(), e))?;
            }
        }
    }
    Ok(())
}

/// `<prefix>/reward` and `<prefix>/<fn>`: the means of a scored eval batch.
fn eval_metrics(prefix: &str, reward_fns: &[(Box<dyn RewardFn>, f64)], s: &ScoredBatch) -> Metrics {
    let mut out = vec![(format!("{prefix}/reward"), mean_finite(&s.total))];
    for (k, (f, _)) in reward_fns.iter().enumerate() {
        out.push((format!("{prefix}/{}", f.name()), mean_finite(&s.per_function[k])));
    }
    out
}

fn mean_finite(x: &[f64]) -> f64 {
    let v: Vec<f64> = x.iter().copied().filter(|v| v.is_finite()).collect();
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// A rollout as rlox-data rollout groups (one per prompt).
pub fn rollout_groups(step: i64, prompts: &[PromptItem], r: &Rollout, g: usize) -> Vec<RolloutGroup> {
    let mut groups: Vec<RolloutGroup> = Vec::new();
    for k in 0..r.texts.len() {
        let p = &prompts[r.prompt_index[k]].text;
        if k % g.max(1) == 0 {
            groups.push(RolloutGroup { step, prompt: p.clone(), completions: Vec::new() });
        }
        groups.last_mut().expect("pushed").completions.push(Completion {
            text: r.texts[k].clone(),
            num_tokens: r.completion_ids[k].len() as i64,
            rewards: r.per_function.iter().map(|f| f[k]).collect(),
            reward: r.rewards[k],
            advantage: r.advantages[k],
        });
    }
    groups
}
