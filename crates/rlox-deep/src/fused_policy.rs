//! The actor-critic of REINFORCE, A2C and PPO on rlox-nn's fused small-MLP path
//! ([`rlox_nn::fused`]): the policy and value networks as flat buffers, their forward, backward and
//! optimizer step without an autodiff graph, and acting on a whole env batch with one forward per
//! network and no allocation.
//!
//! The three losses are functions of three per-row quantities of the network: `log pi(a|s)`, the
//! entropy `H(pi(.|s))` and `V(s)`. A method computes its loss on the host from those
//! ([`RowTerms`]) and writes the loss's derivative with respect to each of them; this module carries
//! those derivatives through the distribution (categorical or diagonal Gaussian with a
//! state-independent log-std) into the networks' outputs and from there through the networks. The
//! gradients equal burn's autodiff of the same loss on [`ActorCritic`] (tests in `ppo.rs`, `a2c.rs`,
//! `reinforce.rs` and `tests/onpolicy.rs`), and checkpoints keep [`ActorCritic`]'s layout.
//!
//! Distribution derivatives, per row with logits `z`, `p = softmax(z)`, `lp = log p`, action `a`:
//! `d log p_a / d z_j = [j = a] - p_j` and `dH / d z_j = -p_j (lp_j + H)`. For the Gaussian with
//! `u = (a - mu) exp(-log_std)`: `d log pi / d mu = u exp(-log_std)`, `d log pi / d log_std = u^2 - 1`,
//! `dH / d log_std = 1`.

use crate::policies::{
    argmax, log_softmax_into, sample_categorical, standard_normal, Acted, ActionKind, ActorCritic, HALF_LN_2PI,
};
use rlox_core::seeding::Rng;
use rlox_nn::fused::{self, FusedMlp, FusedOptimizer, Workspace};
use rlox_nn::{Device, OptimizerConfig};

/// Per-row quantities of the last [`FusedActorCritic::forward_rows`] and the loss's derivatives with
/// respect to them, which the method fills before [`FusedActorCritic::backward_step`].
#[derive(Debug, Clone, Default)]
pub struct RowTerms {
    /// `log pi(a_i | s_i)`.
    pub log_prob: Vec<f32>,
    /// `H(pi(. | s_i))`.
    pub entropy: Vec<f32>,
    /// `V(s_i)`.
    pub value: Vec<f32>,
    /// `dL / d log_prob_i` (the method writes it).
    pub d_log_prob: Vec<f32>,
    /// `dL / d entropy_i`, the same for every row (`-ent_coef / batch` for a mean entropy bonus).
    pub d_entropy: f32,
    /// `dL / d value_i` (the method writes it).
    pub d_value: Vec<f32>,
}

impl RowTerms {
    fn resize(&mut self, batch: usize) {
        for v in [&mut self.log_prob, &mut self.entropy, &mut self.value, &mut self.d_log_prob, &mut self.d_value] {
            v.clear();
            v.resize(batch, 0.0);
        }
        self.d_entropy = 0.0;
    }

    /// Rows of the last forward.
    pub fn batch(&self) -> usize {
        self.log_prob.len()
    }
}

/// An [`ActorCritic`] with separate policy and value networks (and, for a Gaussian, a
/// state-independent log-std) on the fused path, with its optimizer and every buffer a training
/// step or an acting step writes.
#[derive(Debug, Clone)]
pub struct FusedActorCritic {
    pi: FusedMlp,
    vf: FusedMlp,
    /// The Gaussian's log standard deviations (empty for a categorical policy).
    log_std: Vec<f32>,
    continuous: bool,
    n_actions: usize,
    optimizer: FusedOptimizer,
    // Training.
    train_pi: Workspace,
    train_vf: Workspace,
    obs: Vec<f32>,
    actions: Vec<f32>,
    /// Log-softmax of the logits (categorical) or the standardised actions `u` (Gaussian), `[b, n]`.
    dist: Vec<f32>,
    d_pi: Vec<f32>,
    d_vf: Vec<f32>,
    log_std_grad: Vec<f32>,
    terms: RowTerms,
    // Acting.
    act_pi: Workspace,
    act_vf: Workspace,
    row: Vec<f32>,
}

impl FusedActorCritic {
    /// The fused copy of `model` with a fresh `optimizer`, or `None` when the architecture is not
    /// one the fused path covers (a shared trunk, or a state-dependent log-std).
    pub fn from_model(model: &ActorCritic, optimizer: OptimizerConfig) -> Option<Self> {
        if model.trunk.is_some() || model.state_dependent_std() {
            return None;
        }
        let pi = FusedMlp::from_mlp(&model.pi);
        let vf = FusedMlp::from_mlp(&model.vf);
        let log_std: Vec<f32> = match &model.log_std {
            Some(p) => p.val().into_data().try_into_vec_as::<f32>().expect("f32 log-std"),
            None => Vec::new(),
        };
        let n_params = pi.num_params() + vf.num_params() + log_std.len();
        Some(FusedActorCritic {
            continuous: model.is_continuous(),
            n_actions: model.n_actions(),
            optimizer: FusedOptimizer::new(optimizer, n_params),
            train_pi: pi.workspace(1),
            train_vf: vf.workspace(1),
            act_pi: pi.workspace(1),
            act_vf: vf.workspace(1),
            log_std_grad: vec![0.0; log_std.len()],
            pi,
            vf,
            log_std,
            obs: Vec::new(),
            actions: Vec::new(),
            dist: Vec::new(),
            d_pi: Vec::new(),
            d_vf: Vec::new(),
            terms: RowTerms::default(),
            row: Vec::new(),
        })
    }

    /// The network as a burn module on `device` (for checkpoints, evaluation by other code, tests).
    pub fn to_model(&self, device: &Device) -> ActorCritic {
        let log_std = self.continuous.then_some(self.log_std.as_slice());
        ActorCritic::from_networks(self.pi.to_mlp(0, device), self.vf.to_mlp(0, device), log_std, device)
    }

    /// Overwrite the parameters with `model`'s (same architecture).
    pub fn copy_from_model(&mut self, model: &ActorCritic) {
        self.pi.copy_from_mlp(0, &model.pi);
        self.vf.copy_from_mlp(0, &model.vf);
        if let Some(p) = &model.log_std {
            self.log_std = p.val().into_data().try_into_vec_as::<f32>().expect("f32 log-std");
        }
    }

    /// The optimizer.
    pub fn optimizer(&self) -> &FusedOptimizer {
        &self.optimizer
    }

    /// The optimizer, to restore its state.
    pub fn optimizer_mut(&mut self) -> &mut FusedOptimizer {
        &mut self.optimizer
    }

    /// The sizes of the parameter tensors in [`ActorCritic`]'s visiting order (policy network,
    /// value network, log-std): the layout of the optimizer's state.
    pub fn param_sizes(&self) -> Vec<usize> {
        let mut sizes = rlox_nn::state::fused_param_sizes(&self.pi);
        sizes.extend(rlox_nn::state::fused_param_sizes(&self.vf));
        if !self.log_std.is_empty() {
            sizes.push(self.log_std.len());
        }
        sizes
    }

    /// Whether every parameter is finite.
    pub fn all_finite(&self) -> bool {
        self.pi.params().iter().chain(self.vf.params()).chain(&self.log_std).all(|x| x.is_finite())
    }

    /// The mean standard deviation of a Gaussian policy.
    pub fn mean_std(&self) -> Option<f64> {
        (!self.log_std.is_empty())
            .then(|| self.log_std.iter().map(|l| (*l as f64).exp()).sum::<f64>() / self.log_std.len() as f64)
    }

    /// Act on `n` observations (`obs`, `[n, obs_dim]`): one forward of each network for the whole
    /// batch, the actions sampled from `rng` (or the most likely ones when `deterministic`), written
    /// into `out`'s buffers, which keep their capacity from call to call. Draws from `rng` exactly as
    /// [`ActorCritic::act`] does.
    pub fn act_into(&mut self, obs: &[f32], rng: &mut Rng, deterministic: bool, out: &mut Acted) {
        let n = obs.len() / self.pi.input_dim();
        let k = self.n_actions;
        let params = self.pi.forward(obs, n, &mut self.act_pi);
        out.values.clear();
        out.values.extend_from_slice(self.vf.forward(obs, n, &mut self.act_vf));
        out.actions.clear();
        out.log_probs.clear();
        if self.continuous {
            for mu in params.chunks_exact(k) {
                let mut lp = 0.0f32;
                for (j, &m) in mu.iter().enumerate() {
                    let ls = self.log_std[j];
                    let z = if deterministic { 0.0 } else { standard_normal(rng) };
                    out.actions.push(m + ls.exp() * z);
                    lp += -0.5 * z * z - ls - HALF_LN_2PI;
                }
                out.log_probs.push(lp);
            }
        } else {
            self.row.resize(k, 0.0);
            for logits in params.chunks_exact(k) {
                log_softmax_into(logits, &mut self.row);
                let a = if deterministic { argmax(logits) } else { sample_categorical(&self.row, rng) };
                out.actions.push(a as f32);
                out.log_probs.push(self.row[a]);
            }
        }
    }

    /// Forward the rows `rows` of a rollout (`obs` `[.., obs_dim]`, raw `actions` `[.., action_dim]`;
    /// all rows when `None`) through both networks and the distribution; returns the per-row terms,
    /// whose derivatives the caller then writes.
    pub fn forward_rows(&mut self, obs: &[f32], actions: &[f32], rows: Option<&[usize]>) -> &mut RowTerms {
        let (d, ad) = (self.pi.input_dim(), if self.continuous { self.n_actions } else { 1 });
        let b = match rows {
            Some(idx) => {
                gather_into(obs, d, idx, &mut self.obs);
                gather_into(actions, ad, idx, &mut self.actions);
                idx.len()
            }
            None => {
                self.obs.clear();
                self.obs.extend_from_slice(obs);
                self.actions.clear();
                self.actions.extend_from_slice(actions);
                obs.len() / d
            }
        };
        self.terms.resize(b);
        let k = self.n_actions;
        let out = self.pi.forward(&self.obs, b, &mut self.train_pi);
        self.terms.value.copy_from_slice(self.vf.forward(&self.obs, b, &mut self.train_vf));
        self.dist.resize(b * k, 0.0);
        if self.continuous {
            let entropy: f32 = self.log_std.iter().map(|ls| ls + 0.5 + HALF_LN_2PI).sum();
            for i in 0..b {
                let mut lp = 0.0f32;
                for j in 0..k {
                    let ls = self.log_std[j];
                    let u = (self.actions[i * k + j] - out[i * k + j]) * (-ls).exp();
                    self.dist[i * k + j] = u;
                    lp += -0.5 * u * u - ls - HALF_LN_2PI;
                }
                self.terms.log_prob[i] = lp;
                self.terms.entropy[i] = entropy;
            }
        } else {
            for i in 0..b {
                let lp = &mut self.dist[i * k..(i + 1) * k];
                log_softmax_into(&out[i * k..(i + 1) * k], lp);
                self.terms.log_prob[i] = lp[self.actions[i] as usize];
                self.terms.entropy[i] = -lp.iter().map(|&l| l.exp() * l).sum::<f32>();
            }
        }
        &mut self.terms
    }

    /// The per-row terms of the last [`FusedActorCritic::forward_rows`].
    pub fn terms(&self) -> &RowTerms {
        &self.terms
    }

    /// Back-propagate the derivatives in [`RowTerms`] through the distribution and both networks,
    /// clip the gradient to a global norm of `max_grad_norm` and take one optimizer step with `lr`.
    /// Returns the norm before clipping; when it is not finite nothing is changed.
    pub fn backward_step(&mut self, lr: f64, max_grad_norm: f64) -> f64 {
        let (b, k) = (self.terms.batch(), self.n_actions);
        self.d_pi.clear();
        self.d_pi.resize(b * k, 0.0);
        let t = &self.terms;
        if self.continuous {
            self.log_std_grad.fill(0.0);
            for i in 0..b {
                let g = t.d_log_prob[i];
                for j in 0..k {
                    let u = self.dist[i * k + j];
                    self.d_pi[i * k + j] = g * u * (-self.log_std[j]).exp();
                    self.log_std_grad[j] += g * (u * u - 1.0) + t.d_entropy;
                }
            }
        } else {
            for i in 0..b {
                let lp = &self.dist[i * k..(i + 1) * k];
                let (g, h) = (t.d_log_prob[i], t.entropy[i]);
                let a = self.actions[i] as usize;
                for (j, (dz, &l)) in self.d_pi[i * k..(i + 1) * k].iter_mut().zip(lp).enumerate() {
                    let p = l.exp();
                    let onehot = if j == a { 1.0 } else { 0.0 };
                    *dz = g * (onehot - p) - t.d_entropy * p * (l + h);
                }
            }
        }
        self.d_vf.clear();
        self.d_vf.extend_from_slice(&t.d_value);
        self.pi.backward(&mut self.train_pi, &self.d_pi, true, None);
        self.vf.backward(&mut self.train_vf, &self.d_vf, true, None);
        let norm = fused::clip_grad_norm_parts(
            &mut [self.train_pi.grads_mut(), self.train_vf.grads_mut(), &mut self.log_std_grad[..]],
            max_grad_norm,
        );
        if !norm.is_finite() {
            return norm;
        }
        self.optimizer.step_parts(
            lr,
            &mut [
                (self.pi.params_mut(), self.train_pi.grads()),
                (self.vf.params_mut(), self.train_vf.grads()),
                (&mut self.log_std[..], &self.log_std_grad[..]),
            ],
        );
        norm
    }

    /// The action space's kind (for checks).
    pub fn matches(&self, kind: &ActionKind) -> bool {
        self.continuous != kind.is_discrete() && self.n_actions == kind.n_outputs()
    }
}

/// `out = rows idx of src` (`width` values a row).
fn gather_into(src: &[f32], width: usize, idx: &[usize], out: &mut Vec<f32>) {
    out.clear();
    for &k in idx {
        out.extend_from_slice(&src[k * width..(k + 1) * width]);
    }
}
