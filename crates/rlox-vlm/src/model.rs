//! [`KimiVl`]: the vision tower, the projector and the DeepSeek-V3 language model, and how image features
//! enter the text: every `<|media_pad|>` placeholder token of a prompt takes the next projected image token,
//! in order, in place of its embedding (what `KimiVLForConditionalGeneration` does), and the language model
//! runs on those embeddings.

use crate::config::KimiVlConfig;
use crate::moonvit::{MoonVit, VisionOutput};
use crate::processor::ProcessedImage;
use crate::projector::Projector;
use rlox_core::{Error, Result};
use rlox_lm::attention::{AttentionKernel, FlashAttention};
use rlox_lm::generate::Decode;
use rlox_lm::{DeepseekV3ForCausalLm, ForwardInput, Init, LatentCache, LmOutput};
use rlox_nn::burn;
use rlox_nn::{Device, Int, Module, Tensor, TensorData};

/// Kimi-VL (`KimiVLForConditionalGeneration`); parameter paths are the checkpoint's tensor names.
#[derive(Module, Debug)]
pub struct KimiVl {
    /// MoonViT.
    pub vision_tower: MoonVit,
    /// Vision-to-text projector.
    pub multi_modal_projector: Projector,
    /// The DeepSeek-V3 language model.
    pub language_model: DeepseekV3ForCausalLm,
    /// The configuration.
    #[module(skip)]
    pub config: KimiVlConfig,
}

impl KimiVl {
    /// Build a model of `config` with parameters from `init`.
    pub fn new(config: &KimiVlConfig, init: Init, device: &Device) -> Self {
        let v = &config.vision;
        KimiVl {
            vision_tower: MoonVit::new(v, init, device),
            multi_modal_projector: Projector::new(v.hidden_size, v.merge_len(), config.text.hidden_size, init, device),
            language_model: DeepseekV3ForCausalLm::new(&config.text, init, device),
            config: config.clone(),
        }
    }

    /// The device of the parameters.
    pub fn device(&self) -> Device {
        self.language_model.device()
    }

    /// Pack `images` into one tensor of patches and their grids.
    fn pack(&self, images: &[&ProcessedImage]) -> Result<(Tensor<2>, Vec<(usize, usize)>)> {
        let width = 3 * self.config.vision.patch_size * self.config.vision.patch_size;
        let mut data = Vec::new();
        let mut grids = Vec::new();
        for img in images {
            if img.pixel_values.len() != img.grid.0 * img.grid.1 * width {
                return Err(Error::invalid(
                    "image",
                    format!(
                        "{} pixel values for a {}x{} grid of {width}-value patches; was it processed for another patch size?",
                        img.pixel_values.len(),
                        img.grid.0,
                        img.grid.1
                    ),
                ));
            }
            data.extend_from_slice(&img.pixel_values);
            grids.push(img.grid);
        }
        let n = data.len() / width;
        Ok((Tensor::<2>::from_data(TensorData::new(data, [n, width]), &self.device()), grids))
    }

    /// MoonViT's outputs (each block, final, merged) for `images` packed into one sequence.
    pub fn vision(&self, images: &[&ProcessedImage]) -> Result<VisionOutput> {
        let (pixels, grids) = self.pack(images)?;
        self.vision_tower.forward_all(pixels, &grids)
    }

    /// Projected image tokens `[tokens, text_hidden]` of `images`, packed in one vision pass, in order.
    pub fn image_features(&self, images: &[&ProcessedImage]) -> Result<Tensor<2>> {
        Ok(self.multi_modal_projector.forward(self.vision(images)?.merged))
    }

    /// The image tokens of each row's images (one vision pass for the whole batch); `None` for rows without.
    pub fn features_per_row(&self, rows: &[Vec<ProcessedImage>]) -> Result<Vec<Option<Tensor<2>>>> {
        let all: Vec<&ProcessedImage> = rows.iter().flatten().collect();
        if all.is_empty() {
            return Ok(vec![None; rows.len()]);
        }
        let features = self.image_features(&all)?;
        let merge = self.config.vision.merge_kernel_size;
        let mut at = 0;
        Ok(rows
            .iter()
            .map(|imgs| {
                let n: usize = imgs.iter().map(|i| i.num_tokens(merge)).sum();
                let part = (n > 0).then(|| features.clone().narrow(0, at, n));
                at += n;
                part
            })
            .collect())
    }

    /// Input embeddings of `input` with `features[b]` in place of row `b`'s placeholder tokens. Only
    /// placeholders at rotary positions below `limit[b]` (when given: the prompt's length) are image slots;
    /// later ones (a generated placeholder) keep their token embedding. The number of slots of a row must
    /// equal its number of image tokens.
    pub fn embed_with_features(
        &self,
        input: &ForwardInput,
        features: &[Option<Tensor<2>>],
        limit: Option<&[usize]>,
    ) -> Result<Tensor<3>> {
        let x = self.language_model.embed(&input.ids)?;
        let [b, t, h] = x.dims();
        if features.len() != b {
            return Err(Error::invalid("images", format!("{} rows of images for {b} sequences", features.len())));
        }
        let media = self.config.media_placeholder_token_id;
        let mut slots: Vec<i64> = Vec::new();
        let mut parts = Vec::new();
        for (row, feat) in features.iter().enumerate() {
            let cols: Vec<usize> = (0..t)
                .filter(|&i| {
                    input.ids[row][i] == media
                        && input.valid[row][i]
                        && limit.is_none_or(|l| input.positions[row][i] < l[row])
                })
                .collect();
            let have = feat.as_ref().map_or(0, |f| f.dims()[0]);
            if cols.len() != have {
                return Err(Error::invalid(
                    "prompt",
                    format!(
                        "sequence {row} has {} image placeholder tokens (id {media}) but its images give {have} features; \
                         each image needs rows * columns / 4 placeholders of its patch grid",
                        cols.len()
                    ),
                ));
            }
            if let Some(f) = feat {
                slots.extend(cols.iter().map(|&c| (row * t + c) as i64));
                parts.push(f.clone());
            }
        }
        if slots.is_empty() {
            return Ok(x);
        }
        let device = x.device();
        let n = slots.len();
        let mut keep = vec![1.0f32; b * t];
        for &s in &slots {
            keep[s as usize] = 0.0;
        }
        let keep = Tensor::<2>::from_data(TensorData::new(keep, [b * t, 1]), &device);
        let idx = Tensor::<1, Int>::from_data(TensorData::new(slots, [n]), &device);
        let scattered = Tensor::<2>::zeros([b * t, h], &device).select_assign(
            0,
            idx,
            Tensor::cat(parts, 0),
            rlox_nn::burn::tensor::IndexingUpdateOp::Add,
        );
        Ok((x.reshape([b * t, h]) * keep + scattered).reshape([b, t, h]))
    }

    /// Logits of `input` with row `b`'s `images[b]` in its placeholders, after what `cache` holds.
    pub fn forward(
        &self,
        input: &ForwardInput,
        images: &[Vec<ProcessedImage>],
        cache: Option<&mut LatentCache>,
    ) -> Result<LmOutput> {
        self.forward_with(input, images, cache, &FlashAttention::default())
    }

    /// [`KimiVl::forward`] with an attention kernel of choice for the language model.
    pub fn forward_with(
        &self,
        input: &ForwardInput,
        images: &[Vec<ProcessedImage>],
        cache: Option<&mut LatentCache>,
        kernel: &dyn AttentionKernel,
    ) -> Result<LmOutput> {
        let features = self.features_per_row(images)?;
        let x = self.embed_with_features(input, &features, None)?;
        self.language_model.forward_embeds(x, &input.positions, &input.valid, cache, kernel)
    }
}

/// Prompts with their images, ready for [`rlox_lm::generate`]: image features are computed once and put in
/// the prompt's placeholders whenever the prompt is (re)computed; cached decoding steps are text only.
pub struct ImagePrompts<'a> {
    model: &'a KimiVl,
    features: Vec<Option<Tensor<2>>>,
    prompt_lens: Vec<usize>,
}

impl<'a> ImagePrompts<'a> {
    /// `prompts[b]` (token ids with placeholders) shown `images[b]`.
    pub fn new(model: &'a KimiVl, prompts: &[Vec<u32>], images: &[Vec<ProcessedImage>]) -> Result<Self> {
        if prompts.len() != images.len() {
            return Err(Error::invalid(
                "images",
                format!("{} rows of images for {} prompts", images.len(), prompts.len()),
            ));
        }
        Ok(ImagePrompts {
            model,
            features: model.features_per_row(images)?,
            prompt_lens: prompts.iter().map(Vec::len).collect(),
        })
    }
}

impl ImagePrompts<'_> {
    /// Final hidden states: image features in the prompt's placeholders when the prompt is (re)computed,
    /// token embeddings alone for cached decoding steps.
    fn hidden(&self, input: &ForwardInput, cache: Option<&mut LatentCache>) -> Result<Tensor<3>> {
        let lm = &self.model.language_model;
        let fresh = cache.as_ref().is_none_or(|c| c.is_empty());
        let x = if fresh {
            self.model.embed_with_features(input, &self.features, Some(&self.prompt_lens))?
        } else {
            lm.embed(&input.ids)?
        };
        lm.hidden_states(x, &input.positions, &input.valid, cache, &FlashAttention::default())
    }
}

impl Decode for ImagePrompts<'_> {
    type Cache = LatentCache;

    fn max_context(&self) -> usize {
        self.model.config.text.max_position_embeddings
    }

    fn new_cache(&self, batch: usize) -> LatentCache {
        LatentCache::new(&self.model.config.text, batch)
    }

    fn next_token_logits(&self, input: &ForwardInput, cache: Option<&mut LatentCache>) -> Result<Tensor<2>> {
        let lm = &self.model.language_model;
        let hidden = self.hidden(input, cache)?;
        let [b, t, _] = hidden.dims();
        Ok(lm.head(hidden.narrow(1, t - 1, 1)).reshape([b, lm.config.vocab_size]))
    }

    fn sequence_logits(&self, input: &ForwardInput, cache: Option<&mut LatentCache>) -> Result<Tensor<3>> {
        Ok(self.model.language_model.head(self.hidden(input, cache)?))
    }
}
