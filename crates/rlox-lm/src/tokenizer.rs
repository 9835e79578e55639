//! Tokenizers (`tokenizer.json` through the `tokenizers` crate) and chat templates.
//!
//! Chat templates are rendered in Rust for the two common formats rather than by a Jinja engine:
//! ChatML as Qwen uses it (`<|im_start|>role\ncontent<|im_end|>\n`) and Llama 3's header format. The
//! format is chosen from `tokenizer_config.json`'s `chat_template` when there is one.

use rlox_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One chat turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// A message with this role and content.
    pub fn new(role: &str, content: &str) -> Self {
        ChatMessage { role: role.to_string(), content: content.to_string() }
    }
}

/// The chat formats rendered natively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatTemplate {
    /// `<|im_start|>{role}\n{content}<|im_end|>\n` ... `<|im_start|>assistant\n` (Qwen).
    ChatMl,
    /// `<|begin_of_text|><|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>` ... (Llama 3).
    Llama3,
}

impl ChatTemplate {
    /// Render `messages`; with `add_generation_prompt` the assistant's header follows.
    pub fn render(self, messages: &[ChatMessage], add_generation_prompt: bool) -> String {
        let mut s = String::new();
        match self {
            ChatTemplate::ChatMl => {
                for m in messages {
                    s.push_str(&format!("<|im_start|>{}\n{}<|im_end|>\n", m.role, m.content));
                }
                if add_generation_prompt {
                    s.push_str("<|im_start|>assistant\n");
                }
            }
            ChatTemplate::Llama3 => {
                s.push_str("<|begin_of_text|>");
                for m in messages {
                    s.push_str(&format!(
                        "<|start_header_id|>{}<|end_header_id|>\n\n{}<|eot_id|>",
                        m.role,
                        m.content.trim()
                    ));
                }
                if add_generation_prompt {
                    s.push_str("<|start_header_id|>assistant<|end_header_id|>\n\n");
                }
            }
        }
        s
    }

    /// Recognise a Jinja `chat_template` by the markers it emits.
    pub fn detect(jinja: &str) -> Option<Self> {
        if jinja.contains("<|im_start|>") {
            Some(ChatTemplate::ChatMl)
        } else if jinja.contains("<|start_header_id|>") {
            Some(ChatTemplate::Llama3)
        } else {
            None
        }
    }
}

/// A Hugging Face tokenizer plus what generation needs from the model directory.
pub struct LmTokenizer {
    inner: tokenizers::Tokenizer,
    /// The chat format, if `tokenizer_config.json` names one we render.
    pub chat_template: Option<ChatTemplate>,
    /// End-of-sequence ids from `generation_config.json` / `tokenizer_config.json` (may be empty).
    pub eos_token_ids: Vec<u32>,
    /// Padding id (falls back to the first EOS, then 0).
    pub pad_token_id: u32,
    path: PathBuf,
}

impl std::fmt::Debug for LmTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LmTokenizer").field("path", &self.path).field("vocab", &self.vocab_size()).finish()
    }
}

fn read_json(path: &Path) -> Option<serde_json::Value> {
    std::fs::read_to_string(path).ok().and_then(|t| serde_json::from_str(&t).ok())
}

impl LmTokenizer {
    /// Read `tokenizer.json` from `path` (no side files).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let inner = tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: format!("not a Hugging Face tokenizer.json that this build can read: {e}"),
        })?;
        Ok(LmTokenizer {
            inner,
            chat_template: None,
            eos_token_ids: Vec::new(),
            pad_token_id: 0,
            path: path.to_path_buf(),
        })
    }

    /// Read a model directory's `tokenizer.json` (or, when there is none, a tiktoken vocabulary
    /// `tiktoken.model` as Kimi ships it, see [`crate::tiktoken`]), plus `tokenizer_config.json` (chat
    /// template, EOS, pad) and `generation_config.json` (EOS) when present.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let json = dir.join("tokenizer.json");
        let tiktoken = dir.join("tiktoken.model");
        let mut t = if !json.exists() && tiktoken.exists() {
            LmTokenizer {
                inner: crate::tiktoken::load_kimi(dir)?,
                chat_template: None,
                eos_token_ids: Vec::new(),
                pad_token_id: 0,
                path: tiktoken,
            }
        } else {
            Self::from_file(json)?
        };
        let tc = read_json(&dir.join("tokenizer_config.json"));
        let gc = read_json(&dir.join("generation_config.json"));
        let config = read_json(&dir.join("config.json"));
        if let Some(tc) = &tc {
            t.chat_template = tc.get("chat_template").and_then(|c| c.as_str()).and_then(ChatTemplate::detect);
        }
        let token_of = |v: Option<&serde_json::Value>| -> Option<u32> {
            let s = match v? {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Object(o) => o.get("content")?.as_str()?.to_string(),
                _ => return None,
            };
            t.inner.token_to_id(&s)
        };
        let mut eos: Vec<u32> = Vec::new();
        for src in [&gc, &config] {
            match src.as_ref().and_then(|v| v.get("eos_token_id")) {
                Some(serde_json::Value::Number(n)) => eos.extend(n.as_u64().map(|x| x as u32)),
                Some(serde_json::Value::Array(a)) => eos.extend(a.iter().filter_map(|x| x.as_u64().map(|x| x as u32))),
                _ => {}
            }
        }
        eos.extend(token_of(tc.as_ref().and_then(|v| v.get("eos_token"))));
        eos.sort();
        eos.dedup();
        let pad = token_of(tc.as_ref().and_then(|v| v.get("pad_token")))
            .or_else(|| gc.as_ref().and_then(|v| v.get("pad_token_id")).and_then(|x| x.as_u64()).map(|x| x as u32));
        t.pad_token_id = pad.or_else(|| eos.first().copied()).unwrap_or(0);
        t.eos_token_ids = eos;
        if t.chat_template.is_none() {
            // Guess from the special tokens the vocabulary holds.
            if t.inner.token_to_id("<|im_start|>").is_some() {
                t.chat_template = Some(ChatTemplate::ChatMl);
            } else if t.inner.token_to_id("<|start_header_id|>").is_some() {
                t.chat_template = Some(ChatTemplate::Llama3);
            }
        }
        Ok(t)
    }

    /// Token ids of `text` (with the tokenizer's own special tokens, e.g. Llama's BOS, when `add_special`).
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, add_special)
            .map_err(|e| Error::invalid("text", format!("cannot tokenize with {}: {e}", self.path.display())))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner.decode(ids, skip_special).map_err(|e| Error::invalid("token ids", format!("cannot decode: {e}")))
    }

    /// The string of one token id (as in the vocabulary, e.g. `Ġthe`).
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The id of a token string.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Render and tokenize a conversation with the model's chat template.
    pub fn apply_chat_template(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<Vec<u32>> {
        let template = self.chat_template.ok_or_else(|| {
            Error::invalid(
                "chat template",
                "the tokenizer has no ChatML or Llama 3 chat template; pass plain text instead",
            )
        })?;
        self.encode(&template.render(messages, add_generation_prompt), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatml_and_llama3_render() {
        let m = [ChatMessage::new("system", "Be brief."), ChatMessage::new("user", "Hi")];
        assert_eq!(
            ChatTemplate::ChatMl.render(&m, true),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            ChatTemplate::Llama3.render(&m[1..], true),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
        );
    }

    #[test]
    fn unparsable_tokenizer_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokenizer.json");
        std::fs::write(&p, "{\"model\": 3}").unwrap();
        let e = LmTokenizer::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("tokenizer.json"), "{e}");
    }
}
