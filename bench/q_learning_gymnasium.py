#!/usr/bin/env python3
"""Tabular Q-learning throughput: rlox against a NumPy Q-learning loop on Gymnasium's FrozenLake-v1.

Usage:  python3 bench/q_learning_gymnasium.py [EPISODES]

Same work on both sides: FrozenLake-v1 (slippery 4x4, 100-step limit), epsilon-greedy (0.1) Q-learning
with alpha 0.1 and gamma 0.99 for EPISODES episodes (default 20,000), one thread each. Prints steps per
second of both and the ratio. The Python loop is the usual one (env.step per step, a NumPy q-table).
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


def ensure_venv(packages):
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        venv.create(VENV, with_pip=True)
    for spec in packages:
        name = spec.split("==")[0]
        if subprocess.run([py, "-c", f"import {name}"], capture_output=True).returncode:
            subprocess.run([py, "-m", "pip", "install", "-q", spec], check=True)
    return py


def python_q_learning(episodes, seed=0):
    import gymnasium as gym
    import numpy as np

    env = gym.make("FrozenLake-v1")
    rng = np.random.default_rng(seed)
    q = np.zeros((16, 4))
    steps = 0
    t0 = time.perf_counter()
    for ep in range(episodes):
        s, _ = env.reset(seed=seed if ep == 0 else None)
        done = False
        while not done:
            if rng.random() < 0.1:
                a = int(rng.integers(4))
            else:
                a = int(np.argmax(q[s]))
            s2, r, term, trunc, _ = env.step(a)
            target = r if term else r + 0.99 * q[s2].max()
            q[s, a] += 0.1 * (target - q[s, a])
            s = s2
            done = term or trunc
            steps += 1
    secs = time.perf_counter() - t0
    return {"impl": "python+numpy", "gymnasium": gym.__version__, "numpy": np.__version__, "frozenlake_episodes": episodes,
            "frozenlake_steps": steps, "frozenlake_seconds": round(secs, 3), "frozenlake_steps_per_second": round(steps / secs)}


def main():
    if "--inner" in sys.argv:
        print(json.dumps(python_q_learning(int(sys.argv[2]))))
        return
    episodes = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    py = ensure_venv(["numpy", "gymnasium==1.4.0"])
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", RAYON_NUM_THREADS="1")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "rlox-tabular", "--example", "q_learning_speed"], cwd=ROOT, check=True)
    rust = json.loads(subprocess.run(["cargo", "run", "--release", "-q", "-p", "rlox-tabular", "--example", "q_learning_speed", "--", str(episodes)],
                                     cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout)
    python = json.loads(subprocess.run([py, os.path.abspath(__file__), "--inner", str(episodes)], env=env, check=True,
                                       capture_output=True, text=True).stdout)
    print(json.dumps(rust))
    print(json.dumps(python))
    ratio = rust["frozenlake_steps_per_second"] / python["frozenlake_steps_per_second"]
    print(f"FrozenLake-v1 Q-learning: rlox {rust['frozenlake_steps_per_second']:,.0f} steps/s vs Gymnasium+NumPy "
          f"{python['frozenlake_steps_per_second']:,.0f} steps/s: {ratio:.0f}x; book-5x5 off-policy Q-learning: rlox "
          f"{rust['gridworld_steps_per_second']:,.0f} steps/s")


if __name__ == "__main__":
    main()
