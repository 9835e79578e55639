#!/usr/bin/env python3
"""rlox-lm vs transformers on Qwen2.5-0.5B-shaped models (2 and 24 layers, random weights), CPU.

    bench/.venv-lm/bin/python bench/lm_bench.py [--layers 2 24] [--threads 1 2] [--phases forward train generate]

Setup: a venv with CPU torch and transformers (`python3 -m venv bench/.venv-lm; bench/.venv-lm/bin/pip install
torch --index-url https://download.pytorch.org/whl/cpu; bench/.venv-lm/bin/pip install transformers safetensors`),
and the rlox example (`cargo build --release -p rlox-lm --example lm_bench`; `--rlox-exe` names it).

The models are made on first use by tools/qwen_shapes.py in bench/.models/ (git-ignored): transformers'
own random initialisation, saved in f32 (2 layers: 0.66 GB, 24 layers: 1.98 GB). Both sides load the same
directory. For each model and thread count the two sides run one after the other, each in a fresh process
pinned with taskset (1 thread: one core; 2 threads: both), with the same work:

* load: from_pretrained / rlox's loader, seconds and resident memory added;
* forward: logits of a [batch, seq] block (default 1 x 128), no gradients, best of --reps;
* train: forward + backward of the mean next-token cross-entropy, no optimizer step, best of --reps, with
  the process's peak resident memory during the step (high-water mark reset before it);
* generate: greedy, batch 1, 32-token prompt, 64 new tokens (EOS ignored); prefill tokens/s = prompt / time of
  the prompt's forward, decode tokens/s = 63 / (generation time - prefill time); the ids are compared.

It prints a table (rlox/transformers speed ratios: above 1 means rlox is faster), the CPU model and the load
average at the start and end, and writes bench/out/lm_bench.json.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
MODELS = os.path.join(ROOT, "bench", ".models")
OUT = os.path.join(ROOT, "bench", "out")


def cpu_name():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def load_avg():
    return open("/proc/loadavg").read().split()[:3]


def ensure_model(layers):
    d = os.path.join(MODELS, f"qwen05b-{layers}l")
    if not os.path.exists(os.path.join(d, "model.safetensors")):
        subprocess.run([sys.executable, os.path.join(ROOT, "tools", "qwen_shapes.py"), "make", "--layers", str(layers),
                        "--out", d], check=True)
    return d


HF_SIDE = r'''
import json, os, sys, time
import torch
threads, model_dir, batch, seq, prompt, new, reps, phases = sys.argv[1:9]
threads, batch, seq, prompt, new, reps = map(int, (threads, batch, seq, prompt, new, reps))
phases = phases.split(",")
torch.set_num_threads(threads)
from transformers import AutoModelForCausalLM

def status(key):
    for l in open("/proc/self/status"):
        if l.startswith(key):
            return int(l.split()[1]) / 1024
def reset_peak():
    open("/proc/self/clear_refs", "w").write("5")
def tokens(n, vocab, off):
    return [((i + off) * 7919 + 13) % vocab for i in range(n)]

out = {"impl": "transformers", "threads": threads, "torch": torch.__version__}
rss0 = status("VmRSS:")
t = time.perf_counter()
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
out["load"] = {"seconds": time.perf_counter() - t, "rss_added_mib": status("VmRSS:") - rss0,
               "params": sum(p.numel() for p in model.parameters())}
vocab = model.config.vocab_size
if "forward" in phases:
    ids = torch.tensor([tokens(seq, vocab, b) for b in range(batch)])
    best = 1e9
    with torch.no_grad():
        for _ in range(reps):
            t = time.perf_counter(); model(ids).logits; best = min(best, time.perf_counter() - t)
    out["forward"] = {"batch": batch, "seq": seq, "seconds": best, "tokens_per_s": batch * seq / best}
if "generate" in phases:
    p = torch.tensor([tokens(prompt, vocab, 0)])
    prefill = 1e9
    with torch.no_grad():
        for _ in range(reps):
            t = time.perf_counter(); model(p).logits[:, -1]; prefill = min(prefill, time.perf_counter() - t)
        total = 1e9
        for _ in range(min(reps, 2)):
            t = time.perf_counter()
            g = model.generate(p, max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=0,
                               eos_token_id=None)
            total = min(total, time.perf_counter() - t)
    decode = max(total - prefill, 1e-9)
    out["generate"] = {"prompt": prompt, "new": new, "prefill_seconds": prefill, "prefill_tokens_per_s": prompt / prefill,
                       "decode_seconds": decode, "decode_tokens_per_s": (new - 1) / decode,
                       "ids": g[0, prompt:].tolist()}
if "train" in phases:
    model.train()
    ids = torch.tensor([tokens(seq + 1, vocab, b) for b in range(batch)])
    base = status("VmRSS:")
    best, peak = 1e9, 0.0
    for _ in range(reps):
        model.zero_grad(set_to_none=True)
        reset_peak()
        t = time.perf_counter()
        logits = model(ids[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), ids[:, 1:].reshape(-1))
        loss.backward()
        best = min(best, time.perf_counter() - t)
        peak = max(peak, status("VmHWM:"))
        del logits
    out["train"] = {"batch": batch, "seq": seq, "seconds": best, "tokens_per_s": batch * seq / best,
                    "loss": float(loss), "rss_before_mib": base, "peak_mib": peak, "peak_over_model_mib": peak - base}
print(json.dumps(out))
'''


def run(cmd, env):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"{cmd[0]} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, nargs="+", default=[2, 24])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--phases", nargs="+", default=["forward", "train", "generate"])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rlox-exe", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")),
                                                      "release", "examples", "lm_bench"))
    ap.add_argument("--python", default=sys.executable, help="the Python with torch + transformers")
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    report = {"cpu": cpu_name(), "load_avg_start": load_avg(), "rows": []}
    phases = ",".join(["load"] + a.phases)
    for layers in a.layers:
        d = ensure_model(layers)
        for th in a.threads:
            cores = "1" if th == 1 else ",".join(str(c) for c in range(th))
            env = dict(os.environ, RAYON_NUM_THREADS=str(th), OMP_NUM_THREADS=str(th), MKL_NUM_THREADS=str(th))
            hf = run(["taskset", "-c", cores, a.python, "-c", HF_SIDE, str(th), d, str(a.batch), str(a.seq), "32", "64",
                      str(a.reps), phases], env)
            rx = run(["taskset", "-c", cores, a.rlox_exe, d, f"phases={phases}", f"batch={a.batch}", f"seq={a.seq}",
                      "prompt=32", "new=64", f"reps={a.reps}"], env)
            report["rows"].append({"layers": layers, "threads": th, "load_avg": load_avg(), "transformers": hf, "rlox": rx})
            print(json.dumps(report["rows"][-1]), file=sys.stderr)
    report["load_avg_end"] = load_avg()
    json.dump(report, open(os.path.join(OUT, "lm_bench.json"), "w"), indent=1)
    print(f"CPU: {report['cpu']}; load average {report['load_avg_start']} -> {report['load_avg_end']}")
    print(f"forward/train on [{a.batch}, {a.seq}] tokens; generation: batch 1, 32-token prompt, 64 new, greedy")
    head = f"{'layers':>6} {'thr':>3} | {'metric':28} | {'transformers':>12} | {'rlox':>12} | {'rlox/tf':>7}"
    print(head)
    print("-" * len(head))
    metrics = [("load", "seconds", "load s", False), ("forward", "tokens_per_s", "forward tokens/s", True),
               ("train", "tokens_per_s", "fwd+bwd tokens/s", True), ("train", "peak_over_model_mib", "fwd+bwd peak MiB over model", False),
               ("generate", "prefill_tokens_per_s", "prefill tokens/s", True),
               ("generate", "decode_tokens_per_s", "decode tokens/s", True)]
    for r in report["rows"]:
        for phase, key, label, higher in metrics:
            if phase not in r["rlox"] or phase not in r["transformers"]:
                continue
            h, x = r["transformers"][phase][key], r["rlox"][phase][key]
            ratio = x / h if higher else h / x
            print(f"{r['layers']:>6} {r['threads']:>3} | {label:28} | {h:12.2f} | {x:12.2f} | {ratio:7.2f}")
        if "generate" in r["rlox"]:
            same = r["rlox"]["generate"]["ids"] == r["transformers"]["generate"]["ids"]
            print(f"{r['layers']:>6} {r['threads']:>3} | {'same greedy ids':28} | {str(same):>12} |")
        print(f"{'':>6} {'':>3} | load average during the row: {r['load_avg']}")


if __name__ == "__main__":
    main()
