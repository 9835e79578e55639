//! A vision-language model learning a visual task end to end: naming the colour of an image.
//!
//! Each image is a square of one of four colours, every channel jittered so that no two images are
//! alike; the prompt (a chat turn with the image, TRL's conversational form with an `images` column)
//! asks for the colour; the answer is its name. A tiny Kimi-VL with random weights learns it in two
//! stages, both through the ordinary SFT and GRPO trainers:
//!
//! 1. SFT on rows whose answers are drawn at random, independently of the image. This teaches the
//!    answer's form (a colour name, then the end of the turn) but, since the labels say nothing about
//!    the pixels, not the colours: accuracy stays near chance (1 in 4).
//! 2. GRPO from that checkpoint with the `answer_match` reward against the true colour. Only the image
//!    tells the answers apart, so a reward rising above chance is the model learning to look: the
//!    gradient reaches the vision tower and the projector through the image tokens.
//!
//! Held-out images (new jitters) are scored at every evaluation, greedy and sampled
//! (`eval/answer_match`, `eval/sampled/answer_match`). With the defaults (seeds 0-2, measured when this
//! was written) the training reward goes from 0.20-0.23 over the first 50 steps to 0.50-0.83 over the
//! last 50, and held-out sampled accuracy from 0.16-0.22 to 0.50-0.97. Where it stops short of 1, GRPO
//! has made the policy certain of a wrong name for one colour: every completion of that colour's group
//! then gets the same reward, the group's advantages are zero, and nothing corrects it (more
//! completions per group or a lower learning rate make this rarer, not impossible). The test
//! `crates/rlox-posttrain/tests/vision.rs` runs it; `cargo run --release -p rlox-posttrain --example
//! vlm_colours` prints the curve.

use crate::config::{DataConfig, Optimization, RunConfig};
use crate::grpo::{Grpo, GrpoConfig, GrpoTrainer};
use crate::model::ModelConfig;
use crate::rewards::RewardSpec;
use crate::sft::{Sft, SftConfig, SftTrainer};
use crate::trainer::Method;
use crate::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rlox_core::run::RunSettings;
use rlox_nn::DeviceKind;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The colours and their base RGB values.
pub const COLOURS: [(&str, [u8; 3]); 4] =
    [("red", [210, 40, 40]), ("green", [40, 180, 60]), ("blue", [40, 60, 210]), ("yellow", [225, 215, 50])];

/// The question asked of every image.
pub const QUESTION: &str = "What colour is it?";

/// The task's sizes and the two stages' settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ColourTaskConfig {
    /// Seed of the images, the random SFT labels, the model's initialisation and both runs.
    pub seed: u64,
    /// Training images per colour.
    pub train_per_colour: usize,
    /// Held-out images per colour.
    pub eval_per_colour: usize,
    /// Image side in pixels (28: one merged image token with MoonViT's 14-pixel patches).
    pub side: u32,
    /// Per-channel jitter, +- this much.
    pub jitter: u8,
    /// SFT steps (batch 8, random labels).
    pub sft_steps: u64,
    /// SFT learning rate.
    pub sft_learning_rate: f64,
    /// GRPO steps.
    pub grpo_steps: u64,
    /// GRPO learning rate (constant).
    pub grpo_learning_rate: f64,
    /// Prompts per GRPO step.
    pub prompts_per_step: usize,
    /// Completions per prompt (the group).
    pub num_generations: usize,
    /// Evaluate every this many GRPO steps.
    pub eval_every: u64,
}

impl Default for ColourTaskConfig {
    fn default() -> Self {
        ColourTaskConfig {
            seed: 0,
            train_per_colour: 16,
            eval_per_colour: 4,
            side: 28,
            jitter: 30,
            sft_steps: 200,
            sft_learning_rate: 3e-3,
            grpo_steps: 200,
            grpo_learning_rate: 3e-3,
            prompts_per_step: 4,
            num_generations: 16,
            eval_every: 10,
        }
    }
}

/// The files of a written task.
#[derive(Debug, Clone)]
pub struct ColourTask {
    /// The tiny random Kimi-VL (weights, config, tokenizer, preprocessor config).
    pub model_dir: PathBuf,
    /// SFT rows (random answers).
    pub sft_train: PathBuf,
    /// GRPO prompts (true answers in `answer`).
    pub grpo_train: PathBuf,
    /// Held-out prompts.
    pub eval: PathBuf,
}

/// One image's jittered colour.
fn jittered(base: [u8; 3], jitter: u8, rng: &mut ChaCha8Rng) -> [u8; 3] {
    let j = jitter as i32;
    base.map(|c| (c as i32 + rng.random_range(-j..=j)).clamp(0, 255) as u8)
}

/// Write the images (PNG), the three JSON Lines files and a random model shaped like `template`'s
/// (a Kimi-VL directory: its config, tokenizer and preprocessor files) under `dir`.
pub fn write_task(dir: &Path, template: &Path, c: &ColourTaskConfig) -> Result<ColourTask> {
    let images = dir.join("images");
    std::fs::create_dir_all(&images).map_err(|e| Error::io(&images, e))?;
    let mut rng = ChaCha8Rng::seed_from_u64(c.seed);
    let mut write_split = |name: &str, per_colour: usize, random_answers: bool| -> Result<PathBuf> {
        let mut lines = String::new();
        for k in 0..per_colour {
            for (colour, base) in COLOURS {
                let rgb = jittered(base, c.jitter, &mut rng);
                let file = format!("{name}-{k:03}-{colour}.png");
                let path = images.join(&file);
                image::RgbImage::from_pixel(c.side, c.side, image::Rgb(rgb))
                    .save(&path)
                    .map_err(|e| Error::invalid(path.display().to_string(), format!("cannot write: {e}")))?;
                let prompt =
                    json!([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]);
                let mut row = json!({"images": [format!("images/{file}")], "prompt": prompt, "answer": colour});
                if random_answers {
                    let said = COLOURS[rng.random_range(0..COLOURS.len())].0;
                    row["completion"] = json!([{"role": "assistant", "content": said}]);
                }
                lines.push_str(&row.to_string());
                lines.push('\n');
            }
        }
        let path = dir.join(format!("{name}.jsonl"));
        std::fs::write(&path, lines).map_err(|e| Error::io(&path, e))?;
        Ok(path)
    };
    let sft_train = write_split("sft", c.train_per_colour, true)?;
    let grpo_train = write_split("train", c.train_per_colour, false)?;
    let eval = write_split("eval", c.eval_per_colour, false)?;
    let model_dir = dir.join("model");
    let config = rlox_vlm::KimiVlConfig::from_file(template.join("config.json"))?;
    let device = rlox_nn::train_device(DeviceKind::Cpu, c.seed)?;
    let model = rlox_vlm::KimiVl::new(&config, rlox_lm::Init::Normal(0.02), &device);
    rlox_vlm::save_kimi_vl(&model, &model_dir, Some(template), rlox_lm::StorageDtype::F32, u64::MAX)?;
    Ok(ColourTask { model_dir, sft_train, grpo_train, eval })
}

/// A run config of method `M` under `dir/runs` with `(steps, learning rate)` and no warm-up.
fn run_config<M: Method>(
    dir: &Path,
    name: &str,
    model: &Path,
    data: DataConfig,
    (steps, lr): (u64, f64),
    seed: u64,
    method: M::Config,
) -> RunConfig<M::Config> {
    let (run, _) = M::defaults();
    RunConfig {
        run: RunSettings {
            name: name.into(),
            seed,
            total_steps: steps,
            log_every: 1,
            checkpoint_every: 0,
            runs_dir: dir.join("runs"),
            progress: false,
            ..run
        },
        model: ModelConfig { path: model.to_path_buf(), init: None },
        data,
        optimization: Optimization { warmup_steps: 0, ..Optimization::with_learning_rate(lr) },
        method,
    }
}

/// Stage 1's config: SFT on the random answers.
pub fn sft_config(dir: &Path, task: &ColourTask, c: &ColourTaskConfig) -> RunConfig<SftConfig> {
    let data = DataConfig { train_file: task.sft_train.clone(), ..Default::default() };
    let method = SftConfig { per_device_train_batch_size: 8, max_length: Some(256), ..Default::default() };
    run_config::<Sft>(dir, "colours-sft", &task.model_dir, data, (c.sft_steps, c.sft_learning_rate), c.seed, method)
}

/// Stage 2's config: GRPO from `model` (stage 1's checkpoint) with the true answers.
pub fn grpo_config(dir: &Path, task: &ColourTask, model: &Path, c: &ColourTaskConfig) -> RunConfig<GrpoConfig> {
    let data =
        DataConfig { train_file: task.grpo_train.clone(), eval_file: Some(task.eval.clone()), ..Default::default() };
    let method = GrpoConfig {
        reward_funcs: vec![RewardSpec::AnswerMatch { weight: 1.0 }],
        num_generations: c.num_generations,
        prompts_per_step: c.prompts_per_step,
        max_completion_length: 8,
        eval_num_samples: 4,
        write_rollouts: false,
        ..Default::default()
    };
    let mut cfg =
        run_config::<Grpo>(dir, "colours-grpo", model, data, (c.grpo_steps, c.grpo_learning_rate), c.seed, method);
    cfg.run.eval_every = c.eval_every;
    cfg.optimization.constant_lr = true;
    cfg
}

/// What the two stages gave.
#[derive(Debug, Clone)]
pub struct ColourResult {
    /// The SFT run's summary.
    pub sft: Value,
    /// The GRPO run's summary.
    pub grpo: Value,
    /// `(step, greedy accuracy, sampled accuracy)` on the held-out images at each GRPO evaluation.
    pub eval: Vec<(u64, f64, f64)>,
    /// The mean training reward of each GRPO step.
    pub train_reward: Vec<f64>,
}

/// Write the task under `dir` and run both stages.
pub fn run(dir: &Path, template: &Path, c: &ColourTaskConfig) -> Result<ColourResult> {
    let task = write_task(dir, template, c)?;
    let sft = SftTrainer::new(&sft_config(dir, &task, c))?.train()?;
    let sft_dir = PathBuf::from(sft["run_dir"].as_str().unwrap_or_default());
    let checkpoint = crate::checkpoint::latest(&sft_dir)?;
    let grpo = GrpoTrainer::new(&grpo_config(dir, &task, &checkpoint, c))?.train()?;
    let grpo_dir = PathBuf::from(grpo["run_dir"].as_str().unwrap_or_default());
    let metrics_path = grpo_dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&metrics_path).map_err(|e| Error::io(&metrics_path, e))?;
    let (mut eval, mut train_reward) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
        let step = v["step"].as_u64().unwrap_or(0);
        if let (Some(g), Some(s)) = (v["eval/answer_match"].as_f64(), v["eval/sampled/answer_match"].as_f64()) {
            eval.push((step, g, s));
        }
        if let Some(r) = v["reward"].as_f64() {
            train_reward.push(r);
        }
    }
    Ok(ColourResult { sft, grpo, eval, train_reward })
}
