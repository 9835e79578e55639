"""Shared helpers of the rlox test suite (run against the installed package, not the source tree)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest

import rlox

#: Every env id of the Rust registry.
ALL_IDS = [s["id"] for s in rlox.specs()]
#: The envs Gymnasium 1.4 also has (the book's grid world is rlox's own).
GYM_IDS = [i for i in ALL_IDS if i != "gridworld"]
CLASSIC = ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1"]
TOY_TEXT = ["FrozenLake-v1", "FrozenLake8x8-v1", "CliffWalking-v1", "Taxi-v4"]

REPO = Path(__file__).resolve().parents[2]


def sample_action(space: gymnasium.Space[Any], rng: np.random.Generator) -> Any:
    """A random action drawn from ``rng`` (the same draws for rlox and Gymnasium)."""
    if isinstance(space, gymnasium.spaces.Discrete):
        return int(space.start + rng.integers(space.n))
    assert isinstance(space, gymnasium.spaces.Box)
    return rng.uniform(space.low, space.high).astype(np.float32)


def sample_actions(space: gymnasium.Space[Any], n: int, rng: np.random.Generator) -> np.ndarray:
    """A batch of ``n`` random actions."""
    if isinstance(space, gymnasium.spaces.Discrete):
        return space.start + rng.integers(space.n, size=n)
    assert isinstance(space, gymnasium.spaces.Box)
    return rng.uniform(space.low, space.high, size=(n, *space.shape)).astype(np.float32)


def ulp_distance(a: np.ndarray, b: np.ndarray) -> int:
    """The largest distance in float32 ulps between two float32 arrays (0: bit for bit)."""
    a = np.ascontiguousarray(a, dtype=np.float32).view(np.int32).astype(np.int64)
    b = np.ascontiguousarray(b, dtype=np.float32).view(np.int32).astype(np.int64)
    # Map the sign-magnitude bit patterns onto a monotone integer line.
    a = np.where(a < 0, np.int64(-(2**31)) - a, a)
    b = np.where(b < 0, np.int64(-(2**31)) - b, b)
    return int(np.max(np.abs(a - b))) if a.size else 0


@pytest.fixture(scope="session")
def rlox_bin() -> str:
    """The ``rlox`` command-line tool (RLOX_BIN, the cargo target dir, or PATH); skipped if not built."""
    candidates = [os.environ.get("RLOX_BIN")]
    target = os.environ.get("CARGO_TARGET_DIR", str(REPO / "target"))
    candidates.append(str(Path(target) / "release" / "rlox"))
    candidates.append(shutil.which("rlox"))
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    if os.environ.get("RLOX_BIN"):
        pytest.fail(f"RLOX_BIN={os.environ['RLOX_BIN']} is not an executable")
    pytest.skip("the rlox CLI is not built (cargo build --release -p rlox-cli) and RLOX_BIN is unset")
