#!/usr/bin/env python3
"""rlox-lm vs transformers, single thread, CPU: prompt (prefill) tokens/s, decode tokens/s with the KV
cache, and one training step (forward + backward + AdamW) on [batch, prompt_len].

    tools/.venv-lm/bin/python bench/lm_bench.py            # builds and runs the rlox example too

Models: the tiny fixture shape (hidden 64, 2 layers, vocab 300) and a ~20M-parameter Qwen2-style model
(hidden 512, 6 layers, 8 heads / 2 KV heads, MLP 1376, vocab 8192, tied). Random weights.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import torch

torch.set_num_threads(1)
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SHAPES = {
    "tiny": dict(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2),
    "20M": dict(vocab_size=8192, hidden_size=512, intermediate_size=1376, num_hidden_layers=6, num_attention_heads=8,
                num_key_value_heads=2),
}
PROMPT, NEW, BATCH = 128, 64, 4


def hf(shape):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    c = Qwen2Config(**shape, max_position_embeddings=1024, tie_word_embeddings=True)
    m = Qwen2ForCausalLM(c).eval()
    v = shape["vocab_size"]
    prompt = torch.tensor([[(i * 7919 + 13) % v for i in range(PROMPT)]])
    with torch.no_grad():
        best = 1e9
        for _ in range(3):
            t = time.perf_counter()
            m(prompt)
            best = min(best, time.perf_counter() - t)
        t = time.perf_counter()
        m.generate(prompt, max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False, pad_token_id=0)
        decode = time.perf_counter() - t - best
    m.train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
    rows = torch.stack([(prompt[0] + b) % v for b in range(BATCH)])
    step = 1e9
    for i in range(4):
        t = time.perf_counter()
        out = m(rows[:, :-1])
        loss = torch.nn.functional.cross_entropy(out.logits.reshape(-1, v), rows[:, 1:].reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad()
        if i > 0:
            step = min(step, time.perf_counter() - t)
    return c, {"impl": "transformers", "params": sum(p.numel() for p in m.parameters()),
               "prefill_tokens_per_s": PROMPT / best, "decode_tokens_per_s": NEW / decode, "train_step_s": step}


def rlox(config_path):
    env = dict(os.environ, RAYON_NUM_THREADS="1")
    env.setdefault("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    out = subprocess.run(["cargo", "run", "-q", "--release", "-p", "rlox-lm", "--example", "lm_bench", "--", config_path,
                          str(PROMPT), str(NEW), str(BATCH)], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    rows = []
    for name, shape in SHAPES.items():
        c, h = hf(shape)
        d = tempfile.mkdtemp()
        c.save_pretrained(d)
        r = rlox(os.path.join(d, "config.json"))
        rows.append((name, h, r))
    print(f"single thread; prompt {PROMPT} tokens, {NEW} new tokens, train batch {BATCH}x{PROMPT}")
    print(f"{'model':6} {'params':>9} | {'prefill tok/s (hf / rlox / ratio)':>36} | {'decode tok/s':>30} | {'train step s':>30}")
    for name, h, r in rows:
        cells = []
        for k in ["prefill_tokens_per_s", "decode_tokens_per_s"]:
            cells.append(f"{h[k]:10.1f} / {r[k]:10.1f} / {r[k] / h[k]:5.2f}x")
        cells.append(f"{h['train_step_s']:9.4f} / {r['train_step_s']:9.4f} / {h['train_step_s'] / r['train_step_s']:5.2f}x")
        print(f"{name:6} {h['params']:9d} | " + " | ".join(cells))
    print(json.dumps({"rows": [{"model": n, "transformers": h, "rlox": r} for n, h, r in rows]}))


if __name__ == "__main__":
    sys.exit(main())
