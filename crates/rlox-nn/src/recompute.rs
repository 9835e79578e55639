//! Activation (gradient) checkpointing: run a block of the network without keeping its
//! intermediate activations, and recompute them when the backward pass reaches the block.
//!
//! [`checkpoint`]`(module, x, f)` returns `f(module, x)`. With gradients on, burn's autodiff would
//! keep every intermediate of `f` (a decoder layer's normalised inputs, projections, attention
//! output, MLP activations, ...) until the backward pass; here the graph gets one node instead,
//! holding only `x` (a reference to a tensor that exists anyway) and the closure. When the backward
//! pass reaches that node with `dy`, the node
//!
//! 1. rebuilds the block on a fresh, private graph: `x` and the module's parameters become new
//!    leaves that require gradients,
//! 2. runs `f` again and back-propagates `sum(f(module, x) * dy)` through that private graph
//!    (a backward inside the outer backward: burn allows it, the private graph has its own lock),
//! 3. hands `dx` to the outer graph and adds each parameter's gradient to the outer gradients
//!    under the parameter's node id, exactly where burn's own ops would have put it.
//!
//! The cost is one more forward of the block; the memory of a transformer's training step drops
//! from "every intermediate of every layer" to "the layer inputs plus one layer's intermediates".
//! The same mechanism computes an LM head and its cross-entropy in chunks without ever holding the
//! `[tokens, vocab]` logits (see `rlox_lm::CausalLm::token_logprobs`).
//!
//! `f` must be deterministic (the recomputation must give the same values) and must not use the
//! outer graph: tensors it captures are turned into constants ([`Tensor::inner`]) by the caller.
//!
//! Scope: burn's CPU backend (Flex) with its default autodiff, the configuration rlox trains with.
//! On any other device, without autodiff, or when neither `x` nor any parameter is tracked,
//! [`checkpoint`] just returns `f(module, x)` (same values, ordinary memory use).

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::Tensor;
use std::sync::Arc;

/// `f(module, x)`, with `f`'s intermediates recomputed in the backward pass instead of stored
/// (see the module docs).
pub fn checkpoint<M, F, const D: usize, const E: usize>(module: &M, x: Tensor<D>, f: F) -> Tensor<E>
where
    M: Module + Send + Sync + 'static,
    F: Fn(&M, Tensor<D>) -> Tensor<E> + Send + Sync + 'static,
{
    #[cfg(feature = "flex")]
    {
        imp::checkpoint(module, x, Arc::new(f))
    }
    #[cfg(not(feature = "flex"))]
    {
        f(module, x)
    }
}

/// The module with every float parameter replaced by its value without autodiff: the same
/// numbers, no graph (what the block runs on in the forward pass and is rebuilt from).
pub fn without_autodiff<M: Module>(module: M) -> M {
    struct Inner;
    impl ModuleMapper for Inner {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let id = param.id;
            Param::initialized(id, param.val().inner())
        }
    }
    module.map(&mut Inner)
}

#[cfg(feature = "flex")]
mod imp {
    use super::without_autodiff;
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, NodeGuard, Ops, OpsKind};
    use burn::backend::autodiff::{Autodiff, NodeId};
    use burn::backend::flex::FlexTensor;
    use burn::backend::Flex;
    use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
    use burn::tensor::Tensor;
    use std::sync::Arc;

    type Ad = Autodiff<Flex, NoCheckpointing>;

    /// Gradients of the recomputed block: for `x` and for each parameter (visiting order).
    type RecomputeGrads = (Option<FlexTensor>, Vec<Option<FlexTensor>>);

    /// Re-runs the block on a private graph for an incoming gradient `dy`.
    type RecomputeFn = Arc<dyn Fn(FlexTensor) -> RecomputeGrads + Send + Sync>;

    #[derive(Clone)]
    struct State {
        recompute: RecomputeFn,
        /// The outer graph's node of each parameter that requires a gradient (visiting order).
        param_nodes: Vec<Option<NodeId>>,
    }

    impl std::fmt::Debug for State {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("CheckpointState").field("params", &self.param_nodes.len()).finish()
        }
    }

    #[derive(Debug)]
    struct CheckpointStep;

    impl<const N: usize> Backward<Flex, N> for CheckpointStep {
        type State = State;

        fn backward(self, ops: Ops<State, N>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
            let dy = grads.consume::<Flex>(&ops.node);
            let (dx, dparams) = (ops.state.recompute)(dy);
            if let (Some(node), Some(dx)) = (&ops.parents[0], dx) {
                grads.register::<Flex>(node.id, dx);
            }
            for (id, grad) in ops.state.param_nodes.iter().zip(dparams) {
                if let (Some(id), Some(grad)) = (id, grad) {
                    grads.register::<Flex>(*id, grad);
                }
            }
        }
    }

    /// The module with fresh leaf parameters (new graph nodes that require gradients).
    fn fresh_leaves<M: Module>(module: M) -> M {
        struct Fresh;
        impl ModuleMapper for Fresh {
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
                let id = param.id;
                Param::initialized(id, param.val().autodiff().require_grad())
            }
        }
        module.map(&mut Fresh)
    }

    fn grads_of<M: Module>(module: &M, grads: &burn::tensor::Gradients) -> Vec<Option<FlexTensor>> {
        struct Grads<'a>(&'a burn::tensor::Gradients, Vec<Option<FlexTensor>>);
        impl ModuleVisitor for Grads<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let g = param.val().grad(self.0).map(|g| g.try_into_primitive::<Flex>().expect("a Flex gradient"));
                self.1.push(g);
            }
        }
        let mut v = Grads(grads, Vec::new());
        module.visit(&mut v);
        v.1
    }

    /// The outer graph's node of each parameter (visiting order; `None` when it does not require a
    /// gradient) and a guard on the first one that does. `None` when a parameter is not an autodiff
    /// Flex tensor. The parameters' own tensors are read: a reshape or any other op would create a
    /// new node, and a gradient registered there would never reach the parameter.
    fn param_nodes<M: Module>(module: &M) -> Option<(Vec<Option<NodeId>>, Option<NodeGuard>)> {
        struct Nodes {
            ids: Vec<Option<NodeId>>,
            anchor: Option<NodeGuard>,
            ok: bool,
        }
        impl ModuleVisitor for Nodes {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let t = param.val();
                let tracked = t.is_require_grad();
                match t.try_into_primitive::<Ad>() {
                    Ok(ad) => {
                        if tracked && self.anchor.is_none() {
                            self.anchor = Some(ad.node());
                        }
                        self.ids.push(tracked.then(|| ad.id()));
                    }
                    Err(_) => self.ok = false,
                }
            }
        }
        let mut v = Nodes { ids: Vec::new(), anchor: None, ok: true };
        module.visit(&mut v);
        v.ok.then_some((v.ids, v.anchor))
    }

    pub(super) fn checkpoint<M, F, const D: usize, const E: usize>(module: &M, x: Tensor<D>, f: Arc<F>) -> Tensor<E>
    where
        M: Module + Send + Sync + 'static,
        F: Fn(&M, Tensor<D>) -> Tensor<E> + Send + Sync + 'static,
    {
        // Only an autodiff Flex input with autodiff Flex parameters takes the checkpointed path.
        let Ok(x_ad) = x.clone().try_into_primitive::<Ad>() else {
            return f(module, x);
        };
        let Some((param_nodes, anchor)) = param_nodes(module) else {
            return f(module, x);
        };

        // The forward pass: the block on constants, no graph, nothing kept.
        let inner = without_autodiff(module.clone());
        let x_inner: FlexTensor = x_ad.primitive().clone();
        let y: Tensor<E> = f(&inner, Tensor::<D>::from_primitive::<Flex>(x_inner.clone()));
        let y = y.try_into_primitive::<Flex>().expect("a block on Flex tensors gives a Flex tensor");

        let recompute: RecomputeFn = {
            let f = f.clone();
            Arc::new(move |dy: FlexTensor| {
                let x = Tensor::<D>::from_primitive::<Flex>(x_inner.clone()).autodiff().require_grad();
                let m = fresh_leaves(inner.clone());
                let y = f(&m, x.clone());
                let dy = Tensor::<E>::from_primitive::<Flex>(dy);
                let grads = (y * dy).sum().backward();
                let dx = x.grad(&grads).map(|g| g.try_into_primitive::<Flex>().expect("a Flex gradient"));
                (dx, grads_of(&m, &grads))
            })
        };
        let state = State { recompute, param_nodes };
        let out = match anchor {
            Some(anchor) => {
                match CheckpointStep.prepare::<NoCheckpointing>([x_ad.node(), anchor]).compute_bound().stateful() {
                    OpsKind::Tracked(prep) => prep.finish(state, y),
                    OpsKind::UnTracked(prep) => prep.finish(y),
                }
            }
            None => match CheckpointStep.prepare::<NoCheckpointing>([x_ad.node()]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish(state, y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            },
        };
        Tensor::<E>::from_primitive::<Ad>(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{backward, train_device, DeviceKind};
    use burn::tensor::activation::silu;
    use burn::tensor::{Distribution, TensorData};

    #[derive(Module, Debug)]
    struct Block {
        w1: Param<Tensor<2>>,
        w2: Param<Tensor<2>>,
        scale: Param<Tensor<1>>,
    }

    fn block_forward(b: &Block, x: Tensor<2>) -> Tensor<2> {
        let h = silu(x.clone().matmul(b.w1.val())) * b.scale.val().unsqueeze::<2>();
        x + h.matmul(b.w2.val())
    }

    #[derive(Module, Debug)]
    struct Net {
        blocks: Vec<Block>,
        head: Param<Tensor<2>>,
    }

    fn net(device: &burn::tensor::Device) -> Net {
        let p = |s: [usize; 2]| Param::from_tensor(Tensor::<2>::random(s, Distribution::Normal(0.0, 0.3), device));
        Net {
            blocks: (0..3)
                .map(|_| Block {
                    w1: p([8, 16]),
                    w2: p([16, 8]),
                    scale: Param::from_tensor(Tensor::<1>::random([16], Distribution::Uniform(0.5, 1.5), device)),
                })
                .collect(),
            head: p([8, 5]),
        }
    }

    fn loss(n: &Net, x: Tensor<2>, checkpointed: bool) -> Tensor<1> {
        let mut h = x;
        for b in &n.blocks {
            h = if checkpointed { checkpoint(b, h, block_forward) } else { block_forward(b, h) };
        }
        h.matmul(n.head.val()).tanh().square().sum()
    }

    fn flat(g: Option<Tensor<2>>) -> Vec<f32> {
        g.expect("a gradient").into_data().try_into_vec::<f32>().unwrap()
    }

    #[test]
    fn checkpointed_gradients_equal_plain_ones() {
        let device = train_device(DeviceKind::Cpu, 3).unwrap();
        let n = net(&device);
        let xs: Vec<f32> = (0..32).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.2).collect();
        let x = || Tensor::<2>::from_data(TensorData::new(xs.clone(), [4, 8]), &device).require_grad();
        let (x0, x1) = (x(), x());
        let plain = loss(&n, x0.clone(), false);
        let ckpt = loss(&n, x1.clone(), true);
        let (a, b): (f32, f32) = (plain.clone().into_scalar(), ckpt.clone().into_scalar());
        assert_eq!(a, b, "the forward values are the same computation");
        let ga = plain.backward();
        let gb = ckpt.backward();
        let close = |u: Vec<f32>, v: Vec<f32>, what: &str| {
            let worst = u.iter().zip(&v).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-6, "{what}: {worst}");
            assert!(u.iter().any(|&p| p != 0.0), "{what}: all zero");
        };
        close(flat(x0.grad(&ga)), flat(x1.grad(&gb)), "dx");
        for (i, blk) in n.blocks.iter().enumerate() {
            close(flat(blk.w1.val().grad(&ga)), flat(blk.w1.val().grad(&gb)), &format!("block {i} w1"));
            close(flat(blk.w2.val().grad(&ga)), flat(blk.w2.val().grad(&gb)), &format!("block {i} w2"));
            let s = |g: &burn::tensor::Gradients| {
                blk.scale.val().grad(g).unwrap().into_data().try_into_vec::<f32>().unwrap()
            };
            close(s(&ga), s(&gb), &format!("block {i} scale"));
        }
        close(flat(n.head.val().grad(&ga)), flat(n.head.val().grad(&gb)), "head");
    }

    #[test]
    fn optimizer_sees_the_same_gradients_and_plain_devices_just_run() {
        let device = train_device(DeviceKind::Cpu, 4).unwrap();
        let n = net(&device);
        let x = Tensor::<2>::random([3, 8], Distribution::Normal(0.0, 1.0), &device);
        // The input does not require grad: parameters alone make the node tracked.
        let ga = backward(&loss(&n, x.clone(), false), &n);
        let gb = backward(&loss(&n, x.clone(), true), &n);
        for b in &n.blocks {
            let a: Tensor<2> = ga.get(b.w1.id).unwrap();
            let c: Tensor<2> = gb.get(b.w1.id).unwrap();
            let d: f32 = (a - c).abs().max().into_scalar();
            assert!(d < 1e-6, "{d}");
        }
        // Without autodiff: the same values.
        let plain = crate::cpu_device().unwrap();
        let m = without_autodiff(n.clone());
        let xp = x.inner();
        assert_eq!(
            loss(&m, xp.clone(), true).into_scalar::<f32>(),
            loss(&m, xp.to_device(&plain), false).into_scalar::<f32>()
        );
    }
}
