"""The f32 GEMM roofline of this machine at the shapes of rlox's RL networks: rlox's kernel and the gemm
crate (what burn-flex multiplies with), beside XLA (jax) and PyTorch, one thread each, in one run.

Creates bench/.venv-roofline (numpy, jax with its CPU wheels, torch: the CPU wheel from
download.pytorch.org, else PyPI's) on first use, builds rlox-nn's `roofline` example, then:
  1. runs it pinned to one core (`taskset -c CORE ... --one-thread --json`): the gemm crate and rlox's
     kernel at every shape (batch 32/64/256 x widths 4..400 forward products, the weight-gradient
     products, square 256..2048), and prints the trainers' FLOPs per env step;
  2. times `jax.jit(jnp.matmul)` (XLA, one intra-op thread) and `torch.matmul` (one thread) at the same
     shapes, pinned to the same core;
  3. with --two-threads, runs the example again unpinned for its two-thread columns.
Prints one table in GFLOP/s and each figure as a fraction of the best one-thread rate measured in the run.
Every rate is the fastest of 100 windows of about 2 ms: on a shared machine a long timing always holds time
the thread spent descheduled, and the fastest short window is what the core does when it runs the code.

Usage: python3 bench/roofline.py [--core 1] [--quick] [--two-threads] [--no-build] [--json out.json]
                                 [--python PATH]  (an interpreter that has jax and torch, instead of the venv)
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import venv

ROOT = pathlib.Path(__file__).resolve().parent.parent
VENV = ROOT / "bench" / ".venv-roofline"
VENV_PY = VENV / "bin" / "python"
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
EXAMPLE = TARGET / "release" / "examples" / "roofline"
ONE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "RAYON_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
}

# Runs inside the venv: times XLA and torch on the shapes given as JSON on stdin.
PEERS = r"""
import json, sys, time
import numpy as np

def per_call(f, samples):
    # The fastest of `samples` windows of about 2 ms (as the Rust side measures).
    f()
    t = time.perf_counter(); calls = 0
    while time.perf_counter() - t < 0.002 or calls < 3:
        f(); calls += 1
    reps = max(1, round(calls * 0.002 / (time.perf_counter() - t)))
    best = float("inf")
    for _ in range(samples):
        t = time.perf_counter()
        for _ in range(reps):
            f()
        best = min(best, (time.perf_counter() - t) / reps)
    return best

shapes, samples = json.load(sys.stdin)
import jax, jax.numpy as jnp
import torch
torch.set_num_threads(1)
mm = jax.jit(jnp.matmul)
out = []
for m, n, k in shapes:
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (m, k)).astype(np.float32)
    b = rng.uniform(-1, 1, (k, n)).astype(np.float32)
    ja, jb = jax.device_put(a), jax.device_put(b)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    flops = 2.0 * m * n * k
    t_xla = per_call(lambda: mm(ja, jb).block_until_ready(), samples)
    t_torch = per_call(lambda: torch.matmul(ta, tb), samples)
    out.append({"xla": flops / t_xla / 1e9, "torch": flops / t_torch / 1e9})
print(json.dumps({"rows": out, "jax": jax.__version__, "torch": torch.__version__}))
"""


def ensure_venv() -> None:
    if VENV_PY.exists():
        return
    venv.create(VENV, with_pip=True)
    pip = [str(VENV_PY), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "numpy", "jax"], check=True)
    cpu_wheel = [*pip, "torch", "--index-url", "https://download.pytorch.org/whl/cpu"]
    if subprocess.run(cpu_wheel, check=False).returncode != 0:
        subprocess.run([*pip, "torch"], check=True)


def pinned(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if shutil.which("taskset") else []


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--core", type=int, default=1, help="core for the one-thread runs"
    )
    parser.add_argument(
        "--quick", action="store_true", help="short timings, squares up to 512"
    )
    parser.add_argument(
        "--two-threads",
        action="store_true",
        help="also the two-thread columns (unpinned)",
    )
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument(
        "--json", type=pathlib.Path, help="write the combined table here"
    )
    parser.add_argument(
        "--python",
        type=pathlib.Path,
        help="a Python that has jax and torch (default: the venv)",
    )
    args = parser.parse_args()

    if args.python is None:
        ensure_venv()
    python = str(args.python or VENV_PY)
    env = {**os.environ, **ONE_THREAD}
    if not args.no_build:
        build = [
            "cargo",
            "build",
            "--release",
            "-p",
            "rlox-nn",
            "--example",
            "roofline",
        ]
        subprocess.run(build, cwd=ROOT, check=True)
    extra = ["--quick"] if args.quick else []
    with tempfile.TemporaryDirectory() as tmp:
        one = pathlib.Path(tmp) / "one.json"
        cmd = [
            *pinned(args.core),
            str(EXAMPLE),
            "--one-thread",
            "--json",
            str(one),
            *extra,
        ]
        subprocess.run(cmd, env=env, check=True)
        rust = json.loads(one.read_text())
        if args.two_threads:
            two = pathlib.Path(tmp) / "two.json"
            two_env = {**env, "RAYON_NUM_THREADS": "2"}
            subprocess.run(
                [str(EXAMPLE), "--json", str(two), *extra], env=two_env, check=True
            )
            for row, other in zip(rust["rows"], json.loads(two.read_text())["rows"]):
                row["gemm_2t"], row["rlox_2t"] = other["gemm_2t"], other["rlox_2t"]
    shapes = [[r["m"], r["n"], r["k"]] for r in rust["rows"]]
    samples = 30 if args.quick else 100
    peers = subprocess.run(
        [*pinned(args.core), python, "-c", PEERS],
        input=json.dumps([shapes, samples]),
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    peer = json.loads(peers.stdout.strip().splitlines()[-1])
    for row, p in zip(rust["rows"], peer["rows"]):
        row.update(p)

    cols = ["rlox_1t", "gemm_1t", "xla", "torch"]
    best = max(max(r[c] for c in cols) for r in rust["rows"])
    print()
    print(
        f"{rust['cpu']}; rlox isa {rust['isa']}; load average {rust['load']}; jax {peer['jax']}, torch {peer['torch']}"
    )
    print(
        f"GFLOP/s, one thread (core {args.core}); in brackets: fraction of the best one-thread rate of the run ({best:.0f})"
    )
    header = f"{'shape':<22} {'m':>5} {'n':>5} {'k':>5} | " + " | ".join(
        f"{c:>14}" for c in cols
    )
    if args.two_threads:
        header += " | rlox 2T | gemm 2T"
    print(header)
    for r in rust["rows"]:
        line = f"{r['label']:<22} {r['m']:>5} {r['n']:>5} {r['k']:>5} | "
        line += " | ".join(f"{r[c]:>7.1f} ({r[c] / best:4.2f})" for c in cols)
        if args.two_threads:
            line += f" | {r['rlox_2t'] or 0:>7.1f} | {r['gemm_2t'] or 0:>7.1f}"
        print(line)
    if args.json:
        args.json.write_text(
            json.dumps(
                {**rust, "peers": {"jax": peer["jax"], "torch": peer["torch"]}},
                indent=1,
            )
        )


if __name__ == "__main__":
    sys.exit(main())
