//! # rlox-vlm
//!
//! Vision-language models on burn: Kimi-VL (Moonshot AI, arXiv 2504.07491) — the MoonViT native-resolution
//! vision encoder, the MLP projector and the DeepSeek-V3 mixture-of-experts language model of rlox-lm —
//! loaded from and saved to its published checkpoint layout, with its image processor and chat format,
//! generating text from images and text.
//!
//! * [`config`]: [`KimiVlConfig`] (`model_type: "kimi_vl"`, nested `vision_config` and `text_config`).
//! * [`moonvit`]: [`MoonVit`]: patch embedding, bicubically resampled position table, 2-D RoPE, packed
//!   images with block-diagonal attention, 2x2 patch merger.
//! * [`projector`]: [`Projector`], merged image tokens into the text embedding space.
//! * [`processor`]: [`ImageProcessor`], PNG/JPEG to normalised patches and grids (Pillow-exact resize).
//! * [`model`]: [`KimiVl`], image features in place of `<|media_pad|>` tokens; [`ImagePrompts`] for
//!   generation with rlox-lm's [`rlox_lm::generate`].
//! * [`chat`]: Kimi-VL's chat format and placeholder expansion.
//! * [`hf`]: loading (single file or shards, bf16 included) and saving; parameter counts without weights.
//! * [`commands`]: `rlox vlm generate` / `rlox vlm score` as library functions returning JSON.
//!
//! Errors are [`rlox_core::Error`]s that name the file, image, tensor or argument at fault.

#![warn(missing_docs)]

pub mod chat;
pub mod commands;
pub mod config;
pub mod hf;
pub mod model;
pub mod moonvit;
pub mod processor;
pub mod projector;

pub use config::{KimiVlConfig, MoonVitConfig};
pub use hf::{load_kimi_vl, param_counts, save_kimi_vl, ParamCounts};
pub use model::{ImagePrompts, KimiVl};
pub use moonvit::{MoonVit, VisionOutput};
pub use processor::{ImageProcessor, ProcessedImage, ProcessorConfig};
pub use projector::Projector;
