//! Training state that is not a module's weights, as safetensors files in checkpoints: named `f32`
//! arrays ([`Arrays`]), and an [`Optimizer`]'s exact state (its moments as arrays, its step counts as
//! a small serde-typed [`OptimizerMeta`] for the trainer's JSON state).
//!
//! Every trainer that resumes exactly (RL and post-training) saves its optimizers this way; a file that
//! is missing, truncated or does not fit the module is an [`Error::Checkpoint`] naming it.

use crate::fused::{FusedMlp, FusedOptimizer, FusedOptimizerState};
use crate::optim::{Optimizer, OptimizerState, ParamState};
use burn::module::Module;
use rlox_core::{Error, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Named `f32` arrays: name -> (shape, row-major values).
pub type Arrays = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// The step counts of an optimizer (its buffers are arrays, see [`export_optimizer`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerMeta {
    /// [`Optimizer::steps`].
    pub steps: u64,
    /// Steps per parameter, in the module's visiting order (0: never stepped).
    pub param_steps: Vec<i32>,
    /// State buffers per parameter.
    pub buffers: usize,
}

/// `arrays` as safetensors bytes.
pub fn arrays_to_safetensors_bytes(arrays: &Arrays) -> Result<Vec<u8>> {
    let bytes: Vec<(&String, &Vec<usize>, Vec<u8>)> = arrays
        .iter()
        .map(|(name, (shape, values))| (name, shape, values.iter().flat_map(|v| v.to_le_bytes()).collect()))
        .collect();
    let views = bytes
        .iter()
        .map(|(name, shape, data)| {
            TensorView::new(Dtype::F32, shape.to_vec(), data)
                .map(|v| (name.to_string(), v))
                .map_err(|e| Error::invalid("checkpoint arrays", format!("{name}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, None)
        .map_err(|e| Error::invalid("checkpoint arrays", format!("cannot serialise: {e}")))
}

/// The arrays of a safetensors file's bytes; `origin` (the file) is named in errors.
pub fn arrays_from_safetensors_bytes(bytes: &[u8], origin: &Path) -> Result<Arrays> {
    let file = SafeTensors::deserialize(bytes)
        .map_err(|e| Error::checkpoint(origin, format!("not a readable safetensors file (truncated?): {e}")))?;
    let mut arrays = Arrays::new();
    for (name, view) in file.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(Error::checkpoint(origin, format!("{name} is {:?}, expected F32", view.dtype())));
        }
        let values = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        arrays.insert(name, (view.shape().to_vec(), values));
    }
    Ok(arrays)
}

/// Put `opt`'s state for `module` into `arrays` as `<name>.<param>.<buffer>`; returns its step counts.
/// An optimizer whose state cannot be exported (burn's, on a non-CPU device) is an error: such a run
/// cannot resume exactly.
pub fn export_optimizer<M: Module>(
    opt: &Optimizer,
    module: &M,
    name: &str,
    arrays: &mut Arrays,
) -> Result<OptimizerMeta> {
    let state = opt.export_state(module).ok_or_else(|| {
        Error::invalid(
            "checkpoint",
            format!("the `{name}` optimizer runs on a device whose optimizer state rlox cannot export"),
        )
    })?;
    let buffers = state.params.iter().map(|p| p.buffers.len()).max().unwrap_or(0);
    let mut param_steps = Vec::with_capacity(state.params.len());
    for (k, p) in state.params.into_iter().enumerate() {
        param_steps.push(p.steps);
        if p.steps > 0 {
            for (j, b) in p.buffers.into_iter().enumerate() {
                arrays.insert(format!("{name}.{k}.{j}"), (vec![b.len()], b));
            }
        }
    }
    Ok(OptimizerMeta { steps: state.steps, param_steps, buffers })
}

/// Restore what [`export_optimizer`] wrote; `origin` (the arrays' file) is named in errors.
pub fn import_optimizer<M: Module>(
    opt: &mut Optimizer,
    module: &M,
    name: &str,
    arrays: &Arrays,
    meta: &OptimizerMeta,
    origin: &Path,
) -> Result<()> {
    let mut params = Vec::with_capacity(meta.param_steps.len());
    for (k, &steps) in meta.param_steps.iter().enumerate() {
        if steps == 0 {
            params.push(ParamState::default());
            continue;
        }
        let buffers = (0..meta.buffers)
            .map(|j| {
                arrays
                    .get(&format!("{name}.{k}.{j}"))
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| Error::checkpoint(origin, format!("optimizer array {name}.{k}.{j} is missing")))
            })
            .collect::<Result<Vec<_>>>()?;
        params.push(ParamState { buffers, steps });
    }
    opt.import_state(module, OptimizerState { params, steps: meta.steps })
        .map_err(|e| Error::checkpoint(origin, e.to_string()))
}

/// The sizes of `net`'s parameters in the order a [`Module`] visits the equivalent [`crate::Mlp`]s
/// (member by member, layer by layer, weight then bias): the order of the flat buffers.
pub fn fused_param_sizes(net: &FusedMlp) -> Vec<usize> {
    let w = net.widths();
    (0..net.members()).flat_map(|_| w.windows(2).flat_map(|p| [p[0] * p[1], p[1]])).collect()
}

/// [`export_optimizer`] for a [`FusedOptimizer`] over `net`'s flat parameters: the same arrays
/// (`<name>.<k>.<j>`, parameter `k` in the module's visiting order, buffer `j`) and step counts as the
/// host optimizer of the same network writes, so a checkpoint does not depend on which path trained it.
pub fn export_fused_optimizer(opt: &FusedOptimizer, net: &FusedMlp, name: &str, arrays: &mut Arrays) -> OptimizerMeta {
    export_flat_optimizer(opt, &fused_param_sizes(net), name, arrays)
}

/// [`export_fused_optimizer`] for an optimizer over flat parameters made of tensors of `sizes`
/// values, in the module's visiting order (an actor-critic's networks and log-std, stepped with
/// [`FusedOptimizer::step_parts`]).
pub fn export_flat_optimizer(opt: &FusedOptimizer, sizes: &[usize], name: &str, arrays: &mut Arrays) -> OptimizerMeta {
    let state = opt.state();
    let steps = opt.steps().min(i32::MAX as u64) as i32;
    if steps > 0 {
        let mut at = 0;
        for (k, &n) in sizes.iter().enumerate() {
            for (j, b) in state.buffers.iter().enumerate() {
                arrays.insert(format!("{name}.{k}.{j}"), (vec![n], b[at..at + n].to_vec()));
            }
            at += n;
        }
    }
    OptimizerMeta { steps: opt.steps(), param_steps: vec![steps; sizes.len()], buffers: state.buffers.len() }
}

/// Restore what [`export_fused_optimizer`] (or [`export_optimizer`] of the equivalent module) wrote;
/// `origin` is named in errors. The parameters must have been stepped together (as one flat buffer is).
pub fn import_fused_optimizer(
    opt: &mut FusedOptimizer,
    net: &FusedMlp,
    name: &str,
    arrays: &Arrays,
    meta: &OptimizerMeta,
    origin: &Path,
) -> Result<()> {
    import_flat_optimizer(opt, &fused_param_sizes(net), name, arrays, meta, origin)
}

/// Restore what [`export_flat_optimizer`] (or [`export_optimizer`] of the equivalent module) wrote
/// for parameters of `sizes` values; `origin` is named in errors.
pub fn import_flat_optimizer(
    opt: &mut FusedOptimizer,
    sizes: &[usize],
    name: &str,
    arrays: &Arrays,
    meta: &OptimizerMeta,
    origin: &Path,
) -> Result<()> {
    let num_params: usize = sizes.iter().sum();
    if meta.param_steps.len() != sizes.len() {
        return Err(Error::checkpoint(
            origin,
            format!(
                "optimizer `{name}` has state for {} parameters, the network {}",
                meta.param_steps.len(),
                sizes.len()
            ),
        ));
    }
    let steps = meta.param_steps.first().copied().unwrap_or(0);
    if meta.param_steps.iter().any(|&s| s != steps) {
        return Err(Error::checkpoint(origin, format!("optimizer `{name}`: parameters with different step counts")));
    }
    let mut buffers = vec![Vec::with_capacity(num_params); meta.buffers];
    if steps > 0 {
        for (k, &n) in sizes.iter().enumerate() {
            for (j, b) in buffers.iter_mut().enumerate() {
                let key = format!("{name}.{k}.{j}");
                match arrays.get(&key) {
                    Some((_, v)) if v.len() == n => b.extend_from_slice(v),
                    Some((_, v)) => {
                        return Err(Error::checkpoint(origin, format!("{key} has {} values, expected {n}", v.len())))
                    }
                    None => return Err(Error::checkpoint(origin, format!("optimizer array {key} is missing"))),
                }
            }
        }
    } else {
        buffers.iter_mut().for_each(|b| b.resize(num_params, 0.0));
    }
    opt.set_state(FusedOptimizerState { steps: meta.steps, buffers })
        .map_err(|e| Error::checkpoint(origin, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Mlp, MlpConfig, OptimizerConfig};

    #[test]
    fn optimizer_state_round_trips_and_bad_files_are_named() {
        let device = crate::train_device(crate::DeviceKind::Cpu, 3).unwrap();
        let mlp: Mlp = MlpConfig::new(3, &[4], 2).init(&device);
        let mut opt = OptimizerConfig::adamw().build();
        let x = crate::Tensor::<2>::ones([2, 3], &device);
        let loss = mlp.forward(x).sum();
        let grads = crate::backward(&loss, &mlp);
        let mlp = opt.step(1e-2, mlp, grads);
        let mut arrays = Arrays::new();
        let meta = export_optimizer(&opt, &mlp, "opt", &mut arrays).unwrap();
        let bytes = arrays_to_safetensors_bytes(&arrays).unwrap();
        let origin = Path::new("ckpt/optimizer.safetensors");
        let back = arrays_from_safetensors_bytes(&bytes, origin).unwrap();
        assert_eq!(back, arrays);
        let mut fresh = OptimizerConfig::adamw().build();
        import_optimizer(&mut fresh, &mlp, "opt", &back, &meta, origin).unwrap();
        assert_eq!(fresh.export_state(&mlp), opt.export_state(&mlp));
        let e = arrays_from_safetensors_bytes(&bytes[..bytes.len() / 2], origin).unwrap_err().to_string();
        assert!(e.contains("optimizer.safetensors") && e.contains("truncated"), "{e}");
        let e = import_optimizer(&mut fresh, &mlp, "other", &back, &meta, origin).unwrap_err().to_string();
        assert!(e.contains("optimizer.safetensors") && e.contains("other.0.0"), "{e}");
    }
}
