//! Training state that is not a module's weights, as safetensors files in checkpoints: named `f32`
//! arrays ([`Arrays`]), and an [`Optimizer`]'s exact state (its moments as arrays, its step counts as
//! a small serde-typed [`OptimizerMeta`] for the trainer's JSON state).
//!
//! Every trainer that resumes exactly (RL and post-training) saves its optimizers this way; a file that
//! is missing, truncated or does not fit the module is an [`Error::Checkpoint`] naming it.

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
