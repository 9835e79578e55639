#!/usr/bin/env python3
"""Kimi-VL in rlox against the PyTorch reference, single thread, CPU: MoonViT + projector patches/s on one image,
and the DeepSeek-V3 decoder's prompt (prefill) tokens/s and decode tokens/s with the cache.

    python3 -m venv tools/.venv-kimi && tools/.venv-kimi/bin/pip install torch transformers safetensors numpy pillow tiktoken
    taskset -c 1 tools/.venv-kimi/bin/python bench/kimi_vl_bench.py     # builds and runs the rlox example too

The PyTorch side is the MoonViT/projector reference of tools/kimi_vl_fixtures.py (the one the parity tests use,
itself checked against transformers' Kimi-K2.5 vision tower) and transformers' `DeepseekV3ForCausalLM` with its
default (SDPA) attention; `generate` with the cache for decoding. Both sides: random weights, one thread, the
same image grid, prompt and number of new tokens, run one after the other in this process's CPU set.

Models: `tiny`, the test fixture's shape (vision 32 wide x 2 blocks; text 32 wide x 2 layers, 8 experts), and
`mid`, a ~55M-parameter model (MoonViT 384 wide, 6 heads, 6 blocks, MLP 1536; DeepSeek-V3 512 wide, 4 layers,
8 heads, kv_lora_rank 128, 16 experts of 256 with top-4 and 2 shared, vocabulary 16384).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import torch

torch.set_num_threads(1)
ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import kimi_vl_fixtures as ref

PROMPT, NEW = 128, 64
SHAPES: dict[str, dict[str, Any]] = {
    "tiny": {
        "vision": dict(ref.VISION),
        "text": dict(ref.DS_BASE, num_hidden_layers=2, vocab_size=637, max_position_embeddings=512),
        "grid": (16, 16),
    },
    "mid": {
        "vision": dict(
            ref.VISION,
            init_pos_emb_height=32,
            init_pos_emb_width=32,
            num_attention_heads=6,
            num_hidden_layers=6,
            hidden_size=384,
            intermediate_size=1536,
        ),
        "text": dict(
            ref.DS_BASE,
            vocab_size=16384,
            hidden_size=512,
            intermediate_size=1536,
            moe_intermediate_size=256,
            num_hidden_layers=4,
            num_attention_heads=8,
            num_key_value_heads=8,
            kv_lora_rank=128,
            qk_nope_head_dim=64,
            qk_rope_head_dim=32,
            v_head_dim=64,
            n_routed_experts=16,
            n_shared_experts=2,
            num_experts_per_tok=4,
            n_group=1,
            topk_group=1,
            max_position_embeddings=1024,
            initializer_range=0.02,
        ),
        "grid": (32, 32),
    },
}


def best_of(n: int, f: Any) -> float:
    best = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def pytorch(shape: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

    torch.manual_seed(0)
    vision = ref.MoonViTReference(shape["vision"]).eval()
    projector = ref.ProjectorReference(shape["vision"]["hidden_size"], [2, 2], shape["text"]["hidden_size"]).eval()
    text_cfg = DeepseekV3Config(**shape["text"])
    text = DeepseekV3ForCausalLM(text_cfg).eval()
    gh, gw = shape["grid"]
    p = shape["vision"]["patch_size"]
    pixels = torch.randn(gh * gw, 3, p, p)
    v = shape["text"]["vocab_size"]
    prompt = torch.tensor([[(i * 7919 + 13) % v for i in range(PROMPT)]])
    with torch.no_grad():
        vision_fn = lambda: projector(vision(pixels, [(gh, gw)])["merged"])
        vision_fn()
        vis = best_of(3, vision_fn)
        prefill = best_of(3, lambda: text(prompt))
        t = time.perf_counter()
        text.generate(prompt, max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False, pad_token_id=0)
        decode = time.perf_counter() - t - prefill
    params = sum(x.numel() for m in (vision, projector, text) for x in m.parameters())
    config = {
        "model_type": "kimi_vl",
        "media_placeholder_token_id": 1,
        "vision_config": shape["vision"],
        "text_config": dict(text_cfg.to_dict(), topk_method="noaux_tc", scoring_func="sigmoid", moe_layer_freq=1),
    }
    row = {
        "impl": "pytorch",
        "params": params,
        "vision_patches_per_s": gh * gw / vis,
        "prefill_tokens_per_s": PROMPT / prefill,
        "decode_tokens_per_s": NEW / decode,
    }
    return config, row


def rlox(config_path: str, grid: tuple[int, int]) -> dict[str, Any]:
    env = dict(os.environ, RAYON_NUM_THREADS="1")
    env.setdefault("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    cmd = [
        "cargo",
        "run",
        "-q",
        "--release",
        "-p",
        "rlox-vlm",
        "--example",
        "kimi_vl_bench",
        "--",
        config_path,
        str(grid[0]),
        str(grid[1]),
        str(PROMPT),
        str(NEW),
    ]
    out = subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    rows = []
    for name, shape in SHAPES.items():
        config, h = pytorch(shape)
        d = tempfile.mkdtemp()
        path = os.path.join(d, "config.json")
        with open(path, "w") as f:
            json.dump(config, f)
        r = rlox(path, shape["grid"])
        rows.append((name, shape["grid"], h, r))
    print(f"single thread; one image; prompt {PROMPT} tokens, {NEW} new tokens (greedy, cache)")
    print(
        f"{'model':5} {'params':>10} {'grid':>6} | {'vision patches/s (pytorch / rlox / ratio)':>40} | "
        f"{'prefill tok/s':>32} | {'decode tok/s':>32}"
    )
    for name, grid, h, r in rows:
        cells = [
            f"{h[k]:9.1f} / {r[k]:9.1f} / {r[k] / h[k]:5.2f}x"
            for k in ("vision_patches_per_s", "prefill_tokens_per_s", "decode_tokens_per_s")
        ]
        print(f"{name:5} {h['params']:10d} {grid[0]}x{grid[1]:<3} | " + " | ".join(cells))
    print(f"burn's 1024^3 f32 matrix product, same thread: {rows[-1][3]['gemm_gflops']:.1f} GFLOP/s")
    print(json.dumps({"rows": [{"model": n, "grid": g, "pytorch": h, "rlox": r} for n, g, h, r in rows]}))


if __name__ == "__main__":
    main()
