//! Kimi-VL's image processor: from a PNG/JPEG file to patches and a grid.
//!
//! As the published `KimiVLImageProcessor` does it, step by step:
//! 1. decode (the `image` crate: PNG, JPEG);
//! 2. if the image has more than `in_token_limit` whole patches, shrink both sides by
//!    `sqrt(in_token_limit / patches)` (truncated to whole pixels) with Pillow's bicubic filter;
//! 3. pad right and bottom with black to multiples of `merge_kernel_size * patch_size` (28 pixels);
//! 4. scale to [0, 1], normalise with `image_mean` / `image_std` (`preprocessor_config.json`);
//! 5. cut into `patch_size` patches in raster order, each flattened channel-major (`3 x p x p`), and report
//!    the grid (rows, columns); the image then takes `rows * columns / 4` placeholder tokens.
//!
//! The resize is Pillow's own algorithm (separable bicubic with a = -0.5, support widened by the shrink
//! factor, 22-bit fixed-point coefficients, rounding to 8 bits between the horizontal and vertical passes,
//! and RGBA resized with premultiplied alpha), so pixel values equal the Python processor's bit for bit,
//! resized or not; the `image` crate's own filters differ from Pillow's by a grey level here and there.
//! JPEG decoders may differ by a few grey levels from libjpeg (see the tests).

use image::{DynamicImage, ImageReader, Limits};
use rlox_core::{Error, Result};
use serde_json::Value;
use std::path::Path;

/// `preprocessor_config.json`. Defaults are Kimi-VL-A3B's.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessorConfig {
    /// Whole patches an image may have before it is shrunk (default 4096).
    pub in_token_limit: usize,
    /// Patch side in pixels (default 14).
    pub patch_size: usize,
    /// Patches merged into one token (default [2, 2]).
    pub merge_kernel_size: [usize; 2],
    /// Pad to whole merges (true; the published processor's alternative, a centre crop, is not implemented).
    pub pad_input: bool,
    /// Per-channel mean (default 0.5).
    pub image_mean: [f32; 3],
    /// Per-channel standard deviation (default 0.5).
    pub image_std: [f32; 3],
    /// Largest side accepted before decoding, in pixels (default 32768), against decompression bombs.
    pub max_side: u32,
    /// Grid sides must stay below this (default 512 patches, MoonViT's rotary range; the published
    /// processor rejects 512 itself).
    pub max_grid_side: usize,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig {
            in_token_limit: 4096,
            patch_size: 14,
            merge_kernel_size: [2, 2],
            pad_input: true,
            image_mean: [0.5; 3],
            image_std: [0.5; 3],
            max_side: 32768,
            max_grid_side: 512,
        }
    }
}

impl ProcessorConfig {
    /// Read `preprocessor_config.json` (missing keys take the defaults).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| Error::Config { path: path.to_path_buf(), message: format!("not valid JSON: {e}") })?;
        Self::from_json(&v).map_err(|e| Error::Config { path: path.to_path_buf(), message: e.to_string() })
    }

    /// Interpret the parsed JSON.
    pub fn from_json(v: &Value) -> Result<Self> {
        let d = ProcessorConfig::default();
        let usize_of = |key: &str, default: usize| -> Result<usize> {
            match v.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(x) => x.as_u64().filter(|&n| n > 0).map(|n| n as usize).ok_or_else(|| {
                    Error::invalid("preprocessor_config.json", format!("'{key}' must be a positive integer, got {x}"))
                }),
            }
        };
        let triple = |key: &str, default: [f32; 3]| -> Result<[f32; 3]> {
            match v.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(x) => {
                    let a: Option<Vec<f32>> =
                        x.as_array().map(|a| a.iter().filter_map(|n| n.as_f64().map(|n| n as f32)).collect());
                    match a.as_deref() {
                        Some([r, g, b]) => Ok([*r, *g, *b]),
                        _ => Err(Error::invalid(
                            "preprocessor_config.json",
                            format!("'{key}' must be three numbers, got {x}"),
                        )),
                    }
                }
            }
        };
        let merge = match v.get("merge_kernel_size").and_then(Value::as_array) {
            Some(a) => match a.iter().map(|n| n.as_u64().map(|n| n as usize)).collect::<Option<Vec<_>>>().as_deref() {
                Some([h, w]) if *h > 0 && *w > 0 => [*h, *w],
                _ => {
                    return Err(Error::invalid(
                        "preprocessor_config.json",
                        "'merge_kernel_size' must be two positive integers",
                    ))
                }
            },
            None => d.merge_kernel_size,
        };
        let pad_input = v.get("pad_input").and_then(Value::as_bool).unwrap_or(true);
        if !pad_input {
            return Err(Error::invalid(
                "preprocessor_config.json",
                "'pad_input' is false (centre cropping); only padding, what Kimi-VL ships, is implemented",
            ));
        }
        let std = triple("image_std", d.image_std)?;
        if std.iter().any(|&s| s <= 0.0) {
            return Err(Error::invalid(
                "preprocessor_config.json",
                format!("'image_std' must be positive, got {std:?}"),
            ));
        }
        Ok(ProcessorConfig {
            in_token_limit: usize_of("in_token_limit", d.in_token_limit)?,
            patch_size: usize_of("patch_size", d.patch_size)?,
            merge_kernel_size: merge,
            pad_input,
            image_mean: triple("image_mean", d.image_mean)?,
            image_std: std,
            ..d
        })
    }
}

/// One processed image.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessedImage {
    /// `[rows * columns, 3 * p * p]`, row-major.
    pub pixel_values: Vec<f32>,
    /// Patch rows and columns.
    pub grid: (usize, usize),
}

impl ProcessedImage {
    /// Placeholder tokens the image takes (one per merged neighbourhood).
    pub fn num_tokens(&self, merge_kernel_size: [usize; 2]) -> usize {
        self.grid.0 * self.grid.1 / (merge_kernel_size[0] * merge_kernel_size[1])
    }
}

/// An 8-bit image as Pillow holds it before `convert("RGB")`: 3 or 4 (RGBA) channels, row-major.
#[derive(Debug, Clone)]
struct Pixels {
    width: usize,
    height: usize,
    channels: usize,
    data: Vec<u8>,
}

/// Pillow's bicubic kernel (a = -0.5).
fn pil_bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc`: for each output index, the first input index,
/// the tap count and the fixed-point weights.
fn pil_coefficients(input: usize, output: usize) -> (Vec<(usize, usize)>, Vec<i32>, usize) {
    let scale = input as f64 / output as f64;
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(output);
    let mut kk = vec![0i32; output * ksize];
    for xx in 0..output {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(input as i64) as usize - xmin;
        let w: Vec<f64> = (0..xmax).map(|x| pil_bicubic((x as f64 + xmin as f64 - center + 0.5) * ss)).collect();
        let total: f64 = w.iter().sum();
        for (x, wx) in w.iter().enumerate() {
            let k = if total != 0.0 { wx / total } else { *wx };
            let fixed = k * (1u32 << PRECISION_BITS) as f64;
            kk[xx * ksize + x] = if k < 0.0 { (fixed - 0.5) as i32 } else { (fixed + 0.5) as i32 };
        }
        bounds.push((xmin, xmax));
    }
    (bounds, kk, ksize)
}

fn clip8(v: i64) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Pillow's `Image.resize(size, BICUBIC)` of an 8-bit image (horizontal pass over the rows the vertical
/// pass needs, rounded to 8 bits, then the vertical pass).
fn pil_resize(img: &Pixels, width: usize, height: usize) -> Pixels {
    let ch = img.channels;
    let (hb, hk, hks) = pil_coefficients(img.width, width);
    let (vb, vk, vks) = pil_coefficients(img.height, height);
    let first = vb.first().map_or(0, |b| b.0);
    let last = vb.last().map_or(0, |b| b.0 + b.1);
    let rows = last - first;
    let mut tmp = vec![0u8; width * rows * ch];
    for y in 0..rows {
        let src = &img.data[(y + first) * img.width * ch..(y + first + 1) * img.width * ch];
        for (xx, &(xmin, xmax)) in hb.iter().enumerate() {
            let k = &hk[xx * hks..xx * hks + xmax];
            for c in 0..ch {
                let mut acc: i64 = 1 << (PRECISION_BITS - 1);
                for (x, &w) in k.iter().enumerate() {
                    acc += src[(xmin + x) * ch + c] as i64 * w as i64;
                }
                tmp[(y * width + xx) * ch + c] = clip8(acc);
            }
        }
    }
    let mut out = vec![0u8; width * height * ch];
    for (yy, &(ymin, ymax)) in vb.iter().enumerate() {
        let k = &vk[yy * vks..yy * vks + ymax];
        for x in 0..width {
            for c in 0..ch {
                let mut acc: i64 = 1 << (PRECISION_BITS - 1);
                for (y, &w) in k.iter().enumerate() {
                    acc += tmp[((ymin - first + y) * width + x) * ch + c] as i64 * w as i64;
                }
                out[(yy * width + x) * ch + c] = clip8(acc);
            }
        }
    }
    Pixels { width, height, channels: ch, data: out }
}

/// Pillow's RGBA -> RGBa (premultiply) and back, around a resize.
fn premultiply(img: &mut Pixels) {
    for px in img.data.chunks_mut(4) {
        let a = px[3] as u32;
        for v in &mut px[..3] {
            let t = *v as u32 * a + 128;
            *v = ((t + (t >> 8)) >> 8) as u8;
        }
    }
}

fn unpremultiply(img: &mut Pixels) {
    for px in img.data.chunks_mut(4) {
        let a = px[3] as u32;
        for v in &mut px[..3] {
            if a != 0 && a != 255 {
                *v = (255 * *v as u32 / a).min(255) as u8;
            }
        }
    }
}

fn decode(path: &Path, max_side: u32) -> Result<DynamicImage> {
    let reader = ImageReader::open(path).map_err(|e| Error::io(path, e))?;
    decode_reader(reader, &format!("image {}", path.display()), max_side)
}

/// Decode an image from any source; `what` names it in errors.
fn decode_reader<R: std::io::BufRead + std::io::Seek>(
    reader: ImageReader<R>,
    what: &str,
    max_side: u32,
) -> Result<DynamicImage> {
    let what = || what.to_string();
    let reader = reader.with_guessed_format().map_err(|e| Error::invalid(what(), format!("cannot read: {e}")))?;
    if reader.format().is_none() {
        return Err(Error::invalid(what(), "not a PNG or JPEG file (unrecognised contents)"));
    }
    let mut reader = reader;
    let mut limits = Limits::default();
    limits.max_image_width = Some(max_side);
    limits.max_image_height = Some(max_side);
    reader.limits(limits);
    reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => Error::invalid(
            what(),
            format!("larger than {max_side} pixels on a side; shrink it first (MoonViT would resize it anyway)"),
        ),
        other => Error::invalid(what(), format!("cannot decode ({other}); the file may be corrupt or truncated")),
    })
}

/// The processor.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageProcessor {
    /// Its settings.
    pub config: ProcessorConfig,
}

impl ImageProcessor {
    /// A processor with `config`.
    pub fn new(config: ProcessorConfig) -> Self {
        ImageProcessor { config }
    }

    /// The model directory's `preprocessor_config.json` (defaults when there is none).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let p = dir.join("preprocessor_config.json");
        Ok(ImageProcessor::new(if p.exists() { ProcessorConfig::from_file(&p)? } else { ProcessorConfig::default() }))
    }

    /// Decode and process an image file.
    pub fn process_file(&self, path: impl AsRef<Path>) -> Result<ProcessedImage> {
        let path = path.as_ref();
        let img = decode(path, self.config.max_side)?;
        self.process(&img).map_err(|e| Error::invalid(format!("image {}", path.display()), e.to_string()))
    }

    /// Decode and process an encoded image held in memory (a PNG or JPEG file's bytes, as Parquet
    /// datasets store images); `name` says where it came from in errors.
    pub fn process_bytes(&self, bytes: &[u8], name: &str) -> Result<ProcessedImage> {
        let reader = ImageReader::new(std::io::Cursor::new(bytes));
        let img = decode_reader(reader, name, self.config.max_side)?;
        self.process(&img).map_err(|e| Error::invalid(name.to_string(), e.to_string()))
    }

    /// Process a decoded image.
    pub fn process(&self, img: &DynamicImage) -> Result<ProcessedImage> {
        let c = &self.config;
        let (w, h) = (img.width() as usize, img.height() as usize);
        if w == 0 || h == 0 {
            return Err(Error::invalid("image", "has no pixels"));
        }
        let p = c.patch_size;
        let mut px = if img.color().has_alpha() {
            Pixels { width: w, height: h, channels: 4, data: img.to_rgba8().into_raw() }
        } else {
            Pixels { width: w, height: h, channels: 3, data: img.to_rgb8().into_raw() }
        };
        let patches = (w / p) * (h / p);
        if patches > c.in_token_limit {
            let scale = (c.in_token_limit as f64 / patches as f64).sqrt();
            let (nw, nh) = ((w as f64 * scale) as usize, (h as f64 * scale) as usize);
            if nw == 0 || nh == 0 {
                return Err(Error::invalid(
                    "image",
                    format!("{w}x{h} pixels: fitting {} patches would leave a side of zero pixels", c.in_token_limit),
                ));
            }
            if px.channels == 4 {
                premultiply(&mut px);
            }
            px = pil_resize(&px, nw, nh);
            if px.channels == 4 {
                unpremultiply(&mut px);
            }
        }
        let (w, h) = (px.width, px.height);
        let (mh, mw) = (c.merge_kernel_size[0] * p, c.merge_kernel_size[1] * p);
        let (pw, ph) = (w.div_ceil(mw) * mw, h.div_ceil(mh) * mh);
        let grid = (ph / p, pw / p);
        if grid.0 >= c.max_grid_side || grid.1 >= c.max_grid_side {
            return Err(Error::invalid(
                "image",
                format!(
                    "{w}x{h} pixels make a {}x{} patch grid, beyond MoonViT's {m}x{m}; the aspect ratio is too extreme (a side over {px} pixels)",
                    grid.0,
                    grid.1,
                    m = c.max_grid_side,
                    px = c.max_grid_side * p
                ),
            ));
        }
        // Normalised value of channel `ch` at pixel (x, y) of the padded image.
        let black: [f32; 3] = std::array::from_fn(|ch| (0.0 - c.image_mean[ch]) / c.image_std[ch]);
        let value = |x: usize, y: usize, ch: usize| -> f32 {
            if x >= w || y >= h {
                return black[ch];
            }
            let v = px.data[(y * w + x) * px.channels + ch] as f32 / 255.0;
            (v - c.image_mean[ch]) / c.image_std[ch]
        };
        let mut pixel_values = Vec::with_capacity(grid.0 * grid.1 * 3 * p * p);
        for gy in 0..grid.0 {
            for gx in 0..grid.1 {
                for ch in 0..3 {
                    for py in 0..p {
                        for pxx in 0..p {
                            pixel_values.push(value(gx * p + pxx, gy * p + py, ch));
                        }
                    }
                }
            }
        }
        Ok(ProcessedImage { pixel_values, grid })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pillow_coefficients_sum_to_one_in_fixed_point() {
        for (i, o) in [(150, 143), (100, 95), (10, 3), (7, 7)] {
            let (bounds, kk, ks) = pil_coefficients(i, o);
            for (xx, &(_, n)) in bounds.iter().enumerate() {
                let s: i64 = kk[xx * ks..xx * ks + n].iter().map(|&k| k as i64).sum();
                assert!((s - (1 << PRECISION_BITS)).abs() <= n as i64, "{i}->{o} row {xx}: {s}");
            }
        }
    }

    #[test]
    fn bad_configs_are_named() {
        let e = ProcessorConfig::from_json(&serde_json::json!({"image_std": [0.5, 0.0, 0.5]})).unwrap_err();
        assert!(e.to_string().contains("image_std"));
        let e = ProcessorConfig::from_json(&serde_json::json!({"pad_input": false})).unwrap_err();
        assert!(e.to_string().contains("pad_input"));
    }
}
