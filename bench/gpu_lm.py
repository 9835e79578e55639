#!/usr/bin/env python3
"""rlox (LibTorch backend) vs transformers on one CUDA GPU: the 24-layer Qwen2.5-0.5B-shaped model.

Run by bench/gpu_lm.sh on the GPU machine (see there). Same work on both sides, in f32:
forward of [batch, seq] (default 1 x 128), forward + backward of the mean next-token cross-entropy,
greedy generation (32-token prompt, 64 new tokens, EOS ignored). Times are wall clock around
synchronised work (rlox reads its results back to the host, transformers calls torch.cuda.synchronize),
best of --reps. Prints a table and writes --out.
"""
import argparse
import json
import subprocess
import time

import torch
from transformers import AutoModelForCausalLM


def tokens(n, vocab, off):
    return [((i + off) * 7919 + 13) % vocab for i in range(n)]


def transformers_side(model_dir, batch, seq, reps):
    dev = torch.device("cuda")
    sync = torch.cuda.synchronize
    t = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(dev).eval()
    sync()
    out = {"impl": "transformers", "torch": torch.__version__, "load": {"seconds": time.perf_counter() - t}}
    vocab = model.config.vocab_size
    ids = torch.tensor([tokens(seq, vocab, b) for b in range(batch)], device=dev)
    best = 1e9
    with torch.no_grad():
        for _ in range(reps + 1):
            sync()
            t = time.perf_counter()
            model(ids).logits
            sync()
            best = min(best, time.perf_counter() - t)
    out["forward"] = {"seconds": best, "tokens_per_s": batch * seq / best}
    p = torch.tensor([tokens(32, vocab, 0)], device=dev)
    with torch.no_grad():
        prefill = 1e9
        for _ in range(reps + 1):
            sync()
            t = time.perf_counter()
            model(p).logits[:, -1]
            sync()
            prefill = min(prefill, time.perf_counter() - t)
        total = 1e9
        for _ in range(2):
            sync()
            t = time.perf_counter()
            g = model.generate(p, max_new_tokens=64, min_new_tokens=64, do_sample=False, pad_token_id=0,
                               eos_token_id=None)
            sync()
            total = min(total, time.perf_counter() - t)
    out["generate"] = {"prefill_tokens_per_s": 32 / prefill, "decode_tokens_per_s": 63 / max(total - prefill, 1e-9),
                       "ids": g[0, 32:].tolist()}
    model.train()
    ids = torch.tensor([tokens(seq + 1, vocab, b) for b in range(batch)], device=dev)
    best = 1e9
    for _ in range(reps + 1):
        model.zero_grad(set_to_none=True)
        sync()
        t = time.perf_counter()
        logits = model(ids[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), ids[:, 1:].reshape(-1))
        loss.backward()
        sync()
        best = min(best, time.perf_counter() - t)
    out["train"] = {"seconds": best, "tokens_per_s": batch * seq / best, "loss": float(loss),
                    "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--rlox-exe", required=True)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    report = {"gpu": torch.cuda.get_device_name(0)}
    report["transformers"] = transformers_side(a.model, a.batch, a.seq, a.reps)
    torch.cuda.empty_cache()
    r = subprocess.run([a.rlox_exe, a.model, "device=cuda", "phases=load,forward,generate,train", f"batch={a.batch}",
                        f"seq={a.seq}", f"reps={a.reps}"], capture_output=True, text=True)
    if r.returncode != 0:
        report["rlox_error"] = r.stderr[-4000:]
        print(report["rlox_error"])
    else:
        report["rlox"] = json.loads(r.stdout.strip().splitlines()[-1])
    json.dump(report, open(a.out, "w"), indent=1)
    print(f"GPU: {report['gpu']}")
    if "rlox" in report:
        h, x = report["transformers"], report["rlox"]
        for phase, key in [("forward", "tokens_per_s"), ("train", "tokens_per_s"), ("generate", "prefill_tokens_per_s"),
                           ("generate", "decode_tokens_per_s")]:
            print(f"{phase:9} {key:22} transformers {h[phase][key]:10.1f}  rlox {x[phase][key]:10.1f}  "
                  f"rlox/tf {x[phase][key] / h[phase][key]:5.2f}")
        print("same greedy ids:", h["generate"]["ids"] == x["generate"]["ids"])


if __name__ == "__main__":
    main()
