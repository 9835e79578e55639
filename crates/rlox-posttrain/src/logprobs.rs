//! Per-token log-probs of completions under a model, the quantity every trainer here differentiates.
//!
//! A [`PaddedBatch`] puts every completion at the same column `P` (prompts left-padded, completions
//! right-padded), so one forward pass gives `logits[:, P-1 .. P+C-1]`, the predictions of the `C`
//! completion tokens; `log_softmax(logits / temperature)` gathered at the completion ids is `[B, C]`,
//! computed by `rlox_lm::CausalLm::token_logprobs` a few rows at a time (at a 151,936-token vocabulary
//! the whole logits of a DPO batch would take gigabytes, and their softmax and gradients as much again).
//! This is `rlox lm score`'s computation (`score_ids`), batched and kept on the autodiff graph.

use crate::datasets::PaddedBatch;
use crate::policy::{prompt_lengths, PolicyModel};
use crate::{Error, Result};
use rlox_lm::{CausalLm, ForwardInput};
use rlox_nn::{Tensor, TensorData};
use rlox_vlm::ProcessedImage;

/// A model whose completions can be scored: a text decoder, or a policy that may see images.
pub trait Scorer {
    /// Final hidden states of `input` (row `b` shown `images[b]`; placeholders below `prompt_lens[b]`).
    fn final_hidden(
        &self,
        input: &ForwardInput,
        images: &[Vec<ProcessedImage>],
        prompt_lens: Option<&[usize]>,
    ) -> Result<Tensor<3>>;
    /// `log softmax(logits / temperature)` at `targets`.
    fn target_logprobs(&self, hidden: Tensor<2>, targets: &[u32], temperature: f64) -> Result<Tensor<1>>;
}

impl Scorer for CausalLm {
    fn final_hidden(
        &self,
        input: &ForwardInput,
        images: &[Vec<ProcessedImage>],
        _: Option<&[usize]>,
    ) -> Result<Tensor<3>> {
        if images.iter().any(|i| !i.is_empty()) {
            return Err(crate::policy::text_model_with_images());
        }
        Ok(self.hidden_states(input, None)?.hidden)
    }

    fn target_logprobs(&self, hidden: Tensor<2>, targets: &[u32], temperature: f64) -> Result<Tensor<1>> {
        self.token_logprobs(hidden, targets, temperature)
    }
}

impl Scorer for PolicyModel {
    fn final_hidden(
        &self,
        input: &ForwardInput,
        images: &[Vec<ProcessedImage>],
        prompt_lens: Option<&[usize]>,
    ) -> Result<Tensor<3>> {
        self.hidden_states(input, images, prompt_lens)
    }

    fn target_logprobs(&self, hidden: Tensor<2>, targets: &[u32], temperature: f64) -> Result<Tensor<1>> {
        self.token_logprobs(hidden, targets, temperature)
    }
}

/// `[B, C]` log-probs of the completion tokens (padding positions hold arbitrary finite values: multiply
/// by the completion mask). `temperature` divides the logits first (GRPO samples at a temperature and
/// scores at the same one, as TRL does). Row `b` is shown `images[b]` (empty: none; an empty slice:
/// no row has images); only the prompt's placeholders take image features, unless `images_anywhere`
/// (SFT, whose batches put all but the first token in the "completion").
pub fn completion_logps<M: Scorer>(
    model: &M,
    batch: &PaddedBatch,
    images: &[Vec<ProcessedImage>],
    images_anywhere: bool,
    temperature: f64,
) -> Result<Tensor<2>> {
    let (p, c) = (batch.prompt_len, batch.completion_len);
    if p == 0 {
        return Err(Error::invalid("batch", "every row needs at least one prompt token to condition on"));
    }
    if c == 0 {
        return Err(Error::invalid("batch", "no completion tokens to score"));
    }
    let b = batch.ids.len();
    // The final hidden states of the completion's predictions, then the LM head and the log-softmax
    // in chunks of rows (`CausalLm::token_logprobs`): the [B, C, vocab] logits never exist whole.
    let none;
    let images = if images.is_empty() {
        none = vec![Vec::new(); b];
        &none
    } else {
        images
    };
    let limits = (!images_anywhere).then(|| prompt_lengths(batch));
    let hidden = model.final_hidden(&batch.forward_input(), images, limits.as_deref())?;
    let h = hidden.dims()[2];
    let hidden = hidden.narrow(1, p - 1, c).reshape([b * c, h]);
    let targets: Vec<u32> = batch.completion_ids.iter().flatten().copied().collect();
    Ok(model.target_logprobs(hidden, &targets, temperature)?.reshape([b, c]))
}

/// The completion mask `[B, C]` on `device`.
pub fn mask_tensor(batch: &PaddedBatch, device: &rlox_nn::Device) -> Tensor<2> {
    let (b, c) = (batch.ids.len(), batch.completion_len);
    let flat: Vec<f32> = batch.completion_mask.iter().flatten().copied().collect();
    Tensor::<2>::from_data(TensorData::new(flat, [b, c]), device)
}

/// Summed completion log-prob per row, `[B]` (text rows).
pub fn sequence_logps<M: Scorer>(model: &M, batch: &PaddedBatch) -> Result<Tensor<1>> {
    let lp = completion_logps(model, batch, &[], false, 1.0)?;
    let mask = mask_tensor(batch, &lp.device());
    let b = batch.ids.len();
    Ok((lp * mask).sum_dim(1).reshape([b]))
}

/// A tensor's values as `f64`.
pub fn to_f64<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().try_into_vec_as::<f32>().expect("f32 tensor").into_iter().map(f64::from).collect()
}

/// `[rows, cols]` values as a tensor on `device`.
pub fn tensor2(values: &[f64], rows: usize, device: &rlox_nn::Device) -> Tensor<2> {
    let cols = values.len().checked_div(rows).unwrap_or(0);
    Tensor::<2>::from_data(TensorData::new(values.iter().map(|&v| v as f32).collect::<Vec<_>>(), [rows, cols]), device)
}

/// `[n]` values as a tensor on `device`.
pub fn tensor1(values: &[f64], device: &rlox_nn::Device) -> Tensor<1> {
    Tensor::<1>::from_data(
        TensorData::new(values.iter().map(|&v| v as f32).collect::<Vec<_>>(), [values.len()]),
        device,
    )
}
