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
//! Each round's groups are written to a Parquet rollout store (`rollouts/run=<name>/step=<n>/`) through
//! [`rlox_data::rollouts::RolloutStore`]. Logged with TRL's names: `reward`, `reward_std`,
//! `rewards/<fn>/mean`, `rewards/<fn>/std`, `frac_reward_zero_std`, `completions/mean_length`,
//! `completions/min_length`, `completions/max_length`, `completions/clipped_ratio`, `kl`,
//! `clip_ratio/low_mean`, `clip_ratio/high_mean`, `clip_ratio/region_mean`, plus `loss`, `grad_norm`,
//! `learning_rate`, and, with an `eval_file`, `eval/reward`, `eval/<fn>` on greedy completions (each one also
//! written to `eval_samples.jsonl`), plus `eval/sampled/reward`, `eval/sampled/<fn>` when `eval_num_samples > 0`.
//!
//! Defaults are TRL 1.x's `GRPOConfig` where it has one (beta 0, epsilon 0.2, num_generations 8,
//! temperature 1, scale_rewards group, num_iterations 1, learning rate 1e-6, AdamW with weight decay 0).

use crate::common::{learning_rate, optimizer_step, ModelConfig, Run};
use crate::datasets::{prompt_examples, tokenize_prompt, Dataset, PaddedBatch, Row, Text};
use crate::logprobs::{completion_logps, mask_tensor, tensor2, to_f64};
use crate::losses::{
    grpo_advantages, grpo_aggregate, grpo_loss, grpo_per_token_loss, GrpoLossSettings, GrpoLossStats, GrpoLossType,
    ScaleRewards,
};
use crate::rewards::{score_all, RewardFn, RewardSpec, ScoredBatch};
use crate::{Error, Result};
use rand::seq::SliceRandom;
use rlox_core::seeding::{derive_seed, rng_from_seed, Rng};
use rlox_data::records::{Completion, RolloutGroup};
use rlox_data::rollouts::RolloutStore;
use rlox_lm::generate::FinishReason;
use rlox_lm::{generate, CausalLm, GenerationConfig, LmTokenizer};
use rlox_nn::{DeviceKind, Module, Optimizer, OptimizerConfig, Tensor};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;

/// Named scalar metrics, in logging order.
pub type Metrics = Vec<(String, f64)>;

/// GRPO settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpoConfig {
    /// The policy (also the reference when `beta != 0`).
    pub model: ModelConfig,
    /// Prompt-only dataset; extra columns go to the reward functions.
    pub train_file: PathBuf,
    /// The split of a dataset directory or cached Hub dataset. *TRL*: `dataset_train_split`, train.
    pub dataset_train_split: String,
    /// Held-out prompts scored with greedy decoding every `eval_steps`.
    pub eval_file: Option<PathBuf>,
    /// Evaluate every this many steps (0: only at the start and the end).
    pub eval_steps: u64,
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
    /// Peak learning rate. *TRL*: 1e-6.
    pub learning_rate: f64,
    /// Warm-up steps.
    pub warmup_steps: u64,
    /// Constant learning rate after warm-up (else linear decay).
    pub constant_lr: bool,
    /// Optimizer steps.
    pub max_steps: u64,
    /// Global gradient-norm clip (0: off). *TRL*: 1.
    pub max_grad_norm: f64,
    /// The optimizer. *TRL*: AdamW, weight decay 0.
    pub optimizer: OptimizerConfig,
    /// Seed (prompt order, sampling).
    pub seed: u64,
    /// Log every this many steps.
    pub logging_steps: u64,
    /// Completions written to `samples.jsonl` per logging step.
    pub num_samples_logged: usize,
    /// Checkpoint every this many steps (0: only at the end).
    pub save_steps: u64,
    /// Write rollouts as Parquet under the run directory.
    pub write_rollouts: bool,
    /// Where run directories go.
    pub output_dir: PathBuf,
    /// Run name prefix.
    pub run_name: String,
    /// Device.
    pub device: DeviceKind,
}

impl Default for GrpoConfig {
    fn default() -> Self {
        GrpoConfig {
            model: ModelConfig::default(),
            train_file: PathBuf::new(),
            dataset_train_split: "train".into(),
            eval_file: None,
            eval_steps: 0,
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
            learning_rate: 1e-6,
            warmup_steps: 0,
            constant_lr: false,
            max_steps: 100,
            max_grad_norm: 1.0,
            optimizer: OptimizerConfig::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 },
            seed: 42,
            logging_steps: 1,
            num_samples_logged: 2,
            save_steps: 0,
            write_rollouts: true,
            output_dir: PathBuf::from("runs"),
            run_name: "grpo".into(),
            device: DeviceKind::Cpu,
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
        check(self.max_steps > 0, "max_steps", "must be > 0")?;
        check(self.logging_steps > 0, "logging_steps", "must be > 0")
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

/// A prompt ready for generation.
#[derive(Debug, Clone)]
pub struct PromptItem {
    /// Text shown to reward functions.
    pub text: String,
    /// Token ids.
    pub ids: Vec<u32>,
    /// The dataset row.
    pub row: Row,
    /// Where it came from.
    pub location: String,
}

/// Read and tokenise a prompt-only dataset; checks the reward functions' columns on every row.
pub fn load_prompts(
    ds: &Dataset,
    tok: &LmTokenizer,
    max_prompt_length: Option<usize>,
    fns: &[(Box<dyn RewardFn>, f64)],
) -> Result<Vec<PromptItem>> {
    let cols: Vec<&str> = fns.iter().flat_map(|(f, _)| f.required_columns()).collect();
    ds.require(&cols)?;
    prompt_examples(ds)?
        .into_iter()
        .enumerate()
        .map(|(i, (p, row))| {
            let mut ids = tokenize_prompt(tok, &p)?;
            if let Some(m) = max_prompt_length {
                if ids.len() > m {
                    ids.drain(..ids.len() - m);
                }
            }
            if ids.is_empty() {
                return Err(Error::invalid(ds.locations[i].clone(), "empty prompt"));
            }
            let text = match &p {
                Text::Plain(s) => s.clone(),
                Text::Messages(_) => p.plain(),
            };
            Ok(PromptItem { text, ids, row, location: ds.locations[i].clone() })
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
}

/// What one optimizer step reports.
#[derive(Debug, Clone, PartialEq)]
pub struct GrpoStepStats {
    /// Loss (tensor value) and the f64 loss statistics (kl, clip fractions) of the same step.
    pub loss: GrpoLossStats,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
}

/// The GRPO trainer.
pub struct GrpoTrainer {
    config: GrpoConfig,
    /// The policy.
    pub model: CausalLm,
    reference: Option<CausalLm>,
    /// Reward functions and weights.
    pub reward_fns: Vec<(Box<dyn RewardFn>, f64)>,
    /// Training prompts.
    pub prompts: Vec<PromptItem>,
    eval_prompts: Vec<PromptItem>,
    tokenizer: LmTokenizer,
    tokenizer_dir: PathBuf,
    optimizer: Optimizer,
    step: u64,
    rng: Rng,
    order: Vec<usize>,
}

impl GrpoTrainer {
    /// Load everything named in `config`.
    pub fn new(config: &GrpoConfig) -> Result<Self> {
        config.validate()?;
        let device = rlox_nn::train_device(config.device, derive_seed(config.seed, 1))?;
        let loaded = config.model.load(&device)?;
        Self::from_parts(config, loaded.model, loaded.tokenizer, loaded.tokenizer_dir)
    }

    /// A trainer around a model on an autodiff device.
    pub fn from_parts(
        config: &GrpoConfig,
        model: CausalLm,
        tokenizer: LmTokenizer,
        tokenizer_dir: PathBuf,
    ) -> Result<Self> {
        config.validate()?;
        let reward_fns: Vec<(Box<dyn RewardFn>, f64)> = config.reward_funcs.iter().map(RewardSpec::build).collect();
        let ds = Dataset::open(&config.train_file, &config.dataset_train_split)?;
        let prompts = load_prompts(&ds, &tokenizer, config.max_prompt_length, &reward_fns)?;
        if prompts.is_empty() {
            return Err(Error::invalid("grpo.train_file", "the dataset has no prompts"));
        }
        let eval_prompts = match &config.eval_file {
            Some(p) => load_prompts(&Dataset::load(p)?, &tokenizer, config.max_prompt_length, &reward_fns)?,
            None => Vec::new(),
        };
        // No reference model at all when beta = 0 (TRL 1.x).
        let reference = (config.beta != 0.0).then(|| model.valid());
        Ok(GrpoTrainer {
            config: config.clone(),
            model,
            reference,
            reward_fns,
            prompts,
            eval_prompts,
            tokenizer,
            tokenizer_dir,
            optimizer: config.optimizer.build(),
            step: 0,
            rng: rng_from_seed(derive_seed(config.seed, 2)),
            order: Vec::new(),
        })
    }

    /// Whether a reference model is held (only when `beta != 0`).
    pub fn has_reference(&self) -> bool {
        self.reference.is_some()
    }

    fn eos(&self) -> Vec<u32> {
        if self.config.ignore_eos {
            return Vec::new();
        }
        let mut eos = self.tokenizer.eos_token_ids.clone();
        eos.extend(&self.model.config.eos_token_ids);
        eos.sort_unstable();
        eos.dedup();
        eos
    }

    fn next_prompts(&mut self) -> Vec<usize> {
        let n = self.config.prompts_per_step;
        while self.order.len() < n {
            let mut epoch: Vec<usize> = (0..self.prompts.len()).collect();
            epoch.shuffle(&mut self.rng);
            self.order.extend(epoch);
        }
        self.order.drain(..n).collect()
    }

    /// Sample G completions for each prompt in `idx` and score them (no parameter update).
    pub fn generate_and_score(&self, idx: &[usize], seed: u64) -> Result<Rollout> {
        let c = &self.config;
        let g = c.num_generations;
        let policy = self.model.valid();
        let prompt_index: Vec<usize> = idx.iter().flat_map(|&i| std::iter::repeat_n(i, g)).collect();
        let ids: Vec<Vec<u32>> = prompt_index.iter().map(|&i| self.prompts[i].ids.clone()).collect();
        let gen = GenerationConfig {
            max_new_tokens: c.max_completion_length,
            temperature: c.temperature,
            top_p: c.top_p,
            top_k: c.top_k,
            eos_token_ids: self.eos(),
            pad_token_id: self.tokenizer.pad_token_id,
            seed,
            ..Default::default()
        };
        let outs = generate(&policy, &ids, &gen, Some(&self.tokenizer))?;
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

    /// Per-token log-probs `[B*G, C]` of `batch` under a frozen model (no graph).
    fn frozen_logps(&self, model: &CausalLm, batch: &PaddedBatch) -> Result<Vec<f64>> {
        Ok(to_f64(completion_logps(model, batch, self.config.temperature as f64)?))
    }

    /// The loss on a rollout given old and reference log-probs (`[B*G*C]` each), without stepping.
    pub fn compute_loss(
        &self,
        batch: &PaddedBatch,
        advantages: &[f64],
        old_logps: Option<&[f64]>,
        ref_logps: Option<&[f64]>,
    ) -> Result<(Tensor<1>, GrpoLossStats)> {
        let c = &self.config;
        let rows = advantages.len();
        let cols = batch.completion_len;
        let logp = completion_logps(&self.model, batch, c.temperature as f64)?;
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

    /// Greedy completions of the eval prompts; mean weighted reward and per-function means.
    pub fn evaluate(&self) -> Result<Metrics> {
        Ok(self.evaluate_with_completions()?.0)
    }

    /// [`Self::evaluate`] plus one row per eval prompt (`prompt`, `completion`, `reward`, each function's
    /// score), written to `eval_samples.jsonl` so a user can see what the greedy policy gets wrong.
    fn evaluate_with_completions(&self) -> Result<(Metrics, Vec<serde_json::Value>)> {
        if self.eval_prompts.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let greedy = GenerationConfig {
            max_new_tokens: self.config.max_completion_length,
            temperature: 0.0,
            eos_token_ids: self.eos(),
            pad_token_id: self.tokenizer.pad_token_id,
            ..Default::default()
        };
        let every: Vec<usize> = (0..self.eval_prompts.len()).collect();
        let (texts, s) = self.generate_and_score_eval(&every, &greedy)?;
        let mut out = eval_metrics("eval", &self.reward_fns, &s);
        let n = self.config.eval_num_samples;
        if n > 0 {
            let sampler = GenerationConfig {
                temperature: self.config.temperature,
                top_p: self.config.top_p,
                top_k: self.config.top_k,
                seed: derive_seed(self.config.seed, 0xE7A1),
                ..greedy
            };
            let repeated: Vec<usize> = every.iter().flat_map(|&i| std::iter::repeat_n(i, n)).collect();
            let (_, sampled) = self.generate_and_score_eval(&repeated, &sampler)?;
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
    fn generate_and_score_eval(&self, order: &[usize], gen: &GenerationConfig) -> Result<(Vec<String>, ScoredBatch)> {
        let policy = self.model.valid();
        let mut texts = Vec::with_capacity(order.len());
        for (c, chunk) in order.chunks(64).enumerate() {
            let ids: Vec<Vec<u32>> = chunk.iter().map(|&i| self.eval_prompts[i].ids.clone()).collect();
            let g = GenerationConfig { stream_offset: (c * 64) as u64, ..gen.clone() };
            let outs = generate(&policy, &ids, &g, Some(&self.tokenizer))?;
            texts.extend(outs.into_iter().map(|o| o.text.unwrap_or_default()));
        }
        let prompts: Vec<String> = order.iter().map(|&i| self.eval_prompts[i].text.clone()).collect();
        let rows: Vec<&Row> = order.iter().map(|&i| &self.eval_prompts[i].row).collect();
        let locs: Vec<String> = order.iter().map(|&i| self.eval_prompts[i].location.clone()).collect();
        let scored = score_all(&self.reward_fns, &prompts, &texts, &rows, &locs)?;
        Ok((texts, scored))
    }

    /// Evaluate, log the metrics at `step` and append the completions to `eval_samples.jsonl`.
    fn log_evaluation(&self, run: &mut Run, step: u64) -> Result<Metrics> {
        let (metrics, samples) = self.evaluate_with_completions()?;
        if !metrics.is_empty() {
            let m: Vec<(&str, f64)> = metrics.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            run.log(step, &m)?;
            run.append_jsonl("eval_samples.jsonl", step, &samples)?;
        }
        Ok(metrics)
    }

    /// Train for `max_steps` optimizer steps, logging into a new run directory; returns the summary.
    pub fn train(&mut self) -> Result<serde_json::Value> {
        let c = self.config.clone();
        let mut run = Run::create(&c.output_dir, &c.run_name, &c, &self.tokenizer_dir)?;
        let names: Vec<String> = self.reward_fns.iter().map(|(f, _)| f.name().to_string()).collect();
        let store = if c.write_rollouts {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            Some(RolloutStore::new(run.dir.path().join("rollouts"), &c.run_name, &refs, Default::default())?)
        } else {
            None
        };
        let t0 = Instant::now();
        let mut eval_history = Vec::new();
        let first_eval = self.log_evaluation(&mut run, 0)?;
        if !first_eval.is_empty() {
            eval_history.push((0u64, first_eval.clone()));
        }
        let (mut gen_s, mut train_s, mut tokens) = (0.0, 0.0, 0usize);
        let mut last_reward = f64::NAN;
        while self.step < c.max_steps {
            let tg = Instant::now();
            let idx = self.next_prompts();
            let seed = derive_seed(c.seed, 1000 + self.step);
            let r = self.generate_and_score(&idx, seed)?;
            let batch = self.rollout_batch(&r);
            let old = if c.num_iterations > 1 { Some(self.frozen_logps(&self.model.valid(), &batch)?) } else { None };
            let refp = match &self.reference {
                Some(m) => Some(self.frozen_logps(m, &batch)?),
                None => None,
            };
            gen_s += tg.elapsed().as_secs_f64();
            tokens += batch.valid.iter().flatten().filter(|&&v| v).count() * c.num_iterations;
            if let Some(store) = &store {
                store.write_step(
                    self.step as i64,
                    &rollout_groups(self.step as i64, &self.prompts, &r, c.num_generations),
                )?;
            }
            for it in 0..c.num_iterations {
                if self.step >= c.max_steps {
                    break;
                }
                let tt = Instant::now();
                let lr = learning_rate(c.learning_rate, self.step, c.max_steps, c.warmup_steps, c.constant_lr);
                let (loss, stats) = self.compute_loss(&batch, &r.advantages, old.as_deref(), refp.as_deref())?;
                let (model, norm) =
                    optimizer_step(self.model.clone(), &loss, &mut self.optimizer, lr, c.max_grad_norm, "grpo")?;
                self.model = model;
                self.step += 1;
                train_s += tt.elapsed().as_secs_f64();
                if self.step.is_multiple_of(c.logging_steps) || self.step == c.max_steps {
                    let mut m = self.rollout_metrics(&r, &names);
                    m.extend([
                        ("loss".to_string(), stats.loss),
                        ("grad_norm".to_string(), norm),
                        ("learning_rate".to_string(), lr),
                        ("kl".to_string(), stats.kl),
                        ("clip_ratio/low_mean".to_string(), stats.clip_low),
                        ("clip_ratio/high_mean".to_string(), stats.clip_high),
                        ("clip_ratio/region_mean".to_string(), stats.clip_region),
                    ]);
                    let refs: Vec<(&str, f64)> = m.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                    run.log(self.step, &refs)?;
                    if it == 0 {
                        let rows: Vec<serde_json::Value> = (0..r.texts.len().min(c.num_samples_logged))
                            .map(|k| {
                                serde_json::json!({
                                    "prompt": self.prompts[r.prompt_index[k]].text,
                                    "completion": r.texts[k],
                                    "reward": r.rewards[k],
                                    "advantage": r.advantages[k],
                                })
                            })
                            .collect();
                        run.samples(self.step, &rows)?;
                    }
                }
                if c.save_steps > 0 && self.step.is_multiple_of(c.save_steps) {
                    run.checkpoint(&self.model, &format!("step-{}", self.step))?;
                }
            }
            last_reward = mean_finite(&r.rewards);
            if c.eval_steps > 0 && self.step.is_multiple_of(c.eval_steps) && self.step < c.max_steps {
                let e = self.log_evaluation(&mut run, self.step)?;
                if !e.is_empty() {
                    eval_history.push((self.step, e));
                }
            }
        }
        let final_eval = self.log_evaluation(&mut run, self.step)?;
        if !final_eval.is_empty() {
            eval_history.push((self.step, final_eval.clone()));
        }
        let wall = t0.elapsed().as_secs_f64();
        let ckpt = run.checkpoint(&self.model, "final")?;
        let summary = serde_json::json!({
            "method": "grpo",
            "run_dir": run.dir.path().display().to_string(),
            "checkpoint": ckpt.display().to_string(),
            "steps": self.step,
            "last_train_reward": last_reward,
            "eval_first": first_eval.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
            "eval_final": final_eval.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
            "wall_seconds": wall,
            "seconds_per_step": wall / self.step.max(1) as f64,
            "generation_seconds": gen_s,
            "train_seconds": train_s,
            "tokens_per_second": tokens as f64 / (gen_s + train_s).max(1e-9),
        });
        run.finish(&summary)?;
        Ok(summary)
    }

    fn rollout_metrics(&self, r: &Rollout, names: &[String]) -> Vec<(String, f64)> {
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
        for (k, name) in names.iter().enumerate() {
            let v = &r.per_function[k];
            m.push((format!("rewards/{name}/mean"), mean_finite(v)));
            let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
            m.push((format!("rewards/{name}/std"), crate::losses::std_unbiased(&finite)));
        }
        m
    }
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

impl crate::config::RequiredKeys for GrpoConfig {
    fn required(&self) -> Vec<(&'static str, bool)> {
        vec![
            ("model_name_or_path (or [model] path)", !self.model.path.as_os_str().is_empty()),
            ("dataset_name (or train_file)", !self.train_file.as_os_str().is_empty()),
        ]
    }
}
