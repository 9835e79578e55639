#!/usr/bin/env python3
"""Record seeded Gymnasium 1.4 episodes for rlox's parity tests (no state injected).

For every Gymnasium-compatible env rlox has, this script records from Gymnasium itself:

* ``reset_obs``: the observation of ``env.reset(seed=s)`` for several seeds (including seeds wider
  than 64 bits), and of the ``env.reset()`` that follows it (the stream continues);
* ``single``: ``gymnasium.make(id)`` reset with one seed, then at least 1,000 random actions (the
  env is reset with ``reset()`` whenever an episode ends), summarised per episode;
* ``vector``: ``gymnasium.make_vec(id, num_envs=4)`` (Gymnasium's default vectorisation: CartPole's
  NumPy ``CartPoleVectorEnv``, ``SyncVectorEnv`` for the rest) reset with one seed and stepped with
  random actions (``NEXT_STEP`` autoreset), summarised per call; CartPole also in ``sync`` mode, and
  CartPole and Pendulum also ``SyncVectorEnv`` with ``SAME_STEP`` autoreset.

The Rust test ``crates/rlox-envs/tests/gymnasium_seeded.rs`` replays the same seeds and actions
through rlox and compares. Files go to ``crates/rlox-envs/tests/fixtures/gym_seeded/``.

Usage::

    /var/tmp/venv-ref/bin/python tools/gymnasium_seeded_traces.py

(any Python with ``gymnasium==1.4.0`` works; the script checks the version).

Format (kept small and exact):

* observations of classic-control envs are ``float32`` bit patterns, 8 hex digits per component;
  toy-text observations are integers; rewards are ``float64`` bit patterns (16 hex digits);
* actions are a string of digits (discrete) or of 8-hex-digit ``float32`` bit patterns;
* every episode (single env) and every call (vector env) carries ``hash``: FNV-1a 64 over, for each
  step in order, the observation (``float32`` little-endian bytes, or ``int64`` for toy text), the
  reward (``float64`` little-endian), one byte ``terminated`` and one byte ``truncated``; a vector
  call hashes its envs in order and, in ``SAME_STEP`` mode, then the final observation of each env
  that ended. Episodes also store their first and last observation, length and return in full, so
  a mismatch is located and explained without the hash.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.toy_text.frozen_lake import generate_random_map
from gymnasium.vector import AutoresetMode

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "crates" / "rlox-envs" / "tests" / "fixtures" / "gym_seeded"
GYMNASIUM_VERSION = "1.4.0"
RESET_SEEDS = [0, 1, 2, 42, 12345, 2**32 - 1, 2**32, 2**63 + 5, 2**64 - 1, 2**80 + 3]
NUM_ENVS = 4
VECTOR_MCC_LIMIT = 250

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3

# (file stem, gymnasium id, make kwargs, kind, single-trace steps, vector calls). The vector env of
# MountainCarContinuous-v0 is made with max_episode_steps=250 (rlox: `with_time_limit`) so that its
# episodes end within a short trace; its single env keeps the registered 999.
CASES = [
    ("CartPole-v1", "CartPole-v1", {}, "classic", 1000, 300),
    ("Acrobot-v1", "Acrobot-v1", {}, "classic", 1200, 600),
    ("MountainCar-v0", "MountainCar-v0", {}, "classic", 1000, 300),
    ("MountainCarContinuous-v0", "MountainCarContinuous-v0", {}, "classic", 2100, 300),
    ("Pendulum-v1", "Pendulum-v1", {}, "classic", 1000, 300),
    ("FrozenLake-v1", "FrozenLake-v1", {}, "toy", 1000, 300),
    ("FrozenLake8x8-v1", "FrozenLake8x8-v1", {}, "toy", 1000, 300),
    ("CliffWalking-v1", "CliffWalking-v1", {}, "toy", 1000, 300),
    ("CliffWalkingSlippery-v1", "CliffWalkingSlippery-v1", {}, "toy", 1000, 300),
    ("Taxi-v4", "Taxi-v4", {}, "toy", 1000, 300),
    (
        "Taxi-v4-rainy-fickle",
        "Taxi-v4",
        {"is_rainy": True, "fickle_passenger": True, "fickle_probability": 0.5},
        "toy",
        1000,
        300,
    ),
]


def fnv(h: int, data: bytes) -> int:
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h


def obs_bytes(obs, kind: str) -> bytes:
    if kind == "classic":
        return np.asarray(obs, dtype=np.float32).astype("<f4").tobytes()
    return struct.pack("<q", int(obs))


def obs_json(obs, kind: str):
    if kind == "classic":
        return [struct.pack(">f", float(x)).hex() for x in np.asarray(obs, dtype=np.float32)]
    return int(obs)


def f64_hex(x: float) -> str:
    return struct.pack(">d", float(x)).hex()


def step_record(h: int, obs, reward, terminated: bool, truncated: bool, kind: str) -> int:
    h = fnv(h, obs_bytes(obs, kind))
    h = fnv(h, struct.pack("<d", float(reward)))
    return fnv(h, bytes([int(bool(terminated)), int(bool(truncated))]))


# Discrete actions are uniform, except on CliffWalking (up, right, down, left), whose goal a uniform
# walk rarely reaches: there the walk leans right.
ACTION_PROBS = {"CliffWalking-v1": [0.25, 0.4, 0.2, 0.15], "CliffWalkingSlippery-v1": [0.25, 0.4, 0.2, 0.15]}


class Actions:
    """The actions of a trace: random from their own generator, or (``guided``) a greedy Taxi driver.

    Random discrete actions are uniform except on CliffWalking; random continuous actions overshoot
    the bounds by a quarter of the range on each side so that clipping is exercised. A guided Taxi
    follows the optimal policy of the dry Taxi table 80% of the time (random otherwise), so that
    passengers get picked up and a fickle passenger changes destination, which random actions
    almost never do. The actions are recorded as taken, so the Rust side replays them verbatim.
    """

    def __init__(self, env_id: str, space: gym.Space, seed: int, guided: bool):
        self.g = np.random.default_rng(seed)
        self.space = space
        self.probs = ACTION_PROBS.get(env_id)
        self.q = taxi_q_values() if guided else None
        self.taken: list = []

    def next(self, obs):
        if isinstance(self.space, gym.spaces.Discrete):
            n = int(self.space.n)
            if self.q is not None and self.g.random() < 0.8:
                a = int(np.argmax(self.q[int(obs)]))
            elif self.probs:
                a = int(self.g.choice(n, p=self.probs))
            else:
                a = int(self.g.integers(0, n))
        else:
            lo, hi = float(self.space.low[0]), float(self.space.high[0])
            width = hi - lo
            a = np.float32(self.g.uniform(lo - 0.25 * width, hi + 0.25 * width))
        self.taken.append(a)
        return a

    def text(self) -> str:
        if isinstance(self.space, gym.spaces.Discrete):
            return "".join(str(a) for a in self.taken)
        return "".join(struct.pack(">f", a).hex() for a in self.taken)


def taxi_q_values() -> np.ndarray:
    """Optimal action values of the dry Taxi table (value iteration, discount 0.95)."""
    from gymnasium.envs.toy_text.taxi import TaxiEnv

    taxi = gym.make("Taxi-v4").unwrapped
    assert isinstance(taxi, TaxiEnv)
    p = taxi.P
    q = np.zeros((500, 6))
    for _ in range(200):
        v = q.max(axis=1)
        for s in range(500):
            for a in range(6):
                q[s, a] = sum(pr * (r + (0.0 if t else 0.95 * v[ns])) for pr, ns, r, t in p[s][a])
    return q


def env_action(a, space):
    return a if isinstance(space, gym.spaces.Discrete) else np.array([a], dtype=np.float32)


def reset_observations(env_id: str, kwargs: dict, kind: str) -> list:
    env = gym.make(env_id, **kwargs)
    out = []
    for s in RESET_SEEDS:
        first, _ = env.reset(seed=s)
        second, _ = env.reset()
        out.append({"seed": str(s), "obs": obs_json(first, kind), "next_obs": obs_json(second, kind)})
    env.close()
    return out


def single_trace(env_id: str, kwargs: dict, kind: str, steps: int, seed: int, action_seed: int, guided: bool) -> dict:
    env = gym.make(env_id, **kwargs)
    actions = Actions(env_id, env.action_space, action_seed, guided)
    obs, _ = env.reset(seed=seed)
    episodes = []
    ep = {"reset_obs": obs_json(obs, kind), "len": 0, "ret": 0.0, "h": FNV_OFFSET}
    fickle_changes = 0
    for _ in range(steps):
        fickle_before = getattr(env.unwrapped, "fickle_step", False)
        obs, r, term, trunc, _ = env.step(env_action(actions.next(obs), env.action_space))
        fickle_changes += int(fickle_before and not getattr(env.unwrapped, "fickle_step", False))
        ep["len"] += 1
        ep["ret"] += float(r)
        ep["h"] = step_record(ep["h"], obs, r, term, trunc, kind)
        ep["last_obs"] = obs_json(obs, kind)
        ep["terminated"], ep["truncated"] = bool(term), bool(trunc)
        if term or trunc:
            episodes.append(ep)
            obs, _ = env.reset()
            ep = {"reset_obs": obs_json(obs, kind), "len": 0, "ret": 0.0, "h": FNV_OFFSET}
    if ep["len"] > 0:
        episodes.append(ep)
    env.close()
    for e in episodes:
        e["ret"] = f64_hex(e["ret"])
        e["hash"] = format(e.pop("h"), "016x")
    ends = sum(e["terminated"] or e["truncated"] for e in episodes)
    assert ends >= 1, f"{env_id}: no episode ended in {steps} steps"
    assert not guided or fickle_changes >= 1, f"{env_id}: no fickle passenger changed their mind"
    return {"seed": seed, "steps": steps, "actions": actions.text(), "episodes": episodes}


def vector_trace(
    env_id: str, kwargs: dict, kind: str, calls: int, seed: int, action_seed: int, mode: str, guided: bool = False
) -> dict:
    if env_id == "MountainCarContinuous-v0":
        kwargs = {**kwargs, "max_episode_steps": VECTOR_MCC_LIMIT}
    if mode == "default":
        envs = gym.make_vec(env_id, num_envs=NUM_ENVS, **kwargs)
    elif mode == "sync":
        envs = gym.make_vec(env_id, num_envs=NUM_ENVS, vectorization_mode="sync", **kwargs)
    else:
        envs = gym.make_vec(
            env_id,
            num_envs=NUM_ENVS,
            vectorization_mode="sync",
            vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
            **kwargs,
        )
    space = envs.single_action_space
    actions = Actions(env_id, space, action_seed, guided)
    obs, _ = envs.reset(seed=seed)
    reset_obs = [obs_json(o, kind) for o in obs]
    hashes = []
    ended = 0
    for c in range(calls):
        batch = [actions.next(obs[i]) for i in range(NUM_ENVS)]
        act: np.ndarray
        if isinstance(space, gym.spaces.Discrete):
            act = np.array(batch, dtype=np.int64)
        else:
            act = np.array(batch, dtype=np.float32).reshape(NUM_ENVS, 1)
        obs, rew, term, trunc, info = envs.step(act)
        h = FNV_OFFSET
        for i in range(NUM_ENVS):
            h = step_record(h, obs[i], rew[i], term[i], trunc[i], kind)
        if mode == "same_step":
            for i in range(NUM_ENVS):
                if term[i] or trunc[i]:
                    h = fnv(h, obs_bytes(info["final_obs"][i], kind))
        ended += int(np.sum(term | trunc))
        hashes.append(format(h, "016x"))
    last = [obs_json(o, kind) for o in obs]
    vectoriser = type(envs.unwrapped).__name__
    envs.close()
    assert ended >= 1, f"{env_id} {mode}: no episode ended in {calls} calls"
    return {
        "mode": mode,
        "vectoriser": vectoriser,
        "num_envs": NUM_ENVS,
        "max_episode_steps": VECTOR_MCC_LIMIT if env_id == "MountainCarContinuous-v0" else None,
        "seed": seed,
        "calls": calls,
        "actions": actions.text(),
        "reset_obs": reset_obs,
        "last_obs": last,
        "episode_ends": ended,
        "hashes": hashes,
    }


def main() -> None:
    if gym.__version__ != GYMNASIUM_VERSION:
        sys.exit(f"expected gymnasium {GYMNASIUM_VERSION}, found {gym.__version__}")
    OUT.mkdir(parents=True, exist_ok=True)
    total = 0
    for k, (stem, env_id, kwargs, kind, steps, calls) in enumerate(CASES):
        guided = bool(kwargs.get("fickle_passenger", False))
        doc: dict[str, Any] = {
            "gymnasium": gym.__version__,
            "numpy": np.__version__,
            "id": env_id,
            "kwargs": kwargs,
            "kind": kind,
            "reset_obs": reset_observations(env_id, kwargs, kind),
            "single": single_trace(env_id, kwargs, kind, steps, 100 + k, 1000 + k, guided),
            "vector": [vector_trace(env_id, kwargs, kind, calls, 200 + k, 2000 + k, "default", guided)],
        }
        if env_id == "FrozenLake-v1":
            # generate_random_map(size, p, seed): Gymnasium's own seeded maps.
            doc["random_maps"] = [
                {"size": size, "p": p, "seed": seed, "map": generate_random_map(size=size, p=p, seed=seed)}
                for size, p, seed in [(8, 0.8, 0), (8, 0.8, 1), (8, 0.8, 42), (5, 0.6, 7), (4, 0.3, 3), (12, 0.9, 5)]
            ]
        if env_id == "CartPole-v1":
            doc["vector"].append(vector_trace(env_id, kwargs, kind, calls, seed=300, action_seed=3000, mode="sync"))
        if env_id in ("CartPole-v1", "Pendulum-v1"):
            doc["vector"].append(
                vector_trace(env_id, kwargs, kind, calls, seed=400 + k, action_seed=4000 + k, mode="same_step")
            )
        path = OUT / f"{stem}.json"
        path.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
        total += path.stat().st_size
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size} bytes")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
