//! Generation: batched prompts of different lengths (left padding, positions counting real tokens),
//! a KV cache (or full recomputation, to check it), greedy decoding or sampling with temperature,
//! top-k, top-p and a repetition penalty, EOS and stop strings, a seeded sampler.
//!
//! Logits processing follows `transformers`' order: repetition penalty, temperature, top-k, top-p.
//! Each returned log-prob is that of the chosen token under `softmax(logits / T)` of the *raw* model
//! logits (`T = 1` when greedy), before the penalty and the top-k/top-p truncation: the quantity a
//! GRPO/PPO trainer recomputes from the same model. Sequence `b` of a batch samples from its own
//! ChaCha stream `(seed, b)`, so a batch gives the same tokens as its prompts run one by one with
//! [`GenerationConfig::stream_offset`] set to their index.

use crate::model::{CausalLm, ForwardInput, KvCache};
use crate::tokenizer::LmTokenizer;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rlox_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// What to generate and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerationConfig {
    /// New tokens per sequence at most.
    pub max_new_tokens: usize,
    /// Sampling temperature; `0` means greedy (argmax).
    pub temperature: f32,
    /// Keep the `top_k` most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the smallest set of tokens with probability at least `top_p` (1: all).
    pub top_p: f32,
    /// transformers' repetition penalty on tokens already in the sequence (1: off).
    pub repetition_penalty: f32,
    /// Stop when the decoded completion contains one of these (the text is cut before it).
    pub stop_strings: Vec<String>,
    /// Stop after any of these tokens (kept in `token_ids`, dropped from the text).
    pub eos_token_ids: Vec<u32>,
    /// Token used for left padding (masked out, never attended to).
    pub pad_token_id: u32,
    /// Sampler seed.
    pub seed: u64,
    /// Index of the first sequence's random stream (see the module docs).
    pub stream_offset: u64,
    /// Use the KV cache (false: recompute the whole sequence at every step).
    pub use_cache: bool,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        GenerationConfig {
            max_new_tokens: 64,
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            repetition_penalty: 1.0,
            stop_strings: Vec::new(),
            eos_token_ids: Vec::new(),
            pad_token_id: 0,
            seed: 0,
            stream_offset: 0,
            use_cache: true,
        }
    }
}

/// Why a sequence stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An EOS token was generated.
    Eos,
    /// A stop string appeared.
    Stop,
    /// `max_new_tokens` or the model's context was reached.
    Length,
}

/// One sequence's completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationOutput {
    /// The new tokens.
    pub token_ids: Vec<u32>,
    /// Log-prob of each new token (see the module docs).
    pub logprobs: Vec<f32>,
    /// Decoded completion (special tokens skipped, cut at a stop string), when a tokenizer was given.
    pub text: Option<String>,
    /// Why it stopped.
    pub finish_reason: FinishReason,
}

/// A seeded sampler for one sequence.
#[derive(Debug, Clone)]
pub struct Sampler {
    rng: ChaCha8Rng,
}

impl Sampler {
    /// Stream `stream` of `seed`.
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        Sampler { rng }
    }

    /// Choose the next token from raw `logits` given the sequence so far; returns the token and its log-prob.
    pub fn pick(&mut self, logits: &[f32], history: &[u32], cfg: &GenerationConfig) -> (u32, f32) {
        let mut x: Vec<f32> = logits.to_vec();
        if cfg.repetition_penalty != 1.0 {
            let mut seen = history.to_vec();
            seen.sort_unstable();
            seen.dedup();
            for &t in &seen {
                if let Some(v) = x.get_mut(t as usize) {
                    *v = if *v < 0.0 { *v * cfg.repetition_penalty } else { *v / cfg.repetition_penalty };
                }
            }
        }
        let greedy = cfg.temperature <= 0.0;
        let token = if greedy {
            argmax(&x)
        } else {
            for v in &mut x {
                *v /= cfg.temperature;
            }
            self.sample(&x, cfg.top_k, cfg.top_p)
        };
        let t = if greedy { 1.0 } else { cfg.temperature };
        (token as u32, log_softmax_at(logits, token, t))
    }
}

impl Sampler {
    /// Draw from `softmax(x)` restricted to the `top_k` largest entries (0: all), then to the
    /// smallest most-likely set with mass at least `top_p` (1: all).
    ///
    /// Only what the filters need is sorted: `top_k` selects its `k` entries in linear time and sorts
    /// those; `top_p` sorts the 1024 largest candidates and falls back to a full sort only when they
    /// hold less than `top_p` of the mass; without either, the draw walks the vocabulary in index
    /// order. Sorting a 151,936-entry vocabulary for every token of every sequence cost more than the
    /// decoder's step at Qwen2.5's size. Ties rank the lower index first.
    fn sample(&mut self, x: &[f32], top_k: usize, top_p: f32) -> usize {
        let n = x.len();
        let desc = |a: &usize, b: &usize| x[*b].total_cmp(&x[*a]).then(a.cmp(b));
        let mut cand: Vec<usize> = (0..n).collect();
        let mut sorted = false;
        if top_k > 0 && top_k < n {
            cand.select_nth_unstable_by(top_k - 1, desc);
            cand.truncate(top_k);
            cand.sort_unstable_by(desc);
            sorted = true;
        }
        let m = cand.iter().fold(f32::NEG_INFINITY, |a, &i| a.max(x[i])) as f64;
        let weight = |i: usize| (x[i] as f64 - m).exp();
        let z: f64 = cand.iter().map(|&i| weight(i)).sum();
        let mut keep = cand.len();
        if top_p < 1.0 {
            let target = top_p as f64 * z;
            let mut prefix = if sorted { cand.len() } else { 1024.min(cand.len()) };
            loop {
                if !sorted {
                    if prefix < cand.len() {
                        cand.select_nth_unstable_by(prefix - 1, desc);
                    }
                    cand[..prefix].sort_unstable_by(desc);
                }
                let mut cum = 0.0;
                let found = cand[..prefix].iter().position(|&i| {
                    cum += weight(i);
                    cum >= target
                });
                match found {
                    Some(pos) => {
                        keep = pos + 1;
                        break;
                    }
                    None if prefix == cand.len() => break,
                    None => prefix = cand.len(),
                }
            }
        }
        let kept = &cand[..keep.max(1)];
        let zk: f64 = kept.iter().map(|&i| weight(i)).sum();
        let u: f64 = self.rng.random::<f64>() * zk;
        let mut acc = 0.0;
        for &i in kept {
            acc += weight(i);
            if u < acc {
                return i;
            }
        }
        kept[kept.len() - 1]
    }
}

fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}

/// `log softmax(logits / t)[i]`, computed in f64.
pub fn log_softmax_at(logits: &[f32], i: usize, t: f32) -> f32 {
    let t = t as f64;
    let m = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64 / t;
    let z: f64 = logits.iter().map(|&v| (v as f64 / t - m).exp()).sum();
    (logits[i] as f64 / t - m - z.ln()) as f32
}

/// The rows of a `[batch, vocab]` tensor, to the CPU.
fn rows(logits: rlox_nn::Tensor<2>) -> Vec<Vec<f32>> {
    let [b, v] = logits.dims();
    let flat: Vec<f32> = logits.into_data().try_into_vec_as::<f32>().expect("float logits");
    flat.chunks(v).take(b).map(<[f32]>::to_vec).collect()
}

/// A causal language model that [`generate`] can decode: the Llama/Qwen2 [`CausalLm`], the DeepSeek-V3
/// decoder, or a vision-language model that puts image features in its prompts.
pub trait Decode {
    /// What is kept between steps (keys and values, or a compressed latent).
    type Cache;
    /// The longest sequence the model takes (`max_position_embeddings`).
    fn max_context(&self) -> usize;
    /// An empty cache for `batch` sequences.
    fn new_cache(&self, batch: usize) -> Self::Cache;
    /// Logits of the last position of each sequence, `[batch, vocab]`, of `input` after the positions held
    /// in `cache` (which is extended): what generation needs.
    fn next_token_logits(&self, input: &ForwardInput, cache: Option<&mut Self::Cache>) -> Result<rlox_nn::Tensor<2>>;
    /// Logits of every position, `[batch, seq, vocab]` (scoring).
    fn sequence_logits(&self, input: &ForwardInput, cache: Option<&mut Self::Cache>) -> Result<rlox_nn::Tensor<3>>;
}

impl Decode for CausalLm {
    type Cache = KvCache;

    fn max_context(&self) -> usize {
        self.config.max_position_embeddings
    }

    fn new_cache(&self, batch: usize) -> KvCache {
        KvCache::new(&self.config, batch)
    }

    fn next_token_logits(&self, input: &ForwardInput, cache: Option<&mut KvCache>) -> Result<rlox_nn::Tensor<2>> {
        CausalLm::next_token_logits(self, input, cache)
    }

    fn sequence_logits(&self, input: &ForwardInput, cache: Option<&mut KvCache>) -> Result<rlox_nn::Tensor<3>> {
        Ok(self.forward(input, cache)?.logits)
    }
}

/// Generate continuations of `prompts` (token ids, any lengths) with `model`.
///
/// With a tokenizer, completions are decoded and stop strings apply. Errors: an empty prompt, a
/// prompt that does not fit the model's context, an id outside the vocabulary.
pub fn generate<M: Decode + ?Sized>(
    model: &M,
    prompts: &[Vec<u32>],
    cfg: &GenerationConfig,
    tokenizer: Option<&LmTokenizer>,
) -> Result<Vec<GenerationOutput>> {
    let ctx = model.max_context();
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    for (i, p) in prompts.iter().enumerate() {
        if p.is_empty() {
            return Err(Error::invalid("prompt", format!("prompt {i} is empty; give at least one token")));
        }
        if p.len() >= ctx {
            return Err(Error::invalid(
                "prompt",
                format!(
                    "prompt {i} has {} tokens but the model's context is {ctx} (max_position_embeddings); shorten it",
                    p.len()
                ),
            ));
        }
    }
    if !cfg.stop_strings.is_empty() && tokenizer.is_none() {
        return Err(Error::invalid("stop_strings", "stop strings need a tokenizer to decode the completion"));
    }
    let b = prompts.len();
    let mut seqs: Vec<Vec<u32>> = prompts.to_vec();
    let mut outs: Vec<GenerationOutput> = (0..b)
        .map(|_| GenerationOutput {
            token_ids: Vec::new(),
            logprobs: Vec::new(),
            text: None,
            finish_reason: FinishReason::Length,
        })
        .collect();
    let mut done = vec![cfg.max_new_tokens == 0; b];
    let mut samplers: Vec<Sampler> = (0..b).map(|i| Sampler::new(cfg.seed, cfg.stream_offset + i as u64)).collect();
    let mut cache = model.new_cache(b);
    let first = ForwardInput::left_padded(prompts, cfg.pad_token_id);
    let mut logits = if cfg.use_cache {
        rows(model.next_token_logits(&first, Some(&mut cache))?)
    } else {
        rows(model.next_token_logits(&first, None)?)
    };
    let mut stop_at: Vec<Option<usize>> = vec![None; b];
    while !done.iter().all(|&d| d) {
        for i in 0..b {
            if done[i] {
                continue;
            }
            let (tok, lp) = samplers[i].pick(&logits[i], &seqs[i], cfg);
            seqs[i].push(tok);
            outs[i].token_ids.push(tok);
            outs[i].logprobs.push(lp);
            if cfg.eos_token_ids.contains(&tok) {
                done[i] = true;
                outs[i].finish_reason = FinishReason::Eos;
            } else if let (Some(tk), false) = (tokenizer, cfg.stop_strings.is_empty()) {
                let text = tk.decode(&outs[i].token_ids, false)?;
                if let Some(pos) = cfg.stop_strings.iter().filter_map(|s| text.find(s.as_str())).min() {
                    done[i] = true;
                    outs[i].finish_reason = FinishReason::Stop;
                    stop_at[i] = Some(pos);
                }
            }
            if !done[i] && (outs[i].token_ids.len() >= cfg.max_new_tokens || seqs[i].len() >= ctx) {
                done[i] = true;
                outs[i].finish_reason = FinishReason::Length;
            }
        }
        if done.iter().all(|&d| d) {
            break;
        }
        logits = if cfg.use_cache {
            let step = ForwardInput {
                ids: seqs.iter().map(|s| vec![*s.last().expect("non-empty")]).collect(),
                positions: seqs.iter().map(|s| vec![s.len() - 1]).collect(),
                valid: vec![vec![true]; b],
            };
            rows(model.next_token_logits(&step, Some(&mut cache))?)
        } else {
            rows(model.next_token_logits(&ForwardInput::left_padded(&seqs, cfg.pad_token_id), None)?)
        };
    }
    if let Some(tk) = tokenizer {
        for (o, stop) in outs.iter_mut().zip(stop_at) {
            let text = match stop {
                Some(pos) => {
                    let full = tk.decode(&o.token_ids, false)?;
                    let cut = &full[..pos];
                    // Drop special tokens from the kept part as well.
                    tk.decode(&tk.encode(cut, false)?, true)?
                }
                None => tk.decode(&o.token_ids, true)?,
            };
            o.text = Some(text);
        }
    }
    Ok(outs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampler_filters_and_is_seeded() {
        let logits = [0.0f32, 3.0, 2.9, -1.0, 1.0];
        let cfg = GenerationConfig { temperature: 1.0, top_k: 2, ..Default::default() };
        let mut s = Sampler::new(7, 0);
        let picks: Vec<u32> = (0..200).map(|_| s.pick(&logits, &[], &cfg).0).collect();
        assert!(picks.iter().all(|&t| t == 1 || t == 2));
        assert!(picks.contains(&1) && picks.contains(&2));
        let mut s2 = Sampler::new(7, 0);
        let again: Vec<u32> = (0..200).map(|_| s2.pick(&logits, &[], &cfg).0).collect();
        assert_eq!(picks, again);
        // top_p small keeps only the best token.
        let cfg = GenerationConfig { temperature: 1.0, top_p: 0.1, ..Default::default() };
        assert!((0..50).all(|_| s.pick(&logits, &[], &cfg).0 == 1));
        // Greedy with a repetition penalty avoids the repeated token.
        let cfg = GenerationConfig { repetition_penalty: 2.0, ..Default::default() };
        assert_eq!(s.pick(&logits, &[1], &cfg).0, 2);
        let (_, lp) = s.pick(&logits, &[], &GenerationConfig::default());
        assert!((lp - log_softmax_at(&logits, 1, 1.0)).abs() < 1e-7 && lp < 0.0);
    }

    /// The filtered softmax, the slow and obvious way: sort everything, cut, renormalise.
    fn expected(logits: &[f32], top_k: usize, top_p: f64) -> Vec<f64> {
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        if top_k > 0 {
            order.truncate(top_k);
        }
        let m = logits[order[0]] as f64;
        let w: Vec<f64> = order.iter().map(|&i| (logits[i] as f64 - m).exp()).collect();
        let z: f64 = w.iter().sum();
        let mut keep = order.len();
        let mut cum = 0.0;
        for (j, v) in w.iter().enumerate() {
            cum += v / z;
            if cum >= top_p {
                keep = j + 1;
                break;
            }
        }
        let zk: f64 = w[..keep].iter().sum();
        let mut p = vec![0.0; logits.len()];
        for j in 0..keep {
            p[order[j]] = w[j] / zk;
        }
        p
    }

    #[test]
    fn sampling_follows_the_filtered_softmax() {
        // Seeded; 40,000 draws give a standard error of at most 0.0025 per frequency: allow 0.01.
        // The long vocabulary puts the top-p cut beyond the first 1024 sorted candidates once.
        let mut long: Vec<f32> = (0..3000).map(|i| ((i * 7919 % 1000) as f32) * 1e-4).collect();
        long[17] = 3.0;
        let small = vec![2.0f32, 1.0, 0.5, 0.0, -1.0, 1.0];
        for (logits, top_k, top_p) in
            [(&small, 0, 1.0), (&small, 3, 1.0), (&small, 0, 0.8), (&small, 4, 0.9), (&long, 0, 0.9), (&long, 50, 0.5)]
        {
            let want = expected(logits, top_k, top_p as f64);
            let cfg = GenerationConfig { temperature: 1.0, top_k, top_p, ..Default::default() };
            let mut s = Sampler::new(11, 3);
            let n = 40_000;
            let mut counts = vec![0usize; logits.len()];
            for _ in 0..n {
                counts[s.pick(logits, &[], &cfg).0 as usize] += 1;
            }
            for (i, (&c, &p)) in counts.iter().zip(&want).enumerate() {
                let f = c as f64 / n as f64;
                assert!((f - p).abs() < 0.01, "top_k {top_k} top_p {top_p}: token {i} drawn {f}, expected {p}");
                if p == 0.0 {
                    assert_eq!(c, 0, "token {i} is filtered out");
                }
            }
        }
    }
}
