//! A module's parameters as a [safetensors](https://github.com/huggingface/safetensors) file.
//!
//! Tensors are named by their path in the module tree (`layers.0.weight`, `q_net.layers.1.bias`, ...)
//! and stored as little-endian f32. Extra string metadata (algorithm, step, config hash, ...) goes into
//! the safetensors header's `__metadata__`.
//!
//! Saving writes through [`rlox_core::checkpoint::atomic_write`] (temp file, fsync, rename): a crash
//! never leaves a half-written checkpoint where the last good one was. Loading validates the whole
//! file against the module *before* touching it, and every problem is an error that names the file
//! and the tensor: a truncated or corrupt file, a tensor the model has and the file lacks (or the
//! reverse), a shape mismatch (both shapes shown), a dtype other than f32.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData};
use rlox_core::checkpoint::atomic_write;
use rlox_core::{Error, Result};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The parameters of a module: `(name, shape, values)` in visiting order.
struct Collect {
    path: Vec<String>,
    out: Vec<(String, Vec<usize>, Vec<f32>)>,
    with_values: bool,
}

impl ModuleVisitor for Collect {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let name = self.path.join(".");
        let shape = param.lazy_shape().dims::<D>().to_vec();
        let values = if self.with_values {
            param.val().into_data().try_into_vec_as::<f32>().expect("f32 after conversion")
        } else {
            Vec::new()
        };
        self.out.push((name, shape, values));
    }
}

fn collect<M: Module>(module: &M, with_values: bool) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut c = Collect { path: Vec::new(), out: Vec::new(), with_values };
    module.visit(&mut c);
    c.out
}

/// Names and shapes of `module`'s parameters, in visiting order.
pub fn param_shapes<M: Module>(module: &M) -> Vec<(String, Vec<usize>)> {
    collect(module, false).into_iter().map(|(n, s, _)| (n, s)).collect()
}

/// Serialise `module`'s parameters (and `metadata`) to safetensors bytes.
pub fn to_safetensors_bytes<M: Module>(module: &M, metadata: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let params = collect(module, true);
    let tensors: Vec<(String, Vec<usize>, &[f32])> =
        params.iter().map(|(name, shape, values)| (name.clone(), shape.clone(), values.as_slice())).collect();
    tensors_to_safetensors_bytes(&tensors, metadata)
}

/// Serialise named f32 tensors `(name, shape, row-major values)` (and `metadata`) to safetensors
/// bytes: the layout [`to_safetensors_bytes`] writes for a module whose parameters have these names.
/// This is how modules that do not live in burn (the fused MLP) write the same files.
pub fn tensors_to_safetensors_bytes(
    tensors: &[(String, Vec<usize>, &[f32])],
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let mut seen = std::collections::HashSet::new();
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, shape, values)| {
            if !seen.insert(name.clone()) {
                return Err(Error::invalid("checkpoint", format!("two parameters are both named '{name}'")));
            }
            if shape.iter().product::<usize>() != values.len() {
                return Err(Error::invalid(
                    "checkpoint",
                    format!("tensor '{name}' has shape {shape:?} but {} values", values.len()),
                ));
            }
            Ok((name.clone(), shape.clone(), values.iter().flat_map(|v| v.to_le_bytes()).collect()))
        })
        .collect::<Result<_>>()?;
    let views = bytes
        .iter()
        .map(|(name, shape, data)| {
            TensorView::new(Dtype::F32, shape.clone(), data)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::invalid("checkpoint", format!("tensor '{name}': {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let meta: HashMap<String, String> = metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    safetensors::serialize(views, (!meta.is_empty()).then_some(meta))
        .map_err(|e| Error::invalid("checkpoint", format!("cannot serialise: {e}")))
}

/// Write `module`'s parameters to `path` atomically (temp file + fsync + rename).
pub fn save_safetensors<M: Module>(
    module: &M,
    path: impl AsRef<Path>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let bytes = to_safetensors_bytes(module, metadata)?;
    atomic_write(path, &bytes)
}

fn bad(origin: &str, why: impl Into<String>) -> Error {
    Error::invalid(format!("checkpoint {origin}"), why)
}

fn parse<'a>(bytes: &'a [u8], origin: &str) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(bytes).map_err(|e| {
        bad(origin, format!("not a readable safetensors file ({e}); it may be truncated or from an interrupted copy"))
    })
}

/// The `__metadata__` strings of a safetensors file.
pub fn read_safetensors_metadata(path: impl AsRef<Path>) -> Result<BTreeMap<String, String>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let origin = path.display().to_string();
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(&origin, format!("unreadable header: {e}")))?;
    parse(&bytes, &origin)?;
    Ok(meta.metadata().clone().unwrap_or_default().into_iter().collect())
}

/// Read `path` (written by [`save_safetensors`]) into `module`'s parameters.
///
/// The file must hold exactly the module's parameters with the same shapes; otherwise the error
/// names the tensor and both shapes and the module is not modified (it is consumed either way:
/// keep a clone if you need it after a failed load).
pub fn load_safetensors<M: Module>(module: M, path: impl AsRef<Path>) -> Result<M> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    load_safetensors_bytes(module, &bytes, &path.display().to_string())
}

/// [`load_safetensors`] from bytes; `origin` names the source in errors.
pub fn load_safetensors_bytes<M: Module>(module: M, bytes: &[u8], origin: &str) -> Result<M> {
    let expected = param_shapes(&module);
    let values = read_tensors(bytes, origin, &expected)?;
    let values: HashMap<String, Vec<f32>> = expected.into_iter().map(|(n, _)| n).zip(values).collect();
    let mut apply = Apply { path: Vec::new(), values };
    Ok(module.map(&mut apply))
}

/// Read exactly the tensors `expected` (`(name, shape)`) from safetensors `bytes`, in that order.
///
/// The checks of [`load_safetensors`]: the file must hold these names and no others, with these
/// shapes, as f32; otherwise the error names `origin`, the tensor and both shapes.
pub fn read_tensors(bytes: &[u8], origin: &str, expected: &[(String, Vec<usize>)]) -> Result<Vec<Vec<f32>>> {
    let file = parse(bytes, origin)?;
    // Names first: a checkpoint of another architecture is best described by what is missing or extra.
    let known: std::collections::HashSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    let mut extra: Vec<&str> = file.names().into_iter().filter(|n| !known.contains(n)).collect();
    extra.sort();
    if let Some((name, shape)) = expected.iter().find(|(n, _)| file.tensor(n).is_err()) {
        let mut names = file.names();
        names.sort();
        return Err(bad(
            origin,
            format!("the model has tensor '{name}' (shape {shape:?}) but the file does not; the file holds {names:?}. Is it a checkpoint of another model?"),
        ));
    }
    if !extra.is_empty() {
        return Err(bad(
            origin,
            format!("the file has tensors the model lacks: {extra:?}; it is a checkpoint of another model"),
        ));
    }
    let mut values = Vec::with_capacity(expected.len());
    for (name, shape) in expected {
        let view = file.tensor(name).map_err(|e| bad(origin, format!("tensor '{name}': {e}")))?;
        if view.shape() != shape.as_slice() {
            return Err(bad(
                origin,
                format!(
                    "tensor '{name}' has shape {:?} in the file but the model expects {shape:?}; the checkpoint is from a model of another size",
                    view.shape()
                ),
            ));
        }
        if view.dtype() != Dtype::F32 {
            return Err(bad(
                origin,
                format!("tensor '{name}' is {:?} in the file; rlox checkpoints hold F32", view.dtype()),
            ));
        }
        values.push(view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect());
    }
    Ok(values)
}

struct Apply {
    path: Vec<String>,
    values: HashMap<String, Vec<f32>>,
}

impl ModuleMapper for Apply {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let name = self.path.join(".");
        // Validated above: every parameter has a value of the right shape.
        let Some(values) = self.values.remove(&name) else { return param };
        let shape = param.lazy_shape();
        let device = param.lazy_device();
        let tensor = Tensor::<D>::from_data(TensorData::new(values, shape), &device);
        let id = param.id;
        param.transform_for_load(tensor, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{train_device, DeviceKind};
    use crate::mlp::MlpConfig;

    fn values(m: &crate::Mlp) -> Vec<Vec<f32>> {
        collect(m, true).into_iter().map(|(_, _, v)| v).collect()
    }

    #[test]
    fn round_trip_restores_parameters_and_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.safetensors");
        let device = train_device(DeviceKind::Cpu, 1).unwrap();
        let a = MlpConfig::new(4, &[8, 8], 2).init(&device);
        let meta = BTreeMap::from([("step".to_string(), "42".to_string())]);
        save_safetensors(&a, &path, &meta).unwrap();
        device.seed(2);
        let b = MlpConfig::new(4, &[8, 8], 2).init(&device);
        assert_ne!(values(&a), values(&b));
        let b = load_safetensors(b, &path).unwrap();
        assert_eq!(values(&a), values(&b));
        assert_eq!(read_safetensors_metadata(&path).unwrap()["step"], "42");
        let names: Vec<String> = param_shapes(&b).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names[..2], ["layers.0.weight".to_string(), "layers.0.bias".to_string()]);
        // The loaded model still trains: gradients reach the loaded parameters.
        let loss = b.forward(Tensor::<2>::ones([2, 4], &device)).square().mean();
        crate::testing::assert_all_params_get_grad(&b, &loss);
        // Only the final file remains (no temp files).
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn truncated_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.safetensors");
        let device = train_device(DeviceKind::Cpu, 1).unwrap();
        let a = MlpConfig::new(4, &[8], 2).init(&device);
        save_safetensors(&a, &path, &BTreeMap::new()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        for cut in [0, 5, 20, bytes.len() / 2, bytes.len() - 1] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let err = load_safetensors(a.clone(), &path).unwrap_err().to_string();
            assert!(err.contains("q.safetensors") && err.contains("truncated"), "cut {cut}: {err}");
        }
    }

    #[test]
    fn wrong_shape_names_tensor_and_both_shapes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.safetensors");
        let device = train_device(DeviceKind::Cpu, 1).unwrap();
        save_safetensors(&MlpConfig::new(4, &[64], 2).init(&device), &path, &BTreeMap::new()).unwrap();
        let other = MlpConfig::new(4, &[256], 2).init(&device);
        let err = load_safetensors(other, &path).unwrap_err().to_string();
        assert!(err.contains("layers.0.weight") && err.contains("[4, 64]") && err.contains("[4, 256]"), "{err}");
    }

    #[test]
    fn other_architecture_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.safetensors");
        let device = train_device(DeviceKind::Cpu, 1).unwrap();
        save_safetensors(&MlpConfig::new(4, &[8, 8], 2).init(&device), &path, &BTreeMap::new()).unwrap();
        // Fewer layers: the file has tensors the model lacks.
        let err = load_safetensors(MlpConfig::new(4, &[8], 2).init(&device), &path).unwrap_err().to_string();
        assert!(err.contains("layers.2.weight"), "{err}");
        // More layers: the model has a tensor the file lacks.
        let err = load_safetensors(MlpConfig::new(4, &[8, 8, 8], 2).init(&device), &path).unwrap_err().to_string();
        assert!(err.contains("layers.3.weight") && err.contains("does not"), "{err}");
        // Not a file at all.
        let err = load_safetensors(MlpConfig::new(4, &[8], 2).init(&device), dir.path().join("nope")).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
