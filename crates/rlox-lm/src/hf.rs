//! Hugging Face checkpoints: `config.json` + `model.safetensors` (or shards listed in
//! `model.safetensors.index.json`), tensor names as `transformers` writes them.
//!
//! Loading memory-maps the files ([`crate::weights::WeightFiles`]) and builds the model once, each
//! parameter read by name straight into its final tensor ([`CausalLm::new`] with a checkpoint as
//! the [`ParamSource`]): no random initialisation, no second copy of the file. A tensor the model
//! needs and the files lack, a tensor the files hold and the model does not use, or a shape that
//! differs from the one the config implies is an error naming the tensor (and both shapes). F32,
//! BF16, F16 and F64 tensors are read.
//!
//! ## Dtypes and memory per parameter
//!
//! | | stored (file) | inference | training (AdamW) |
//! |---|---|---|---|
//! | f32 compute (default) | 4 B (f32) or 2 B (bf16/f16) | 4 B | 16 B: weight 4, gradient 4, two moments 8 |
//! | bf16 compute ([`LoadOptions::compute`]) | any | 2 B | not supported (inference only) |
//!
//! plus activations (training: see [`crate::model::MemoryOptions`]) and, when generating, the KV
//! cache (`2 x layers x kv_heads x head_dim` values per token). A bf16 checkpoint of Qwen2.5-0.5B
//! (494M parameters) is 0.99 GB on disk and 1.98 GB in memory with f32 compute.
//!
//! bf16 compute keeps the parameters in bf16 and runs every operation in bf16 where burn's CPU
//! backend (Flex) has a bf16 kernel (elementwise ops, reductions, softmax; its matrix products
//! convert to f32 and back internally, so they are slower than f32 ones); attention uses the
//! eager path. It halves the weights' memory at some cost in accuracy (logits within a few 1e-2 of
//! f32 on the test models) and speed.
//!
//! Saving writes `[out, in]` linear weights, `config.json` and the tokenizer files when asked, in
//! f32 (default), bf16 or f16 ([`save_model_as`]); `transformers` loads the directory with
//! `AutoModelForCausalLM.from_pretrained`.

use crate::config::LmConfig;
use crate::deepseek_v3::{DeepseekV3Config, DeepseekV3ForCausalLm};
use crate::init::Init;
use crate::model::{CausalLm, ParamKind, ParamSource};
use crate::weights::{StorageDtype, WeightFiles, WeightWriter};
use rlox_core::checkpoint::atomic_write;
use rlox_core::{Error, Result};
use rlox_nn::burn::module::{ModuleMapper, ModuleVisitor, Param};
use rlox_nn::burn::tensor::{DType, FloatDType};
use rlox_nn::{Device, Module, Tensor, TensorData};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

pub use crate::weights::weight_files;

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

/// How to load a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadOptions {
    /// The dtype the model computes in: `None` (default) for f32, whatever the file stores;
    /// `Some(FloatDType::BF16)` keeps the weights in bf16 (see the module docs).
    pub compute: Option<FloatDType>,
}

/// A checkpoint as the [`ParamSource`] of [`CausalLm::new`]: every parameter read by name from the
/// mapped files, transposed where the layouts differ, its shape checked against the config.
struct CheckpointSource<'a> {
    files: &'a WeightFiles,
    device: Device,
    compute: Option<FloatDType>,
    used: HashSet<String>,
}

impl ParamSource for CheckpointSource<'_> {
    fn param<const D: usize>(&mut self, name: &str, shape: [usize; D], kind: ParamKind) -> Result<Param<Tensor<D>>> {
        let linear = kind == ParamKind::LinearWeight;
        let mut file_shape = shape.to_vec();
        if linear {
            file_shape.reverse();
        }
        let Some(info) = self.files.info(name) else {
            let names = self.files.names();
            let sample: Vec<&&str> = names.iter().take(8).collect();
            return Err(Error::invalid(
                "checkpoint",
                format!(
                    "missing tensor '{name}' (expected shape {file_shape:?} from config.json); the files hold {} tensors, e.g. {sample:?}",
                    names.len()
                ),
            ));
        };
        if info.shape != file_shape {
            return Err(Error::invalid(
                format!("checkpoint {}", self.files.origin(name).unwrap_or("?")),
                format!(
                    "tensor '{name}' has shape {:?} in the file but config.json implies {file_shape:?}; the weights and the config belong to different models",
                    info.shape
                ),
            ));
        }
        let (_, values) = if linear { self.files.read_f32_transposed(name)? } else { self.files.read_f32(name)? };
        let mut t = Tensor::<D>::from_data(TensorData::new(values, shape), &self.device);
        if let Some(dtype) = self.compute.filter(|d| *d != FloatDType::F32) {
            t = t.cast(dtype);
        }
        self.used.insert(name.to_string());
        Ok(Param::from_tensor(t))
    }
}

/// Load a model directory (`config.json`, weights) onto `device`, computing in f32.
pub fn load_model(dir: impl AsRef<Path>, device: &Device) -> Result<CausalLm> {
    load_model_with(dir, device, LoadOptions::default())
}

/// Load a model directory with `options` (e.g. bf16 compute).
pub fn load_model_with(dir: impl AsRef<Path>, device: &Device, options: LoadOptions) -> Result<CausalLm> {
    let dir = dir.as_ref();
    let config = LmConfig::from_file(dir.join("config.json"))?;
    let files = WeightFiles::open_dir(dir)?;
    load_weights(&config, &files, device, options)
}

/// Build a model of `config` from opened weight files.
pub fn load_weights(config: &LmConfig, files: &WeightFiles, device: &Device, options: LoadOptions) -> Result<CausalLm> {
    if let Some(dtype) = options.compute {
        if !matches!(dtype, FloatDType::F32 | FloatDType::BF16) {
            return Err(Error::invalid("compute dtype", format!("{dtype:?}: rlox-lm computes in f32 or bf16")));
        }
    }
    let mut src = CheckpointSource { files, device: device.clone(), compute: options.compute, used: HashSet::new() };
    let model = CausalLm::new(config, &mut src)?;
    let mut extra: Vec<&str> = files
        .names()
        .into_iter()
        .filter(|n| !src.used.contains(*n))
        .filter(|n| !n.ends_with("rotary_emb.inv_freq"))
        .filter(|n| !(config.tie_word_embeddings && *n == "lm_head.weight"))
        .collect();
    extra.sort_unstable();
    if !extra.is_empty() {
        return Err(Error::invalid(
            "checkpoint",
            format!(
                "the files hold tensors this model does not use: {extra:?}; does config.json describe these weights?"
            ),
        ));
    }
    Ok(model)
}

struct Collect<'a> {
    path: Vec<String>,
    writer: &'a mut WeightWriter,
}

impl ModuleVisitor for Collect<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let name = self.path.join(".");
        let t = param.val();
        let t = if t.dtype() == DType::F32 { t } else { t.cast(FloatDType::F32) };
        if is_linear(&name, D) {
            let [r, c] = [t.dims()[0], t.dims()[1]];
            self.writer.add_transposed(name, t.reshape([r, c]));
        } else {
            self.writer.add(name, t);
        }
    }
}

/// The model's weights, ready to be written in `dtype` in Hugging Face's layout (nothing is copied
/// until the writer writes).
pub fn hf_weights<M: Module>(model: &M, dtype: StorageDtype) -> WeightWriter {
    let mut writer = WeightWriter::new(dtype);
    model.visit(&mut Collect { path: Vec::new(), writer: &mut writer });
    writer
}

/// The model's weights as a Hugging Face `model.safetensors` in memory (f32, `format: pt` metadata).
pub fn to_hf_safetensors<M: Module>(model: &M) -> Result<Vec<u8>> {
    hf_weights(model, StorageDtype::F32).to_bytes()
}

/// Save `model` into `dir` as `config.json` + `model.safetensors` in f32 (see [`save_model_as`]).
pub fn save_model(model: &CausalLm, dir: impl AsRef<Path>, tokenizer_dir: Option<&Path>) -> Result<()> {
    save_model_as(model, dir, tokenizer_dir, StorageDtype::F32)
}

/// Save `model` into `dir` as `config.json` + `model.safetensors` with the weights in `dtype` (+ the
/// files of `tokenizer_dir`: `tokenizer.json`, `tokenizer_config.json`, `generation_config.json`,
/// `special_tokens_map.json`, when present). Each file is written atomically; the weights are
/// streamed one tensor at a time.
pub fn save_model_as(
    model: &CausalLm,
    dir: impl AsRef<Path>,
    tokenizer_dir: Option<&Path>,
    dtype: StorageDtype,
) -> Result<()> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    hf_weights(model, dtype).write(dir.join("model.safetensors"))?;
    let config = serde_json::to_string_pretty(&model.config.to_hf_json_as(dtype)).expect("json");
    atomic_write(dir.join("config.json"), config.as_bytes())?;
    copy_tokenizer_files(tokenizer_dir, dir)
}

/// Copy the tokenizer files a model directory may hold (`tokenizer.json`, Kimi's `tiktoken.model`, their
/// configs, the image processor's) from `src` (if any) to `dir`, each atomically.
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

/// transformers' default largest shard (`max_shard_size="5GB"`).
pub const DEFAULT_SHARD_BYTES: u64 = 5_000_000_000;

/// Routes each parameter to the current shard, opening a new one when it would pass the limit.
struct ShardCollect {
    path: Vec<String>,
    dtype: StorageDtype,
    max_bytes: u64,
    shards: Vec<(WeightWriter, u64)>,
}

impl ModuleVisitor for ShardCollect {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let name = self.path.join(".");
        let bytes = param.lazy_shape().num_elements() as u64 * self.dtype.size() as u64;
        let full = self.shards.last().is_none_or(|(_, used)| *used > 0 && used + bytes > self.max_bytes);
        if full {
            self.shards.push((WeightWriter::new(self.dtype), 0));
        }
        let (writer, used) = self.shards.last_mut().expect("a shard");
        *used += bytes;
        let t = param.val();
        let t = if t.dtype() == DType::F32 { t } else { t.cast(FloatDType::F32) };
        if is_linear(&name, D) {
            let [r, c] = [t.dims()[0], t.dims()[1]];
            writer.add_transposed(name, t.reshape([r, c]));
        } else {
            writer.add(name, t);
        }
    }
}

/// Write `model`'s weights (any module with Hugging Face parameter paths) into `dir` in `dtype`: one
/// `model.safetensors` when they fit in `max_shard_bytes`, else `model-0000i-of-0000n.safetensors` shards of at
/// most that size (a larger tensor alone in its shard) and `model.safetensors.index.json`, as transformers'
/// `save_pretrained` lays them out. A weight file of the other layout left in `dir` is removed, so that the
/// directory never holds two sets of weights.
pub fn write_hf_weights<M: Module>(model: &M, dir: &Path, dtype: StorageDtype, max_shard_bytes: u64) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut collect = ShardCollect { path: Vec::new(), dtype, max_bytes: max_shard_bytes.max(1), shards: Vec::new() };
    model.visit(&mut collect);
    let single = dir.join("model.safetensors");
    let index = dir.join("model.safetensors.index.json");
    let remove = |p: &Path| -> Result<()> {
        if p.exists() {
            std::fs::remove_file(p).map_err(|e| Error::io(p, e))?;
        }
        Ok(())
    };
    if collect.shards.len() <= 1 {
        let writer = collect.shards.pop().map_or_else(|| WeightWriter::new(dtype), |(w, _)| w);
        writer.write(&single)?;
        return remove(&index);
    }
    let n = collect.shards.len();
    let mut map = serde_json::Map::new();
    let mut total = 0u64;
    for (i, (writer, bytes)) in collect.shards.iter().enumerate() {
        let file = format!("model-{:05}-of-{n:05}.safetensors", i + 1);
        writer.write(dir.join(&file))?;
        for name in writer.names() {
            map.insert(name.to_string(), serde_json::Value::String(file.clone()));
        }
        total += bytes;
    }
    let text = serde_json::to_string_pretty(&serde_json::json!({"metadata": {"total_size": total}, "weight_map": map}))
        .expect("json");
    atomic_write(&index, text.as_bytes())?;
    remove(&single)
}

/// Replaces each parameter of a skeleton by the tensor of the same Hugging Face name.
struct Fill<'a> {
    files: &'a WeightFiles,
    path: Vec<String>,
    used: HashSet<String>,
    error: Option<Error>,
}

impl Fill<'_> {
    fn read<const D: usize>(&mut self, name: &str, shape: [usize; D]) -> Result<Vec<f32>> {
        let mut file_shape = shape.to_vec();
        let linear = is_linear(name, D);
        if linear {
            file_shape.reverse();
        }
        let Some(info) = self.files.info(name) else {
            let names = self.files.names();
            let sample: Vec<&&str> = names.iter().take(8).collect();
            return Err(Error::invalid(
                "checkpoint",
                format!(
                    "missing tensor '{name}' (expected shape {file_shape:?} from config.json); the files hold {} tensors, e.g. {sample:?}",
                    names.len()
                ),
            ));
        };
        if info.shape != file_shape {
            return Err(Error::invalid(
                format!("checkpoint {}", self.files.origin(name).unwrap_or("?")),
                format!(
                    "tensor '{name}' has shape {:?} in the file but config.json implies {file_shape:?}; the weights and the config belong to different models",
                    info.shape
                ),
            ));
        }
        let (_, values) = if linear { self.files.read_f32_transposed(name)? } else { self.files.read_f32(name)? };
        Ok(values)
    }
}

impl ModuleMapper for Fill<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.error.is_some() {
            return param;
        }
        let name = self.path.join(".");
        let shape: [usize; D] = param.lazy_shape().dims::<D>();
        match self.read(&name, shape) {
            Ok(values) => {
                let device = param.lazy_device();
                let tensor = Tensor::<D>::from_data(TensorData::new(values, shape), &device);
                self.used.insert(name);
                let id = param.id;
                param.transform_for_load(tensor, id)
            }
            Err(e) => {
                self.error = Some(e);
                param
            }
        }
    }
}

/// Fill `skeleton`'s parameters (typically a lazy one, [`crate::Init::Lazy`]) from `files` by Hugging Face
/// name, in f32 whatever the files store.
///
/// Every parameter must be in the files with the skeleton's shape (linear weights `[out, in]`); a tensor in
/// the files that no parameter takes is an error too, unless `ignore(name)` says it may be skipped
/// (`rotary_emb.inv_freq` buffers always may). Errors name the tensor, the file and both shapes.
pub fn load_into<M: Module>(skeleton: M, files: &WeightFiles, ignore: &dyn Fn(&str) -> bool) -> Result<M> {
    let mut fill = Fill { files, path: Vec::new(), used: HashSet::new(), error: None };
    let model = skeleton.map(&mut fill);
    if let Some(e) = fill.error {
        return Err(e);
    }
    let mut extra: Vec<&str> = files
        .names()
        .into_iter()
        .filter(|n| !fill.used.contains(*n))
        .filter(|n| !n.ends_with("rotary_emb.inv_freq"))
        .filter(|n| !ignore(n))
        .collect();
    extra.sort_unstable();
    if !extra.is_empty() {
        return Err(Error::invalid(
            "checkpoint",
            format!(
                "the files hold tensors this model does not use: {extra:?}; does config.json describe these weights?"
            ),
        ));
    }
    Ok(model)
}

/// Whether a tensor of a DeepSeek-V3 checkpoint may be left unused: the tied output projection, and the
/// multi-token-prediction layers past `num_hidden_layers` that DeepSeek-V3's own checkpoint carries
/// (transformers skips them too).
pub fn deepseek_v3_ignored(config: &DeepseekV3Config, name: &str) -> bool {
    if config.tie_word_embeddings && name == "lm_head.weight" {
        return true;
    }
    name.strip_prefix("model.layers.")
        .and_then(|rest| rest.split('.').next())
        .and_then(|i| i.parse::<usize>().ok())
        .is_some_and(|i| i >= config.num_hidden_layers)
}

/// Build a DeepSeek-V3 model of `config` from opened weight files (f32 compute).
pub fn load_deepseek_v3_weights(
    config: &DeepseekV3Config,
    files: &WeightFiles,
    device: &Device,
) -> Result<DeepseekV3ForCausalLm> {
    let skeleton = DeepseekV3ForCausalLm::new(config, Init::Lazy, device);
    load_into(skeleton, files, &|name: &str| deepseek_v3_ignored(config, name))
}

/// Load a DeepSeek-V3 model directory (`config.json`, `model.safetensors` or shards, F32, BF16, F16 or F64
/// tensors) onto `device`.
pub fn load_deepseek_v3(dir: impl AsRef<Path>, device: &Device) -> Result<DeepseekV3ForCausalLm> {
    let dir = dir.as_ref();
    let config = DeepseekV3Config::from_file(dir.join("config.json"))?;
    load_deepseek_v3_weights(&config, &WeightFiles::open_dir(dir)?, device)
}

/// Save a DeepSeek-V3 model into `dir` (`config.json`, the weights in `dtype` as one file or 5 GB shards
/// with an index, see [`write_hf_weights`], and the tokenizer files of `tokenizer_dir` when given), each file
/// written atomically.
pub fn save_deepseek_v3(
    model: &DeepseekV3ForCausalLm,
    dir: impl AsRef<Path>,
    tokenizer_dir: Option<&Path>,
    dtype: StorageDtype,
) -> Result<()> {
    let dir = dir.as_ref();
    write_hf_weights(model, dir, dtype, DEFAULT_SHARD_BYTES)?;
    let mut config = model.config.to_hf_json();
    config["torch_dtype"] = serde_json::json!(dtype.torch_name());
    let text = serde_json::to_string_pretty(&config).expect("json");
    atomic_write(dir.join("config.json"), text.as_bytes())?;
    copy_tokenizer_files(tokenizer_dir, dir)
}

/// String metadata of a safetensors file (for tools).
pub fn metadata(bytes: &[u8]) -> Result<BTreeMap<String, String>> {
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(bytes).map_err(|e| Error::invalid("checkpoint", format!("{e}")))?;
    Ok(meta.metadata().clone().unwrap_or_default().into_iter().collect())
}
