//! Hugging Face checkpoints: `config.json` + `model.safetensors` (or shards listed in
//! `model.safetensors.index.json`), tensor names as `transformers` writes them.
//!
//! Loading checks every tensor before it touches the model: a tensor the model needs and the files
//! lack, a tensor the files hold and the model does not use, or a shape that differs from the one the
//! config implies is an error naming the tensor (and both shapes). F32, F16, BF16 and F64 tensors are
//! read (converted to f32). Saving writes f32 tensors in Hugging Face's layout (linear weights
//! `[out, in]`), `config.json`, and the tokenizer files when asked, so that `transformers` loads the
//! directory with `AutoModelForCausalLM.from_pretrained`.

use crate::config::LmConfig;
use crate::deepseek_v3::{DeepseekV3Config, DeepseekV3ForCausalLm};
use crate::init::Init;
use crate::model::CausalLm;
use rlox_core::checkpoint::atomic_write;
use rlox_core::{Error, Result};
use rlox_nn::burn::module::{ModuleMapper, ModuleVisitor, Param};
use rlox_nn::{Device, Module, Tensor, TensorData};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Whether a parameter is stored transposed relative to Hugging Face (every 2-D weight except the embedding).
fn is_linear(name: &str, rank: usize) -> bool {
    rank == 2 && !name.ends_with("embed_tokens.weight")
}

struct Names {
    path: Vec<String>,
    out: Vec<(String, Vec<usize>)>,
}

impl ModuleVisitor for Names {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.out.push((self.path.join("."), param.lazy_shape().dims::<D>().to_vec()));
    }
}

/// Hugging Face names and shapes (`[out, in]` for linear weights) of a model's parameters (any module whose
/// parameter paths are Hugging Face names: [`CausalLm`], the DeepSeek-V3 decoder, a vision-language model).
/// Reads shapes only, so it works on a lazy skeleton ([`crate::Init::Lazy`]) of any size.
pub fn hf_param_shapes<M: Module>(model: &M) -> Vec<(String, Vec<usize>)> {
    let mut v = Names { path: Vec::new(), out: Vec::new() };
    model.visit(&mut v);
    v.out
        .into_iter()
        .map(|(n, mut s)| {
            if is_linear(&n, s.len()) {
                s.reverse();
            }
            (n, s)
        })
        .collect()
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    let bits = if exp == 0 {
        if mant == 0 {
            sign
        } else {
            // Subnormal: normalise.
            let mut e = 127 - 15 + 1;
            let mut m = mant;
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((m & 0x3ff) << 13)
        }
    } else if exp == 0x1f {
        sign | 0x7f80_0000 | (mant << 13)
    } else {
        sign | ((exp + 127 - 15) << 23) | (mant << 13)
    };
    f32::from_bits(bits)
}

fn to_f32(view: &TensorView<'_>, name: &str, origin: &str) -> Result<Vec<f32>> {
    let data = view.data();
    Ok(match view.dtype() {
        Dtype::F32 => data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        Dtype::F64 => data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32).collect(),
        Dtype::BF16 => {
            data.chunks_exact(2).map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16)).collect()
        }
        Dtype::F16 => data.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect(),
        other => {
            return Err(Error::invalid(
                format!("checkpoint {origin}"),
                format!("tensor '{name}' has dtype {other:?}; rlox-lm reads F32, F16, BF16 and F64"),
            ))
        }
    })
}

fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = v[r * cols + c];
        }
    }
    out
}

/// The safetensors files of a model directory: `model.safetensors`, or the shards named by
/// `model.safetensors.index.json`.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::Config { path: index.clone(), message: format!("not valid JSON: {e}") })?;
        let map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| Error::Config { path: index.clone(), message: "no 'weight_map' object".into() })?;
        let mut files: Vec<String> = map.values().filter_map(|f| f.as_str().map(str::to_string)).collect();
        files.sort();
        files.dedup();
        return Ok(files.into_iter().map(|f| dir.join(f)).collect());
    }
    Err(Error::invalid(
        "model directory",
        format!("{}: neither model.safetensors nor model.safetensors.index.json is there", dir.display()),
    ))
}

/// The bytes of a model directory's safetensors files, each with its path (see [`weight_files`]).
pub fn read_weight_files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut blobs = Vec::new();
    for f in &weight_files(dir)? {
        blobs.push((f.display().to_string(), std::fs::read(f).map_err(|e| Error::io(f, e))?));
    }
    Ok(blobs)
}

/// Load a model directory (`config.json`, weights) onto `device`.
pub fn load_model(dir: impl AsRef<Path>, device: &Device) -> Result<CausalLm> {
    let dir = dir.as_ref();
    let config = LmConfig::from_file(dir.join("config.json"))?;
    load_weights(&config, &read_weight_files(dir)?, device)
}

/// Whether a tensor of a DeepSeek-V3 checkpoint may be left unused: rotary buffers, the tied output
/// projection, and the multi-token-prediction layers past `num_hidden_layers` that DeepSeek-V3's own
/// checkpoint carries (transformers skips them too).
pub fn deepseek_v3_ignored(config: &DeepseekV3Config, name: &str) -> bool {
    if config.tie_word_embeddings && name == "lm_head.weight" {
        return true;
    }
    name.strip_prefix("model.layers.")
        .and_then(|rest| rest.split('.').next())
        .and_then(|i| i.parse::<usize>().ok())
        .is_some_and(|i| i >= config.num_hidden_layers)
}

/// Build a DeepSeek-V3 model of `config` from safetensors blobs.
pub fn load_deepseek_v3_weights(
    config: &DeepseekV3Config,
    blobs: &[(String, Vec<u8>)],
    device: &Device,
) -> Result<DeepseekV3ForCausalLm> {
    let skeleton = DeepseekV3ForCausalLm::new(config, Init::Lazy, device);
    load_into(skeleton, blobs, &|name: &str| deepseek_v3_ignored(config, name))
}

/// Load a DeepSeek-V3 model directory (`config.json`, `model.safetensors` or shards, any of F32, BF16,
/// F16 and F64 tensors) onto `device`.
pub fn load_deepseek_v3(dir: impl AsRef<Path>, device: &Device) -> Result<DeepseekV3ForCausalLm> {
    let dir = dir.as_ref();
    let config = DeepseekV3Config::from_file(dir.join("config.json"))?;
    load_deepseek_v3_weights(&config, &read_weight_files(dir)?, device)
}

/// Save a DeepSeek-V3 model into `dir` (`config.json`, `model.safetensors`, and the tokenizer files of
/// `tokenizer_dir` when given), each file written atomically.
pub fn save_deepseek_v3(
    model: &DeepseekV3ForCausalLm,
    dir: impl AsRef<Path>,
    tokenizer_dir: Option<&Path>,
) -> Result<()> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    atomic_write(dir.join("model.safetensors"), &to_hf_safetensors(model)?)?;
    let config = serde_json::to_string_pretty(&model.config.to_hf_json()).expect("json");
    atomic_write(dir.join("config.json"), config.as_bytes())?;
    copy_tokenizer_files(tokenizer_dir, dir)
}

/// Copy the tokenizer files a model directory may hold (`tokenizer.json`, `tiktoken.model`, their configs)
/// from `src` (if any) to `dir`.
pub fn copy_tokenizer_files(src: Option<&Path>, dir: &Path) -> Result<()> {
    let Some(src) = src else { return Ok(()) };
    for f in [
        "tokenizer.json",
        "tiktoken.model",
        "tokenizer_config.json",
        "generation_config.json",
        "special_tokens_map.json",
        "preprocessor_config.json",
        "chat_template.jinja",
    ] {
        let p = src.join(f);
        if p.exists() {
            let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
            atomic_write(dir.join(f), &bytes)?;
        }
    }
    Ok(())
}

/// Build a model of `config` from safetensors blobs `(origin, bytes)`.
pub fn load_weights(config: &LmConfig, blobs: &[(String, Vec<u8>)], device: &Device) -> Result<CausalLm> {
    // Zero-initialised skeleton (cheap), filled below.
    let model = CausalLm::init(config, 0.0, device);
    let tied = config.tie_word_embeddings;
    load_into(model, blobs, &|name: &str| tied && name == "lm_head.weight")
}

/// Fill `skeleton`'s parameters from safetensors blobs `(origin, bytes)` by Hugging Face name.
///
/// Every parameter must be in the files with the shape the skeleton has (linear weights `[out, in]`); a
/// tensor in the files that no parameter takes is an error too, unless `ignore(name)` says it may be
/// skipped (`rotary_emb.inv_freq` buffers always may). Errors name the tensor, the file and both shapes.
pub fn load_into<M: Module>(skeleton: M, blobs: &[(String, Vec<u8>)], ignore: &dyn Fn(&str) -> bool) -> Result<M> {
    let mut tensors: HashMap<String, usize> = HashMap::new();
    let mut parsed = Vec::new();
    for (origin, bytes) in blobs {
        let st = SafeTensors::deserialize(bytes).map_err(|e| {
            Error::invalid(
                format!("checkpoint {origin}"),
                format!("not a readable safetensors file ({e}); it may be truncated"),
            )
        })?;
        parsed.push(st);
    }
    for (i, st) in parsed.iter().enumerate() {
        for name in st.names() {
            tensors.insert(name.to_string(), i);
        }
    }
    let model = skeleton;
    let expected = hf_param_shapes(&model);
    let mut values: HashMap<String, Vec<f32>> = HashMap::new();
    for (name, shape) in &expected {
        let Some(&i) = tensors.get(name) else {
            let mut have: Vec<&String> = tensors.keys().collect();
            have.sort();
            let sample: Vec<&&String> = have.iter().take(8).collect();
            return Err(Error::invalid(
                "checkpoint",
                format!(
                    "missing tensor '{name}' (expected shape {shape:?} from config.json); the files hold {} tensors, e.g. {sample:?}",
                    have.len()
                ),
            ));
        };
        let origin = &blobs[i].0;
        let view = parsed[i]
            .tensor(name)
            .map_err(|e| Error::invalid(format!("checkpoint {origin}"), format!("tensor '{name}': {e}")))?;
        if view.shape() != shape.as_slice() {
            return Err(Error::invalid(
                format!("checkpoint {origin}"),
                format!(
                    "tensor '{name}' has shape {:?} in the file but config.json implies {shape:?}; the weights and the config belong to different models",
                    view.shape()
                ),
            ));
        }
        let mut v = to_f32(&view, name, origin)?;
        if is_linear(name, shape.len()) {
            v = transpose(&v, shape[0], shape[1]);
        }
        values.insert(name.clone(), v);
    }
    let known: std::collections::HashSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    let mut extra: Vec<&String> = tensors
        .keys()
        .filter(|n| !known.contains(n.as_str()))
        .filter(|n| !n.ends_with("rotary_emb.inv_freq"))
        .filter(|n| !ignore(n))
        .collect();
    extra.sort();
    if !extra.is_empty() {
        return Err(Error::invalid(
            "checkpoint",
            format!(
                "the files hold tensors this model does not use: {extra:?}; does config.json describe these weights?"
            ),
        ));
    }
    let mut apply = Apply { path: Vec::new(), values };
    Ok(model.map(&mut apply))
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
        let Some(values) = self.values.remove(&name) else { return param };
        let shape = param.lazy_shape();
        let device = param.lazy_device();
        let tensor = Tensor::<D>::from_data(TensorData::new(values, shape), &device);
        let id = param.id;
        param.transform_for_load(tensor, id)
    }
}

struct Collect {
    path: Vec<String>,
    out: Vec<(String, Vec<usize>, Vec<f32>)>,
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
        let mut shape = param.lazy_shape().dims::<D>().to_vec();
        let mut v: Vec<f32> = param.val().into_data().try_into_vec_as::<f32>().expect("f32");
        if is_linear(&name, D) {
            v = transpose(&v, shape[0], shape[1]);
            shape.reverse();
        }
        self.out.push((name, shape, v));
    }
}

/// The model's weights as a Hugging Face `model.safetensors` (f32, `format: pt` metadata); any module whose
/// parameter paths are Hugging Face names.
pub fn to_hf_safetensors<M: Module>(model: &M) -> Result<Vec<u8>> {
    let mut c = Collect { path: Vec::new(), out: Vec::new() };
    model.visit(&mut c);
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> =
        c.out.into_iter().map(|(n, s, v)| (n, s, v.iter().flat_map(|x| x.to_le_bytes()).collect())).collect();
    let views = bytes
        .iter()
        .map(|(n, s, d)| {
            TensorView::new(Dtype::F32, s.clone(), d)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::invalid("checkpoint", format!("tensor '{n}': {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let meta: HashMap<String, String> = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize(views, Some(meta))
        .map_err(|e| Error::invalid("checkpoint", format!("cannot serialise: {e}")))
}

/// Save `model` into `dir` as `config.json` + `model.safetensors` (+ the files of `tokenizer_dir`:
/// `tokenizer.json`, `tokenizer_config.json`, `generation_config.json`, `special_tokens_map.json`,
/// when present). Each file is written atomically.
pub fn save_model(model: &CausalLm, dir: impl AsRef<Path>, tokenizer_dir: Option<&Path>) -> Result<()> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    atomic_write(dir.join("model.safetensors"), &to_hf_safetensors(model)?)?;
    let config = serde_json::to_string_pretty(&model.config.to_hf_json()).expect("json");
    atomic_write(dir.join("config.json"), config.as_bytes())?;
    if let Some(src) = tokenizer_dir {
        for f in ["tokenizer.json", "tokenizer_config.json", "generation_config.json", "special_tokens_map.json"] {
            let p = src.join(f);
            if p.exists() {
                let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
                atomic_write(dir.join(f), &bytes)?;
            }
        }
    }
    Ok(())
}

/// String metadata of a safetensors file (for tools).
pub fn metadata(bytes: &[u8]) -> Result<BTreeMap<String, String>> {
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| Error::invalid("checkpoint", format!("{e}")))?;
    Ok(meta.metadata().clone().unwrap_or_default().into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversion() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert!(f16_to_f32(0x7c00).is_infinite());
    }
}
