//! The model a post-training run trains: a text decoder ([`CausalLm`]: Llama, Qwen2, Qwen2-MoE), or a
//! vision-language model ([`KimiVl`]) whose dataset rows carry images, as TRL trains both with one
//! trainer.
//!
//! Images reach SFT and GRPO through TRL's dataset convention: an `images` column (a list per row; or
//! a single `image`), each a path or a `{bytes, path}` object ([`crate::datasets::row_images`]), and
//! `{"type": "image"}` parts in conversational prompts (or [`IMAGE_MARKER`] in plain text) saying where
//! they go; a prompt that places none gets its images before the first user text (TRL's
//! `prepare_multimodal_messages`). For Kimi-VL a row becomes: the chat format of [`rlox_vlm::chat`], each
//! image as an image block whose single `<|media_pad|>` is expanded to the image's merged-token count,
//! and in the forward pass the projected image features take those placeholders' places
//! ([`KimiVl::embed_with_features`]). Pixels are decoded once when the data is read (to count tokens
//! and to report a bad image by its row) and again per batch, so a large image dataset is not held
//! in memory as floats.

use crate::datasets::{row_images, split_pair, Dataset, ImageSource, Text, Truncation, IMAGE_MARKER};
use crate::logprobs::Scorer;
use crate::{Error, Result};
use rlox_lm::attention::FlashAttention;
use rlox_lm::generate::GenerationOutput;
use rlox_lm::{generate, CausalLm, ForwardInput, GenerationConfig, LmTokenizer};
use rlox_nn::burn;
use rlox_nn::{Module, Tensor};
use rlox_vlm::chat::{expand_placeholders, render, Message, Part, MEDIA_PAD};
use rlox_vlm::{ImageProcessor, ImagePrompts, KimiVl, ProcessedImage};

/// The trained model (one per run, so the size of the larger variant does not matter).
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum PolicyModel {
    /// A text-only decoder.
    Text(CausalLm),
    /// Kimi-VL: MoonViT, the projector and the DeepSeek-V3 decoder, all trained.
    Vision(KimiVl),
}

impl PolicyModel {
    /// The text decoder, for methods that train text models only (`method` names the method in the error).
    pub fn into_text(self, method: &str) -> Result<CausalLm> {
        match self {
            PolicyModel::Text(m) => Ok(m),
            PolicyModel::Vision(_) => Err(Error::invalid(
                "model",
                format!("{method} trains text-only models; this is a vision-language model (SFT and GRPO train those)"),
            )),
        }
    }

    /// The text decoder, if this is one.
    pub fn as_text(&self) -> Option<&CausalLm> {
        match self {
            PolicyModel::Text(m) => Some(m),
            PolicyModel::Vision(_) => None,
        }
    }

    /// The EOS ids of the model's config.
    pub fn eos_token_ids(&self) -> Vec<u32> {
        match self {
            PolicyModel::Text(m) => m.config.eos_token_ids.clone(),
            PolicyModel::Vision(m) => m.config.text.eos_token_ids.clone(),
        }
    }

    /// Final hidden states `[batch, seq, hidden]` of `input`, row `b` shown `images[b]` (an empty list
    /// for a row without images). Only placeholders at positions below `prompt_lens[b]` (when given)
    /// take image features; a text model refuses images.
    pub fn hidden_states(
        &self,
        input: &ForwardInput,
        images: &[Vec<ProcessedImage>],
        prompt_lens: Option<&[usize]>,
    ) -> Result<Tensor<3>> {
        match self {
            PolicyModel::Text(m) => m.final_hidden(input, images, prompt_lens),
            PolicyModel::Vision(m) => {
                let features = m.features_per_row(images)?;
                let x = m.embed_with_features(input, &features, prompt_lens)?;
                m.language_model.hidden_states(x, &input.positions, &input.valid, None, &FlashAttention::default())
            }
        }
    }

    /// `log softmax(logits / temperature)` at `targets` for `hidden: [n, hidden]`, in chunks of rows.
    pub fn token_logprobs(&self, hidden: Tensor<2>, targets: &[u32], temperature: f64) -> Result<Tensor<1>> {
        match self {
            PolicyModel::Text(m) => m.token_logprobs(hidden, targets, temperature),
            PolicyModel::Vision(m) => m.language_model.token_logprobs(hidden, targets, temperature),
        }
    }

    /// Continue `prompts` (row `b` shown `images[b]`) with `config`.
    pub fn generate(
        &self,
        prompts: &[Vec<u32>],
        images: &[Vec<ProcessedImage>],
        config: &GenerationConfig,
        tokenizer: &LmTokenizer,
    ) -> Result<Vec<GenerationOutput>> {
        match self {
            PolicyModel::Text(m) => {
                if images.iter().any(|i| !i.is_empty()) {
                    return Err(text_model_with_images());
                }
                generate(m, prompts, config, Some(tokenizer))
            }
            PolicyModel::Vision(m) => {
                generate(&ImagePrompts::new(m, prompts, images)?, prompts, config, Some(tokenizer))
            }
        }
    }
}

/// The error for images shown to a text-only model.
pub(crate) fn text_model_with_images() -> Error {
    Error::invalid("images", "the data has images but the model is text-only; use a vision-language model (Kimi-VL)")
}

/// Row `i`'s images and, for a vision-language model (`vision`), their processed pixels (for the token
/// counts); a row with images for a text-only model is an error naming the row.
pub fn row_images_for(
    vision: Option<&VisionInputs>,
    ds: &Dataset,
    i: usize,
) -> Result<(Vec<ImageSource>, Vec<ProcessedImage>)> {
    let loc = &ds.locations[i];
    let images = row_images(ds, i)?;
    let processed = match vision {
        Some(v) => v.process_all(&images, loc)?,
        None if !images.is_empty() => return Err(Error::invalid(loc.clone(), text_model_with_images().to_string())),
        None => Vec::new(),
    };
    Ok((images, processed))
}

/// What turns rows with images into model inputs for a vision-language model.
#[derive(Debug, Clone)]
pub struct VisionInputs {
    /// The model's image processor (`preprocessor_config.json`).
    pub processor: ImageProcessor,
    /// The placeholder token (`media_placeholder_token_id`).
    pub media: u32,
    /// The patch merger's kernel (image tokens per image: grid cells / its area).
    pub merge: [usize; 2],
}

impl VisionInputs {
    /// The inputs of `model`'s images.
    pub fn of(model: &KimiVl, processor: ImageProcessor) -> Self {
        VisionInputs {
            processor,
            media: model.config.media_placeholder_token_id,
            merge: model.config.vision.merge_kernel_size,
        }
    }

    /// Decode and process one image of the row at `loc`.
    pub fn process(&self, image: &ImageSource, loc: &str) -> Result<ProcessedImage> {
        match image {
            ImageSource::Path(p) => self.processor.process_file(p),
            ImageSource::Bytes(b) => self.processor.process_bytes(b, &format!("image in {loc}")),
        }
    }

    /// Decode and process a row's images.
    pub fn process_all(&self, images: &[ImageSource], loc: &str) -> Result<Vec<ProcessedImage>> {
        images.iter().map(|i| self.process(i, loc)).collect()
    }

    /// Token ids of a prompt and (when given) its completion for rows showing `images` (already
    /// processed, for their token counts): Kimi-VL's chat format for messages, the text itself for
    /// plain rows (a plain completion ends with EOS), each image's placeholder expanded. Truncation as
    /// [`crate::datasets::tokenize_pair`]; cutting into an image's tokens is an error naming the row.
    pub fn tokenize(
        &self,
        tok: &LmTokenizer,
        prompt: &Text,
        completion: Option<&Text>,
        images: &[ProcessedImage],
        trunc: &Truncation,
        loc: &str,
    ) -> Result<(Vec<u32>, Vec<u32>)> {
        if tok.token_to_id(MEDIA_PAD) != Some(self.media) {
            return Err(Error::invalid(
                "tokenizer",
                format!("{MEDIA_PAD} is not token {} (media_placeholder_token_id) in this tokenizer", self.media),
            ));
        }
        let counts: Vec<usize> = images.iter().map(|i| i.num_tokens(self.merge)).collect();
        let encode = |text: &str| -> Result<Vec<u32>> {
            expand_placeholders(&tok.encode(text, false)?, self.media, &counts)
                .map_err(|e| Error::invalid(loc.to_string(), e.to_string()))
        };
        let prompt_text = render_text(prompt, None, images.len(), loc)?;
        let prompt_ids = encode(&prompt_text)?;
        let Some(completion) = completion else {
            let mut p = prompt_ids;
            if let Some(m) = trunc.max_prompt_length {
                if p.len() > m {
                    p.drain(..p.len() - m);
                }
            }
            self.check_kept(&p, &counts, loc)?;
            return Ok((p, Vec::new()));
        };
        let mut full = encode(&render_text(prompt, Some(completion), images.len(), loc)?)?;
        if !completion.is_conversational() {
            full.push(crate::datasets::eos_id(tok)?);
        }
        let (p, c) = split_pair(prompt_ids, full, trunc, loc, "completion")?;
        self.check_kept(&p, &counts, loc)?;
        Ok((p, c))
    }

    /// Truncation must not cut into image tokens.
    fn check_kept(&self, prompt: &[u32], counts: &[usize], loc: &str) -> Result<()> {
        let kept = prompt.iter().filter(|&&t| t == self.media).count();
        let want: usize = counts.iter().sum();
        if kept != want {
            return Err(Error::invalid(
                loc.to_string(),
                format!(
                    "truncation leaves {kept} of the prompt's {want} image tokens; raise max_prompt_length / max_length"
                ),
            ));
        }
        Ok(())
    }
}

/// Kimi-VL's text of a prompt (with the assistant header when there is no completion) or of a
/// prompt and its completion, with an image block per image (see the module docs).
fn render_text(prompt: &Text, completion: Option<&Text>, images: usize, loc: &str) -> Result<String> {
    let markers = |s: &str| s.matches(IMAGE_MARKER).count();
    let mismatch = |found: usize| {
        Error::invalid(
            loc.to_string(),
            format!("the prompt places {found} image(s) ({IMAGE_MARKER} or {{\"type\": \"image\"}}) but the row has {images}"),
        )
    };
    match (prompt, completion) {
        (Text::Plain(p), c) => {
            let found = markers(p);
            if found != 0 && found != images {
                return Err(mismatch(found));
            }
            let block = rlox_vlm::chat::image_block();
            let mut text =
                if found == 0 { format!("{}{p}", block.repeat(images)) } else { p.replace(IMAGE_MARKER, &block) };
            if let Some(c) = c {
                text.push_str(&c.plain());
            }
            Ok(text)
        }
        (Text::Messages(pm), c) => {
            let mut messages: Vec<Message> = pm.iter().map(|m| to_parts(&m.role, &m.content)).collect();
            let found: usize = pm.iter().map(|m| markers(&m.content)).sum();
            if found == 0 && images > 0 {
                let first_user = messages.iter().position(|m| m.role == "user").ok_or_else(|| {
                    Error::invalid(
                        loc.to_string(),
                        "the row has images but its prompt has no user message to show them",
                    )
                })?;
                messages[first_user].parts.splice(0..0, std::iter::repeat_n(Part::Image, images));
            } else if found != images {
                return Err(mismatch(found));
            }
            match c {
                None => Ok(render(&messages, true)),
                Some(Text::Messages(cm)) => {
                    messages.extend(cm.iter().map(|m| to_parts(&m.role, &m.content)));
                    Ok(render(&messages, false))
                }
                Some(Text::Plain(_)) => Err(Error::invalid(
                    loc.to_string(),
                    "`prompt` and `completion` must both be text or both be messages",
                )),
            }
        }
    }
}

/// A message's content split at the image markers.
fn to_parts(role: &str, content: &str) -> Message {
    let mut parts = Vec::new();
    for (k, piece) in content.split(IMAGE_MARKER).enumerate() {
        if k > 0 {
            parts.push(Part::Image);
        }
        if !piece.is_empty() {
            parts.push(Part::Text(piece.to_string()));
        }
    }
    Message { role: role.to_string(), parts }
}

/// The prompt length (real tokens) of each row of a padded batch: only placeholders there are image slots.
pub fn prompt_lengths(batch: &crate::datasets::PaddedBatch) -> Vec<usize> {
    batch.valid.iter().map(|v| v[..batch.prompt_len].iter().filter(|&&x| x).count()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rlox_lm::ChatMessage;

    #[test]
    fn images_go_where_the_prompt_places_them_or_first() {
        let block = rlox_vlm::chat::image_block();
        let plain = render_text(&Text::Plain("What colour?".into()), None, 1, "row 0").unwrap();
        assert_eq!(plain, format!("{block}What colour?"));
        let marked = render_text(&Text::Plain("A <image> B".into()), Some(&Text::Plain("red".into())), 1, "r").unwrap();
        assert_eq!(marked, format!("A {block} Bred"));
        let msgs = Text::Messages(vec![ChatMessage::new("user", "Name the colour.")]);
        let s = render_text(&msgs, None, 1, "r").unwrap();
        assert!(s.contains(&format!("<|im_user|>user<|im_middle|>{block}Name the colour.<|im_end|>")), "{s}");
        assert!(s.ends_with("<|im_assistant|>assistant<|im_middle|>"), "{s}");
        let e = render_text(&Text::Plain("<image><image>x".into()), None, 1, "data.jsonl:4").unwrap_err().to_string();
        assert!(e.contains("data.jsonl:4") && e.contains("2 image(s)") && e.contains("has 1"), "{e}");
    }
}
