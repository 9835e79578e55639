//! Kimi-VL against the references of tools/kimi_vl_fixtures.py (fixture `kimi_vl_tiny`: MoonViT with
//! hidden 32, 2 heads, 2 blocks and an 8x8 position table; the projector; a 2-layer DeepSeek-V3 with grouped
//! sigmoid routing; a 379-token tiktoken vocabulary with Kimi's special tokens). The references are a
//! PyTorch MoonViT written in the script from the published architecture (cross-checked there against
//! transformers' Kimi-K2.5 vision tower to 2.4e-6) and transformers' `DeepseekV3ForCausalLM`.
//! Run in release: `cargo test --release -p rlox-vlm --test kimi_vl`.
//!
//! Tolerances: features and logits within 1e-4 absolute (f32 both sides); pixel values exact for PNG (the
//! resize included), within 6 grey levels for JPEG (different decoders).

use rlox_lm::generate::{generate, GenerationConfig};
use rlox_lm::{ForwardInput, LmTokenizer};
use rlox_nn::burn::module::{ModuleVisitor, Param};
use rlox_nn::burn::tensor::activation::log_softmax;
use rlox_nn::{Int, Module, Tensor, TensorData};
use rlox_vlm::chat::{encode_with_images, render, Message};
use rlox_vlm::{load_kimi_vl, param_counts, save_kimi_vl, ImageProcessor, ImagePrompts, KimiVl, KimiVlConfig};
use safetensors::SafeTensors;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kimi_vl_tiny")
}

fn meta() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture().join("reference.json")).unwrap()).unwrap()
}

/// The reference tensors, flattened, with their shapes.
fn references() -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(fixture().join("reference.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let v = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            (name, (view.shape().to_vec(), v))
        })
        .collect()
}

fn model() -> KimiVl {
    load_kimi_vl(fixture(), &rlox_nn::cpu_device().unwrap()).unwrap()
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn image_path(key: &str) -> PathBuf {
    fixture().join(meta()["images"][key].as_str().unwrap())
}

fn processor() -> ImageProcessor {
    ImageProcessor::from_dir(&fixture()).unwrap()
}

#[test]
fn processor_pixel_values_and_grids_equal_the_reference() {
    let refs = references();
    let m = meta();
    for key in ["a", "b", "c", "d", "e"] {
        let img = processor().process_file(image_path(key)).unwrap();
        let grid: Vec<usize> =
            m["grids"][key].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
        assert_eq!(vec![img.grid.0, img.grid.1], grid, "{key}");
        let (_, want) = &refs[&format!("pixel_values.{key}")];
        // One grey level is 2/255 after normalising with mean 0.5 and std 0.5.
        let levels = max_diff(&img.pixel_values, want) * 255.0 / 2.0;
        let mean = img.pixel_values.iter().zip(want).map(|(a, b)| (a - b).abs()).sum::<f32>() / want.len() as f32
            * 255.0
            / 2.0;
        println!("{key}: grid {:?}, difference max {levels:.2}, mean {mean:.3} grey levels", img.grid);
        if key == "c" {
            // zune-jpeg against libjpeg-turbo: chroma upsampling and IDCT rounding differ.
            assert!(levels <= 16.01 && mean < 1.0, "JPEG {key}: max {levels}, mean {mean}");
        } else {
            assert_eq!(img.pixel_values, *want, "{key}: PNG pixels must be exact (resize included)");
        }
    }
}

#[test]
fn vision_blocks_merged_and_projected_features_match() {
    let refs = references();
    let m = model();
    let keys = ["a", "b", "d"];
    let imgs: Vec<_> = keys.iter().map(|k| processor().process_file(image_path(k)).unwrap()).collect();
    let refs_of = |name: &str| &refs[name].1;
    let out = m.vision(&imgs.iter().collect::<Vec<_>>()).unwrap();
    let mut worst = 0.0f32;
    for (i, block) in out.blocks.iter().enumerate() {
        worst = worst.max(max_diff(&to_vec(block.clone()), refs_of(&format!("vision.packed.block{i}"))));
    }
    worst = worst.max(max_diff(&to_vec(out.last.clone()), refs_of("vision.packed.final")));
    worst = worst.max(max_diff(&to_vec(out.merged.clone()), refs_of("vision.packed.merged")));
    let projected = to_vec(m.multi_modal_projector.forward(out.merged));
    worst = worst.max(max_diff(&projected, refs_of("vision.packed.projected")));
    println!("packed a+b+d: max |feature - reference| over blocks, final, merged, projected = {worst:.2e}");
    assert!(worst < 1e-4, "{worst}");
}

#[test]
fn packed_images_equal_each_alone() {
    let refs = references();
    let m = model();
    let keys = ["a", "b", "d"];
    let imgs: Vec<_> = keys.iter().map(|k| processor().process_file(image_path(k)).unwrap()).collect();
    let packed = to_vec(m.image_features(&imgs.iter().collect::<Vec<_>>()).unwrap());
    let h = m.config.text.hidden_size;
    let mut at = 0;
    for (k, img) in keys.iter().zip(&imgs) {
        let alone = to_vec(m.image_features(&[img]).unwrap());
        let n = alone.len();
        let d_pack = max_diff(&packed[at..at + n], &alone);
        let d_ref = max_diff(&alone, &refs[&format!("vision.{k}.projected")].1);
        println!("{k}: packed vs alone {d_pack:.2e}, alone vs reference {d_ref:.2e}");
        assert!(d_pack < 1e-5 && d_ref < 1e-4, "{k}: {d_pack} {d_ref}");
        assert_eq!(n % h, 0);
        at += n;
    }
    assert_eq!(at, packed.len());
}

fn prompt(m: &Value, name: &str) -> (Vec<u32>, Vec<String>, Vec<u32>) {
    let p = &m["prompts"][name];
    let ids = p["ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
    let imgs = p["images"].as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect();
    let greedy = p["greedy"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
    (ids, imgs, greedy)
}

#[test]
fn whole_model_logits_and_greedy_generation_match() {
    let refs = references();
    let m = model();
    let meta = meta();
    let tokenizer = LmTokenizer::from_dir(fixture()).unwrap();
    for name in ["one_image", "two_images"] {
        let (ids, keys, greedy) = prompt(&meta, name);
        let images: Vec<_> = keys.iter().map(|k| processor().process_file(image_path(k)).unwrap()).collect();
        // The prompt as rlox builds it from the chat format equals the reference's ids.
        let text = meta["prompts"][name]["text"].as_str().unwrap();
        let counts: Vec<usize> = images.iter().map(|i| i.num_tokens([2, 2])).collect();
        let mine = encode_with_images(&tokenizer, text, m.config.media_placeholder_token_id, &counts).unwrap();
        assert_eq!(mine, ids, "{name}: prompt ids");
        let logits =
            m.forward(&ForwardInput::dense(vec![ids.clone()]), std::slice::from_ref(&images), None).unwrap().logits;
        let d = max_diff(&to_vec(logits), &refs[&format!("logits.{name}")].1);
        println!("{name}: {} tokens, max |logit - reference| = {d:.2e}", ids.len());
        assert!(d < 1e-4, "{name}: {d}");
        let prompts = ImagePrompts::new(&m, std::slice::from_ref(&ids), std::slice::from_ref(&images)).unwrap();
        for use_cache in [true, false] {
            let cfg = GenerationConfig { max_new_tokens: 12, use_cache, ..Default::default() };
            let out = generate(&prompts, std::slice::from_ref(&ids), &cfg, None).unwrap().remove(0);
            assert_eq!(out.token_ids, greedy, "{name}: greedy, use_cache {use_cache}");
        }
    }
    let first = render(&[Message::user_with_images(1, "What colour is this image?")], true);
    assert_eq!(first, meta["prompts"]["one_image"]["text"].as_str().unwrap());
}

#[test]
fn batched_image_prompts_equal_single_runs() {
    let m = model();
    let meta = meta();
    let rows: Vec<(Vec<u32>, Vec<rlox_vlm::ProcessedImage>)> = ["one_image", "two_images"]
        .iter()
        .map(|name| {
            let (ids, keys, _) = prompt(&meta, name);
            (ids, keys.iter().map(|k| processor().process_file(image_path(k)).unwrap()).collect())
        })
        .collect();
    let ids: Vec<Vec<u32>> = rows.iter().map(|r| r.0.clone()).collect();
    let images: Vec<_> = rows.iter().map(|r| r.1.clone()).collect();
    let cfg = GenerationConfig { max_new_tokens: 8, temperature: 0.8, seed: 9, ..Default::default() };
    let batch = generate(&ImagePrompts::new(&m, &ids, &images).unwrap(), &ids, &cfg, None).unwrap();
    for (i, (p, imgs)) in rows.iter().enumerate() {
        let one = GenerationConfig { stream_offset: i as u64, ..cfg.clone() };
        let single = ImagePrompts::new(&m, std::slice::from_ref(p), std::slice::from_ref(imgs)).unwrap();
        let out = generate(&single, std::slice::from_ref(p), &one, None).unwrap().remove(0);
        assert_eq!(batch[i].token_ids, out.token_ids, "row {i}");
    }
}

#[test]
fn native_tiktoken_reader_matches_tiktoken() {
    let tokenizer = LmTokenizer::from_dir(fixture()).unwrap();
    let meta = meta();
    for s in meta["tokenizer"]["samples"].as_array().unwrap() {
        let text = s["text"].as_str().unwrap();
        let want: Vec<u32> = s["ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        assert_eq!(tokenizer.encode(text, false).unwrap(), want, "{text:?}");
        assert_eq!(tokenizer.decode(&want, false).unwrap(), text);
    }
    let base = meta["tokenizer"]["base_vocab"].as_u64().unwrap() as u32;
    assert_eq!(tokenizer.token_to_id("[BOS]"), Some(base));
    assert_eq!(
        tokenizer.token_to_id("<|media_pad|>"),
        Some(meta["media_placeholder_token_id"].as_u64().unwrap() as u32)
    );
    assert_eq!(tokenizer.vocab_size(), base as usize + 258);
    assert_eq!(
        tokenizer.eos_token_ids,
        vec![tokenizer.token_to_id("[EOS]").unwrap(), tokenizer.token_to_id("<|im_end|>").unwrap()]
    );
}

struct GradCheck<'a> {
    grads: &'a rlox_nn::Grads,
    path: Vec<String>,
    without: Vec<String>,
}

impl ModuleVisitor for GradCheck<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let g = self.grads.get::<D>(param.id).map(to_vec);
        if !g.is_some_and(|g| g.iter().all(|x| x.is_finite()) && g.iter().any(|&x| x != 0.0)) {
            self.without.push(self.path.join("."));
        }
    }
}

#[test]
fn training_on_image_and_text_reaches_every_parameter() {
    let device = rlox_nn::train_device(rlox_nn::DeviceKind::Cpu, 0).unwrap();
    let m = load_kimi_vl(fixture(), &device).unwrap();
    let (ids, keys, greedy) = prompt(&meta(), "two_images");
    let images: Vec<_> = keys.iter().map(|k| processor().process_file(image_path(k)).unwrap()).collect();
    let mut all = ids.clone();
    all.extend(&greedy);
    let t = all.len();
    let out = m.forward(&ForwardInput::dense(vec![all[..t - 1].to_vec()]), &[images], None).unwrap();
    let targets: Vec<i64> = all[1..].iter().map(|&x| x as i64).collect();
    let targets = Tensor::<3, Int>::from_data(TensorData::new(targets, [1, t - 1, 1]), &device);
    let loss = log_softmax(out.logits, 2).gather(2, targets).mean().neg();
    let grads = rlox_nn::backward(&loss, &m);
    let mut check = GradCheck { grads: &grads, path: Vec::new(), without: Vec::new() };
    m.visit(&mut check);
    // Everything but the routers' correction biases (buffers) and the routed experts no token chose here
    // gets a gradient: the vision tower and the projector through the image features in the prompt.
    let unreached = |n: &String| n.ends_with("e_score_correction_bias") || n.contains(".mlp.experts.");
    assert!(check.without.iter().all(unreached), "{:?}", check.without);
    assert!(check.without.len() < 20, "{:?}", check.without);
}

fn tensor_names(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let mut names: Vec<String> =
        SafeTensors::deserialize(&bytes).unwrap().names().into_iter().map(String::from).collect();
    names.sort();
    names
}

#[test]
fn save_reload_and_bf16_shards() {
    let dir = tempfile::tempdir().unwrap();
    let m = model();
    let out = dir.path().join("saved");
    save_kimi_vl(&m, &out, Some(&fixture()), rlox_lm::StorageDtype::F32, rlox_lm::hf::DEFAULT_SHARD_BYTES).unwrap();
    assert_eq!(tensor_names(&out.join("model.safetensors")), tensor_names(&fixture().join("model.safetensors")));
    let (ids, keys, _) = prompt(&meta(), "one_image");
    let images: Vec<_> = keys.iter().map(|k| processor().process_file(image_path(k)).unwrap()).collect();
    let input = ForwardInput::dense(vec![ids]);
    let again = load_kimi_vl(&out, &rlox_nn::cpu_device().unwrap()).unwrap();
    let a = to_vec(m.forward(&input, std::slice::from_ref(&images), None).unwrap().logits);
    let b = to_vec(again.forward(&input, std::slice::from_ref(&images), None).unwrap().logits);
    assert_eq!(a, b);
    assert!(LmTokenizer::from_dir(&out).is_ok() && out.join("preprocessor_config.json").exists());

    // The same weights rounded to bf16: once stored as bf16 in two shards with an index, once as f32.
    let bytes = std::fs::read(fixture().join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut bf16: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut f32s: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, view) in st.tensors() {
        let vals: Vec<f32> =
            view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        // Round to nearest even, as torch's .to(torch.bfloat16).
        let halves: Vec<u16> = vals
            .iter()
            .map(|v| {
                let b = v.to_bits();
                ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
            })
            .collect();
        bf16.push((name.clone(), view.shape().to_vec(), halves.iter().flat_map(|h| h.to_le_bytes()).collect()));
        let back: Vec<u8> = halves.iter().flat_map(|&h| f32::from_bits((h as u32) << 16).to_le_bytes()).collect();
        f32s.push((name, view.shape().to_vec(), back));
    }
    let write = |path: &Path, items: &[(String, Vec<usize>, Vec<u8>)], dtype: safetensors::Dtype| {
        let views: Vec<(String, safetensors::tensor::TensorView)> = items
            .iter()
            .map(|(n, s, d)| (n.clone(), safetensors::tensor::TensorView::new(dtype, s.clone(), d).unwrap()))
            .collect();
        std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
    };
    let sharded = dir.path().join("bf16");
    let rounded = dir.path().join("rounded");
    for d in [&sharded, &rounded] {
        std::fs::create_dir_all(d).unwrap();
        for f in ["config.json", "preprocessor_config.json", "tiktoken.model", "tokenizer_config.json"] {
            std::fs::copy(fixture().join(f), d.join(f)).unwrap();
        }
    }
    let (vision, text): (Vec<_>, Vec<_>) = bf16.into_iter().partition(|(n, _, _)| !n.starts_with("language_model."));
    write(&sharded.join("model-00001-of-00002.safetensors"), &vision, safetensors::Dtype::BF16);
    write(&sharded.join("model-00002-of-00002.safetensors"), &text, safetensors::Dtype::BF16);
    let mut map = serde_json::Map::new();
    for (n, _, _) in &vision {
        map.insert(n.clone(), "model-00001-of-00002.safetensors".into());
    }
    for (n, _, _) in &text {
        map.insert(n.clone(), "model-00002-of-00002.safetensors".into());
    }
    std::fs::write(sharded.join("model.safetensors.index.json"), serde_json::json!({"weight_map": map}).to_string())
        .unwrap();
    write(&rounded.join("model.safetensors"), &f32s, safetensors::Dtype::F32);
    let cpu = rlox_nn::cpu_device().unwrap();
    let from_bf16 = to_vec(
        load_kimi_vl(&sharded, &cpu).unwrap().forward(&input, std::slice::from_ref(&images), None).unwrap().logits,
    );
    let from_f32 = to_vec(
        load_kimi_vl(&rounded, &cpu).unwrap().forward(&input, std::slice::from_ref(&images), None).unwrap().logits,
    );
    assert_eq!(from_bf16, from_f32, "bf16 shards must decode to exactly the rounded f32 weights");
    // rlox's own bf16 writer rounds as torch does: reloading what it wrote gives the same logits again.
    let saved_bf16 = dir.path().join("saved_bf16");
    save_kimi_vl(&m, &saved_bf16, Some(&fixture()), rlox_lm::StorageDtype::BF16, 60_000).unwrap();
    let shards = std::fs::read_dir(&saved_bf16)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("model-"));
    assert!(shards.count() >= 3, "60 kB shards of a 250 kB bf16 model");
    assert!(saved_bf16.join("model.safetensors.index.json").exists() && !saved_bf16.join("model.safetensors").exists());
    let again = load_kimi_vl(&saved_bf16, &cpu).unwrap();
    let from_saved = to_vec(again.forward(&input, std::slice::from_ref(&images), None).unwrap().logits);
    assert_eq!(from_saved, from_f32, "rlox's bf16 shards must hold torch's rounding of every weight");
    assert!(max_diff(&from_bf16, &a) > 0.0, "rounding to bf16 should change something");
}

/// Kimi-VL-A3B-Instruct's published `config.json` (the fields that set the shapes).
fn kimi_vl_a3b() -> Value {
    serde_json::json!({
        "model_type": "kimi_vl", "architectures": ["KimiVLForConditionalGeneration"],
        "media_placeholder_token_id": 163605,
        "vision_config": {"model_type": "moonvit", "patch_size": 14, "init_pos_emb_height": 64,
            "init_pos_emb_width": 64, "num_attention_heads": 16, "num_hidden_layers": 27, "hidden_size": 1152,
            "intermediate_size": 4304, "merge_kernel_size": [2, 2]},
        "text_config": {"model_type": "deepseek_v3", "vocab_size": 163840, "hidden_size": 2048,
            "intermediate_size": 11264, "moe_intermediate_size": 1408, "num_hidden_layers": 27,
            "num_attention_heads": 16, "num_key_value_heads": 16, "n_shared_experts": 2, "n_routed_experts": 64,
            "routed_scaling_factor": 2.446, "kv_lora_rank": 512, "q_lora_rank": null, "qk_rope_head_dim": 64,
            "v_head_dim": 128, "qk_nope_head_dim": 128, "topk_method": "noaux_tc", "n_group": 1, "topk_group": 1,
            "num_experts_per_tok": 6, "moe_layer_freq": 1, "first_k_dense_replace": 1, "norm_topk_prob": true,
            "scoring_func": "sigmoid", "hidden_act": "silu", "max_position_embeddings": 131072,
            "rms_norm_eps": 1e-5, "rope_theta": 800000.0, "rope_scaling": null, "tie_word_embeddings": false,
            "bos_token_id": 163584, "eos_token_id": 163585}
    })
}

#[test]
fn full_size_parameter_counts_without_weights() {
    let config = KimiVlConfig::from_hf_json(&kimi_vl_a3b()).unwrap();
    let c = param_counts(&config);
    println!("Kimi-VL-A3B: {c:?}");
    // Stated: about 16B in all, 2.8B activated in the language model, about 400M in MoonViT.
    assert_eq!(c.total, c.vision + c.projector + c.text);
    assert!((15_500_000_000..16_500_000_000).contains(&c.total), "{}", c.total);
    assert!((2_600_000_000..3_100_000_000).contains(&c.text_active), "{}", c.text_active);
    assert!((380_000_000..440_000_000).contains(&c.vision), "{}", c.vision);
    // Exact, from the shapes: 27 blocks of 4*1152^2 + 2*1152*4304 weights plus biases and norms, the
    // 64x64x1152 table and the 14x14 RGB patch convolution.
    let block = 4 * 1152 * 1152 + 4 * 1152 + 2 * 1152 * 4304 + 4304 + 1152 + 4 * 1152;
    assert_eq!(c.vision, (27 * block + 2 * 1152 + 64 * 64 * 1152 + 1152 * 3 * 14 * 14 + 1152) as u64);
    assert_eq!(c.projector, (2 * 1152 + 4608 * 4608 + 4608 + 4608 * 2048 + 2048) as u64);
}

#[test]
fn bad_inputs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = processor();
    // A corrupt image file.
    let e = p.process_file(fixture().join("corrupt.png")).unwrap_err().to_string();
    assert!(e.contains("corrupt.png") && e.contains("cannot decode"), "{e}");
    // A missing file.
    let e = p.process_file(dir.path().join("nope.png")).unwrap_err().to_string();
    assert!(e.contains("nope.png"), "{e}");
    // An image with a side beyond MoonViT's 512-patch range within Kimi-VL's 4096-patch budget.
    let strip = dir.path().join("strip.png");
    image::RgbImage::new(8000, 14).save(&strip).unwrap();
    let kimi = ImageProcessor::new(rlox_vlm::ProcessorConfig::default());
    let e = kimi.process_file(&strip).unwrap_err().to_string();
    assert!(e.contains("strip.png") && e.contains("patch grid") && e.contains("512"), "{e}");
    // An image larger than the decoder's limit.
    let mut small = p.clone();
    small.config.max_side = 100;
    let e = small.process_file(image_path("d")).unwrap_err().to_string();
    assert!(e.contains("d_large.png") && e.contains("100 pixels"), "{e}");
    // Placeholders that do not match the image's features.
    let m = model();
    let (ids, keys, _) = prompt(&meta(), "one_image");
    let images: Vec<_> = keys.iter().map(|k| p.process_file(image_path(k)).unwrap()).collect();
    let short: Vec<u32> = {
        let media = m.config.media_placeholder_token_id;
        let at = ids.iter().position(|&i| i == media).unwrap();
        ids.iter().enumerate().filter(|&(i, _)| i != at).map(|(_, &x)| x).collect()
    };
    let e = m.forward(&ForwardInput::dense(vec![short]), std::slice::from_ref(&images), None).unwrap_err().to_string();
    assert!(e.contains("5 image placeholder tokens") && e.contains("give 6 features"), "{e}");
    let tokenizer = LmTokenizer::from_dir(fixture()).unwrap();
    let e = encode_with_images(&tokenizer, "no image here", m.config.media_placeholder_token_id, &[6]).unwrap_err();
    assert!(e.to_string().contains("0 image placeholders"), "{e}");
    // A config with an unsupported router.
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(fixture().join("config.json")).unwrap()).unwrap();
    v["text_config"]["topk_method"] = "group_limited_greedy".into();
    let e = KimiVlConfig::from_hf_json(&v).unwrap_err().to_string();
    assert!(e.contains("topk_method") && e.contains("group_limited_greedy"), "{e}");
    // Weights that do not fit the config.
    let d = dir.path().join("wide");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(fixture().join("model.safetensors"), d.join("model.safetensors")).unwrap();
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(fixture().join("config.json")).unwrap()).unwrap();
    v["vision_config"]["intermediate_size"] = 40.into();
    std::fs::write(d.join("config.json"), v.to_string()).unwrap();
    let e = load_kimi_vl(&d, &rlox_nn::cpu_device().unwrap()).unwrap_err().to_string();
    assert!(e.contains("vision_tower.encoder.blocks.0.mlp.fc0.weight") && e.contains("[48, 32]"), "{e}");
}

#[test]
fn cli_functions_return_json() {
    let mut args =
        rlox_vlm::commands::VlmGenerateArgs::new(fixture(), vec![image_path("a")], "What colour is this image?");
    args.max_new_tokens = 12;
    let v = rlox_vlm::commands::generate_json(&args).unwrap();
    let (_, _, greedy) = prompt(&meta(), "one_image");
    let got: Vec<u32> = v["token_ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
    // Greedy until EOS (or 12 tokens): a prefix of the reference continuation.
    assert!(!got.is_empty() && greedy.starts_with(&got), "{got:?} vs {greedy:?}");
    assert_eq!(v["images"][0]["grid"], serde_json::json!([4, 6]));
    assert_eq!(v["images"][0]["tokens"], 6);
    let s = rlox_vlm::commands::score_json(
        &fixture(),
        &[image_path("a")],
        "What colour is this image?",
        "The image is red.",
        false,
    )
    .unwrap();
    let n = s["token_ids"].as_array().unwrap().len();
    assert!(n > 0 && s["logprobs"].as_array().unwrap().len() == n && s["total_logprob"].as_f64().unwrap() < 0.0);
}
