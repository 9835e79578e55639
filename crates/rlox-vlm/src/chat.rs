//! Kimi-VL prompts: the chat format, and expanding each image's single `<|media_pad|>` into as many
//! placeholder tokens as the image has merged tokens (what the published processor does to the text).
//!
//! The chat format, as Kimi-VL's chat template renders it: a default system turn when the conversation has
//! none, then `<|im_{role}|>{role}<|im_middle|>{content}<|im_end|>` per message, an image in a message as
//! `<|media_start|>image<|media_content|><|media_pad|><|media_end|>`, and `<|im_assistant|>assistant<|im_middle|>`
//! to ask for the reply.

use rlox_core::{Error, Result};
use rlox_lm::LmTokenizer;

/// The placeholder the processor expands.
pub const MEDIA_PAD: &str = "<|media_pad|>";

/// The system turn Kimi-VL's template adds when the conversation has none.
pub const DEFAULT_SYSTEM: &str = "You are a helpful assistant";

/// One piece of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// An image (its pixels are passed separately, in order).
    Image,
    /// Text.
    Text(String),
}

/// A chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// Its parts.
    pub parts: Vec<Part>,
}

impl Message {
    /// A user turn showing `images` images, then `text`.
    pub fn user_with_images(images: usize, text: &str) -> Self {
        let mut parts = vec![Part::Image; images];
        parts.push(Part::Text(text.to_string()));
        Message { role: "user".into(), parts }
    }
}

/// The image block inside a message.
pub fn image_block() -> String {
    format!("<|media_start|>image<|media_content|>{MEDIA_PAD}<|media_end|>")
}

/// Render `messages` in Kimi-VL's chat format.
pub fn render(messages: &[Message], add_generation_prompt: bool) -> String {
    let mut s = String::new();
    if messages.first().is_none_or(|m| m.role != "system") {
        s.push_str(&format!("<|im_system|>system<|im_middle|>{DEFAULT_SYSTEM}<|im_end|>"));
    }
    for m in messages {
        s.push_str(&format!("<|im_{}|>{}<|im_middle|>", m.role, m.role));
        for p in &m.parts {
            match p {
                Part::Image => s.push_str(&image_block()),
                Part::Text(t) => s.push_str(t),
            }
        }
        s.push_str("<|im_end|>");
    }
    if add_generation_prompt {
        s.push_str("<|im_assistant|>assistant<|im_middle|>");
    }
    s
}

/// Replace the `i`-th placeholder of `ids` with `tokens_per_image[i]` placeholders.
pub fn expand_placeholders(ids: &[u32], media: u32, tokens_per_image: &[usize]) -> Result<Vec<u32>> {
    let found = ids.iter().filter(|&&i| i == media).count();
    if found != tokens_per_image.len() {
        return Err(Error::invalid(
            "prompt",
            format!(
                "{found} image placeholders ({MEDIA_PAD}) for {} image(s); put one placeholder per image",
                tokens_per_image.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(ids.len() + tokens_per_image.iter().sum::<usize>());
    let mut next = tokens_per_image.iter();
    for &id in ids {
        if id == media {
            let n = *next.next().expect("counted above");
            out.extend(std::iter::repeat_n(media, n));
        } else {
            out.push(id);
        }
    }
    Ok(out)
}

/// Tokenize `text` (with one placeholder per image) and expand the placeholders.
pub fn encode_with_images(
    tokenizer: &LmTokenizer,
    text: &str,
    media: u32,
    tokens_per_image: &[usize],
) -> Result<Vec<u32>> {
    if tokenizer.token_to_id(MEDIA_PAD) != Some(media) {
        return Err(Error::invalid(
            "tokenizer",
            format!("{MEDIA_PAD} is not token {media} (media_placeholder_token_id) in this tokenizer"),
        ));
    }
    expand_placeholders(&tokenizer.encode(text, false)?, media, tokens_per_image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_kimi_chat_format() {
        let s = render(&[Message::user_with_images(1, "What is it?")], true);
        assert_eq!(
            s,
            "<|im_system|>system<|im_middle|>You are a helpful assistant<|im_end|><|im_user|>user<|im_middle|>\
             <|media_start|>image<|media_content|><|media_pad|><|media_end|>What is it?<|im_end|>\
             <|im_assistant|>assistant<|im_middle|>"
        );
    }

    #[test]
    fn placeholders_expand_per_image_and_counts_must_match() {
        assert_eq!(expand_placeholders(&[1, 9, 2, 9], 9, &[2, 3]).unwrap(), vec![1, 9, 9, 2, 9, 9, 9]);
        let e = expand_placeholders(&[1, 9, 2], 9, &[2, 3]).unwrap_err().to_string();
        assert!(e.contains("1 image placeholders") && e.contains("2 image(s)"), "{e}");
    }
}
