//! [`FusedMlp`]: an MLP (or a set of same-shaped MLPs, the twin critics of TD3/SAC) whose
//! parameters live in one flat `f32` buffer, trained without a graph.
//!
//! Layout: member after member; inside a member, layer after layer, the weight `[in, out]`
//! (row-major, burn's layout: `y = x W + b`) then the bias `[out]`. The gradient has the same layout,
//! so the optimizer, the global gradient norm and the target-network update are single loops over
//! flat buffers.
//!
//! A [`Workspace`] holds everything a forward and a backward pass write (the input, each layer's
//! activations, two gradient buffers, a weight panel, the parameter gradient), sized for a batch
//! and grown only when a larger batch comes, so a training step allocates nothing. The forward
//! records what the backward needs; [`FusedMlp::backward`] takes `dL/d(output)` from the caller
//! (the loss stays in the trainer) and writes the parameter gradient and, when asked, `dL/d(input)`.
//!
//! Per layer, with `X` the layer's input `[batch, in]`, `Y = act(X W + b)` and `dZ = dL/d(XW + b)`:
//! forward `Y = act(1·bᵀ + X·W)` (one GEMM, bias in the accumulator start, activation in place);
//! backward `dW = Xᵀ·dZ` (the GEMM reads `X` column-major, nothing is copied), `db = Σ_rows dZ`,
//! `dX = dZ·Wᵀ` (32 columns of `Wᵀ` at a time transposed into an L1-resident panel, `in·out` moves
//! against the product's `batch·in·out` multiply-adds), then `dZ_prev = dX ⊙ act'(Y_prev)`.
//!
//! Checkpoints use the names and shapes of [`crate::Mlp`] (`layers.<i>.weight` `[in, out]`,
//! `layers.<i>.bias` `[out]`) under a prefix per member, so a file saved by one loads in the other.

use super::gemm::{gemm, gemm_abt, Init, Layout};
use super::vector;
use super::Isa;
use crate::checkpoint::{read_tensors, tensors_to_safetensors_bytes};
use crate::mlp::{Activation, Mlp, MlpConfig, OutputInit};
use burn::module::Param;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor, TensorData};
use rlox_core::checkpoint::atomic_write;
use rlox_core::seeding::Rng;
use rlox_core::{Error, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// Where one layer's parameters sit inside a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    weight: usize,
    bias: usize,
    fan_in: usize,
    fan_out: usize,
}

/// An MLP, or `members` MLPs of one shape fed the same input, with flat parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct FusedMlp {
    widths: Vec<usize>,
    activation: Activation,
    members: usize,
    spans: Vec<Span>,
    member_len: usize,
    params: Vec<f32>,
    isa: Isa,
}

impl FusedMlp {
    /// `members` networks `widths[0] -> widths[1] -> ... -> widths[last]` with `activation` between
    /// layers (none after the last), all parameters zero.
    ///
    /// # Panics
    /// If `widths` has fewer than two entries, a width is 0, or `members` is 0.
    pub fn zeros(widths: &[usize], activation: Activation, members: usize) -> Self {
        assert!(widths.len() >= 2 && widths.iter().all(|&w| w > 0), "an MLP needs positive widths: {widths:?}");
        assert!(members > 0, "an MLP set needs at least one member");
        let mut spans = Vec::with_capacity(widths.len() - 1);
        let mut at = 0;
        for pair in widths.windows(2) {
            let (fan_in, fan_out) = (pair[0], pair[1]);
            spans.push(Span { weight: at, bias: at + fan_in * fan_out, fan_in, fan_out });
            at += fan_in * fan_out + fan_out;
        }
        FusedMlp {
            widths: widths.to_vec(),
            activation,
            members,
            spans,
            member_len: at,
            params: vec![0.0; at * members],
            isa: super::isa(),
        }
    }

    /// `members` networks of `config`'s shape, initialised from `rng` as PyTorch's `nn.Linear` does
    /// (weights and biases uniform in `±1/sqrt(fan_in)`, drawn weight then bias, layer by layer,
    /// member by member); the last layer follows `config.output_init` except `Orthogonal`, which the
    /// trainers draw themselves and set with [`FusedMlp::layer_mut`] (this draws it as `Default`).
    pub fn new(config: &MlpConfig, members: usize, rng: &mut Rng) -> Self {
        use rand::Rng as _;
        let mut widths = vec![config.input];
        widths.extend_from_slice(&config.hidden);
        widths.push(config.output);
        let mut net = FusedMlp::zeros(&widths, config.activation, members);
        let layers = net.spans.len();
        for m in 0..members {
            for l in 0..layers {
                let fan_in = net.spans[l].fan_in;
                let bound = match (l + 1 == layers, config.output_init) {
                    (true, OutputInit::Uniform(scale)) => scale,
                    (true, OutputInit::Zeros) => 0.0,
                    _ => 1.0 / (fan_in as f64).sqrt(),
                };
                let (w, b) = net.layer_mut(m, l);
                for x in w.iter_mut().chain(b.iter_mut()) {
                    *x = ((rng.random::<f64>() * 2.0 - 1.0) * bound) as f32;
                }
            }
        }
        net
    }

    /// A one-member copy of a burn [`Mlp`] (its widths, activation and values).
    pub fn from_mlp(mlp: &Mlp) -> Self {
        let mut widths = vec![mlp.input_dim()];
        widths.extend(mlp.layers.iter().map(|l| l.weight.lazy_shape().dims::<2>()[1]));
        let mut net = FusedMlp::zeros(&widths, mlp.activation, 1);
        net.copy_from_mlp(0, mlp);
        net
    }

    /// Overwrite member `member` with the values of `mlp` (same shape).
    ///
    /// # Panics
    /// If `mlp` has another shape.
    pub fn copy_from_mlp(&mut self, member: usize, mlp: &Mlp) {
        assert_eq!(mlp.layers.len(), self.spans.len(), "copy_from_mlp: another number of layers");
        for (l, layer) in mlp.layers.iter().enumerate() {
            let w: Vec<f32> = layer.weight.val().into_data().try_into_vec_as::<f32>().expect("f32 weight");
            let b: Vec<f32> = match &layer.bias {
                Some(b) => b.val().into_data().try_into_vec_as::<f32>().expect("f32 bias"),
                None => vec![0.0; self.spans[l].fan_out],
            };
            let (dw, db) = self.layer_mut(member, l);
            assert_eq!((dw.len(), db.len()), (w.len(), b.len()), "copy_from_mlp: layer {l} has another shape");
            dw.copy_from_slice(&w);
            db.copy_from_slice(&b);
        }
    }

    /// Member `member` as a burn [`Mlp`] on `device` (parameters that require gradients, as
    /// [`MlpConfig::init`] makes them).
    pub fn to_mlp(&self, member: usize, device: &Device) -> Mlp {
        let layers = (0..self.spans.len())
            .map(|l| {
                let s = self.spans[l];
                let (w, b) = self.layer(member, l);
                let mut layer: Linear = LinearConfig::new(s.fan_in, s.fan_out).init(device);
                let w =
                    Tensor::<2>::from_data(TensorData::new(w.to_vec(), [s.fan_in, s.fan_out]), device).require_grad();
                let b = Tensor::<1>::from_data(TensorData::new(b.to_vec(), [s.fan_out]), device).require_grad();
                layer.weight = Param::from_tensor(w);
                layer.bias = Some(Param::from_tensor(b));
                layer
            })
            .collect();
        Mlp { layers, activation: self.activation }
    }

    /// Use the kernels of `isa` (a set the CPU lacks falls back to the best it has); the default is
    /// [`super::isa`].
    pub fn with_isa(mut self, isa: Isa) -> Self {
        self.isa = isa;
        self
    }

    /// Layer widths, input first.
    pub fn widths(&self) -> &[usize] {
        &self.widths
    }

    /// Input features.
    pub fn input_dim(&self) -> usize {
        self.widths[0]
    }

    /// Output features (of each member).
    pub fn output_dim(&self) -> usize {
        self.widths[self.widths.len() - 1]
    }

    /// The hidden activation.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// Number of networks.
    pub fn members(&self) -> usize {
        self.members
    }

    /// Number of linear layers (of each member).
    pub fn layers(&self) -> usize {
        self.spans.len()
    }

    /// Parameters of all members.
    pub fn num_params(&self) -> usize {
        self.params.len()
    }

    /// Parameters of one member (the offset of member `m` is `m * member_len()`).
    pub fn member_len(&self) -> usize {
        self.member_len
    }

    /// All parameters, in the layout of the module docs.
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// All parameters, writable (an optimizer steps them in place).
    pub fn params_mut(&mut self) -> &mut [f32] {
        &mut self.params
    }

    /// Layer `l` of member `m`: weight `[in, out]` row-major and bias `[out]`.
    pub fn layer(&self, m: usize, l: usize) -> (&[f32], &[f32]) {
        let s = self.spans[l];
        let base = m * self.member_len;
        (&self.params[base + s.weight..base + s.bias], &self.params[base + s.bias..base + s.bias + s.fan_out])
    }

    /// Layer `l` of member `m`, writable.
    pub fn layer_mut(&mut self, m: usize, l: usize) -> (&mut [f32], &mut [f32]) {
        let s = self.spans[l];
        let base = m * self.member_len;
        let (w, rest) = self.params[base + s.weight..].split_at_mut(s.fan_in * s.fan_out);
        (w, &mut rest[..s.fan_out])
    }

    /// A workspace for batches of up to `batch` rows (it grows if a larger batch comes).
    pub fn workspace(&self, batch: usize) -> Workspace {
        let mut ws = Workspace::default();
        ws.reserve(self, batch);
        ws
    }

    /// Floating-point operations of one forward pass over `batch` rows (all members; two per
    /// multiply-add of the GEMMs). A backward with parameter and input gradients costs twice this.
    pub fn forward_flops(&self, batch: usize) -> f64 {
        let per_row: usize = self.spans.iter().map(|s| s.fan_in * s.fan_out).sum();
        2.0 * (batch * per_row * self.members) as f64
    }

    /// Run every member on `x` (`[batch, input]`, row-major) and return the outputs
    /// `[members, batch, output]`. The workspace records the activations for [`FusedMlp::backward`].
    ///
    /// # Panics
    /// If `x` does not hold `batch` rows of `input` features.
    pub fn forward<'w>(&self, x: &[f32], batch: usize, ws: &'w mut Workspace) -> &'w [f32] {
        let d_in = self.input_dim();
        assert_eq!(x.len(), batch * d_in, "forward: x has {} values, not {batch} rows of {d_in}", x.len());
        ws.reserve(self, batch);
        ws.batch = batch;
        ws.input[..x.len()].copy_from_slice(x);
        let layers = self.spans.len();
        let out_len = batch * self.output_dim();
        for m in 0..self.members {
            let base = m * self.member_len;
            for (l, s) in self.spans.iter().enumerate() {
                let w = &self.params[base + s.weight..base + s.bias];
                let b = &self.params[base + s.bias..base + s.bias + s.fan_out];
                let (input, output) = ws.layer_io(m, l, layers, out_len);
                let y = &mut output[..batch * s.fan_out];
                gemm(
                    self.isa,
                    (batch, s.fan_out, s.fan_in),
                    &input[..batch * s.fan_in],
                    Layout::RowMajor,
                    s.fan_in,
                    w,
                    s.fan_out,
                    y,
                    s.fan_out,
                    Init::Bias(b),
                );
                if l + 1 < layers {
                    vector::activate(self.isa, self.activation, y);
                }
            }
        }
        &ws.output[..self.members * out_len]
    }

    /// Back-propagate `d_out = dL/d(output)` (`[members, batch, output]`) through the last
    /// [`FusedMlp::forward`] recorded in `ws`.
    ///
    /// Writes (overwrites) the parameter gradient into the workspace ([`Workspace::grads`]) when
    /// `param_grads` is true, and `dL/d(input)` (`[batch, input]`, summed over the members) into
    /// `d_input` when given. A member whose `d_out` is all zero is skipped (its gradient is zero): the
    /// actor loss of TD3 goes through the first critic only.
    ///
    /// # Panics
    /// If `d_out` or `d_input` has the wrong length, or `ws` holds no forward of this network.
    pub fn backward(&self, ws: &mut Workspace, d_out: &[f32], param_grads: bool, mut d_input: Option<&mut [f32]>) {
        let batch = ws.batch;
        assert!(ws.fits(self), "backward: the workspace was not made by this network's forward");
        let out_len = batch * self.output_dim();
        assert_eq!(d_out.len(), self.members * out_len, "backward: d_out has the wrong length");
        let d_in = self.input_dim();
        if let Some(di) = d_input.as_deref_mut() {
            assert_eq!(di.len(), batch * d_in, "backward: d_input has the wrong length");
            di.fill(0.0);
        }
        if param_grads {
            ws.grads.resize(self.params.len(), 0.0);
        }
        let layers = self.spans.len();
        let isa = self.isa;
        let Workspace { input, hidden, delta, panel, grads, .. } = ws;
        let (delta_a, delta_b) = delta.split_at_mut(1);
        let (delta_a, delta_b) = (&mut delta_a[0], &mut delta_b[0]);
        for m in 0..self.members {
            let base = m * self.member_len;
            let d_out_m = &d_out[m * out_len..(m + 1) * out_len];
            if d_out_m.iter().all(|&v| v == 0.0) {
                if param_grads {
                    grads[base..base + self.member_len].fill(0.0);
                }
                continue;
            }
            // `dz` is the gradient at the current layer's pre-activation: the caller's d_out at the
            // top, then the workspace buffer the layer above wrote (the two alternate).
            let mut cur: Option<usize> = None;
            for l in (0..layers).rev() {
                let s = self.spans[l];
                let x: &[f32] = if l == 0 {
                    &input[..batch * s.fan_in]
                } else {
                    &hidden[m * (layers - 1) + l - 1][..batch * s.fan_in]
                };
                let (dz, next, next_index): (&[f32], &mut Vec<f32>, usize) = match cur {
                    None => (d_out_m, &mut *delta_a, 0),
                    Some(0) => (&delta_a[..batch * s.fan_out], &mut *delta_b, 1),
                    Some(_) => (&delta_b[..batch * s.fan_out], &mut *delta_a, 0),
                };
                if param_grads {
                    let (gw, gb) = grads[base + s.weight..base + s.bias + s.fan_out].split_at_mut(s.fan_in * s.fan_out);
                    gemm(
                        isa,
                        (s.fan_in, s.fan_out, batch),
                        x,
                        Layout::ColMajor,
                        s.fan_in,
                        dz,
                        s.fan_out,
                        gw,
                        s.fan_out,
                        Init::Zero,
                    );
                    vector::column_sums(isa, dz, s.fan_out, gb);
                }
                if l == 0 && d_input.is_none() {
                    continue;
                }
                let w = &self.params[base + s.weight..base + s.bias];
                let shape = (batch, s.fan_in, s.fan_out);
                if l == 0 {
                    let di = d_input.as_deref_mut().expect("checked above");
                    gemm_abt(isa, shape, dz, s.fan_out, w, s.fan_out, di, s.fan_in, Init::Accumulate, panel);
                } else {
                    let dx = &mut next[..batch * s.fan_in];
                    gemm_abt(isa, shape, dz, s.fan_out, w, s.fan_out, dx, s.fan_in, Init::Zero, panel);
                    vector::activation_backward(isa, self.activation, x, dx);
                    cur = Some(next_index);
                }
            }
        }
    }

    /// The tensors of a checkpoint: `(name, shape, values)` with member `m`'s names prefixed by
    /// `prefixes[m]` (`""` for a lone [`crate::Mlp`]; `"nets.0.net."` for the first of rlox-deep's
    /// `Critics`).
    ///
    /// # Panics
    /// If there is not one prefix per member.
    pub fn tensors(&self, prefixes: &[&str]) -> Vec<(String, Vec<usize>, &[f32])> {
        assert_eq!(prefixes.len(), self.members, "one name prefix per member");
        let mut out = Vec::with_capacity(2 * self.members * self.spans.len());
        for (m, prefix) in prefixes.iter().enumerate() {
            for (l, s) in self.spans.iter().enumerate() {
                let (w, b) = self.layer(m, l);
                out.push((format!("{prefix}layers.{l}.weight"), vec![s.fan_in, s.fan_out], w));
                out.push((format!("{prefix}layers.{l}.bias"), vec![s.fan_out], b));
            }
        }
        out
    }

    /// The parameters (and `metadata`) as safetensors bytes, names as in [`FusedMlp::tensors`].
    pub fn to_safetensors_bytes(&self, prefixes: &[&str], metadata: &BTreeMap<String, String>) -> Result<Vec<u8>> {
        tensors_to_safetensors_bytes(&self.tensors(prefixes), metadata)
    }

    /// Write the parameters to `path` atomically (temp file, fsync, rename).
    pub fn save_safetensors(
        &self,
        path: impl AsRef<Path>,
        prefixes: &[&str],
        metadata: &BTreeMap<String, String>,
    ) -> Result<()> {
        atomic_write(path, &self.to_safetensors_bytes(prefixes, metadata)?)
    }

    /// Read parameters written by [`FusedMlp::save_safetensors`] or by
    /// [`crate::save_safetensors`] for burn MLPs of this shape. The file must hold exactly these
    /// tensors; otherwise the error names the file and the tensor, and `self` is unchanged.
    pub fn load_safetensors(&mut self, path: impl AsRef<Path>, prefixes: &[&str]) -> Result<()> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        self.load_safetensors_bytes(&bytes, &path.display().to_string(), prefixes)
    }

    /// [`FusedMlp::load_safetensors`] from bytes; `origin` names the source in errors.
    pub fn load_safetensors_bytes(&mut self, bytes: &[u8], origin: &str, prefixes: &[&str]) -> Result<()> {
        let expected: Vec<(String, Vec<usize>)> =
            self.tensors(prefixes).into_iter().map(|(name, shape, _)| (name, shape)).collect();
        let values = read_tensors(bytes, origin, &expected)?;
        let mut at = 0;
        for (m, _) in prefixes.iter().enumerate() {
            for l in 0..self.spans.len() {
                let (w, b) = self.layer_mut(m, l);
                w.copy_from_slice(&values[at]);
                b.copy_from_slice(&values[at + 1]);
                at += 2;
            }
        }
        Ok(())
    }
}

/// The buffers of a forward and backward pass (see the module docs). Made by
/// [`FusedMlp::workspace`]; it grows when a larger batch or another network comes, and never shrinks.
#[derive(Debug, Clone, Default)]
pub struct Workspace {
    /// Rows of the last forward.
    batch: usize,
    /// Rows the buffers hold.
    capacity: usize,
    /// The widths the buffers were sized for.
    widths: Vec<usize>,
    members: usize,
    /// The last forward's input `[batch, input]`.
    input: Vec<f32>,
    /// Hidden activations, `hidden[m * (layers - 1) + l]` = member m's output of layer l.
    hidden: Vec<Vec<f32>>,
    /// The outputs `[members, batch, output]`.
    output: Vec<f32>,
    /// Two gradient buffers `[batch, max width]` used alternately by the backward.
    delta: [Vec<f32>; 2],
    /// The transposed 32-column panel of a weight (see [`super::gemm::gemm_abt`]).
    panel: Vec<f32>,
    /// The parameter gradient of the last backward.
    grads: Vec<f32>,
}

impl Workspace {
    /// The parameter gradient written by the last [`FusedMlp::backward`] (the parameters' layout).
    pub fn grads(&self) -> &[f32] {
        &self.grads
    }

    /// The parameter gradient, writable (to clip or scale it).
    pub fn grads_mut(&mut self) -> &mut [f32] {
        &mut self.grads
    }

    /// The outputs of the last forward, `[members, batch, output]`.
    pub fn output(&self) -> &[f32] {
        let out = self.widths.last().copied().unwrap_or(0);
        &self.output[..self.members * self.batch * out]
    }

    /// Rows of the last forward.
    pub fn batch(&self) -> usize {
        self.batch
    }

    fn fits(&self, net: &FusedMlp) -> bool {
        self.widths == net.widths && self.members == net.members && self.capacity >= self.batch
    }

    /// Size the buffers for `batch` rows of `net` (allocates only when they are too small).
    fn reserve(&mut self, net: &FusedMlp, batch: usize) {
        if self.widths == net.widths && self.members == net.members && self.capacity >= batch {
            return;
        }
        let batch = batch.max(self.capacity).max(1);
        let layers = net.spans.len();
        let max_width = *net.widths.iter().max().expect("widths");
        self.capacity = batch;
        self.widths = net.widths.clone();
        self.members = net.members;
        self.input = vec![0.0; batch * net.input_dim()];
        self.hidden =
            (0..net.members).flat_map(|_| net.widths[1..layers].iter().map(|&w| vec![0.0; batch * w])).collect();
        self.output = vec![0.0; net.members * batch * net.output_dim()];
        self.delta = [vec![0.0; batch * max_width], vec![0.0; batch * max_width]];
        self.panel = vec![0.0; max_width * 32];
        self.grads = vec![0.0; net.params.len()];
    }

    /// The input and the output buffer of layer `l` of member `m`.
    fn layer_io(&mut self, m: usize, l: usize, layers: usize, out_len: usize) -> (&[f32], &mut [f32]) {
        let h = m * (layers - 1);
        let output_start = m * out_len;
        match (l == 0, l + 1 == layers) {
            (true, true) => (&self.input, &mut self.output[output_start..output_start + out_len]),
            (true, false) => (&self.input, &mut self.hidden[h]),
            (false, true) => (&self.hidden[h + l - 1], &mut self.output[output_start..output_start + out_len]),
            (false, false) => {
                let (before, after) = self.hidden.split_at_mut(h + l);
                (&before[h + l - 1], &mut after[0])
            }
        }
    }
}
