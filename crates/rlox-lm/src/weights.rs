//! Safetensors weights by name, in any of f32, bf16, f16 (and f64), read into f32 burn tensors; and
//! a writer that stores burn tensors as f32, bf16 or f16.
//!
//! This module knows nothing about models: [`WeightFiles`] is "a set of safetensors files, tensors
//! looked up by name", [`WeightWriter`] is "these named tensors, in this dtype, into one file". The
//! decoder's loader ([`crate::hf`]) and any other model (a vision tower, another family) build on the
//! same two types.
//!
//! ## Memory
//!
//! Files are memory-mapped, never read into a buffer: a tensor's bytes are converted straight from
//! the page cache into the f32 buffer that becomes the burn tensor (one copy, which f32 compute needs
//! anyway for bf16 or f16 files), and its pages are then dropped from the process with
//! `madvise(MADV_DONTNEED)`, so loading a 1 GB bf16 checkpoint peaks at the f32 weights plus one
//! tensor's pages, not at the file plus the weights. Linear weights, which Hugging Face stores
//! `[out, in]` and burn multiplies as `[in, out]`, are transposed during the same conversion
//! ([`WeightFiles::tensor_transposed`]).
//!
//! Writing is streamed as well: the header is computed from shapes and dtypes, then each tensor is
//! converted to the file's dtype and written on its own (peak: one tensor's copy), into a temporary
//! file that is synced and renamed over the target.
//!
//! ## Dtypes
//!
//! bf16 and f16 values convert to f32 exactly; f32 to bf16/f16 rounds to nearest, ties to even, as
//! PyTorch's `.to(torch.bfloat16)` does (so a model saved here in bf16 holds the bytes transformers
//! would write for the same f32 weights). f64 files are read (rounded to f32); integer tensors are an
//! error naming the tensor.
//!
//! ```no_run
//! # fn main() -> rlox_core::Result<()> {
//! use rlox_lm::weights::{StorageDtype, WeightFiles, WeightWriter};
//! let device = rlox_nn::cpu_device()?;
//! let files = WeightFiles::open_dir("my-model".as_ref())?;
//! let embed = files.tensor::<2>("model.embed_tokens.weight", &device)?; // f32, whatever the file held
//! let mut out = WeightWriter::new(StorageDtype::BF16);
//! out.add("model.embed_tokens.weight", embed);
//! out.write("copy/model.safetensors")?;
//! # Ok(()) }
//! ```

use half::{bf16, f16};
use memmap2::Mmap;
use rlox_core::{Error, Result};
use rlox_nn::{Device, Tensor, TensorData};
use safetensors::tensor::{Dtype, View};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The element type a checkpoint is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageDtype {
    /// 4 bytes per value, exact.
    #[default]
    F32,
    /// bfloat16: 2 bytes, f32's exponent range, 8 significant bits (what most released LMs use).
    BF16,
    /// IEEE half: 2 bytes, 11 significant bits, largest finite value 65504.
    F16,
}

impl StorageDtype {
    /// The safetensors dtype.
    pub fn safetensors(self) -> Dtype {
        match self {
            StorageDtype::F32 => Dtype::F32,
            StorageDtype::BF16 => Dtype::BF16,
            StorageDtype::F16 => Dtype::F16,
        }
    }

    /// Bytes per value.
    pub fn size(self) -> usize {
        match self {
            StorageDtype::F32 => 4,
            StorageDtype::BF16 | StorageDtype::F16 => 2,
        }
    }

    /// The name transformers writes as `torch_dtype` / `dtype` in `config.json`.
    pub fn torch_name(self) -> &'static str {
        match self {
            StorageDtype::F32 => "float32",
            StorageDtype::BF16 => "bfloat16",
            StorageDtype::F16 => "float16",
        }
    }

    /// Parse `f32`/`float32`, `bf16`/`bfloat16` or `f16`/`float16`.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "f32" | "float32" | "fp32" => Ok(StorageDtype::F32),
            "bf16" | "bfloat16" => Ok(StorageDtype::BF16),
            "f16" | "float16" | "fp16" | "half" => Ok(StorageDtype::F16),
            other => Err(Error::invalid("dtype", format!("'{other}': expected float32, bfloat16 or float16"))),
        }
    }

    /// `values` as little-endian bytes of this dtype (rounding to nearest even for bf16/f16).
    pub fn encode(self, values: &[f32]) -> Vec<u8> {
        let mut out = Vec::with_capacity(values.len() * self.size());
        match self {
            StorageDtype::F32 => values.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            StorageDtype::BF16 => values.iter().for_each(|&v| out.extend_from_slice(&bf16::from_f32(v).to_le_bytes())),
            StorageDtype::F16 => values.iter().for_each(|&v| out.extend_from_slice(&f16::from_f32(v).to_le_bytes())),
        }
        out
    }
}

/// Name, dtype and shape of one stored tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The element type in the file.
    pub dtype: Dtype,
    /// The shape in the file.
    pub shape: Vec<usize>,
}

enum Storage {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mapped(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

struct File {
    origin: String,
    storage: Storage,
}

struct Entry {
    file: usize,
    info: TensorInfo,
    /// Byte range in the file (header included in the offset).
    start: usize,
    end: usize,
}

/// A set of safetensors files (one checkpoint, possibly sharded), tensors looked up by name.
pub struct WeightFiles {
    files: Vec<File>,
    entries: HashMap<String, Entry>,
}

impl std::fmt::Debug for WeightFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeightFiles")
            .field("files", &self.files.iter().map(|f| &f.origin).collect::<Vec<_>>())
            .field("tensors", &self.entries.len())
            .finish()
    }
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

impl WeightFiles {
    /// Memory-map `paths` and index their tensors. A name found in two files is an error.
    pub fn open(paths: &[PathBuf]) -> Result<Self> {
        let mut files = Vec::with_capacity(paths.len());
        for p in paths {
            let file = std::fs::File::open(p).map_err(|e| Error::io(p, e))?;
            // SAFETY: the map is read-only; a file truncated or rewritten underneath a running load
            // is outside what any mmap-based reader (safetensors, llama.cpp) can guard against.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(p, e))?;
            files.push(File { origin: p.display().to_string(), storage: Storage::Mapped(map) });
        }
        Self::index(files)
    }

    /// Open a model directory's weights (see [`weight_files`]).
    pub fn open_dir(dir: &Path) -> Result<Self> {
        Self::open(&weight_files(dir)?)
    }

    /// Index in-memory safetensors files `(origin, bytes)` (origin names the file in errors).
    pub fn from_bytes(blobs: Vec<(String, Vec<u8>)>) -> Result<Self> {
        Self::index(blobs.into_iter().map(|(origin, b)| File { origin, storage: Storage::Owned(b) }).collect())
    }

    fn index(files: Vec<File>) -> Result<Self> {
        let mut entries = HashMap::new();
        for (i, f) in files.iter().enumerate() {
            let bytes = f.storage.bytes();
            let (header, meta) = SafeTensors::read_metadata(bytes).map_err(|e| {
                Error::invalid(
                    format!("checkpoint {}", f.origin),
                    format!("not a readable safetensors file ({e}); it may be truncated"),
                )
            })?;
            let base = 8 + header;
            for (name, info) in meta.tensors() {
                let (s, e) = info.data_offsets;
                if let Some(prev) = entries.insert(
                    name.clone(),
                    Entry {
                        file: i,
                        info: TensorInfo { dtype: info.dtype, shape: info.shape.clone() },
                        start: base + s,
                        end: base + e,
                    },
                ) {
                    return Err(Error::invalid(
                        "checkpoint",
                        format!("tensor '{name}' is in both {} and {}", files[prev.file].origin, f.origin),
                    ));
                }
            }
        }
        Ok(WeightFiles { files, entries })
    }

    /// All tensor names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.entries.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the files hold no tensor.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a tensor of that name is stored.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// Dtype and shape of `name`, if stored.
    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.entries.get(name).map(|e| &e.info)
    }

    /// The file that holds `name` (for error messages).
    pub fn origin(&self, name: &str) -> Option<&str> {
        self.entries.get(name).map(|e| self.files[e.file].origin.as_str())
    }

    /// The `__metadata__` strings of every file, merged.
    pub fn metadata(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for f in &self.files {
            if let Ok((_, meta)) = SafeTensors::read_metadata(f.storage.bytes()) {
                out.extend(meta.metadata().clone().unwrap_or_default());
            }
        }
        out
    }

    fn entry(&self, name: &str) -> Result<&Entry> {
        self.entries.get(name).ok_or_else(|| {
            let names = self.names();
            let sample: Vec<&&str> = names.iter().take(8).collect();
            Error::invalid(
                "checkpoint",
                format!("missing tensor '{name}'; the files hold {} tensors, e.g. {sample:?}", names.len()),
            )
        })
    }

    fn raw(&self, e: &Entry) -> &[u8] {
        &self.files[e.file].storage.bytes()[e.start..e.end]
    }

    /// Drop a tensor's pages from this process (they stay in the page cache): after conversion the
    /// mapped bytes are not needed, and without this a big checkpoint's pages would add to the RSS
    /// until the map is dropped.
    fn release(&self, e: &Entry) {
        if let Storage::Mapped(map) = &self.files[e.file].storage {
            let page = 4096;
            let start = e.start.div_ceil(page) * page;
            let end = e.end / page * page;
            if end > start {
                // SAFETY: the map is a shared read-only file mapping; MADV_DONTNEED only drops our
                // page-table entries, and a later access faults the same bytes back in from the file.
                let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start) };
            }
        }
    }

    fn check_float(&self, name: &str, e: &Entry) -> Result<()> {
        match e.info.dtype {
            Dtype::F32 | Dtype::BF16 | Dtype::F16 | Dtype::F64 => Ok(()),
            other => Err(Error::invalid(
                format!("checkpoint {}", self.files[e.file].origin),
                format!("tensor '{name}' has dtype {other:?}; rlox-lm reads F32, BF16, F16 and F64"),
            )),
        }
    }

    /// The values of `name` as f32 in the file's (row-major) order, with its shape.
    pub fn read_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let e = self.entry(name)?;
        self.check_float(name, e)?;
        let n: usize = e.info.shape.iter().product();
        let mut out = vec![0.0f32; n];
        convert_into(self.raw(e), e.info.dtype, &mut out);
        self.release(e);
        Ok((e.info.shape.clone(), out))
    }

    /// The 2-D tensor `name` (`[rows, cols]` in the file) as f32 in transposed order (`[cols, rows]`).
    pub fn read_f32_transposed(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let e = self.entry(name)?;
        self.check_float(name, e)?;
        let [rows, cols] = e.info.shape[..] else {
            return Err(Error::invalid(
                format!("checkpoint {}", self.files[e.file].origin),
                format!("tensor '{name}' has shape {:?}; only 2-D tensors can be transposed", e.info.shape),
            ));
        };
        let mut out = vec![0.0f32; rows * cols];
        convert_transposed_into(self.raw(e), e.info.dtype, rows, cols, &mut out);
        self.release(e);
        Ok((vec![cols, rows], out))
    }

    fn check_rank<const D: usize>(&self, name: &str, shape: &[usize]) -> Result<[usize; D]> {
        shape.try_into().map_err(|_| {
            Error::invalid(
                format!("checkpoint {}", self.origin(name).unwrap_or("?")),
                format!("tensor '{name}' has shape {shape:?}; expected {D} dimensions"),
            )
        })
    }

    /// `name` as an f32 tensor on `device`, whatever its stored float dtype.
    pub fn tensor<const D: usize>(&self, name: &str, device: &Device) -> Result<Tensor<D>> {
        let (shape, values) = self.read_f32(name)?;
        let shape = self.check_rank::<D>(name, &shape)?;
        Ok(Tensor::from_data(TensorData::new(values, shape), device))
    }

    /// The 2-D tensor `name` transposed (`[rows, cols]` in the file, `[cols, rows]` returned), f32.
    pub fn tensor_transposed(&self, name: &str, device: &Device) -> Result<Tensor<2>> {
        let (shape, values) = self.read_f32_transposed(name)?;
        Ok(Tensor::from_data(TensorData::new(values, [shape[0], shape[1]]), device))
    }
}

/// Convert `src` (little-endian values of `dtype`) into `out`, element by element.
fn convert_into(src: &[u8], dtype: Dtype, out: &mut [f32]) {
    match dtype {
        Dtype::F32 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        Dtype::BF16 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(2)) {
                // bf16 is the upper half of an f32: the conversion is a shift.
                *o = f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16);
            }
        }
        Dtype::F16 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(2)) {
                *o = f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32();
            }
        }
        Dtype::F64 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(8)) {
                *o = f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32;
            }
        }
        other => unreachable!("checked before conversion: {other:?}"),
    }
}

/// Convert the `[rows, cols]` matrix in `src` into `out` as `[cols, rows]`, in square tiles so that
/// both sides are read and written a cache line at a time.
fn convert_transposed_into(src: &[u8], dtype: Dtype, rows: usize, cols: usize, out: &mut [f32]) {
    const TILE: usize = 64;
    let size = dtype.bitsize() / 8;
    let mut row_buf = [0.0f32; TILE];
    for r0 in (0..rows).step_by(TILE) {
        let r1 = (r0 + TILE).min(rows);
        for c0 in (0..cols).step_by(TILE) {
            let c1 = (c0 + TILE).min(cols);
            let w = c1 - c0;
            for r in r0..r1 {
                let at = (r * cols + c0) * size;
                convert_into(&src[at..at + w * size], dtype, &mut row_buf[..w]);
                for (j, &v) in row_buf[..w].iter().enumerate() {
                    out[(c0 + j) * rows + r] = v;
                }
            }
        }
    }
}

/// A tensor waiting to be written: converted to the file's dtype only when the writer reaches it.
struct Pending {
    shape: Vec<usize>,
    dtype: StorageDtype,
    values: PendingValues,
}

enum PendingValues {
    /// A burn tensor kept as `[rows, cols]` (1-D tensors as `[1, n]`), written transposed or not.
    Tensor { tensor: Box<Tensor<2>>, transpose: bool },
    /// Host values in row-major order.
    Host(Vec<f32>),
}

impl View for &Pending {
    fn dtype(&self) -> Dtype {
        self.dtype.safetensors()
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        let values: Vec<f32> = match &self.values {
            PendingValues::Host(v) => return Cow::Owned(self.dtype.encode(v)),
            PendingValues::Tensor { tensor, transpose } => {
                let t = if *transpose { (**tensor).clone().transpose() } else { (**tensor).clone() };
                t.into_data().convert::<f32>().try_into_vec::<f32>().expect("converted to f32")
            }
        };
        Cow::Owned(self.dtype.encode(&values))
    }
    fn data_len(&self) -> usize {
        self.shape.iter().product::<usize>() * self.dtype.size()
    }
}

/// Named tensors to be written as one safetensors file in one dtype (see the module docs).
pub struct WeightWriter {
    dtype: StorageDtype,
    tensors: Vec<(String, Pending)>,
    metadata: BTreeMap<String, String>,
}

impl WeightWriter {
    /// An empty file whose float tensors will be stored as `dtype`, with transformers' `format: pt` metadata.
    pub fn new(dtype: StorageDtype) -> Self {
        WeightWriter {
            dtype,
            tensors: Vec::new(),
            metadata: BTreeMap::from([("format".to_string(), "pt".to_string())]),
        }
    }

    /// The dtype the tensors will be written in.
    pub fn dtype(&self) -> StorageDtype {
        self.dtype
    }

    /// Add `tensor` (any float dtype, any device) under `name`, shape as it is. Nothing is copied now.
    pub fn add<const D: usize>(&mut self, name: impl Into<String>, tensor: Tensor<D>) {
        let shape = tensor.dims().to_vec();
        let rows = if D == 0 { 1 } else { shape[..D - 1].iter().product() };
        let cols = shape.last().copied().unwrap_or(1);
        let tensor = tensor.reshape([rows, cols]);
        self.push(name.into(), shape, PendingValues::Tensor { tensor: Box::new(tensor), transpose: false });
    }

    /// Add the 2-D `tensor` (`[rows, cols]`) stored transposed, as `[cols, rows]` (burn's `[in, out]`
    /// linear weights in PyTorch's `[out, in]` layout).
    pub fn add_transposed(&mut self, name: impl Into<String>, tensor: Tensor<2>) {
        let [r, c] = tensor.dims();
        self.push(name.into(), vec![c, r], PendingValues::Tensor { tensor: Box::new(tensor), transpose: true });
    }

    /// Add host values (row-major) of `shape`.
    pub fn add_values(&mut self, name: impl Into<String>, shape: Vec<usize>, values: Vec<f32>) -> Result<()> {
        let name = name.into();
        if shape.iter().product::<usize>() != values.len() {
            return Err(Error::invalid(
                "checkpoint",
                format!(
                    "tensor '{name}': shape {shape:?} needs {} values, got {}",
                    shape.iter().product::<usize>(),
                    values.len()
                ),
            ));
        }
        self.push(name, shape, PendingValues::Host(values));
        Ok(())
    }

    fn push(&mut self, name: String, shape: Vec<usize>, values: PendingValues) {
        self.tensors.push((name, Pending { shape, dtype: self.dtype, values }));
    }

    /// Set a `__metadata__` string.
    pub fn metadata(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.metadata.insert(key.into(), value.into());
    }

    /// Names added so far, in order.
    pub fn names(&self) -> Vec<&str> {
        self.tensors.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn check(&self) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        for (n, _) in &self.tensors {
            if !seen.insert(n) {
                return Err(Error::invalid("checkpoint", format!("two tensors are both named '{n}'")));
            }
        }
        Ok(())
    }

    fn meta(&self) -> Option<HashMap<String, String>> {
        (!self.metadata.is_empty()).then(|| self.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    /// The whole file in memory (small models, tests).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.check()?;
        safetensors::serialize(self.tensors.iter().map(|(n, p)| (n.as_str(), p)), self.meta())
            .map_err(|e| Error::invalid("checkpoint", format!("cannot serialise: {e}")))
    }

    /// Write the file to `path`, streaming one tensor at a time into a temporary file in the same
    /// directory that is then renamed over `path` and synced (a crash leaves the old file or the new).
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        self.check()?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        safetensors::serialize_to_file(self.tensors.iter().map(|(n, p)| (n.as_str(), p)), self.meta(), path)
            .map_err(|e| Error::invalid(format!("checkpoint {}", path.display()), format!("cannot write: {e}")))?;
        // serialize_to_file writes a temp file and renames it; make both durable.
        std::fs::File::open(path).and_then(|f| f.sync_all()).map_err(|e| Error::io(path, e))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        rlox_nn::cpu_device().unwrap()
    }

    #[test]
    fn f16_and_bf16_decode_exactly() {
        let bytes: Vec<u8> = [0x3c00u16, 0xc000, 0x0001, 0x7c00].iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut out = [0.0f32; 4];
        convert_into(&bytes, Dtype::F16, &mut out);
        assert_eq!(&out[..3], &[1.0, -2.0, 2f32.powi(-24)]);
        assert!(out[3].is_infinite());
        let bytes: Vec<u8> = [0x3f80u16, 0xc040, 0x0001].iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut out = [0.0f32; 3];
        convert_into(&bytes, Dtype::BF16, &mut out);
        assert_eq!(out, [1.0, -3.0, f32::from_bits(0x0001_0000)]);
    }

    #[test]
    fn bf16_rounds_to_nearest_even() {
        // 1 + 2^-8 is halfway between two bf16 values (1 and 1 + 2^-7): ties go to the even one, 1.
        let halfway = 1.0 + 2f32.powi(-8);
        let above = f32::from_bits(halfway.to_bits() + 1);
        let enc = StorageDtype::BF16.encode(&[halfway, above, -1.5]);
        let dec: Vec<u16> = enc.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        assert_eq!(dec, vec![0x3f80, 0x3f81, 0xbfc0]);
    }

    #[test]
    fn round_trip_in_every_dtype_with_transpose() {
        let dev = device();
        let values: Vec<f32> = (0..35).map(|i| (i as f32 - 17.0) * 0.37).collect();
        let m = Tensor::<2>::from_data(TensorData::new(values.clone(), [5, 7]), &dev);
        let v = Tensor::<1>::from_data(TensorData::new(values[..6].to_vec(), [6]), &dev);
        for dtype in [StorageDtype::F32, StorageDtype::BF16, StorageDtype::F16] {
            let mut w = WeightWriter::new(dtype);
            w.add("m", m.clone());
            w.add_transposed("mt", m.clone());
            w.add("v", v.clone());
            w.metadata("step", "3");
            let files = WeightFiles::from_bytes(vec![("mem".into(), w.to_bytes().unwrap())]).unwrap();
            assert_eq!(files.names(), vec!["m", "mt", "v"]);
            assert_eq!(files.info("mt").unwrap().shape, vec![7, 5]);
            assert_eq!(files.info("m").unwrap().dtype, dtype.safetensors());
            assert_eq!(files.metadata()["step"], "3");
            // Round to the storage dtype on the host, then compare exactly.
            let rounded: Vec<f32> = match dtype {
                StorageDtype::F32 => values.clone(),
                StorageDtype::BF16 => values.iter().map(|&x| bf16::from_f32(x).to_f32()).collect(),
                StorageDtype::F16 => values.iter().map(|&x| f16::from_f32(x).to_f32()).collect(),
            };
            let (_, got) = files.read_f32("m").unwrap();
            assert_eq!(got, rounded, "{dtype:?}");
            // "mt" is m transposed in the file; reading it transposed gives m back.
            let back = files.tensor_transposed("mt", &dev).unwrap();
            assert_eq!(back.dims(), [5, 7]);
            assert_eq!(back.into_data().try_into_vec::<f32>().unwrap(), rounded);
            let (_, mt) = files.read_f32("mt").unwrap();
            assert_eq!(mt[1], rounded[7], "row 0 of the file is column 0 of m");
            assert_eq!(files.tensor::<1>("v", &dev).unwrap().into_data().try_into_vec::<f32>().unwrap(), rounded[..6]);
        }
    }

    #[test]
    fn transposed_conversion_crosses_tiles() {
        let (rows, cols) = (70, 131);
        let values: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
        let bytes = StorageDtype::F32.encode(&values);
        let mut out = vec![0.0; rows * cols];
        convert_transposed_into(&bytes, Dtype::F32, rows, cols, &mut out);
        for r in 0..rows {
            for c in 0..cols {
                assert_eq!(out[c * rows + r], values[r * cols + c]);
            }
        }
    }

    #[test]
    fn streamed_file_equals_in_memory_bytes_and_errors_name_the_tensor() {
        let dev = device();
        let dir = tempfile::tempdir().unwrap();
        let t = Tensor::<2>::from_data(TensorData::new((0..12).map(|i| i as f32).collect::<Vec<_>>(), [3, 4]), &dev);
        let mut w = WeightWriter::new(StorageDtype::BF16);
        w.add("a.weight", t.clone());
        w.add_values("b", vec![2], vec![1.0, 2.0]).unwrap();
        let path = dir.path().join("sub/model.safetensors");
        w.write(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), w.to_bytes().unwrap());
        let files = WeightFiles::open(std::slice::from_ref(&path)).unwrap();
        let e = files.tensor::<2>("nope", &dev).unwrap_err().to_string();
        assert!(e.contains("missing tensor 'nope'"), "{e}");
        let e = files.tensor::<3>("a.weight", &dev).unwrap_err().to_string();
        assert!(e.contains("a.weight") && e.contains("3 dimensions"), "{e}");
        assert!(w.add_values("c", vec![3], vec![1.0]).unwrap_err().to_string().contains("'c'"));
        w.add("a.weight", t);
        assert!(w.to_bytes().unwrap_err().to_string().contains("'a.weight'"));
        // A duplicated name across shards.
        let bytes = std::fs::read(&path).unwrap();
        let e = WeightFiles::from_bytes(vec![("one".into(), bytes.clone()), ("two".into(), bytes)]).unwrap_err();
        assert!(e.to_string().contains("in both one and two"), "{e}");
        // A truncated file.
        let bytes = std::fs::read(&path).unwrap();
        let e =
            WeightFiles::from_bytes(vec![("cut.safetensors".into(), bytes[..bytes.len() - 3].to_vec())]).unwrap_err();
        assert!(e.to_string().contains("cut.safetensors"), "{e}");
    }
}
