#!/usr/bin/env python3
"""Qwen2.5-0.5B-shaped models with random weights, made through transformers (the real checkpoint
cannot be downloaded here).

Shapes are Qwen2.5-0.5B's exactly: hidden 896, 14 query heads, 2 key/value heads, head dim 64,
intermediate 4864, vocabulary 151936, tied embeddings, rope theta 1e6, RMSNorm eps 1e-6, q/k/v biases,
no sliding window; only the number of layers is chosen (2 or 24; the real model has 24).

    python tools/qwen_shapes.py make --layers 24 --out bench/.models/qwen05b-24 [--dtype bfloat16] [--weights torch|hash]
    python tools/qwen_shapes.py reference --layers 2 --out crates/rlox-lm/tests/fixtures/qwen05b_hash_2l.json
    python tools/qwen_shapes.py logits --model DIR --out REF.json     # full logits of the fixed prompts

`make` writes a model directory (config.json, model.safetensors) as `save_pretrained` writes it. With
`--weights torch` (default) the weights are transformers' own initialisation (`_init_weights`,
N(0, 0.02^2), seeded); with `--weights hash` every value is a deterministic hash of the tensor name and
the index (see `hash_values`), which `rlox_lm::HashInit` reproduces bit for bit in Rust.

`reference` writes what the test `crates/rlox-lm/tests/qwen_shapes.rs` compares against without any
weight file: the hash model's config, two prompts, and transformers' f32 logits at every position for
every 151st vocabulary entry, plus each position's log-sum-exp and argmax over the whole vocabulary
(about 200 KB).

The big directories belong in a git-ignored place (bench/.models/); the benchmarks make them on first
use with this script.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

SHAPE = dict(
    vocab_size=151936,
    hidden_size=896,
    intermediate_size=4864,
    num_attention_heads=14,
    num_key_value_heads=2,
    head_dim=64,
    max_position_embeddings=32768,
    rms_norm_eps=1e-6,
    rope_theta=1000000.0,
    tie_word_embeddings=True,
    use_sliding_window=False,
    sliding_window=None,
    bos_token_id=151643,
    eos_token_id=151645,
    pad_token_id=151643,
    initializer_range=0.02,
)
PROMPTS = [
    [9707, 11, 1879, 0, 358, 1079, 264, 3460, 1614, 13, 151644, 77091],
    [16, 17, 18, 19, 20, 151645, 100000],
]
VOCAB_STRIDE = 151
MASK64 = (1 << 64) - 1


def config(layers):
    from transformers import Qwen2Config

    return Qwen2Config(**SHAPE, num_hidden_layers=layers, architectures=["Qwen2ForCausalLM"])


def name_seed(name):
    """FNV-1a, 64 bits."""
    h = 0xCBF29CE484222325
    for b in name.encode():
        h = ((h ^ b) * 0x100000001B3) & MASK64
    return h


def splitmix64(x):
    """SplitMix64 on a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def hash_values(name, shape):
    """Value i of tensor `name` (row-major, Hugging Face layout): k * 2^-28 with
    k = (splitmix64(fnv1a64(name) + i) >> 40) - 2^23; norm scales are 1 + k * 2^-26 (f32)."""
    n = int(np.prod(shape))
    idx = np.arange(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        h = splitmix64(idx + np.uint64(name_seed(name)))
    k = ((h >> np.uint64(40)).astype(np.int64) - (1 << 23)).astype(np.float32)
    if name.endswith("norm.weight"):
        v = np.float32(1.0) + k * np.float32(2.0**-26)
    else:
        v = k * np.float32(2.0**-28)
    return v.reshape(shape)


def build(layers, weights, seed=0):
    from transformers import Qwen2ForCausalLM

    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config(layers)).eval()
    if weights == "hash":
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(torch.from_numpy(hash_values(name, tuple(p.shape))))
    return model


def make(args):
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[args.dtype]
    model = build(args.layers, args.weights, args.seed).to(dtype)
    os.makedirs(args.out, exist_ok=True)
    model.save_pretrained(args.out, safe_serialization=True)
    n = sum(p.numel() for p in model.parameters())
    size = os.path.getsize(os.path.join(args.out, "model.safetensors"))
    print(json.dumps({"dir": args.out, "layers": args.layers, "params": n, "dtype": args.dtype,
                      "weights": args.weights, "bytes": size}))


@torch.no_grad()
def prompt_stats(model, prompts):
    out = {"prompts": prompts, "vocab_stride": VOCAB_STRIDE, "logits_subset": [], "logsumexp": [], "argmax": []}
    for ids in prompts:
        logits = model(torch.tensor([ids])).logits[0].float()
        out["logits_subset"].append([[round(float(x), 7) for x in row[::VOCAB_STRIDE]] for row in logits])
        out["logsumexp"].append([round(float(x), 6) for x in torch.logsumexp(logits, dim=-1)])
        out["argmax"].append([int(x) for x in logits.argmax(dim=-1)])
    return out


def reference(args):
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    model = build(args.layers, "hash")
    ref = prompt_stats(model, PROMPTS)
    ref["config"] = model.config.to_dict()
    ref["transformers"] = __import__("transformers").__version__
    with open(args.out, "w") as f:
        json.dump(ref, f)
    print(f"wrote {args.out}: {args.layers} layers, {sum(p.numel() for p in model.parameters())} params")


def logits(args):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    with open(args.out, "w") as f:
        json.dump(prompt_stats(model, PROMPTS), f)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("--layers", type=int, required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    m.add_argument("--weights", default="torch", choices=["torch", "hash"])
    m.add_argument("--seed", type=int, default=0)
    r = sub.add_parser("reference")
    r.add_argument("--layers", type=int, default=2)
    r.add_argument("--out", required=True)
    g = sub.add_parser("logits")
    g.add_argument("--model", required=True)
    g.add_argument("--out", required=True)
    args = ap.parse_args()
    {"make": make, "reference": reference, "logits": logits}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
