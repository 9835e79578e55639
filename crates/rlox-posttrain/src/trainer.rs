//! The one post-training loop, which SFT, reward modelling, DPO and GRPO plug their step into.
//!
//! A method ([`Method`]) says how to build itself from a config, what one optimizer step's loss is (and
//! what to log with it), how to evaluate, and what state it keeps between steps (the data order). The
//! loop ([`Trainer`]) does everything else, once for all of them:
//!
//! * the learning-rate schedule ([`learning_rate`]: linear warm-up, then linear decay or constant);
//! * the optimizer step: backward, global-norm clipping, the update ([`optimizer_step`]); a non-finite
//!   loss or gradient norm stops the run with [`rlox_core::Error::Diverged`];
//! * logging every `log_every` steps (and at the last), with TRL's names: `loss`, `grad_norm`,
//!   `learning_rate` and the method's metrics;
//! * evaluation (methods that have it) at the start, every `eval_every` steps and at the end;
//! * checkpoints every `checkpoint_every` steps and at the end ([`crate::checkpoint`]), and `--resume`
//!   from the latest one with exactly the numbers an uninterrupted run gives;
//! * the summary (`summary.json`).
//!
//! A method may restrict checkpoints to step boundaries of its own ([`Method::at_boundary`]): GRPO
//! with `num_iterations > 1` takes several optimizer steps on one generation round, and checkpoints
//! only between rounds (a checkpoint that falls due inside a round is taken at the round's end).

use crate::checkpoint::{self, TrainedModel, TrainerState};
use crate::config::{Optimization, RunConfig};
use crate::model::Loaded;
use crate::outputs::Outputs;
use crate::{Error, Result};
use rand::seq::SliceRandom;
use rlox_core::run::RunSettings;
use rlox_core::seeding::{derive_seed, RngState, SeededRng};
use rlox_nn::{Device, Module, Optimizer, Tensor};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Named scalar metrics, in logging order.
pub type Metrics = Vec<(String, f64)>;

/// The post-training methods (the `rlox` subcommand of each, and the `method` of its checkpoints).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MethodKind {
    /// Supervised fine-tuning ([`crate::sft`]).
    Sft,
    /// Reward modelling ([`crate::reward_model`]).
    Rm,
    /// Direct Preference Optimization ([`crate::dpo`]).
    Dpo,
    /// Group Relative Policy Optimization ([`crate::grpo`]).
    Grpo,
}

impl MethodKind {
    /// `sft`, `rm`, `dpo` or `grpo`.
    pub fn name(self) -> &'static str {
        match self {
            MethodKind::Sft => "sft",
            MethodKind::Rm => "rm",
            MethodKind::Dpo => "dpo",
            MethodKind::Grpo => "grpo",
        }
    }
}

impl std::fmt::Display for MethodKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What one step of a method produces before the optimizer step.
pub struct StepOutput {
    /// The loss to minimise (its value is logged as `loss`).
    pub loss: Tensor<1>,
    /// Metrics to log with it (TRL's names).
    pub metrics: Metrics,
    /// Tokens in the step's batch (for `tokens_per_second`).
    pub tokens: usize,
    /// Rows for `samples.jsonl`, written when the step is logged.
    pub samples: Vec<serde_json::Value>,
}

/// What an evaluation produces.
pub struct Evaluation {
    /// Logged at the evaluation's step (names start with `eval/`).
    pub metrics: Metrics,
    /// Rows for `eval_samples.jsonl` (one per eval example).
    pub samples: Vec<serde_json::Value>,
}

/// An evaluation over `len` examples in batches of `batch` indices: `score` gives a batch's metrics
/// and its weight (pairs, tokens, ...); the result is the weighted means, named `eval/<name>`.
pub fn evaluate_batches(
    len: usize,
    batch: usize,
    mut score: impl FnMut(&[usize]) -> Result<(Metrics, f64)>,
) -> Result<Option<Evaluation>> {
    if len == 0 {
        return Ok(None);
    }
    let all: Vec<usize> = (0..len).collect();
    let (mut sums, mut weight): (Metrics, f64) = (Vec::new(), 0.0);
    for chunk in all.chunks(batch.max(1)) {
        let (metrics, w) = score(chunk)?;
        if sums.is_empty() {
            sums = metrics.iter().map(|(k, _)| (format!("eval/{k}"), 0.0)).collect();
        }
        for ((_, sum), (_, v)) in sums.iter_mut().zip(&metrics) {
            *sum += w * v;
        }
        weight += w;
    }
    let metrics = sums.into_iter().map(|(k, s)| (k, s / weight)).collect();
    Ok(Some(Evaluation { metrics, samples: Vec::new() }))
}

/// One post-training method, as the shared loop drives it (see the module docs).
pub trait Method: Sized {
    /// The method's own hyper-parameters (one section of the flat config).
    type Config: Serialize + DeserializeOwned + Default + Clone + std::fmt::Debug + PartialEq;
    /// The module trained (a causal LM, or a reward model around one).
    type Model: TrainedModel;
    /// What the method keeps between steps (the data order, counters), saved in checkpoints.
    type State: Serialize + DeserializeOwned;

    /// Which method this is.
    const KIND: MethodKind;

    /// Summary keys taken from the last step's metrics: `(summary key, metric name)`.
    const SUMMARY: &'static [(&'static str, &'static str)] = &[];

    /// This method's defaults for the run settings and the optimisation (each with its source).
    fn defaults() -> (RunSettings, Optimization);

    /// Check the config and build the method and the model from the loaded model and tokenizer.
    fn build(config: &RunConfig<Self::Config>, loaded: Loaded) -> Result<(Self, Self::Model)>;

    /// Optimizer steps of `num_train_epochs` passes over the data, for `total_steps = 0`; `None` when
    /// the method needs `total_steps`.
    fn epoch_steps(&self) -> Option<u64>;

    /// Called once the run directory exists, before step `step` (0 for a new run, the checkpoint's step
    /// when resuming).
    fn begin(&mut self, _run_dir: &Path, _step: u64) -> Result<()> {
        Ok(())
    }

    /// The loss of optimizer step `step` (0-based) under `model`, and what to log with it.
    fn step(&mut self, model: &Self::Model, step: u64) -> Result<StepOutput>;

    /// Score `model` on the held-out data (`None`: this method or run has none).
    fn evaluate(&mut self, _model: &Self::Model) -> Result<Option<Evaluation>> {
        Ok(None)
    }

    /// Whether a checkpoint may be taken after `steps_done` steps (see the module docs).
    fn at_boundary(&self, _steps_done: u64) -> bool {
        true
    }

    /// The state to checkpoint.
    fn state(&self) -> Self::State;

    /// Continue from a checkpointed state.
    fn restore(&mut self, state: Self::State) -> Result<()>;

    /// More summary entries (timings, ...).
    fn summary_extra(&self) -> Vec<(&'static str, serde_json::Value)> {
        Vec::new()
    }
}

/// Linear warm-up then linear decay to zero over `total` steps (TRL's default `linear` schedule with
/// `warmup_steps`); `constant` keeps `lr` after the warm-up.
pub fn learning_rate(lr: f64, step: u64, total: u64, warmup: u64, constant: bool) -> f64 {
    if step < warmup {
        return lr * (step + 1) as f64 / warmup as f64;
    }
    if constant {
        return lr;
    }
    let rest = total.saturating_sub(warmup).max(1) as f64;
    lr * (1.0 - (step - warmup) as f64 / rest).max(0.0)
}

/// One optimizer step on `loss`: backward, global-norm clip (`max_grad_norm > 0`), update. Returns the
/// updated module and the gradient norm before clipping. A non-finite loss or norm is an
/// [`Error::Diverged`] naming `method` and `step` (1-based), and leaves the model unchanged.
pub fn optimizer_step<M: Module>(
    model: M,
    loss: &Tensor<1>,
    optimizer: &mut Optimizer,
    lr: f64,
    max_grad_norm: f64,
    method: MethodKind,
    step: u64,
) -> Result<(M, f64)> {
    let value = loss.clone().into_scalar::<f32>() as f64;
    if !value.is_finite() {
        return Err(Error::diverged(method.name(), "loss", value, "step", step));
    }
    let mut grads = rlox_nn::backward(loss, &model);
    let norm = if max_grad_norm > 0.0 {
        rlox_nn::clip_grad_norm(&model, &mut grads, max_grad_norm)
    } else {
        rlox_nn::global_grad_norm(&model, &grads)
    };
    if !norm.is_finite() {
        return Err(Error::diverged(method.name(), "gradient norm", norm, "step", step));
    }
    Ok((optimizer.step(lr, model, grads), norm))
}

/// Where a data sampler stands: its random stream and the indices drawn but not yet used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplerState {
    /// The shuffling stream.
    pub rng: RngState,
    /// The rest of the current epoch's order.
    pub pending: Vec<usize>,
}

/// Batches of example indices, epoch after epoch (each epoch a new permutation when shuffling); a batch
/// may span two epochs.
#[derive(Debug, Clone)]
pub struct EpochSampler {
    len: usize,
    shuffle: bool,
    rng: SeededRng,
    pending: Vec<usize>,
}

impl EpochSampler {
    /// A sampler over `len` examples, shuffled with the run's data stream (`derive_seed(seed, 2)`).
    pub fn new(len: usize, shuffle: bool, seed: u64) -> Self {
        EpochSampler { len, shuffle, rng: SeededRng::new(derive_seed(seed, 2)), pending: Vec::new() }
    }

    /// The next `n` indices.
    pub fn next(&mut self, n: usize) -> Vec<usize> {
        while self.pending.len() < n {
            let mut epoch: Vec<usize> = (0..self.len).collect();
            if self.shuffle {
                epoch.shuffle(&mut self.rng.rng);
            }
            self.pending.extend(epoch);
        }
        self.pending.drain(..n).collect()
    }

    /// Its state, for checkpoints.
    pub fn state(&self) -> SamplerState {
        SamplerState { rng: self.rng.state(), pending: self.pending.clone() }
    }

    /// Back at a checkpointed state (indices must fit the dataset).
    pub fn restore(&mut self, s: SamplerState) -> Result<()> {
        if let Some(i) = s.pending.iter().find(|&&i| i >= self.len) {
            return Err(Error::invalid(
                "checkpoint data order",
                format!("index {i} is past the dataset's {} examples: the data changed since the checkpoint", self.len),
            ));
        }
        self.rng = SeededRng::from_state(&s.rng)?;
        self.pending = s.pending;
        Ok(())
    }
}

/// A method with its model, config and training device: build one with [`Trainer::new`], then
/// [`Trainer::train`] (a new run directory) or [`Trainer::resume`] (continue a run).
pub struct Trainer<M: Method> {
    /// The run's config.
    pub config: RunConfig<M::Config>,
    /// The module being trained.
    pub model: M::Model,
    /// The method's data and state.
    pub method: M,
    device: Device,
    tokenizer_dir: PathBuf,
}

/// Where the loop stands (what a checkpoint holds besides the model, optimizer and method state).
#[derive(Default)]
struct Progress {
    step: u64,
    last: Metrics,
    first_eval: Option<Metrics>,
    last_eval: Option<Metrics>,
}

impl<M: Method> Trainer<M> {
    /// Load the model and data named in `config` (the training device is seeded with
    /// `derive_seed(seed, 1)`, which a from-scratch model's initialisation draws from).
    pub fn new(config: &RunConfig<M::Config>) -> Result<Self> {
        let device = rlox_nn::train_device(config.run.device, derive_seed(config.run.seed, 1))?;
        let loaded = config.model.load(&device)?;
        Self::from_loaded(config, loaded)
    }

    /// A trainer around a model already loaded (on an autodiff device) with its tokenizer.
    pub fn from_loaded(config: &RunConfig<M::Config>, loaded: Loaded) -> Result<Self> {
        let (device, tokenizer_dir) = (loaded.device.clone(), loaded.tokenizer_dir.clone());
        let (method, model) = M::build(config, loaded)?;
        Ok(Trainer { config: config.clone(), model, method, device, tokenizer_dir })
    }

    /// The number of optimizer steps of the run.
    pub fn total_steps(&self) -> Result<u64> {
        let total = match self.config.run.total_steps {
            0 => self.method.epoch_steps().unwrap_or(0),
            n => n,
        };
        if total == 0 {
            return Err(Error::invalid(
                format!("{}.total_steps", M::KIND),
                "must be > 0 (`max_steps`; or num_train_epochs > 0 where the method counts epochs)",
            ));
        }
        Ok(total)
    }

    /// Train in a new run directory (`<runs_dir>/<name>-<time>/`); returns the summary.
    pub fn train(&mut self) -> Result<serde_json::Value> {
        let total = self.total_steps()?;
        let run = &self.config.run;
        let outputs = Outputs::create(&run.runs_dir, &run.name, &self.config.to_toml()?, run.progress, total)?;
        self.run_loop(outputs, Progress::default(), self.config.optimization.optimizer.build(), None)
    }

    /// Continue the run in `run_dir` from its latest checkpoint (this trainer was built from the run's
    /// `config.toml`): the model, optimizer, data order and counters come back exactly, the metrics and
    /// sample files are cut back to what was written before the checkpoint, and the run goes on in the
    /// same directory. A missing, truncated or corrupted checkpoint is an error naming the file.
    pub fn resume(&mut self, run_dir: &Path) -> Result<serde_json::Value> {
        let total = self.total_steps()?;
        let (dir, state) = checkpoint::load_state::<M::State>(run_dir, M::KIND)?;
        let model = self.model.load(&dir, &self.device)?;
        let mut optimizer = self.config.optimization.optimizer.build();
        checkpoint::load_optimizer(&dir, &mut optimizer, &model, &state.optimizer)?;
        let TrainerState { step, records, appended, last, first_eval, last_eval, method_state, .. } = state;
        self.model = model;
        self.method
            .restore(method_state)
            .map_err(|e| checkpoint::checkpoint_error(&checkpoint::state_file(&dir), e))?;
        let outputs = Outputs::resume(run_dir, records, &appended, self.config.run.progress, total)?;
        let progress = Progress {
            step,
            last: checkpoint::from_json_metrics(last),
            first_eval: first_eval.map(checkpoint::from_json_metrics),
            last_eval: last_eval.map(checkpoint::from_json_metrics),
        };
        self.run_loop(outputs, progress, optimizer, Some(step))
    }

    fn run_loop(
        &mut self,
        mut outputs: Outputs,
        mut p: Progress,
        mut optimizer: Optimizer,
        resumed_from: Option<u64>,
    ) -> Result<serde_json::Value> {
        let total = self.total_steps()?;
        let (run, opt) = (self.config.run.clone(), self.config.optimization.clone());
        self.method.begin(outputs.dir.path(), p.step)?;
        let t0 = Instant::now();
        let start = p.step;
        let mut tokens = 0usize;
        if p.step == 0 {
            self.log_evaluation(&mut outputs, &mut p)?;
        }
        let mut checkpoint_due = false;
        while p.step < total {
            let lr = learning_rate(opt.learning_rate, p.step, total, opt.warmup_steps, opt.constant_lr);
            let out = self.method.step(&self.model, p.step)?;
            let loss = out.loss.clone().detach().into_scalar::<f32>() as f64;
            let (model, grad_norm) = optimizer_step(
                self.model.clone(),
                &out.loss,
                &mut optimizer,
                lr,
                opt.max_grad_norm,
                M::KIND,
                p.step + 1,
            )?;
            self.model = model;
            p.step += 1;
            tokens += out.tokens;
            let mut metrics: Metrics =
                vec![("loss".into(), loss), ("grad_norm".into(), grad_norm), ("learning_rate".into(), lr)];
            metrics.extend(out.metrics);
            if run.log_every == 0 || RunSettings::due(run.log_every, p.step) || p.step == total {
                outputs.log(p.step, &metrics)?;
                outputs.append(crate::outputs::SAMPLES, p.step, &out.samples)?;
            }
            p.last = metrics;
            if p.step < total {
                if RunSettings::due(run.eval_every, p.step) {
                    self.log_evaluation(&mut outputs, &mut p)?;
                }
                checkpoint_due |= RunSettings::due(run.checkpoint_every, p.step);
                if checkpoint_due && self.method.at_boundary(p.step) {
                    self.save(&mut outputs, &p, &optimizer)?;
                    checkpoint_due = false;
                }
            }
        }
        // A run resumed from its final checkpoint has done its final evaluation and checkpoint already.
        if start < total {
            self.log_evaluation(&mut outputs, &mut p)?;
            self.save(&mut outputs, &p, &optimizer)?;
        }
        let wall = t0.elapsed().as_secs_f64();
        let steps_here = p.step - start;
        let last = |name: &str| p.last.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
        let mut summary = serde_json::json!({
            "method": M::KIND.name(),
            "run_dir": outputs.dir.path().display().to_string(),
            "checkpoint": checkpoint::latest(outputs.dir.path())?.display().to_string(),
            "steps": p.step,
            "final_loss": last("loss"),
            "wall_seconds": wall,
            "seconds_per_step": wall / steps_here.max(1) as f64,
            "tokens_per_second": tokens as f64 / wall.max(1e-9),
        });
        let map = summary.as_object_mut().expect("an object");
        if let Some(step) = resumed_from {
            map.insert("resumed_from_step".into(), step.into());
        }
        for (key, metric) in M::SUMMARY {
            map.insert((*key).into(), serde_json::json!(last(metric)));
        }
        let as_map =
            |m: &Metrics| m.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>();
        if let (Some(first), Some(last)) = (&p.first_eval, &p.last_eval) {
            map.insert("eval_first".into(), as_map(first).into());
            map.insert("eval_final".into(), as_map(last).into());
        }
        for (key, value) in self.method.summary_extra() {
            map.insert(key.into(), value);
        }
        outputs.finish(&summary)?;
        Ok(summary)
    }

    fn log_evaluation(&mut self, outputs: &mut Outputs, p: &mut Progress) -> Result<()> {
        let Some(e) = self.method.evaluate(&self.model)? else { return Ok(()) };
        outputs.log(p.step, &e.metrics)?;
        outputs.append(crate::outputs::EVAL_SAMPLES, p.step, &e.samples)?;
        p.first_eval.get_or_insert_with(|| e.metrics.clone());
        p.last_eval = Some(e.metrics);
        Ok(())
    }

    fn save(&self, outputs: &mut Outputs, p: &Progress, optimizer: &Optimizer) -> Result<PathBuf> {
        let (records, appended) = outputs.sync()?;
        let mut arrays = rlox_nn::state::Arrays::new();
        let meta = rlox_nn::state::export_optimizer(optimizer, &self.model, checkpoint::OPTIMIZER, &mut arrays)?;
        let state = TrainerState {
            method: M::KIND,
            step: p.step,
            records,
            appended,
            optimizer: meta,
            last: checkpoint::to_json_metrics(&p.last),
            first_eval: p.first_eval.as_deref().map(checkpoint::to_json_metrics),
            last_eval: p.last_eval.as_deref().map(checkpoint::to_json_metrics),
            method_state: self.method.state(),
        };
        checkpoint::save(outputs.dir.path(), &state, &self.model, &arrays, &self.tokenizer_dir)
    }
}
