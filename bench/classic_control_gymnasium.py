"""CartPole step throughput: Gymnasium 1.4 (NumPy) against rlox, single-threaded, in one run.

Creates bench/.venv (gymnasium==1.4.0 and numpy) on first use, then, with OMP_NUM_THREADS=1:
  1. times Gymnasium's CartPole-v1 scalar step (gymnasium.make, i.e. with its TimeLimit,
     OrderEnforcing and PassiveEnvChecker wrappers, and the bare CartPoleEnv for reference);
  2. times Gymnasium's NumPy-vectorised CartPole (make_vec(..., vectorization_mode="vector_entry_point"))
     at 1, 8, 64 and 256 envs;
  3. runs `cargo bench -p rlox-envs --bench cartpole` (scalar step in TimeLimit; the batch through
     `step_into` at 1, 8, 64, 256 envs with the detected instruction set and with the portable path);
and prints env-steps per second of thread CPU time for each and the rlox/Gymnasium ratios. Run it
pinned to one core (`taskset -c 1 python3 bench/classic_control_gymnasium.py`) so that both sides
share the same core.

Usage: python3 bench/classic_control_gymnasium.py [--seconds 3] [--measurement-time 3]
"""

import argparse
import os
import pathlib
import re
import subprocess
import sys
import time
import venv

ROOT = pathlib.Path(__file__).resolve().parent.parent
VENV = ROOT / "bench" / ".venv"
VENV_PY = VENV / "bin" / "python"
BATCH_SIZES = (1, 8, 64, 256)


def ensure_venv():
    """Create the venv and re-run this script inside it, single-threaded."""
    if pathlib.Path(sys.prefix).resolve() == VENV.resolve():
        return
    if not VENV_PY.exists():
        print(f"creating {VENV} ...", flush=True)
        venv.create(VENV, with_pip=True)
        subprocess.check_call([str(VENV_PY), "-m", "pip", "install", "-q", "gymnasium==1.4.0", "numpy"])
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
        env[var] = "1"
    os.execve(str(VENV_PY), [str(VENV_PY), __file__, *sys.argv[1:]], env)


def time_loop(step, seconds):
    """Call step(i) in batches until `seconds` of this thread's CPU time have passed; return calls
    per CPU second. The thread's CPU clock (as the rlox criterion bench uses) does not count the time
    other processes on a shared machine take from this one."""
    n, start = 0, time.thread_time()
    while True:
        for _ in range(1000):
            step(n)
            n += 1
        elapsed = time.thread_time() - start
        if elapsed >= seconds:
            return n / elapsed


def bench_gymnasium(seconds):
    import gymnasium as gym
    import numpy as np

    rng = np.random.default_rng(0)
    table = [int(a) for a in rng.integers(0, 2, size=4096)]
    results = {}

    for label, env in (("scalar (gym.make)", gym.make("CartPole-v1")), ("scalar (unwrapped)", None)):
        if env is None:
            env = gym.make("CartPole-v1").unwrapped
        env.reset(seed=0)

        def step(i, env=env):
            _, _, terminated, truncated, _ = env.step(table[i & 4095])
            if terminated or truncated:
                env.reset()

        results[label] = time_loop(step, seconds)

    for n in BATCH_SIZES:
        venv_env = gym.make_vec("CartPole-v1", num_envs=n, vectorization_mode="vector_entry_point")
        venv_env.reset(seed=0)
        actions = [rng.integers(0, 2, size=n) for _ in range(64)]

        def vstep(i, venv_env=venv_env, actions=actions):
            venv_env.step(actions[i & 63])

        results[f"batch {n}"] = time_loop(vstep, seconds) * n
    return results, gym.__version__, np.__version__


UNITS = {"ps": 1e-12, "ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def bench_rlox(measurement_time):
    cmd = [
        "cargo", "bench", "-p", "rlox-envs", "--bench", "cartpole", "--",
        "--warm-up-time", "1", "--measurement-time", str(measurement_time),
    ]
    print("running:", " ".join(cmd), flush=True)
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    found = {}
    pattern = r"(\w+)/(\w+)(?:/(\d+))?\s+time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]"
    for group, name, n, mid, unit in re.findall(pattern, out):
        found[(group, name, int(n) if n else 1)] = float(mid) * UNITS[unit]
    results = {}
    for (group, name, n), seconds in sorted(found.items()):
        label = "scalar (TimeLimit)" if name == "scalar_step" else f"{group}/{name} {n}"
        results[label] = n / seconds
    if "scalar (TimeLimit)" not in results or not any(k.startswith("cartpole_batch/") for k in results):
        sys.exit(f"could not read criterion's output:\n{out}")
    return results


def main():
    ensure_venv()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0, help="timing per Gymnasium case")
    ap.add_argument("--measurement-time", type=float, default=3.0, help="criterion measurement time per bench")
    args = ap.parse_args()

    gym_res, gym_v, np_v = bench_gymnasium(args.seconds)
    rlox_res = bench_rlox(args.measurement_time)

    print(f"\nCartPole-v1 steps per second, one thread (gymnasium {gym_v}, numpy {np_v}, OMP_NUM_THREADS=1)")
    for k, v in gym_res.items():
        print(f"  gymnasium {k:<34} {v:>14,.0f}")
    for k, v in rlox_res.items():
        print(f"  rlox      {k:<34} {v:>14,.0f}")
    g_scalar = gym_res["scalar (gym.make)"]
    r_scalar = rlox_res["scalar (TimeLimit)"]
    print(f"\n  scalar: rlox / gymnasium (gym.make)        = {r_scalar / g_scalar:8.1f}x")
    print(f"  scalar: rlox / gymnasium (unwrapped)       = {r_scalar / gym_res['scalar (unwrapped)']:8.1f}x")
    fast = next(k.split("/")[1].split(" ")[0] for k in rlox_res if k.startswith("cartpole_batch/step_into_") and "portable" not in k)
    for n in BATCH_SIZES:
        g = gym_res[f"batch {n}"]
        r = rlox_res[f"cartpole_batch/{fast} {n}"]
        p = rlox_res[f"cartpole_batch/step_into_portable {n}"]
        print(
            f"  batch {n:>3}: rlox {fast} {1e9 / r:6.2f} ns/env-step = {r / g:7.1f}x gymnasium vector env"
            f" (portable {1e9 / p:6.2f} ns = {p / g:6.1f}x)"
        )


if __name__ == "__main__":
    main()
