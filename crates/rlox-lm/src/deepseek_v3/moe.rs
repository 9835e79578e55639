//! DeepSeek-V3's feed-forward: a dense SwiGLU MLP in the first layers, then a mixture of experts with an
//! auxiliary-loss-free router and ungated shared experts.
//!
//! The router scores every expert (`sigmoid(x W)`, or a softmax); the *choice* adds a per-expert correction
//! bias (`e_score_correction_bias`, the running load-balancing term of training) and keeps only the
//! `topk_group` expert groups whose best two biased scores sum highest; the *weights* of the chosen experts
//! are their unbiased scores, renormalised to sum to one (`norm_topk_prob`) and multiplied by
//! `routed_scaling_factor`. The choice is a discrete decision made on the host; the weights stay tensors,
//! so the router's weight gets gradients through them.

use crate::deepseek_v3::config::{DeepseekV3Config, ScoringFunc, TopkMethod};
use crate::init::Init;
use crate::model::{Linear, Mlp};
use rlox_nn::burn;
use rlox_nn::burn::module::Param;
use rlox_nn::burn::tensor::activation::{sigmoid, silu, softmax};
use rlox_nn::burn::tensor::IndexingUpdateOp;
use rlox_nn::{Device, Int, Module, Tensor, TensorData};

/// The router (`mlp.gate`).
#[derive(Module, Debug)]
pub struct Router {
    /// `[hidden, experts]` (Hugging Face stores `[experts, hidden]`).
    pub weight: Param<Tensor<2>>,
    /// `[experts]`, added to the scores for the choice only (`noaux_tc`).
    pub e_score_correction_bias: Option<Param<Tensor<1>>>,
}

/// The chosen experts of each token and their weights.
#[derive(Debug, Clone)]
pub struct Routing {
    /// `[tokens * top_k]` expert indices, token-major.
    pub experts: Vec<usize>,
    /// `[tokens, top_k]` weights.
    pub weights: Tensor<2>,
}

/// The largest `k` of `values` (indices), by value descending, ties to the lower index.
fn top_indices(values: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

impl Router {
    /// Build with `init` (the correction bias starts at zero).
    pub fn new(c: &DeepseekV3Config, init: Init, device: &Device) -> Self {
        Router {
            weight: init.weight([c.hidden_size, c.n_routed_experts], device),
            e_score_correction_bias: (c.topk_method == TopkMethod::NoauxTc)
                .then(|| init.constant([c.n_routed_experts], 0.0, device).set_require_grad(false)),
        }
    }

    /// Route `x` (`[tokens, hidden]`).
    pub fn route(&self, x: Tensor<2>, c: &DeepseekV3Config) -> Routing {
        let [n, _] = x.dims();
        let e = c.n_routed_experts;
        let k = c.num_experts_per_tok;
        let logits = x.matmul(self.weight.val());
        let scores = match c.scoring_func {
            ScoringFunc::Sigmoid => sigmoid(logits),
            ScoringFunc::Softmax => softmax(logits, 1),
        };
        let host: Vec<f32> = scores.clone().into_data().try_into_vec_as::<f32>().expect("f32 scores");
        let bias: Option<Vec<f32>> = match (&self.e_score_correction_bias, c.topk_method) {
            (Some(b), TopkMethod::NoauxTc) => Some(b.val().into_data().try_into_vec_as::<f32>().expect("f32 bias")),
            _ => None,
        };
        let group = e / c.n_group;
        let mut experts = Vec::with_capacity(n * k);
        let mut choice = vec![0.0f32; e];
        for row in host.chunks(e) {
            for (j, x) in choice.iter_mut().enumerate() {
                *x = row[j] + bias.as_ref().map_or(0.0, |b| b[j]);
            }
            if c.topk_method == TopkMethod::NoauxTc && c.n_group > 1 {
                // Score each group by its best two choices; hide the experts of all but the best groups.
                let group_scores: Vec<f32> =
                    choice.chunks(group).map(|g| top_indices(g, 2.min(group)).iter().map(|&i| g[i]).sum()).collect();
                let keep = top_indices(&group_scores, c.topk_group);
                for (gi, g) in choice.chunks_mut(group).enumerate() {
                    if !keep.contains(&gi) {
                        g.fill(f32::NEG_INFINITY);
                    }
                }
            }
            experts.extend(top_indices(&choice, k));
        }
        let device = scores.device();
        let idx: Vec<i64> = experts.iter().map(|&i| i as i64).collect();
        let idx = Tensor::<2, Int>::from_data(TensorData::new(idx, [n, k]), &device);
        let mut weights = scores.gather(1, idx);
        if c.norm_topk_prob {
            weights = weights.clone() / weights.sum_dim(1).add_scalar(1e-20);
        }
        Routing { experts, weights: weights.mul_scalar(c.routed_scaling_factor) }
    }
}

/// The feed-forward block of a layer: dense (`gate_proj`/`up_proj`/`down_proj`) or routed (`gate`,
/// `experts`, `shared_experts`). One struct for both keeps the parameter paths Hugging Face's `mlp.*`.
#[derive(Module, Debug)]
pub struct DeepseekMlp {
    /// Dense: gate projection.
    pub gate_proj: Option<Linear>,
    /// Dense: up projection.
    pub up_proj: Option<Linear>,
    /// Dense: down projection.
    pub down_proj: Option<Linear>,
    /// MoE: the router.
    pub gate: Option<Router>,
    /// MoE: the routed experts.
    pub experts: Vec<Mlp>,
    /// MoE: the shared experts, one MLP `n_shared_experts` times as wide as an expert.
    pub shared_experts: Option<Mlp>,
}

impl DeepseekMlp {
    /// Layer `layer`'s feed-forward, built with `init`.
    pub fn new(c: &DeepseekV3Config, layer: usize, init: Init, device: &Device) -> Self {
        let hs = c.hidden_size;
        if c.is_moe_layer(layer) {
            DeepseekMlp {
                gate_proj: None,
                up_proj: None,
                down_proj: None,
                gate: Some(Router::new(c, init, device)),
                experts: (0..c.n_routed_experts).map(|_| init.mlp(hs, c.moe_intermediate_size, device)).collect(),
                shared_experts: (c.n_shared_experts > 0)
                    .then(|| init.mlp(hs, c.moe_intermediate_size * c.n_shared_experts, device)),
            }
        } else {
            let m = init.mlp(hs, c.intermediate_size, device);
            DeepseekMlp {
                gate_proj: Some(m.gate_proj),
                up_proj: Some(m.up_proj),
                down_proj: Some(m.down_proj),
                gate: None,
                experts: Vec::new(),
                shared_experts: None,
            }
        }
    }

    /// `[batch, seq, hidden]` to the same.
    pub fn forward(&self, x: Tensor<3>, c: &DeepseekV3Config) -> Tensor<3> {
        let [b, t, h] = x.dims();
        let x2 = x.reshape([b * t, h]);
        let y = match (&self.gate_proj, &self.up_proj, &self.down_proj, &self.gate) {
            (Some(g), Some(u), Some(d), _) => d.forward2(silu(g.forward2(x2.clone())) * u.forward2(x2)),
            (_, _, _, Some(router)) => self.forward_moe(x2, router, c),
            _ => unreachable!("DeepseekMlp::new builds a dense MLP or a router"),
        };
        y.reshape([b, t, h])
    }

    fn forward_moe(&self, x: Tensor<2>, router: &Router, c: &DeepseekV3Config) -> Tensor<2> {
        let [n, h] = x.dims();
        let k = c.num_experts_per_tok;
        let routing = router.route(x.clone(), c);
        let flat_w = routing.weights.reshape([n * k]);
        let device = x.device();
        let mut out = Tensor::<2>::zeros([n, h], &device);
        for (e, expert) in self.experts.iter().enumerate() {
            let (tokens, slots): (Vec<i64>, Vec<i64>) = routing
                .experts
                .iter()
                .enumerate()
                .filter(|(_, &chosen)| chosen == e)
                .map(|(slot, _)| ((slot / k) as i64, slot as i64))
                .unzip();
            if tokens.is_empty() {
                continue;
            }
            let m = tokens.len();
            let tok = Tensor::<1, Int>::from_data(TensorData::new(tokens, [m]), &device);
            let slot = Tensor::<1, Int>::from_data(TensorData::new(slots, [m]), &device);
            let w = flat_w.clone().select(0, slot).unsqueeze_dim::<2>(1);
            let y = expert.forward2(x.clone().select(0, tok.clone())) * w;
            out = out.select_assign(0, tok, y, IndexingUpdateOp::Add);
        }
        match &self.shared_experts {
            Some(shared) => out + shared.forward2(x),
            None => out,
        }
    }
}
