#!/usr/bin/env python3
"""Record NumPy's random stream, as Gymnasium seeds it, for rlox-core's seeding tests.

rlox-core reimplements ``np.random.SeedSequence``, ``np.random.PCG64`` and the draws of
``np.random.Generator`` that Gymnasium's environments make (``random``, ``uniform``, ``integers``,
``choice``) plus Gymnasium's toy-text ``categorical_sample``. The Rust test
``crates/rlox-core/tests/numpy_random.rs`` compares them against the values this script records
from NumPy itself into ``crates/rlox-core/tests/fixtures/numpy_random.json``.

Usage::

    /var/tmp/venv-ref/bin/python tools/numpy_random_fixture.py

(any Python with ``gymnasium==1.4.0`` and NumPy 2 will do; the script checks the versions).

Every double is stored as its IEEE-754 bit pattern in 16 hex digits, every 128-bit state word as
hex, so the Rust side compares bits without a decimal parser. Seeds larger than 64 bits are stored
as decimal strings and as 64-bit limbs (lowest first).
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium.envs.toy_text.utils import categorical_sample
from gymnasium.utils import seeding

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "crates" / "rlox-core" / "tests" / "fixtures" / "numpy_random.json"
GYMNASIUM_VERSION = "1.4.0"

SEEDS = [0, 1, 2, 7, 42, 123, 12345, 2**31 - 1, 2**32 - 1, 2**32, 2**63, 2**64 - 1, 2**100 + 7, 3**200]


def f64_bits(x: float) -> str:
    return struct.pack(">d", float(x)).hex()


def limbs(n: int) -> list[str]:
    out = []
    while True:
        out.append(str(n & (2**64 - 1)))
        n >>= 64
        if n == 0:
            return out


def seed_record(seed: int) -> dict:
    seq = np.random.SeedSequence(seed)
    rng, np_seed = seeding.np_random(seed)
    assert np_seed == seed
    st = rng.bit_generator.state
    rec: dict = {
        "seed": str(seed),
        "limbs": limbs(seed),
        "generate_state_u32": [int(w) for w in seq.generate_state(8, np.uint32)],
        "pcg64_state": format(st["state"]["state"], "032x"),
        "pcg64_inc": format(st["state"]["inc"], "032x"),
        "next_u64": [
            format(int(x), "016x") for x in np.random.Generator(np.random.PCG64(seed)).bit_generator.random_raw(6)
        ],
        "random": [f64_bits(x) for x in np.random.default_rng(seed).random(6)],
    }
    # uniform as the classic-control resets call it (scalar bounds with a size, then array bounds).
    g = np.random.default_rng(seed)
    rec["uniform_cartpole"] = [f64_bits(x) for x in g.uniform(low=-0.05, high=0.05, size=(4,))]
    rec["uniform_mountain_car"] = f64_bits(g.uniform(low=-0.6, high=-0.4))
    high = np.array([np.pi, 1.0])
    rec["uniform_pendulum"] = [f64_bits(x) for x in g.uniform(low=-high, high=high)]
    # A mixed stream: 32-bit bounded draws share a buffered half of a 64-bit draw, doubles do not.
    g = np.random.default_rng(seed)
    mixed = []
    for kind, lo, hi in [
        ("int", 0, 3),
        ("double", 0, 0),
        ("int", 0, 3),
        ("int", 0, 500),
        ("int", -5, 5),
        ("int", 0, 2**32),
        ("int", 0, 2**40),
        ("int", 7, 8),
        ("int", 0, 2**63 - 1),
        ("int", -(2**63), 2**63 - 1),
        ("double", 0, 0),
        ("int", 0, 6),
        ("choice3", 0, 0),
        ("int", 0, 2),
    ]:
        if kind == "double":
            mixed.append(["double", 0, 0, f64_bits(g.random())])
        elif kind == "choice3":
            mixed.append(["choice3", 0, 3, str(int(g.choice([0, 1, 3])))])
        else:
            mixed.append(["int", str(lo), str(hi), str(int(g.integers(lo, hi)))])
    rec["mixed"] = mixed
    st = g.bit_generator.state
    rec["mixed_end_state"] = {
        "state": format(st["state"]["state"], "032x"),
        "has_uint32": int(st["has_uint32"]),
        "uinteger": int(st["uinteger"]),
    }
    # Gymnasium's toy-text sampler on FrozenLake-like rows and Taxi's 500-state start distribution.
    g = np.random.default_rng(seed)
    taxi_like = np.zeros(500)
    taxi_like[[i for i in range(500) if i % 5 != 0 and i % 7 != 0][:300]] = 1.0
    taxi_like /= taxi_like.sum()
    rows = [
        [0.33333333333333337, 0.3333333333333333, 0.33333333333333337],
        [1.0],
        [0.1, 0.0, 0.2, 0.7],
        list(taxi_like),
    ]
    rec["categorical"] = [[int(categorical_sample(p, g)) for _ in range(20)] for p in rows]
    return rec


def main() -> None:
    if gym.__version__ != GYMNASIUM_VERSION:
        sys.exit(f"expected gymnasium {GYMNASIUM_VERSION}, found {gym.__version__}")
    doc: dict[str, object] = {
        "numpy": np.__version__,
        "gymnasium": gym.__version__,
        "seeds": [seed_record(s) for s in SEEDS],
        "taxi_like_support": [i for i in range(500) if i % 5 != 0 and i % 7 != 0][:300],
    }
    # How Gymnasium rejects bad seeds (the Python package raises the same errors).
    errors = {}
    for bad in [-1, 1.5, "3"]:
        try:
            seeding.np_random(bad)  # type: ignore[arg-type]
        except gym.error.Error as e:
            errors[repr(bad)] = str(e)
    doc["bad_seed_errors"] = errors
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"{OUT.relative_to(ROOT)}: {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
