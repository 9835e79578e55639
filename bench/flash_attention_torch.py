#!/usr/bin/env python3
"""rlox's flash-attention kernel beside PyTorch's CPU flash kernel, in one run.

Shapes: batch 1, 8 heads, head dim 64, N in --ns, causal and not, forward and forward+backward,
at 1 and 2 threads (torch.set_num_threads / RAYON_NUM_THREADS). Each measurement runs in a fresh
process so that its peak resident set (VmHWM) is its own. GFLOP/s: forward 4 N^2 d per head,
halved when causal; forward+backward 3.5 times the forward (backward = 2.5 x forward).

    python3 bench/flash_attention_torch.py                      # venv: bench/.venv-flash (created)
    python3 bench/flash_attention_torch.py --ns 512 1024 --reps 2
    python3 bench/flash_attention_torch.py --memory-ns 2048 4096 8192 16384   # rlox memory only

The rlox side is `cargo run --release -p rlox-nn --example flash_attention_measure` (built once
here). The torch side uses torch.nn.attention.sdpa_kernel(SDPBackend.FLASH_ATTENTION), which fails
rather than silently falling back to another backend.
"""

import argparse
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "bench" / ".venv-flash"
# A Python that already has torch (e.g. another venv) can be given instead of creating bench/.venv-flash.
SHARED_PYTHON = os.environ.get("RLOX_TORCH_PYTHON")

TORCH_CHILD = r"""
import json, resource, sys, time, torch
import torch.nn.functional as F
from torch.nn.attention import sdpa_kernel, SDPBackend
n, causal, mode, threads, reps, backend = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
torch.set_num_threads(threads)
torch.manual_seed(0)
h, d = 8, 64
grad = mode == "fwd-bwd"
q, k, v = (torch.randn(1, h, n, d, requires_grad=grad) for _ in range(3))
do = torch.randn(1, h, n, d)
def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
base = rss("VmRSS:")
kind = {"flash": SDPBackend.FLASH_ATTENTION, "math": SDPBackend.MATH}[backend]
times = []
with sdpa_kernel(kind):
    for _ in range(reps):
        t0 = time.perf_counter()
        o = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        if grad:
            o.backward(do)
            q.grad = k.grad = v.grad = None
        times.append(time.perf_counter() - t0)
        del o
times.sort()
t = times[len(times) // 2]
flops = 4 * n * n * d * h * (0.5 if causal else 1.0) * (3.5 if grad else 1.0)
print(json.dumps({"impl": "torch-" + backend, "n": n, "causal": causal, "mode": mode, "threads": threads,
                  "seconds": t, "gflops": flops / t / 1e9, "base_mib": base, "peak_mib": rss("VmHWM:")}))
"""


def python_with_torch():
    for py in [VENV / "bin" / "python"] + ([Path(SHARED_PYTHON)] if SHARED_PYTHON else []):
        if py.exists() and subprocess.run([str(py), "-c", "import torch"], capture_output=True).returncode == 0:
            return str(py)
    print(f"creating {VENV} and installing torch (CPU)", file=sys.stderr)
    venv.create(VENV, with_pip=True)
    py = str(VENV / "bin" / "python")
    subprocess.run([py, "-m", "pip", "install", "-q", "torch", "--index-url", "https://download.pytorch.org/whl/cpu"],
                   check=True)
    return py


def build_rlox():
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "rlox-nn", "--example", "flash_attention_measure"],
                   cwd=ROOT, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return str(target / "release" / "examples" / "flash_attention_measure")


def run(cmd, env=None):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return {"error": (out.stderr or out.stdout).strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def rlox(exe, n, causal, mode, threads, reps, imp="flash"):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    cmd = [exe, "--n", str(n), "--mode", mode, "--reps", str(reps), "--impl", imp] + (["--causal"] if causal else [])
    return run(cmd, env)


def torch_run(py, n, causal, mode, threads, reps, backend="flash"):
    return run([py, "-c", TORCH_CHILD, str(n), "1" if causal else "0", mode, str(threads), str(reps), backend])


def fmt(r):
    if "error" in r:
        return f"{'error':>9} {'':>7} {'':>8}"
    return f"{r['seconds'] * 1e3:9.1f} {r['gflops']:7.1f} {r['peak_mib'] - r['base_mib']:+8.0f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ns", type=int, nargs="*", default=[512, 1024, 2048, 4096, 8192])
    ap.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--reps", type=int, default=3, help="repetitions per row (median); 1 for N >= 4096")
    ap.add_argument("--memory-ns", type=int, nargs="*", default=[2048, 4096, 8192, 16384],
                    help="N for the rlox-only peak-memory table (forward+backward, causal, 1 thread)")
    ap.add_argument("--naive-memory-n", type=int, default=8192, help="N for the naive (torch math) memory row; 0 skips")
    ap.add_argument("--json", type=Path, help="also write every measurement here")
    ap.add_argument("--rlox-exe", help="an already built flash_attention_measure (e.g. target/release/examples/ "
                    "after the workspace test build) instead of building it here")
    args = ap.parse_args()
    py = python_with_torch()
    exe = args.rlox_exe or build_rlox()
    rows = []
    print(f"batch 1, 8 heads, head dim 64; time ms (median), GFLOP/s, peak RSS over the inputs MiB")
    print(f"{'N':>6} {'causal':>6} {'mode':>7} {'thr':>3} | {'rlox ms':>9} {'GFLOP/s':>7} {'+MiB':>8} |"
          f" {'torch ms':>9} {'GFLOP/s':>7} {'+MiB':>8} | {'torch/rlox time':>15}")
    for threads in args.threads:
        for n in args.ns:
            reps = args.reps if n < 4096 else 1
            for causal in (False, True):
                for mode in ("fwd", "fwd-bwd"):
                    a = rlox(exe, n, causal, mode, threads, reps)
                    b = torch_run(py, n, causal, mode, threads, reps)
                    rows += [a, b]
                    ratio = b["seconds"] / a["seconds"] if "error" not in a and "error" not in b else float("nan")
                    print(f"{n:6d} {str(causal):>6} {mode:>7} {threads:3d} | {fmt(a)} | {fmt(b)} | {ratio:15.2f}",
                          flush=True)
    if args.memory_ns:
        print("\nrlox forward+backward peak memory (causal, 1 thread): growth with N")
        print(f"{'N':>6} | {'base MiB':>9} {'peak MiB':>9} {'+MiB':>8} {'ms':>9}")
        for n in args.memory_ns:
            a = rlox(exe, n, True, "fwd-bwd", 1, 1)
            rows.append(a)
            if "error" in a:
                print(f"{n:6d} | error {a['error']}")
            else:
                print(f"{n:6d} | {a['base_mib']:9.1f} {a['peak_mib']:9.1f} {a['peak_mib'] - a['base_mib']:+8.1f}"
                      f" {a['seconds'] * 1e3:9.0f}", flush=True)
    if args.naive_memory_n:
        n = args.naive_memory_n
        b = torch_run(py, n, False, "fwd-bwd", 2, 1, backend="math")
        rows.append(b)
        if "error" not in b:
            print(f"\nnaive attention (torch math backend), N={n}, forward+backward, 2 threads: "
                  f"+{b['peak_mib'] - b['base_mib']:.0f} MiB, {b['seconds'] * 1e3:.0f} ms")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
