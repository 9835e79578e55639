#!/usr/bin/env python3
"""Value iteration on a 1000x1000 random grid world (1e6 states): rlox against vectorised NumPy.

Usage:  python3 bench/value_iteration_numpy.py [ROWS COLS]

Both sides build the same grid (cell i forbidden when splitmix64(seed + i) % 100 < 20, target in
the centre, the book's rewards r_boundary = r_forbidden = -1, r_target = 1, r_other = 0, gamma 0.9)
and iterate v <- max_a [r(s,a) + gamma v(next(s,a))] until ||v_k - v_{k-1}||_inf < 1e-10, one thread
each. The script checks that both reach the same values (sum of values) and prints the ratio.
"""
import json
import os
import subprocess
import sys
import time
import venv

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV = os.path.join(HERE, ".venv")
MASK = (1 << 64) - 1


def ensure_venv(packages):
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        venv.create(VENV, with_pip=True)
    missing = [p for p in packages if subprocess.run([py, "-c", f"import {p.split('==')[0]}"], capture_output=True).returncode]
    if missing:
        subprocess.run([py, "-m", "pip", "install", "-q", *missing], check=True)
    return py


def numpy_vi(rows, cols, pct=20, seed=0, gamma=0.9, tol=1e-10):
    import numpy as np

    n = rows * cols
    with np.errstate(over="ignore"):
        z = (np.arange(n, dtype=np.uint64) + np.uint64(seed)) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    forbidden = (z % np.uint64(100)) < np.uint64(pct)
    target = (rows // 2) * cols + cols // 2
    forbidden[target] = False
    r = np.arange(n) // cols
    c = np.arange(n) % cols
    nxt = np.empty((n, 5), dtype=np.int64)
    rew = np.empty((n, 5), dtype=np.float64)
    for a, (dr, dc) in enumerate([(-1, 0), (0, 1), (1, 0), (0, -1), (0, 0)]):
        rr, cc = r + dr, c + dc
        off = (rr < 0) | (rr >= rows) | (cc < 0) | (cc >= cols)
        to = np.where(off, np.arange(n), np.clip(rr, 0, rows - 1) * cols + np.clip(cc, 0, cols - 1))
        nxt[:, a] = to
        rew[:, a] = np.where(off, -1.0, np.where(to == target, 1.0, np.where(forbidden[to], -1.0, 0.0)))
    v = np.zeros(n)
    t0 = time.perf_counter()
    sweeps = 0
    while True:
        new = (rew + gamma * v[nxt]).max(axis=1)
        delta = np.abs(new - v).max()
        v = new
        sweeps += 1
        if delta < tol:
            break
    secs = time.perf_counter() - t0
    return {"impl": "numpy", "numpy": np.__version__, "states": n, "sweeps": sweeps, "seconds": round(secs, 4),
            "sweeps_per_second": round(sweeps / secs, 2), "value_sum": float(v.sum()), "forbidden": int(forbidden.sum())}


def main():
    if "--inner" in sys.argv:
        rows, cols = int(sys.argv[2]), int(sys.argv[3])
        print(json.dumps(numpy_vi(rows, cols)))
        return
    rows, cols = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) > 2 else (1000, 1000)
    py = ensure_venv(["numpy"])
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", RAYON_NUM_THREADS="1")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "rlox-tabular", "--example", "vi_large"], cwd=ROOT, check=True)
    rust = json.loads(subprocess.run(["cargo", "run", "--release", "-q", "-p", "rlox-tabular", "--example", "vi_large", "--", str(rows), str(cols)],
                                     cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout)
    numpy = json.loads(subprocess.run([py, os.path.abspath(__file__), "--inner", str(rows), str(cols)], env=env, check=True,
                                      capture_output=True, text=True).stdout)
    print(json.dumps(rust))
    print(json.dumps(numpy))
    same = abs(rust["value_sum"] - numpy["value_sum"]) <= 1e-6 * max(1.0, abs(numpy["value_sum"])) and rust["forbidden"] == numpy["forbidden"]
    print(f"same model and values: {same}")
    print(f"rlox {rust['seconds']:.3f} s ({rust['sweeps']} sweeps, {rust['sweeps_per_second']:.1f} sweeps/s) vs "
          f"NumPy {numpy['seconds']:.3f} s ({numpy['sweeps']} sweeps, {numpy['sweeps_per_second']:.1f} sweeps/s): "
          f"rlox is {numpy['seconds'] / rust['seconds']:.2f}x faster")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
