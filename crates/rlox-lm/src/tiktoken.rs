//! A native reader of tiktoken vocabularies (`tiktoken.model`), the format of Kimi's tokenizer.
//!
//! A tiktoken file lists each token's bytes (base64) and its rank. tiktoken encodes a pre-tokenised piece
//! by taking it whole if it is a token, and otherwise by merging, again and again, the adjacent pair whose
//! concatenation has the lowest rank. That is byte-level BPE with the merges ordered by the rank of their
//! result, so the vocabulary is rebuilt here as a `tokenizers` BPE model: every token becomes a vocabulary
//! entry in GPT-2's byte-to-character alphabet, every split of a token into two tokens a merge (ordered by
//! the token's rank, then by the ranks of the two halves — the conversion transformers' `TikTokenConverter`
//! makes), with whole-piece lookup first (`ignore_merges`). Pre-tokenisation is Kimi's regular expression
//! followed by the byte-level mapping; special tokens sit right after the base vocabulary, named by
//! `tokenizer_config.json`'s `added_tokens_decoder` (`[BOS]`, `<|im_end|>`, `<|media_pad|>`, ...), the
//! others `<|reserved_token_{id}|>`, 256 + 2 of them as in Kimi's `TikTokenTokenizer`.
//!
//! The result is an ordinary [`crate::LmTokenizer`]; `tools/kimi_vl_fixtures.py` checks its ids against
//! tiktoken's own on text with letters, digits, Han characters, contractions, whitespace runs and special
//! tokens. (`tools/kimi_tokenizer_json.py` writes the same tokenizer as a `tokenizer.json` for other tools.)

use rlox_core::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

/// Kimi's pre-tokenisation pattern (`TikTokenTokenizer.pat_str` of the Kimi and Moonlight repositories):
/// runs of Han characters, words with an optional leading non-letter and English contractions (Han excluded
/// from the letter classes), 1-3 digits, punctuation runs, newlines, other whitespace.
pub const KIMI_PATTERN: &str = concat!(
    r"[\p{Han}]+",
    "|",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|",
    r"\p{N}{1,3}",
    "|",
    r" ?[^\s\p{L}\p{N}]+[\r\n]*",
    "|",
    r"\s*[\r\n]+",
    "|",
    r"\s+(?!\S)",
    "|",
    r"\s+",
);

/// Special tokens after the base vocabulary in Kimi's tokenizer (256 reserved + 2).
pub const KIMI_NUM_SPECIAL: usize = 258;

/// GPT-2's reversible map from bytes to printable characters (what byte-level BPE vocabularies are written in).
fn byte_to_char() -> [char; 256] {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32).chain(0xA1..=0xAC).chain(0xAE..=0xFF).collect();
    let mut table = ['\0'; 256];
    for &b in &printable {
        table[b as usize] = char::from_u32(b).expect("latin-1");
    }
    let mut next = 256u32;
    for b in 0..256u32 {
        if !printable.contains(&b) {
            table[b as usize] = char::from_u32(next).expect("valid code point");
            printable.push(b);
            next += 1;
        }
    }
    table
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    };
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in s {
        acc = (acc << 6) | value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Parse a tiktoken file: one `base64 rank` pair per line; ranks must be 0..n without gaps.
pub fn read_ranks(path: &Path) -> Result<Vec<Vec<u8>>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut by_rank: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: &str| Error::Config { path: path.to_path_buf(), message: format!("line {}: {why}", i + 1) };
        let mut parts = line.split_whitespace();
        let (Some(token), Some(rank), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected '<base64 token> <rank>'"));
        };
        let bytes = decode_base64(token).ok_or_else(|| bad("the token is not base64"))?;
        let rank: usize = rank.parse().map_err(|_| bad("the rank is not a non-negative integer"))?;
        if by_rank.insert(rank, bytes).is_some() {
            return Err(bad(&format!("rank {rank} appears twice")));
        }
    }
    let mut seen: HashMap<&[u8], usize> = HashMap::new();
    for (rank, bytes) in &by_rank {
        if let Some(first) = seen.insert(bytes.as_slice(), *rank) {
            return Err(Error::Config {
                path: path.to_path_buf(),
                message: format!("the token {bytes:?} appears twice, at ranks {first} and {rank}"),
            });
        }
    }
    let n = by_rank.len();
    if n == 0 || by_rank.keys().next_back() != Some(&(n - 1)) {
        return Err(Error::Config {
            path: path.to_path_buf(),
            message: format!("{n} tokens but ranks are not 0..{n}; is this a tiktoken file?"),
        });
    }
    Ok(by_rank.into_values().collect())
}

/// A `tokenizers` tokenizer equal to tiktoken's encoding of `ranks` (index = rank = id) with the
/// pre-tokenisation `pattern` and `specials` (id, content) after the base vocabulary.
pub fn build(ranks: &[Vec<u8>], pattern: &str, specials: &[(u32, String)]) -> Result<Tokenizer> {
    let chars = byte_to_char();
    let name = |b: &[u8]| -> String { b.iter().map(|&x| chars[x as usize]).collect() };
    let rank_of: HashMap<&[u8], usize> = ranks.iter().enumerate().map(|(r, t)| (t.as_slice(), r)).collect();
    let vocab: Vocab = ranks.iter().enumerate().map(|(r, t)| (name(t), r as u32)).collect();
    let mut merges: Vec<(usize, usize, usize, String, String)> = Vec::new();
    for (rank, token) in ranks.iter().enumerate() {
        for cut in 1..token.len() {
            let (l, r) = token.split_at(cut);
            if let (Some(&rl), Some(&rr)) = (rank_of.get(l), rank_of.get(r)) {
                merges.push((rank, rl, rr, name(l), name(r)));
            }
        }
    }
    merges.sort_by_key(|m| (m.0, m.1, m.2));
    let merges: Vec<(String, String)> = merges.into_iter().map(|m| (m.3, m.4)).collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(true)
        .build()
        .map_err(|e| Error::invalid("tiktoken vocabulary", format!("cannot build the BPE model: {e}")))?;
    let mut tokenizer = Tokenizer::new(bpe);
    let split = Split::new(SplitPattern::Regex(pattern.to_string()), SplitDelimiterBehavior::Isolated, false)
        .map_err(|e| Error::invalid("tiktoken pattern", format!("not a valid regular expression: {e}")))?;
    let pre: Vec<PreTokenizerWrapper> = vec![split.into(), ByteLevel::new(false, true, false).into()];
    tokenizer.with_pre_tokenizer(Some(Sequence::new(pre)));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    let base = ranks.len() as u32;
    for (k, (id, content)) in specials.iter().enumerate() {
        if *id != base + k as u32 {
            return Err(Error::invalid(
                "special tokens",
                format!("'{content}' has id {id}; special tokens must follow the {base} base tokens without gaps"),
            ));
        }
    }
    let added: Vec<AddedToken> = specials.iter().map(|(_, c)| AddedToken::from(c.clone(), true)).collect();
    tokenizer.add_special_tokens(&added);
    Ok(tokenizer)
}

/// Kimi's tokenizer from a model directory: `tiktoken.model`, with the special tokens named in
/// `tokenizer_config.json`'s `added_tokens_decoder` (when present).
pub fn load_kimi(dir: &Path) -> Result<Tokenizer> {
    let path = dir.join("tiktoken.model");
    let ranks = read_ranks(&path)?;
    let base = ranks.len() as u32;
    let mut names: HashMap<u32, String> = HashMap::new();
    let config = dir.join("tokenizer_config.json");
    if config.exists() {
        let text = std::fs::read_to_string(&config).map_err(|e| Error::io(&config, e))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::Config { path: config.clone(), message: format!("not valid JSON: {e}") })?;
        if let Some(map) = v.get("added_tokens_decoder").and_then(|m| m.as_object()) {
            for (id, entry) in map {
                let id: u32 = id.parse().map_err(|_| Error::Config {
                    path: config.clone(),
                    message: format!("added_tokens_decoder key '{id}' is not a token id"),
                })?;
                let content = entry.get("content").and_then(|c| c.as_str()).ok_or_else(|| Error::Config {
                    path: config.clone(),
                    message: format!("added_tokens_decoder['{id}'] has no 'content'"),
                })?;
                names.insert(id, content.to_string());
            }
        }
    }
    let count = names.keys().map(|&id| (id + 1).saturating_sub(base) as usize).max().unwrap_or(0).max(KIMI_NUM_SPECIAL);
    if let Some(id) = names.keys().find(|&&id| id < base) {
        return Err(Error::Config {
            path: config,
            message: format!("added token {id} lies inside the {base}-token tiktoken vocabulary"),
        });
    }
    let specials: Vec<(u32, String)> = (0..count as u32)
        .map(|k| {
            let id = base + k;
            (id, names.remove(&id).unwrap_or_else(|| format!("<|reserved_token_{id}|>")))
        })
        .collect();
    build(&ranks, KIMI_PATTERN, &specials)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_byte_alphabet() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("IA==").unwrap(), b" ");
        assert!(decode_base64("a$b").is_none());
        let t = byte_to_char();
        assert_eq!((t[b'a' as usize], t[b' ' as usize], t[b'\n' as usize]), ('a', 'Ġ', 'Ċ'));
    }

    #[test]
    fn malformed_files_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tiktoken.model");
        std::fs::write(&p, "YQ== 0\nYg== x\n").unwrap();
        let e = read_ranks(&p).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("tiktoken.model"), "{e}");
        std::fs::write(&p, "YQ== 0\nYg== 2\n").unwrap();
        assert!(read_ranks(&p).unwrap_err().to_string().contains("not 0..2"));
        std::fs::write(&p, "YQ== 0\nYg== 1\nYQ== 2\n").unwrap();
        assert!(read_ranks(&p).unwrap_err().to_string().contains("ranks 0 and 2"));
    }
}
