"""Gymnasium spaces from the descriptions the Rust core gives."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces


def to_gym(desc: tuple[Any, ...]) -> spaces.Space[Any]:
    """``("Discrete", n, start)``, ``("Box", low, high, shape)`` or ``("MultiDiscrete", nvec)`` as a space."""
    kind = desc[0]
    if kind == "Discrete":
        return spaces.Discrete(int(desc[1]), start=int(desc[2]))
    if kind == "Box":
        low = np.asarray(desc[1], dtype=np.float32).reshape(desc[3])
        high = np.asarray(desc[2], dtype=np.float32).reshape(desc[3])
        return spaces.Box(low=low, high=high, shape=tuple(desc[3]), dtype=np.float32)
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(np.asarray(desc[1], dtype=np.int64))
    raise ValueError(f"unknown space description {desc!r}")
