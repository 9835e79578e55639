#!/usr/bin/env python3
"""Dump Gymnasium's toy-text transition tables (``env.unwrapped.P``) as JSON fixtures.

rlox's FrozenLake, CliffWalking and Taxi must reproduce Gymnasium's tables exactly; the Rust test
``crates/rlox-envs/tests/toy_text_tables.rs`` compares every (state, action) entry against the files
this script writes to ``crates/rlox-envs/tests/fixtures/toy_text/``.

Usage (from anywhere)::

    python3 tools/toy_text_tables.py

On first use the script creates ``tools/.venv``, installs the pinned Gymnasium there and re-runs
itself inside it. Nothing else on the machine is touched.

File layout (one JSON object per file, kept compact):

* ``gymnasium``: the version that produced the table;
* ``id`` / ``kwargs``: what was passed to ``gymnasium.make``;
* ``max_episode_steps``: the registered time limit (``null`` when there is none);
* ``n_states`` / ``n_actions``;
* ``P``: ``P[s][a]`` is the list of Gymnasium's outcomes, in Gymnasium's order, each
  ``[prob, prob_bits, next_state, reward, terminated]``. ``prob_bits`` is the IEEE-754 bit pattern
  of ``prob`` as an unsigned 64-bit integer, so the Rust side can compare probabilities bit for bit
  without trusting any decimal float parser;
* ``action_mask`` (Taxi only): ``info["action_mask"]`` for every state, from ``env.unwrapped.action_mask``.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

GYMNASIUM_VERSION = "1.4.0"
TOOLS = Path(__file__).resolve().parent
ROOT = TOOLS.parent
VENV = TOOLS / ".venv"
OUT = ROOT / "crates" / "rlox-envs" / "tests" / "fixtures" / "toy_text"

# (file stem, gymnasium id, kwargs). The first five are the required comparisons; the rest cover the
# options rlox implements (success_rate and reward_schedule, a non-square custom map, slippery cliff,
# rainy taxi).
CASES = [
    ("frozen_lake_4x4_slippery", "FrozenLake-v1", {"map_name": "4x4", "is_slippery": True}),
    ("frozen_lake_4x4_deterministic", "FrozenLake-v1", {"map_name": "4x4", "is_slippery": False}),
    ("frozen_lake_8x8_slippery", "FrozenLake8x8-v1", {"map_name": "8x8", "is_slippery": True}),
    ("cliff_walking", "CliffWalking-v1", {}),
    ("taxi", "Taxi-v4", {}),
    (
        "frozen_lake_4x4_success_075_schedule",
        "FrozenLake-v1",
        {"map_name": "4x4", "is_slippery": True, "success_rate": 0.75, "reward_schedule": [10, -1, 0]},
    ),
    ("frozen_lake_custom_2x5", "FrozenLake-v1", {"desc": ["SFFHF", "HFGFF"], "is_slippery": True}),
    ("cliff_walking_slippery", "CliffWalkingSlippery-v1", {}),
    ("taxi_rainy", "Taxi-v4", {"is_rainy": True}),
]


def in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def ensure_venv() -> None:
    """Create tools/.venv with the pinned Gymnasium and re-run this script inside it."""
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", f"gymnasium=={GYMNASIUM_VERSION}"], check=True
    )
    os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])


def bits(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", float(x)))[0]


def number(x):
    """Gymnasium's rewards are Python or NumPy ints/floats; keep ints as ints."""
    f = float(x)
    return int(f) if f.is_integer() else f


def dump(stem: str, env_id: str, kwargs: dict) -> None:
    import gymnasium as gym

    env = gym.make(env_id, **kwargs)
    raw = env.unwrapped
    n_states, n_actions = int(raw.observation_space.n), int(raw.action_space.n)
    table = []
    for s in range(n_states):
        row = []
        for a in range(n_actions):
            row.append(
                [[float(p), bits(p), int(nxt), number(r), bool(t)] for (p, nxt, r, t) in raw.P[s][a]]
            )
        table.append(row)
    doc = {
        "gymnasium": gym.__version__,
        "id": env_id,
        "kwargs": kwargs,
        "max_episode_steps": env.spec.max_episode_steps,
        "n_states": n_states,
        "n_actions": n_actions,
        "P": table,
    }
    if hasattr(raw, "action_mask"):
        doc["action_mask"] = [[int(m) for m in raw.action_mask(s)] for s in range(n_states)]
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{stem}.json"
    path.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"{path.relative_to(ROOT)}: {path.stat().st_size} bytes")


def main() -> None:
    if not in_venv():
        ensure_venv()
    import gymnasium as gym

    if gym.__version__ != GYMNASIUM_VERSION:
        sys.exit(f"expected gymnasium {GYMNASIUM_VERSION}, found {gym.__version__}")
    for stem, env_id, kwargs in CASES:
        dump(stem, env_id, kwargs)


if __name__ == "__main__":
    main()
