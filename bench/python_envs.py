"""Env steps per second from Python: Gymnasium, envpool and rlox on CartPole-v1, one thread each, one run.

Creates bench/.venv-python-envs (gymnasium==1.4.0, numpy, envpool==1.2.5, maturin) on first use,
builds the rlox package into it from python/ (maturin, release, reusing CARGO_TARGET_DIR when set),
re-runs itself pinned to one core (`taskset -c 1`) with every thread pool at one thread, and times:

  * gymnasium.make("CartPole-v1")            scalar env (TimeLimit, OrderEnforcing, env checker)
  * rlox.make("CartPole-v1")                 scalar env (time limit counted in Rust)
  * gymnasium.make_vec("CartPole-v1", n)     Gymnasium's NumPy-vectorised CartPoleVectorEnv
  * envpool.make_gymnasium(..., num_threads=1, batch_size=n)
  * rlox.make_vec("CartPole-v1", n)          copy=True (Gymnasium's default: fresh arrays) and copy=False

for n in 1, 8, 64, 256. Actions are drawn before timing (a table of 64 batches, cycled). Each
contestant runs in rounds that alternate with the others (so a change of machine load hits all of
them), and the best round counts. `--profile` adds where an rlox step's time goes.

Usage: python3 bench/python_envs.py [--seconds 1.0] [--rounds 3] [--sizes 1,8,64,256] [--profile]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import time
import venv

ROOT = pathlib.Path(__file__).resolve().parent.parent
VENV = ROOT / "bench" / ".venv-python-envs"
VENV_PY = VENV / "bin" / "python"
ANCHORS = ["gymnasium==1.4.0", "numpy==2.4.6", "envpool==1.2.5", "maturin==1.16.0"]


def ensure_venv() -> None:
    """Create the venv, build rlox into it, and re-run this script there, pinned and single-threaded."""
    inside = pathlib.Path(sys.prefix).resolve() == VENV.resolve()
    if not inside:
        if not VENV_PY.exists():
            print(f"creating {VENV} ...", flush=True)
            venv.create(VENV, with_pip=True)
            subprocess.check_call(
                [str(VENV_PY), "-m", "pip", "install", "-q", *ANCHORS]
            )
        if "--no-build" not in sys.argv:
            print("building rlox (maturin, release) ...", flush=True)
            dist = ROOT / "bench" / ".dist"
            shutil.rmtree(dist, ignore_errors=True)
            subprocess.check_call(
                [
                    str(VENV / "bin" / "maturin"),
                    "build",
                    "--release",
                    "-q",
                    "-o",
                    str(dist),
                ],
                cwd=ROOT / "python",
            )
            wheel = next(dist.glob("rlox-*.whl"))
            subprocess.check_call(
                [
                    str(VENV_PY),
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "--force-reinstall",
                    "--no-deps",
                    str(wheel),
                ]
            )
        env = dict(os.environ)
        for var in (
            "OMP_NUM_THREADS",
            "OPENBLAS_NUM_THREADS",
            "MKL_NUM_THREADS",
            "RAYON_NUM_THREADS",
        ):
            env[var] = "1"
        args = [a for a in sys.argv[1:] if a != "--no-build"]
        cmd = [str(VENV_PY), __file__, *args]
        if shutil.which("taskset") and "--no-pin" not in args:
            cmd = ["taskset", "-c", "1", *cmd]
        os.execvpe(cmd[0], cmd, env)


def _time_calls(step, seconds: float) -> float:
    """Calls of step(i) per second, over at least `seconds`."""
    n, start = 0, time.perf_counter()
    while True:
        for _ in range(200):
            step(n)
            n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


time_calls = _time_calls


def contestants(sizes: list[int]):
    """(name, num_envs, make) where make() returns a step(i) closure."""
    import envpool
    import gymnasium as gym
    import numpy as np
    import rlox

    rng = np.random.default_rng(0)

    def scalar(make_env):
        def make():
            env = make_env()
            env.reset(seed=0)
            table = [int(a) for a in rng.integers(0, 2, size=4096)]

            def step(i):
                _, _, term, trunc, _ = env.step(table[i & 4095])
                if term or trunc:
                    env.reset()

            return step

        return make

    def batched(make_env, n, reset_kwargs):
        def make():
            env = make_env()
            env.reset(**reset_kwargs)
            table = [rng.integers(0, 2, size=n) for _ in range(64)]

            def step(i):
                env.step(table[i & 63])

            return step

        return make

    out = [
        ("gymnasium.make", 1, scalar(lambda: gym.make("CartPole-v1"))),
        ("rlox.make", 1, scalar(lambda: rlox.make("CartPole-v1"))),
    ]
    for n in sizes:
        out += [
            (
                "gymnasium.make_vec",
                n,
                batched(lambda n=n: gym.make_vec("CartPole-v1", n), n, {"seed": 0}),
            ),
            (
                "envpool",
                n,
                batched(
                    lambda n=n: envpool.make_gymnasium(
                        "CartPole-v1", num_envs=n, batch_size=n, num_threads=1, seed=0
                    ),
                    n,
                    {},
                ),
            ),
            (
                "rlox.make_vec",
                n,
                batched(lambda n=n: rlox.make_vec("CartPole-v1", n), n, {"seed": 0}),
            ),
            (
                "rlox.make_vec copy=False",
                n,
                batched(
                    lambda n=n: rlox.make_vec("CartPole-v1", n, copy=False),
                    n,
                    {"seed": 0},
                ),
            ),
        ]
    return out


def profile(sizes: list[int], seconds: float) -> None:
    """Where an rlox.make_vec step's time goes: the Rust batch alone, the extension call, the Python wrapper."""
    import numpy as np
    import rlox

    print("\nwhere the time of one rlox.make_vec step goes (microseconds per call):")
    print("  Rust step: the batch step alone, in a Rust loop; _rlox call: the extension's step from Python")
    print("  (copy=False: actions read, outputs in place, infos dict); +copy: with fresh output arrays;")
    print("  VectorEnv: through the gymnasium.vector.VectorEnv method; py call: an empty Python method")
    print(
        f"{'envs':>6} {'Rust step':>10} {'_rlox call':>11} {'+copy':>7} {'VectorEnv':>10} {'py call':>8}"
    )
    for n in sizes:
        actions = np.random.default_rng(0).integers(0, 2, size=n)
        fast = rlox.make_vec("CartPole-v1", n, copy=False)
        fast.reset(seed=0)
        rust = (
            fast._core._bench_step(actions, 20000) * 1e6
        )  # the Rust batch step alone, in a Rust loop
        core = fast._core
        nocopy = 1e6 / time_calls(lambda i, c=core, a=actions: c.step(a), seconds)
        copying = rlox.make_vec("CartPole-v1", n)
        copying.reset(seed=0)
        ccore = copying._core
        withcopy = 1e6 / time_calls(lambda i, c=ccore, a=actions: c.step(a), seconds)
        wrapper = 1e6 / time_calls(lambda i, c=copying, a=actions: c.step(a), seconds)

        class Empty:
            def step(self, a):
                return a

        e = Empty()
        pycall = 1e6 / time_calls(lambda i, c=e, a=actions: c.step(a), seconds)
        print(
            f"{n:>6} {rust:>10.3f} {nocopy:>11.3f} {withcopy:>7.3f} {wrapper:>10.3f} {pycall:>8.3f}"
        )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--sizes", default="1,8,64,256")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--no-pin", action="store_true")
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    cpu_lines = pathlib.Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in cpu_lines
            if line.startswith("model name")
        ),
        "?",
    )
    print(
        f"CPU: {cpu}; python {platform.python_version()}; affinity {sorted(os.sched_getaffinity(0))}"
    )
    print(f"load before: {pathlib.Path('/proc/loadavg').read_text().strip()}")
    entries = contestants(sizes)
    steps = [make() for _, _, make in entries]
    best = [0.0] * len(entries)
    for _ in range(args.rounds):
        for k, ((_, n, _), step) in enumerate(zip(entries, steps)):
            best[k] = max(best[k], time_calls(step, args.seconds) * n)
    print(f"load after:  {pathlib.Path('/proc/loadavg').read_text().strip()}")
    rate = {(name, n): best[k] for k, (name, n, _) in enumerate(entries)}

    print(
        f"\nenv steps per second (best of {args.rounds} rounds of {args.seconds:.1f} s, one thread):"
    )
    print(f"{'contestant':<26}" + "".join(f"{n:>14}" for n in sizes))
    names = [
        "gymnasium.make",
        "rlox.make",
        "gymnasium.make_vec",
        "envpool",
        "rlox.make_vec",
        "rlox.make_vec copy=False",
    ]
    for name in names:
        cells = [rate.get((name, n)) for n in sizes]
        print(
            f"{name:<26}" + "".join(f"{c:>14,.0f}" if c else f"{'':>14}" for c in cells)
        )
    print("\nratios:")
    print(f"{'':<34}" + "".join(f"{n:>10}" for n in sizes))
    for label, num, den in [
        ("rlox.make_vec / envpool", "rlox.make_vec", "envpool"),
        ("rlox.make_vec / gymnasium.make_vec", "rlox.make_vec", "gymnasium.make_vec"),
        ("copy=False / envpool", "rlox.make_vec copy=False", "envpool"),
    ]:
        print(
            f"{label:<34}"
            + "".join(f"{rate[(num, n)] / rate[(den, n)]:>9.1f}x" for n in sizes)
        )
    print(
        f"{'rlox.make / gymnasium.make':<34}{rate[('rlox.make', 1)] / rate[('gymnasium.make', 1)]:>9.1f}x"
    )
    if args.profile:
        profile(sizes, args.seconds)


if __name__ == "__main__":
    ensure_venv()
    main()
