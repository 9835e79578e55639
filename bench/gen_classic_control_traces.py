"""Write long Gymnasium 1.4 classic-control traces for rlox's bit-exact tests.

The traces in crates/rlox-envs/tests/fixtures/env_traces_extra/ come from this script. They use the
same protocol and format as the reference traces (reset(seed=0), set env.unwrapped.state to
initial_state as a float64 array, apply the actions, restart the same way after each episode end)
but run longer, with policies chosen to reach the corners of each env: terminations, the left wall
of the mountain cars, clipped continuous actions, fast pendulum spins.

Usage: bench/.venv/bin/python bench/gen_classic_control_traces.py  (gymnasium==1.4.0, numpy 2.4.x)
"""

import json
import pathlib

import gymnasium as gym
import numpy as np

OUT = pathlib.Path(__file__).resolve().parent.parent / "crates/rlox-envs/tests/fixtures/env_traces_extra"
STEPS = 1000

CASES = {
    "CartPole-v1": ([0.02, 0.3, -0.05, -0.2], "[x, x_dot, theta, theta_dot]"),
    "Acrobot-v1": ([0.1, -0.2, 0.3, -0.4], "[theta1, theta2, dtheta1, dtheta2]"),
    "MountainCar-v0": ([-0.9, -0.05], "[position, velocity]"),
    "MountainCarContinuous-v0": ([-0.95, -0.06], "[position, velocity]"),
    "Pendulum-v1": ([-3.0, 7.5], "[theta, theta_dot]"),
}


def policy(env_id, state, t, rng):
    """Actions mixing energy pumping (to reach goals), pushes into walls and noise."""
    if env_id == "CartPole-v1":
        return int(rng.integers(2))
    if env_id == "Acrobot-v1":
        pump = 2 if state[3] > 0 else 0
        return pump if rng.random() < 0.8 else int(rng.integers(3))
    if env_id == "MountainCar-v0":
        if (t // 150) % 3 == 2:
            return 0  # push into the left wall
        pump = 2 if state[1] >= 0 else 0
        return pump if rng.random() < 0.9 else int(rng.integers(3))
    if env_id == "MountainCarContinuous-v0":
        r = rng.random()
        if r < 0.3:
            return [float(np.float32(rng.uniform(-1.6, 1.6)))]  # often clipped
        if r < 0.4:
            return [float(rng.choice([-1.0, 1.0, 0.0]))]
        pump = 1.0 if state[1] >= 0 else -1.0
        if (t // 200) % 4 == 3:
            pump = -1.0  # drive into the left wall
        return [float(np.float32(pump * rng.uniform(0.5, 1.0)))]
    if env_id == "Pendulum-v1":
        return [float(np.float32(rng.uniform(-4.0, 4.0)))]
    raise ValueError(env_id)


def as_action(env_id, a):
    return np.array(a, dtype=np.float32) if isinstance(a, list) else a


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for seed, (env_id, (init, layout)) in enumerate(CASES.items()):
        rng = np.random.default_rng(1000 + seed)
        env = gym.make(env_id)
        env.reset(seed=0)
        env.unwrapped.state = np.array(init, dtype=np.float64)
        steps, terms, truncs = [], 0, 0
        for t in range(STEPS):
            a = policy(env_id, np.asarray(env.unwrapped.state, dtype=np.float64), t, rng)
            obs, reward, terminated, truncated, _ = env.step(as_action(env_id, a))
            steps.append(
                {
                    "t": t,
                    "action": a,
                    "obs": [float(x) for x in obs],
                    "reward": float(reward),
                    "terminated": bool(terminated),
                    "truncated": bool(truncated),
                    "state_after": [float(x) for x in env.unwrapped.state],
                }
            )
            terms += bool(terminated)
            truncs += bool(truncated)
            if terminated or truncated:
                env.reset()
                env.unwrapped.state = np.array(init, dtype=np.float64)
        doc = {
            "env_id": env_id,
            "gymnasium_version": gym.__version__,
            "numpy_version": np.__version__,
            "max_episode_steps": env.spec.max_episode_steps,
            "initial_state": init,
            "state_layout": layout,
            "generator": "bench/gen_classic_control_traces.py",
            "steps": steps,
            "summary": {"terminations": terms, "truncations": truncs},
        }
        path = OUT / f"{env_id}.json"
        path.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
        print(f"{env_id}: {STEPS} steps, {terms} terminations, {truncs} truncations -> {path}")


if __name__ == "__main__":
    main()
