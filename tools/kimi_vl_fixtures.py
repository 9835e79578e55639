#!/usr/bin/env python3
"""Tiny random DeepSeek-V3 and Kimi-VL fixtures for rlox's parity tests, with their reference outputs.

Setup (CPU only; the versions used for the committed fixtures are in brackets):
    python3 -m venv tools/.venv-kimi
    tools/.venv-kimi/bin/pip install torch transformers safetensors numpy pillow tiktoken   # [2.15, 5.25, 0.8, 2.4, 13.0, 0.14]
    tools/.venv-kimi/bin/python tools/kimi_vl_fixtures.py

Writes
* crates/rlox-lm/tests/fixtures/deepseek_v3 and deepseek_v3_yarn: `DeepseekV3ForCausalLM` from transformers
  (MLA without / with a query LoRA, grouped sigmoid routing with a random `e_score_correction_bias` that is
  checked to change the experts chosen, shared experts, a dense first layer; the second fixture adds YaRN RoPE
  scaling with `mscale_all_dim`), saved with `save_pretrained`, plus reference.json (prompt ids, the logits of
  each prompt, 32 greedy tokens).
* crates/rlox-vlm/tests/fixtures/kimi_vl_tiny: a Kimi-VL in the published checkpoint layout (`vision_tower.*`,
  `multi_modal_projector.*`, `language_model.model.*`, `language_model.lm_head.weight`) with a tiny MoonViT
  (hidden 32, 2 heads, 2 blocks, 8x8 position table), the projector and a tiny DeepSeek-V3; a tiny tiktoken
  vocabulary (`tiktoken.model`, Kimi's special tokens in tokenizer_config.json); test images; reference.json
  (token ids, grids, greedy tokens) and reference.safetensors (pixel values, per-block vision features, merged
  and projected features, logits).

MoonViT and the projector have no implementation in transformers, so `MoonViTReference` below is written here
from the published architecture (Kimi-VL technical report, arXiv 2504.07491, and the model's config): patch
embedding by a stride-14 convolution, a learned 2-D position table resampled bicubically to each image's grid,
2-D rotary embeddings on interleaved (column, row) frequency pairs, pre-LN blocks with non-causal attention per
image, a final LayerNorm and a 2x2 patch merger; the projector is LayerNorm per sub-patch, Linear, exact GELU,
Linear. The script cross-checks it against transformers' native Kimi-K2.5 vision tower, which shares the
architecture up to a layout change (q/k/v split out of `wqkv`, rotary pairs in half-split order), and prints the
largest difference.

`--remote DIR` additionally loads the fixture with the published Kimi-VL remote code (configuration_kimi_vl.py,
modeling_kimi_vl.py copied into DIR, which stays outside the repository) through `trust_remote_code=True` and
compares its vision features and logits with the references written here.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import math
import os
import shutil
from collections import Counter
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
LM_FIXTURES = os.path.join(ROOT, "crates", "rlox-lm", "tests", "fixtures")
VLM_FIXTURE = os.path.join(ROOT, "crates", "rlox-vlm", "tests", "fixtures", "kimi_vl_tiny")

torch.set_default_dtype(torch.float32)

# --------------------------------------------------------------------------------------------------------------
# DeepSeek-V3 decoders
# --------------------------------------------------------------------------------------------------------------

DS_BASE: dict[str, Any] = {
    "vocab_size": 96,
    "hidden_size": 32,
    "intermediate_size": 64,
    "moe_intermediate_size": 16,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "q_lora_rank": None,
    "kv_lora_rank": 16,
    "qk_nope_head_dim": 8,
    "qk_rope_head_dim": 8,
    "v_head_dim": 12,
    "n_routed_experts": 8,
    "n_shared_experts": 1,
    "num_experts_per_tok": 3,
    "n_group": 4,
    "topk_group": 2,
    "first_k_dense_replace": 1,
    "norm_topk_prob": True,
    "routed_scaling_factor": 2.5,
    "max_position_embeddings": 128,
    "rms_norm_eps": 1e-6,
    "initializer_range": 0.2,
    "tie_word_embeddings": False,
    "bos_token_id": None,
    "eos_token_id": None,
    "pad_token_id": 0,
    "rope_interleave": True,
}

DS_PROMPTS = [
    [5, 17, 42, 8, 90, 33],
    [71, 2, 64, 64, 12, 9, 55, 31, 7, 80, 19],
    [int(x) for x in np.random.default_rng(3).integers(1, 96, size=40)],
]


def randomize_(model: nn.Module, generator: torch.Generator) -> None:
    """Norm weights around one and router correction biases at the scale of the sigmoid scores, so that every
    parameter matters (transformers initialises norms to one and the correction bias to zero)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=generator))
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.copy_(0.3 * torch.randn(b.shape, generator=generator))


def greedy_no_cache(model: nn.Module, ids: list[int], n: int) -> tuple[list[int], float]:
    """Greedy continuation by full recomputation, and the smallest gap between the best two logits."""
    ids = list(ids)
    out: list[int] = []
    margin = float("inf")
    for _ in range(n):
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, -1]
        top = torch.topk(logits, 2).values
        margin = min(margin, float(top[0] - top[1]))
        t = int(torch.argmax(logits))
        ids.append(t)
        out.append(t)
    return out, margin


def router_bias_changes_choices(model: nn.Module, prompts: list[list[int]]) -> int:
    """Count the tokens whose chosen experts differ when every router's correction bias is zeroed."""
    chosen: list[torch.Tensor] = []

    def hook(_m: nn.Module, _i: Any, out: Any) -> None:
        chosen.append(torch.sort(out[2], dim=-1).values)

    gates = [m for n, m in model.named_modules() if n.endswith("mlp.gate")]
    handles = [g.register_forward_hook(hook) for g in gates]
    with torch.no_grad():
        for p in prompts:
            model(torch.tensor([p]))
        with_bias = torch.cat(chosen)
        chosen.clear()
        saved = [g.e_score_correction_bias.clone() for g in gates]
        for g in gates:
            g.e_score_correction_bias.zero_()
        for p in prompts:
            model(torch.tensor([p]))
        without = torch.cat(chosen)
        for g, s in zip(gates, saved):
            g.e_score_correction_bias.copy_(s)
    for h in handles:
        h.remove()
    return int((with_bias != without).any(dim=-1).sum())


def build_deepseek(name: str, overrides: dict[str, Any], seed: int) -> None:
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

    torch.manual_seed(seed)
    cfg = DeepseekV3Config(**{**DS_BASE, **overrides})
    cfg._attn_implementation = "eager"
    model = DeepseekV3ForCausalLM(cfg).eval()
    randomize_(model, torch.Generator().manual_seed(seed + 1))
    changed = router_bias_changes_choices(model, DS_PROMPTS)
    assert changed > 0, "the correction bias must change some routing choices"
    out = os.path.join(LM_FIXTURES, name)
    shutil.rmtree(out, ignore_errors=True)
    model.save_pretrained(out, safe_serialization=True)
    logits, greedy, margins = [], [], []
    for p in DS_PROMPTS:
        with torch.no_grad():
            logits.append(model(torch.tensor([p])).logits[0].flatten().tolist())
        g, m = greedy_no_cache(model, p, 32)
        with torch.no_grad():
            cached = model.generate(torch.tensor([p]), max_new_tokens=32, do_sample=False, use_cache=True)
        assert cached[0, len(p) :].tolist() == g, "transformers: cached and recomputed greedy differ"
        greedy.append(g)
        margins.append(m)
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(
            {
                "prompts": DS_PROMPTS,
                "logits": logits,
                "greedy": greedy,
                "min_greedy_margin": min(margins),
                "tokens_with_bias_changed_routing": changed,
            },
            f,
        )
    print(
        f"{name}: {sum(p.numel() for p in model.parameters())} parameters, bias changed the experts of "
        f"{changed} tokens, smallest greedy margin {min(margins):.3g}"
    )


# --------------------------------------------------------------------------------------------------------------
# MoonViT and the projector, written from the published architecture
# --------------------------------------------------------------------------------------------------------------

VISION: dict[str, Any] = {
    "model_type": "moonvit",
    "patch_size": 14,
    "init_pos_emb_height": 8,
    "init_pos_emb_width": 8,
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
    "hidden_size": 32,
    "intermediate_size": 48,
    "merge_kernel_size": [2, 2],
}


def rope_2d_angles(grids: list[tuple[int, int]], head_dim: int, theta: float = 10000.0) -> torch.Tensor:
    """Rotation angle of every (patch, pair): pair 2i turns with the column, pair 2i+1 with the row, both at
    frequency theta^(-4i/head_dim); positions restart at (0, 0) in every image."""
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 4)[: head_dim // 4].float() / head_dim))
    parts = []
    for h, w in grids:
        rows = torch.arange(h).repeat_interleave(w).float()
        cols = torch.arange(w).repeat(h).float()
        pair = torch.stack([torch.outer(cols, freqs), torch.outer(rows, freqs)], dim=-1)
        parts.append(pair.reshape(h * w, head_dim // 2))
    return torch.cat(parts)


def rotate_pairs(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """x: [L, heads, d]; rotate each (2j, 2j+1) pair as a complex number by angles[:, j]."""
    re, im = x[..., 0::2], x[..., 1::2]
    c, s = angles.cos()[:, None, :], angles.sin()[:, None, :]
    return torch.stack([re * c - im * s, re * s + im * c], dim=-1).flatten(-2)


class VisionMlp(nn.Module):
    def __init__(self, d: int, inter: int) -> None:
        super().__init__()
        self.fc0 = nn.Linear(d, inter)
        self.fc1 = nn.Linear(inter, d)


class MoonViTBlock(nn.Module):
    def __init__(self, d: int, heads: int, inter: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm0 = nn.LayerNorm(d, eps=1e-5)
        self.norm1 = nn.LayerNorm(d, eps=1e-5)
        self.wqkv = nn.Linear(d, 3 * d)
        self.wo = nn.Linear(d, d)
        self.mlp = VisionMlp(d, inter)

    def forward(self, x: torch.Tensor, lengths: list[int], angles: torch.Tensor) -> torch.Tensor:
        length, d = x.shape
        hd = d // self.heads
        q, k, v = self.wqkv(self.norm0(x)).view(length, 3, self.heads, hd).unbind(1)
        q, k = rotate_pairs(q, angles), rotate_pairs(k, angles)
        outs, start = [], 0
        for n in lengths:  # non-causal attention inside each image only
            qi, ki, vi = (t[start : start + n].transpose(0, 1) for t in (q, k, v))
            p = torch.softmax(qi @ ki.transpose(1, 2) / math.sqrt(hd), dim=-1)
            outs.append((p @ vi).transpose(0, 1).reshape(n, d))
            start += n
        x = x + self.wo(torch.cat(outs))
        return x + self.mlp.fc1(F.gelu(self.mlp.fc0(self.norm1(x)), approximate="tanh"))


class PositionTable(nn.Module):
    def __init__(self, h: int, w: int, d: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(h, w, d))


class PatchEmbed(nn.Module):
    def __init__(self, d: int, p: int, h: int, w: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, d, kernel_size=p, stride=p)
        self.pos_emb = PositionTable(h, w, d)


class VisionEncoder(nn.Module):
    def __init__(self, c: dict[str, Any]) -> None:
        super().__init__()
        d = c["hidden_size"]
        self.blocks = nn.ModuleList(
            MoonViTBlock(d, c["num_attention_heads"], c["intermediate_size"]) for _ in range(c["num_hidden_layers"])
        )
        self.final_layernorm = nn.LayerNorm(d, eps=1e-5)


class MoonViTReference(nn.Module):
    def __init__(self, c: dict[str, Any]) -> None:
        super().__init__()
        self.merge = c["merge_kernel_size"]
        self.patch_embed = PatchEmbed(
            c["hidden_size"], c["patch_size"], c["init_pos_emb_height"], c["init_pos_emb_width"]
        )
        self.encoder = VisionEncoder(c)
        self.heads = c["num_attention_heads"]

    def positions(self, grids: list[tuple[int, int]]) -> torch.Tensor:
        table = self.patch_embed.pos_emb.weight
        out = []
        for h, w in grids:
            if (h, w) == tuple(table.shape[:2]):
                out.append(table.flatten(0, 1))
            else:
                img = F.interpolate(table.permute(2, 0, 1)[None], size=(h, w), mode="bicubic", align_corners=False)
                out.append(img[0].permute(1, 2, 0).flatten(0, 1))
        return torch.cat(out)

    def forward(self, pixels: torch.Tensor, grids: list[tuple[int, int]]) -> dict[str, Any]:
        x = self.patch_embed.proj(pixels).flatten(1) + self.positions(grids)
        angles = rope_2d_angles(grids, x.shape[1] // self.heads)
        lengths = [h * w for h, w in grids]
        blocks = []
        for block in self.encoder.blocks:
            x = block(x, lengths, angles)
            blocks.append(x)
        x = self.encoder.final_layernorm(x)
        kh, kw = self.merge
        merged, start = [], 0
        for h, w in grids:  # 2x2 neighbourhoods in raster order, each as 4 sub-patch vectors
            s = x[start : start + h * w].view(h // kh, kh, w // kw, kw, -1).permute(0, 2, 1, 3, 4)
            merged.append(s.reshape((h // kh) * (w // kw), kh * kw, -1))
            start += h * w
        return {"blocks": blocks, "final": x, "merged": torch.cat(merged)}


class ProjectorReference(nn.Module):
    def __init__(self, d: int, merge: list[int], text_hidden: int) -> None:
        super().__init__()
        self.width = d * merge[0] * merge[1]
        self.pre_norm = nn.LayerNorm(d, eps=1e-5)
        self.linear_1 = nn.Linear(self.width, self.width)
        self.linear_2 = nn.Linear(self.width, text_hidden)

    def forward(self, merged: torch.Tensor) -> torch.Tensor:
        h = self.pre_norm(merged).reshape(-1, self.width)
        return self.linear_2(F.gelu(self.linear_1(h)))


def randomize_vision_(m: nn.Module, g: torch.Generator) -> None:
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("pos_emb.weight"):
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))


# --------------------------------------------------------------------------------------------------------------
# The image processor, as published: fit the token limit, pad to whole 2x2 merges, normalise, patchify
# --------------------------------------------------------------------------------------------------------------

PREPROCESSOR = {
    "image_processor_type": "KimiVLImageProcessor",
    "in_token_limit": 64,
    "patch_size": 14,
    "num_pooled_tokens": 16,
    "merge_kernel_size": [2, 2],
    "pad_input": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
}


def process_image(img: Image.Image, cfg: dict[str, Any]) -> tuple[torch.Tensor, tuple[int, int]]:
    p = cfg["patch_size"]
    w, h = img.size
    if (w // p) * (h // p) > cfg["in_token_limit"]:
        scale = math.sqrt(cfg["in_token_limit"] / ((w // p) * (h // p)))
        img = img.resize((int(w * scale), int(h * scale)), Image.Resampling.BICUBIC)
    img = img.convert("RGB")
    w, h = img.size
    mh, mw = cfg["merge_kernel_size"][0] * p, cfg["merge_kernel_size"][1] * p
    padded = Image.new("RGB", (w + (mw - w % mw) % mw, h + (mh - h % mh) % mh), (0, 0, 0))
    padded.paste(img, (0, 0))
    x = torch.from_numpy(np.asarray(padded, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(cfg["image_mean"]).view(3, 1, 1)
    std = torch.tensor(cfg["image_std"]).view(3, 1, 1)
    x = (x - mean) / std
    c, hh, ww = x.shape
    patches = x.view(c, hh // p, p, ww // p, p).permute(1, 3, 0, 2, 4).reshape(-1, c, p, p)
    return patches, (hh // p, ww // p)


def make_images(d: str) -> dict[str, str]:
    rng = np.random.default_rng(11)

    def pattern(w: int, h: int, ch: int) -> np.ndarray:
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)), ((xx + yy) * 7) % 256], -1)
        noise = rng.integers(0, 40, size=(h, w, 3))
        rgb = np.clip(base + noise, 0, 255).astype(np.uint8)
        if ch == 4:
            return np.concatenate([rgb, rng.integers(0, 256, size=(h, w, 1)).astype(np.uint8)], -1)
        return rgb

    files = {"a": "a.png", "b": "b_rgba.png", "c": "c.jpg", "d": "d_large.png", "e": "e_gray.png"}
    Image.fromarray(pattern(84, 56, 3)).save(os.path.join(d, files["a"]))
    Image.fromarray(pattern(112, 112, 4), "RGBA").save(os.path.join(d, files["b"]))
    Image.fromarray(pattern(100, 75, 3)).save(os.path.join(d, files["c"]), quality=90)
    Image.fromarray(pattern(150, 100, 3)).save(os.path.join(d, files["d"]))
    Image.fromarray(pattern(56, 42, 3)[..., 0], "L").save(os.path.join(d, files["e"]))
    # Not an image: the processor must say so.
    with open(os.path.join(d, "corrupt.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + bytes(rng.integers(0, 256, size=64, dtype=np.uint8)))
    return files


# --------------------------------------------------------------------------------------------------------------
# A tiny tiktoken vocabulary with Kimi's pre-tokenisation pattern and special tokens
# --------------------------------------------------------------------------------------------------------------

_KIMI_PATTERN_PARTS = [
    r"""[\p{Han}]+""",
    (
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+"""
        r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?"""
    ),
    (
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*"""
        r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?"""
    ),
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
]
KIMI_PATTERN = "|".join(_KIMI_PATTERN_PARTS)

# Offsets after the base vocabulary, as in Kimi-VL's tokenizer_config.json (163584 = offset 0).
KIMI_SPECIAL = {
    0: "[BOS]",
    1: "[EOS]",
    2: "<|im_end|>",
    3: "<|im_user|>",
    4: "<|im_assistant|>",
    6: "<|start_header_id|>",
    7: "<|end_header_id|>",
    9: "[EOT]",
    10: "<|im_system|>",
    17: "<|im_middle|>",
    18: "<|media_start|>",
    19: "<|media_content|>",
    20: "<|media_end|>",
    21: "<|media_pad|>",
    254: "[UNK]",
    255: "[PAD]",
}

CORPUS = (
    "What colour is this image? The image is red. The image is green. The image is blue. "
    "Describe the picture in one word. A small cat sits on a red mat; the dog is brown. "
    "It's John's book, isn't it? We'll see. 12345 + 678 = 13023. 红色 绿色 蓝色 图片 "
) * 4


def train_bpe(text: str, merges: int) -> list[bytes]:
    """Byte-level BPE on the pattern's pieces: the 256 bytes, then the most frequent adjacent pair each round."""
    import regex

    # VERSION1: `&&` is class intersection there, as in tiktoken's (Rust) regular expressions.
    pieces = regex.findall(KIMI_PATTERN, text, flags=regex.VERSION1)
    words = Counter(tuple(bytes([b]) for b in piece.encode()) for piece in pieces)
    vocab = [bytes([b]) for b in range(256)]
    for _ in range(merges):
        pairs: Counter[tuple[bytes, bytes]] = Counter()
        for w, n in words.items():
            for a, b in itertools.pairwise(w):
                pairs[(a, b)] += n
        if not pairs:
            break
        (a, b), _n = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        if a + b not in vocab:  # a tiktoken vocabulary lists each byte string once
            vocab.append(a + b)
        new_words: Counter[tuple[bytes, ...]] = Counter()
        for w, n in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new_words[tuple(out)] += n
        words = new_words
    return vocab


def write_tokenizer(d: str) -> tuple[Any, int, dict[str, int]]:
    import tiktoken

    vocab = train_bpe(CORPUS, 200)
    base = len(vocab)
    with open(os.path.join(d, "tiktoken.model"), "w") as f:
        f.writelines(f"{base64.b64encode(tok).decode()} {rank}\n" for rank, tok in enumerate(vocab))
    names = {i: KIMI_SPECIAL.get(i, f"<|reserved_token_{base + i}|>") for i in range(256 + 2)}
    special = {names[i]: base + i for i in names}
    enc = tiktoken.Encoding(
        name="kimi-tiny",
        pat_str=KIMI_PATTERN,
        mergeable_ranks={t: r for r, t in enumerate(vocab)},
        special_tokens=special,
    )
    template = (
        "{%- for message in messages -%}"
        "{%- if loop.first and messages[0]['role'] != 'system' -%}"
        "{{'<|im_system|>system<|im_middle|>You are a helpful assistant<|im_end|>'}}{%- endif -%}"
        "{%- if message['role'] == 'system' -%}{{'<|im_system|>'}}{%- endif -%}"
        "{%- if message['role'] == 'user' -%}{{'<|im_user|>'}}{%- endif -%}"
        "{%- if message['role'] == 'assistant' -%}{{'<|im_assistant|>'}}{%- endif -%}"
        "{{- message['role'] -}}{{'<|im_middle|>'}}"
        "{%- if message['content'] is string -%}{{- message['content'] + '<|im_end|>' -}}{%- else -%}"
        "{%- for content in message['content'] -%}"
        "{%- if content['type'] == 'image' -%}{{'<|media_start|>image<|media_content|><|media_pad|><|media_end|>'}}"
        "{%- else -%}{{content['text']}}{%- endif -%}{%- endfor -%}{{'<|im_end|>'}}{%- endif -%}"
        "{%- endfor -%}{%- if add_generation_prompt -%}{{'<|im_assistant|>assistant<|im_middle|>'}}{%- endif -%}"
    )
    added = {
        str(base + i): {
            "content": n,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for i, n in names.items()
    }
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(
            {
                "added_tokens_decoder": added,
                "bos_token": "[BOS]",
                "eos_token": "[EOS]",
                "pad_token": "[PAD]",
                "unk_token": "[UNK]",
                "additional_special_tokens": [
                    "<|im_end|>",
                    "<|im_user|>",
                    "<|im_assistant|>",
                    "<|im_system|>",
                    "<|im_middle|>",
                    "<|media_start|>",
                    "<|media_content|>",
                    "<|media_end|>",
                    "<|media_pad|>",
                ],
                "tokenizer_class": "TikTokenTokenizer",
                "model_max_length": 1048576,
                "chat_template": template,
            },
            f,
            indent=1,
        )
    with open(os.path.join(d, "generation_config.json"), "w") as f:
        json.dump(
            {"bos_token_id": special["[BOS]"], "eos_token_id": special["<|im_end|>"], "pad_token_id": special["[PAD]"]},
            f,
            indent=1,
        )
    return enc, base, special


def render_chat(user_parts: list[tuple[str, str]]) -> str:
    """Kimi-VL's chat template for one user turn followed by the assistant's header."""
    s = "<|im_system|>system<|im_middle|>You are a helpful assistant<|im_end|><|im_user|>user<|im_middle|>"
    for kind, value in user_parts:
        s += "<|media_start|>image<|media_content|><|media_pad|><|media_end|>" if kind == "image" else value
    return s + "<|im_end|><|im_assistant|>assistant<|im_middle|>"


# --------------------------------------------------------------------------------------------------------------
# The tiny Kimi-VL
# --------------------------------------------------------------------------------------------------------------


def kimi_text_config(vocab: int, special: dict[str, int]) -> dict[str, Any]:
    return {
        **DS_BASE,
        "vocab_size": vocab,
        "num_hidden_layers": 2,
        "max_position_embeddings": 512,
        "rms_norm_eps": 1e-5,
        "bos_token_id": special["[BOS]"],
        "eos_token_id": special["[EOS]"],
        "pad_token_id": special["[PAD]"],
        "topk_method": "noaux_tc",
        "scoring_func": "sigmoid",
        "moe_layer_freq": 1,
        "hidden_act": "silu",
    }


def build_kimi_vl(remote: str | None) -> None:
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

    out = VLM_FIXTURE
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    files = make_images(out)
    enc, base, special = write_tokenizer(out)
    vocab = base + 258
    media = special["<|media_pad|>"]
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
        json.dump(PREPROCESSOR, f, indent=1)

    torch.manual_seed(20)
    text_kwargs = kimi_text_config(vocab, special)
    text_cfg = DeepseekV3Config(**text_kwargs)
    text_cfg._attn_implementation = "eager"
    text = DeepseekV3ForCausalLM(text_cfg).eval()
    randomize_(text, torch.Generator().manual_seed(21))
    vision = MoonViTReference(VISION).eval()
    projector = ProjectorReference(VISION["hidden_size"], VISION["merge_kernel_size"], DS_BASE["hidden_size"]).eval()
    g = torch.Generator().manual_seed(22)
    randomize_vision_(vision, g)
    randomize_vision_(projector, g)

    # Weights in the published layout.
    tmp = os.path.join(out, "_text")
    text.save_pretrained(tmp, safe_serialization=True)
    tensors = {f"language_model.{k}": v for k, v in load_file(os.path.join(tmp, "model.safetensors")).items()}
    with open(os.path.join(tmp, "config.json")) as f:
        text_json = json.load(f)
    shutil.rmtree(tmp)
    tensors.update({f"vision_tower.{k}": v.contiguous() for k, v in vision.state_dict().items()})
    tensors.update({f"multi_modal_projector.{k}": v.contiguous() for k, v in projector.state_dict().items()})
    save_file(tensors, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    text_json.update({k: text_kwargs[k] for k in ("topk_method", "scoring_func", "moe_layer_freq")})
    config = {
        "architectures": ["KimiVLForConditionalGeneration"],
        "model_type": "kimi_vl",
        "auto_map": {
            "AutoConfig": "configuration_kimi_vl.KimiVLConfig",
            "AutoModel": "modeling_kimi_vl.KimiVLForConditionalGeneration",
            "AutoModelForCausalLM": "modeling_kimi_vl.KimiVLForConditionalGeneration",
        },
        "media_placeholder_token_id": media,
        "ignore_index": -100,
        "pad_token_id": special["[PAD]"],
        "torch_dtype": "float32",
        "vision_config": VISION,
        "text_config": text_json,
    }
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=1)

    # Processor references.
    ref: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {"images": files, "grids": {}, "media_placeholder_token_id": media}
    processed = {}
    for key, name in files.items():
        with Image.open(os.path.join(out, name)) as img:
            img.load()
            pv, grid = process_image(img, PREPROCESSOR)
        processed[key] = (pv, grid)
        ref[f"pixel_values.{key}"] = pv.flatten(1).contiguous()
        meta["grids"][key] = list(grid)

    # Vision references: each image alone, and a, b, d packed.
    with torch.no_grad():
        for key in ("a", "b", "d"):
            pv, grid = processed[key]
            r = vision(pv, [grid])
            ref[f"vision.{key}.final"] = r["final"]
            ref[f"vision.{key}.projected"] = projector(r["merged"])
        pack = ["a", "b", "d"]
        pv = torch.cat([processed[k][0] for k in pack])
        grids = [processed[k][1] for k in pack]
        r = vision(pv, grids)
        for i, x in enumerate(r["blocks"]):
            ref[f"vision.packed.block{i}"] = x
        ref["vision.packed.final"] = r["final"]
        ref["vision.packed.merged"] = r["merged"].flatten(1).contiguous()
        projected = projector(r["merged"])
        ref["vision.packed.projected"] = projected
    meta["packed"] = pack

    # Whole-model references: image + text prompts through the chat template.
    prompts = {
        "one_image": (["a"], render_chat([("image", ""), ("text", "What colour is this image?")])),
        "two_images": (
            ["d", "b"],
            render_chat([("image", ""), ("text", "and"), ("image", ""), ("text", " Describe the picture.")]),
        ),
    }
    meta["prompts"] = {}
    for name, (imgs, text_prompt) in prompts.items():
        ids: list[int] = []
        for piece_i, piece in enumerate(text_prompt.split("<|media_pad|>")):
            if piece_i > 0:
                grid = processed[imgs[piece_i - 1]][1]
                ids += [media] * (grid[0] * grid[1] // 4)
            ids += enc.encode(piece, allowed_special="all")
        with torch.no_grad():
            pv = torch.cat([processed[k][0] for k in imgs])
            feats = projector(vision(pv, [processed[k][1] for k in imgs])["merged"])
            input_ids = torch.tensor([ids])
            embeds = text.model.embed_tokens(input_ids)
            mask = input_ids == media
            assert int(mask.sum()) == feats.shape[0]
            embeds[mask] = feats
            logits = text(inputs_embeds=embeds).logits[0]
            gen = text.generate(
                inputs_embeds=embeds,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=12,
                do_sample=False,
                pad_token_id=special["[PAD]"],
            )
        ref[f"logits.{name}"] = logits
        meta["prompts"][name] = {"images": imgs, "text": text_prompt, "ids": ids, "greedy": gen[0].tolist()[-12:]}

    samples = [
        "hello world",
        "What colour is this image?",
        "红色 和 蓝色 图片",
        "It's John's book, isn't it?",
        "numbers 12345 and  spaces\n\nnew lines",
        "<|im_user|>user<|im_middle|>hi<|im_end|>",
    ]
    meta["tokenizer"] = {
        "base_vocab": base,
        "samples": [{"text": s, "ids": enc.encode(s, allowed_special="all")} for s in samples],
    }
    save_file({k: v.contiguous() for k, v in ref.items()}, os.path.join(out, "reference.safetensors"))
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(meta, f, indent=1)
    n_params = sum(t.numel() for t in tensors.values())
    print(f"kimi_vl_tiny: {n_params} parameters, grids {meta['grids']}")

    crosscheck_k25(vision, projector, processed)
    if remote:
        check_remote(remote, out, ref, meta, processed)


def crosscheck_k25(
    vision: MoonViTReference, projector: ProjectorReference, processed: dict[str, tuple[torch.Tensor, tuple[int, int]]]
) -> None:
    """The same weights in transformers' native Kimi-K2.5 vision tower and projector."""
    from transformers.models.kimi_k25.configuration_kimi_k25 import Kimi_K25VisionConfig
    from transformers.models.kimi_k25.modeling_kimi_k25 import Kimi_K25MultimodalProjection, Kimi_K25VisionModel

    c = Kimi_K25VisionConfig(
        patch_size=14,
        pos_emb_height=VISION["init_pos_emb_height"],
        pos_emb_width=VISION["init_pos_emb_width"],
        num_attention_heads=VISION["num_attention_heads"],
        num_hidden_layers=VISION["num_hidden_layers"],
        hidden_size=VISION["hidden_size"],
        intermediate_size=VISION["intermediate_size"],
        merge_kernel_size=VISION["merge_kernel_size"],
        rope_parameters={"rope_type": "axial", "rope_theta": 10000.0},
    )
    c._attn_implementation = "eager"
    k25 = Kimi_K25VisionModel(c).eval()
    d, heads = VISION["hidden_size"], VISION["num_attention_heads"]
    hd = d // heads
    # Interleaved rotary pairs (2j, 2j+1) become the half-split pairs (j, j + hd/2).
    perm = torch.cat([torch.arange(0, hd, 2), torch.arange(1, hd, 2)])
    perm = torch.cat([perm + h * hd for h in range(heads)])
    sd = vision.state_dict()
    new = {
        "patch_embed.proj.weight": sd["patch_embed.proj.weight"],
        "patch_embed.proj.bias": sd["patch_embed.proj.bias"],
        "patch_embed.pos_emb.position_embeddings": sd["patch_embed.pos_emb.weight"],
        "final_layernorm.weight": sd["encoder.final_layernorm.weight"],
        "final_layernorm.bias": sd["encoder.final_layernorm.bias"],
    }
    for i in range(VISION["num_hidden_layers"]):
        p = f"encoder.blocks.{i}."
        w, b = sd[p + "wqkv.weight"].view(3, d, d), sd[p + "wqkv.bias"].view(3, d)
        new.update(
            {
                f"layers.{i}.norm1.weight": sd[p + "norm0.weight"],
                f"layers.{i}.norm1.bias": sd[p + "norm0.bias"],
                f"layers.{i}.norm2.weight": sd[p + "norm1.weight"],
                f"layers.{i}.norm2.bias": sd[p + "norm1.bias"],
                f"layers.{i}.attn.q_proj.weight": w[0][perm],
                f"layers.{i}.attn.q_proj.bias": b[0][perm],
                f"layers.{i}.attn.k_proj.weight": w[1][perm],
                f"layers.{i}.attn.k_proj.bias": b[1][perm],
                f"layers.{i}.attn.v_proj.weight": w[2],
                f"layers.{i}.attn.v_proj.bias": b[2],
                f"layers.{i}.attn.proj.weight": sd[p + "wo.weight"],
                f"layers.{i}.attn.proj.bias": sd[p + "wo.bias"],
                f"layers.{i}.mlp.fc1.weight": sd[p + "mlp.fc0.weight"],
                f"layers.{i}.mlp.fc1.bias": sd[p + "mlp.fc0.bias"],
                f"layers.{i}.mlp.fc2.weight": sd[p + "mlp.fc1.weight"],
                f"layers.{i}.mlp.fc2.bias": sd[p + "mlp.fc1.bias"],
            }
        )
    missing, unexpected = k25.load_state_dict(new, strict=False)
    assert not unexpected and all("time_position" in m for m in missing), (missing, unexpected)

    class Cfg:  # the attributes the native projector reads
        def __init__(self) -> None:
            self.vision_config = c
            self.projection_hidden_size = d
            self.projection_layer_norm_eps = 1e-5
            self.text_config = type("T", (), {"hidden_size": DS_BASE["hidden_size"]})()

    proj = Kimi_K25MultimodalProjection(Cfg()).eval()
    proj.load_state_dict(
        {
            "pre_norm.weight": projector.pre_norm.weight,
            "pre_norm.bias": projector.pre_norm.bias,
            "in_proj.weight": projector.linear_1.weight,
            "in_proj.bias": projector.linear_1.bias,
            "out_proj.weight": projector.linear_2.weight,
            "out_proj.bias": projector.linear_2.bias,
        }
    )
    worst: dict[str, float] = {}
    with torch.no_grad():
        for keys in (["a"], ["b"], ["d"], ["a", "b", "d"]):
            pv = torch.cat([processed[k][0] for k in keys])
            grids = [processed[k][1] for k in keys]
            mine = vision(pv, grids)
            theirs = k25(pv, torch.tensor([[1, h, w] for h, w in grids]))
            tag = "+".join(keys)
            worst[f"final {tag}"] = float((mine["final"] - theirs.last_hidden_state).abs().max())
            worst[f"merged {tag}"] = float((mine["merged"] - theirs.pooler_output).abs().max())
            worst[f"projected {tag}"] = float(
                (projector(mine["merged"]) - proj(theirs.pooler_output).squeeze(1)).abs().max()
            )
    print("cross-check with transformers' Kimi-K2.5 vision tower (max |difference|):")
    for k, v in worst.items():
        print(f"  {k}: {v:.2e}")
    assert max(worst.values()) < 1e-4


def check_remote(
    remote: str,
    fixture: str,
    ref: dict[str, torch.Tensor],
    meta: dict[str, Any],
    processed: dict[str, tuple[torch.Tensor, tuple[int, int]]],
) -> None:
    """Load the fixture with the published remote code (copied into `remote`) and compare.

    Found with transformers 5.25 (2026-12): with attn_implementation="sdpa" the remote code's packed features and
    logits equal these references (1e-6 and 5e-6); with "eager" an image alone still agrees, but packed images
    do not (features off by 0.5, logits by 1.2): its eager vision attention *adds* the boolean block mask to the
    scores (+1 inside an image, 0 across) instead of masking the other images out, so packed images see each
    other. rlox follows the sdpa / flash-attention behaviour (block-diagonal attention)."""
    from transformers import AutoModelForCausalLM

    work = os.path.join(remote, "model")
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(fixture, work)
    for f in os.listdir(remote):
        if f.endswith(".py"):
            shutil.copy(os.path.join(remote, f), work)
    for impl in ("sdpa", "eager"):
        model = AutoModelForCausalLM.from_pretrained(
            work, trust_remote_code=True, attn_implementation=impl, dtype=torch.float32
        ).eval()
        with torch.no_grad():
            pack = meta["packed"]
            pv = torch.cat([processed[k][0] for k in pack])
            grids = torch.tensor([processed[k][1] for k in pack])
            feats = model.multi_modal_projector(model.vision_tower(pv, grids))
            d_feat = float((feats - ref["vision.packed.projected"]).abs().max())
            single = []
            for k in pack:
                f1 = model.multi_modal_projector(model.vision_tower(processed[k][0], torch.tensor([processed[k][1]])))
                single.append(float((f1 - ref[f"vision.{k}.projected"]).abs().max()))
            p = meta["prompts"]["two_images"]
            pv = torch.cat([processed[k][0] for k in p["images"]])
            grids = torch.tensor([processed[k][1] for k in p["images"]])
            logits = model(input_ids=torch.tensor([p["ids"]]), pixel_values=pv, image_grid_hws=grids).logits[0]
            d_logits = float((logits - ref["logits.two_images"]).abs().max())
        print(
            f"remote code, attn_implementation={impl}: projected features packed {d_feat:.2e}, "
            f"alone {max(single):.2e}; logits (two images) {d_logits:.2e}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--remote", help="directory holding the published Kimi-VL remote code (*.py)")
    args = ap.parse_args()
    build_deepseek("deepseek_v3", {}, seed=1)
    build_deepseek(
        "deepseek_v3_yarn",
        {
            "q_lora_rank": 24,
            "rope_parameters": {
                "rope_type": "yarn",
                "rope_theta": 10000.0,
                "factor": 4.0,
                "original_max_position_embeddings": 32,
                "beta_fast": 32.0,
                "beta_slow": 1.0,
                "mscale": 1.0,
                "mscale_all_dim": 1.0,
            },
        },
        seed=2,
    )
    build_kimi_vl(args.remote)


if __name__ == "__main__":
    main()
