//! The kernel as a burn operation with its own backward pass.
//!
//! burn 0.22 dispatches at run time: a `Tensor<D>` holds a `DispatchTensor` whose variant names the
//! backend (and wraps it in `Autodiff` when gradients are on), and a `Device` chooses the variant.
//! There is no backend type parameter through which to reach a custom op, so the route is burn's
//! *backend extension* API (cargo feature `extension` of burn, switched on by rlox-nn):
//!
//! 1. [`FlashAttentionBackend`] is a backend trait marked `#[backend_extension(Flex, Autodiff)]`;
//!    the macro generates its implementation for `Dispatch`, which unwraps the dispatch tensors,
//!    picks the backend from the first float input and re-wraps the output.
//! 2. `impl FlashAttentionBackend for Flex` runs the forward kernel on Flex's f32 storage.
//! 3. `impl FlashAttentionBackend for Autodiff<Flex, C>` registers a node in burn's autodiff graph
//!    (`Backward::prepare` → `OpsKind::Tracked`) whose state is the inputs, the output and the
//!    log-sum-exp, and whose `backward` runs [`super::backward`] and registers dQ, dK and dV for
//!    whichever of the three inputs are tracked. burn's own autodiff only supplies dO and sums the
//!    gradients it is handed; none of the N × N intermediates of an eager graph exist.
//!
//! Only Flex (burn's default CPU backend) is listed: calling the extension on another backend
//! would panic inside the generated dispatch, so [`flash_attention`] checks the device and dtype
//! first and returns an error the caller turns into a fall-back to eager attention.

use super::{AttnShape, FlashConfig, FlashParams, Masking};
use burn::tensor::{DType, Device, Tensor};
use rlox_core::{Error, Result};

#[cfg(feature = "flex")]
pub use imp::FlashAttentionBackend;

/// Whether [`flash_attention`] can run on `device` (Flex, with or without autodiff).
pub fn supports(device: &Device) -> bool {
    #[cfg(feature = "flex")]
    {
        // `inner` drops the autodiff wrapper (if any) and leaves the backend's own device.
        matches!(device.clone().inner().as_dispatch(), burn::backend::DispatchDevice::Flex(_))
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = device;
        false
    }
}

/// `softmax(scale · q kᵀ + mask) v` through the tiled kernel, differentiable in `q`, `k` and `v`.
///
/// `q`: `[batch, heads, N, d]`; `k`, `v`: `[batch, kv_heads, S, d]`, f32, on a Flex device (with or
/// without autodiff). Returns an error, before doing anything, when the device or dtype is not
/// supported or the shapes and mask do not fit; callers fall back to eager attention on the former.
pub fn flash_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: &Masking,
    scale: f32,
    config: FlashConfig,
) -> Result<Tensor<4>> {
    let device = q.device();
    if !supports(&device) {
        return Err(Error::invalid(
            "attention device",
            format!("{device:?}: the flash kernel runs on Flex (CPU) only"),
        ));
    }
    for (name, t) in [("q", &q), ("k", &k), ("v", &v)] {
        if t.dtype() != DType::F32 {
            return Err(Error::invalid(
                "attention dtype",
                format!("{name} is {:?}; the flash kernel needs f32", t.dtype()),
            ));
        }
    }
    let [b, h, n, d] = q.dims();
    let [bk, kv, s, dk] = k.dims();
    if bk != b || dk != d || v.dims() != k.dims() {
        return Err(Error::invalid(
            "attention shapes",
            format!("q {:?}, k {:?}, v {:?} do not fit together", q.dims(), k.dims(), v.dims()),
        ));
    }
    let params = FlashParams {
        shape: AttnShape { batch: b, heads: h, kv_heads: kv, q_len: n, k_len: s, head_dim: d },
        mask: mask.clone(),
        scale,
        config,
    };
    params.validate()?;
    #[cfg(feature = "flex")]
    {
        use burn::backend::Dispatch;
        let out = <Dispatch as FlashAttentionBackend>::flash_attention(
            q.into_dispatch(),
            k.into_dispatch(),
            v.into_dispatch(),
            params,
        );
        Ok(Tensor::from_dispatch(out))
    }
    #[cfg(not(feature = "flex"))]
    unreachable!("supports() is false without the flex feature")
}

#[cfg(feature = "flex")]
mod imp {
    use super::super::{backward, forward, FlashParams};
    use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::autodiff::Autodiff;
    use burn::backend::flex::FlexTensor;
    use burn::backend::tensor::FloatTensor;
    use burn::backend::{backend_extension, Flex};
    use burn::tensor::TensorData;
    use std::sync::Arc;

    /// The flash-attention operation as a burn backend extension (see the module docs).
    #[backend_extension(Flex, Autodiff)]
    pub trait FlashAttentionBackend: burn::backend::Backend {
        /// `softmax(scale · q kᵀ + mask) v` with the sizes, mask and scale in `params`.
        fn flash_attention(
            q: FloatTensor<Self>,
            k: FloatTensor<Self>,
            v: FloatTensor<Self>,
            params: FlashParams,
        ) -> FloatTensor<Self>;
    }

    fn to_vec(t: FlexTensor) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().expect("flash attention: f32 input (checked before dispatch)")
    }

    fn from_vec(data: Vec<f32>, shape: [usize; 4]) -> FlexTensor {
        FlexTensor::from_data(TensorData::new(data, shape))
    }

    fn q_shape(p: &FlashParams) -> [usize; 4] {
        [p.shape.batch, p.shape.heads, p.shape.q_len, p.shape.head_dim]
    }

    fn kv_shape(p: &FlashParams) -> [usize; 4] {
        [p.shape.batch, p.shape.kv_heads, p.shape.k_len, p.shape.head_dim]
    }

    /// The forward kernel on Flex tensors: output and log-sum-exp.
    fn run_forward(q: FlexTensor, k: FlexTensor, v: FlexTensor, p: &FlashParams) -> (FlexTensor, Vec<f32>) {
        let (o, lse) = forward(p, &to_vec(q), &to_vec(k), &to_vec(v))
            .expect("flash attention: parameters validated before dispatch");
        (from_vec(o, q_shape(p)), lse)
    }

    impl FlashAttentionBackend for Flex {
        fn flash_attention(q: FlexTensor, k: FlexTensor, v: FlexTensor, params: FlashParams) -> FlexTensor {
            run_forward(q, k, v, &params).0
        }
    }

    /// What the backward node keeps: the inputs, the output, the log-sum-exp and the parameters.
    #[derive(Debug, Clone)]
    struct State {
        q: FlexTensor,
        k: FlexTensor,
        v: FlexTensor,
        o: FlexTensor,
        lse: Arc<Vec<f32>>,
        params: FlashParams,
    }

    /// The backward node.
    #[derive(Debug)]
    struct FlashBackward;

    impl Backward<Flex, 3> for FlashBackward {
        type State = State;

        fn backward(self, ops: Ops<State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
            let [node_q, node_k, node_v] = ops.parents;
            let d_o = grads.consume::<Flex>(&ops.node);
            let st = ops.state;
            let p = &st.params;
            let (dq, dk, dv) =
                backward(p, &to_vec(st.q), &to_vec(st.k), &to_vec(st.v), &to_vec(st.o), &st.lse, &to_vec(d_o))
                    .expect("flash attention: parameters validated before dispatch");
            if let Some(node) = node_q {
                grads.register::<Flex>(node.id, from_vec(dq, q_shape(p)));
            }
            if let Some(node) = node_k {
                grads.register::<Flex>(node.id, from_vec(dk, kv_shape(p)));
            }
            if let Some(node) = node_v {
                grads.register::<Flex>(node.id, from_vec(dv, kv_shape(p)));
            }
        }
    }

    impl<C: CheckpointStrategy> FlashAttentionBackend for Autodiff<Flex, C> {
        fn flash_attention(
            q: FloatTensor<Self>,
            k: FloatTensor<Self>,
            v: FloatTensor<Self>,
            params: FlashParams,
        ) -> FloatTensor<Self> {
            match FlashBackward.prepare::<C>([q.node(), k.node(), v.node()]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => {
                    let (qp, kp, vp) = (q.primitive().clone(), k.primitive().clone(), v.primitive().clone());
                    let (o, lse) = run_forward(qp.clone(), kp.clone(), vp.clone(), &params);
                    let state = State { q: qp, k: kp, v: vp, o: o.clone(), lse: Arc::new(lse), params };
                    prep.finish(state, o)
                }
                OpsKind::UnTracked(prep) => {
                    prep.finish(run_forward(q.into_primitive(), k.into_primitive(), v.into_primitive(), &params).0)
                }
            }
        }
    }
}
