"""Same seed, same episode: rlox against Gymnasium 1.4's own envs, step for step, no state injected.

Each trace runs at least 1,000 random-action steps (and at least three episodes), with resets that
continue the seeded stream and resets that reseed. Observations must be equal bit for bit where
Gymnasium computes in float32 and within one float32 ulp elsewhere (``MAX_ULPS``); rewards and flags
exactly. The same traces run through ``rlox.make_vec`` against ``gymnasium.make_vec`` with the same
seed (env ``i`` seeded ``seed + i`` in both).
"""

from __future__ import annotations

from typing import Any, Optional

import gymnasium
import numpy as np
import pytest
from conftest import CLASSIC, TOY_TEXT, sample_action, sample_actions, ulp_distance

import rlox

#: Largest float32 ulp distance allowed per env (0: bit for bit). Gymnasium keeps the classic-control
#: states in float64 and rounds the observation to float32 once; the issue allows 1 ulp there, but
#: rlox matches every env bit for bit, so the suite holds it to that.
MAX_ULPS: dict[str, int] = {env_id: 0 for env_id in CLASSIC}


def assert_same_obs(env_id: str, ours: Any, ref: Any, where: str) -> None:
    if isinstance(ref, np.ndarray):
        assert isinstance(ours, np.ndarray) and ours.dtype == ref.dtype and ours.shape == ref.shape, where
        d = ulp_distance(ours, ref)
        assert d <= MAX_ULPS.get(env_id, 0), f"{where}: {ours} vs {ref} ({d} ulps)"
    else:
        assert ours == ref and type(ours) is type(ref), f"{where}: {ours!r} vs {ref!r}"


def trace_length(env_id: str) -> int:
    limit = gymnasium.spec(env_id).max_episode_steps or 0
    return max(1000, 3 * limit + 10)


@pytest.mark.parametrize("seed", [0, 123])
@pytest.mark.parametrize("env_id", CLASSIC + TOY_TEXT)
def test_make_matches_gymnasium_step_for_step(env_id: str, seed: int) -> None:
    ours, ref = rlox.make(env_id), gymnasium.make(env_id)
    rng = np.random.default_rng(seed + 1000)
    o, _ = ours.reset(seed=seed)
    r, _ = ref.reset(seed=seed)
    assert_same_obs(env_id, o, r, "reset")
    episodes = resets = 0
    for t in range(trace_length(env_id)):
        if t % 250 == 249:  # CliffWalking has no time limit and random walks rarely finish: reset anyway
            resets += 1
            reseed = None if resets % 2 else seed + 1000 + resets
            o, _ = ours.reset(seed=reseed)
            r, _ = ref.reset(seed=reseed)
            assert_same_obs(env_id, o, r, f"{env_id} seed {seed} step {t}: forced reset")
        a = sample_action(ref.action_space, rng)
        o, rew, term, trunc, info = ours.step(a)
        r, ref_rew, ref_term, ref_trunc, ref_info = ref.step(a)
        where = f"{env_id} seed {seed} step {t} (episode {episodes})"
        assert_same_obs(env_id, o, r, where)
        assert (rew, term, trunc) == (float(ref_rew), ref_term, ref_trunc), where
        if "prob" in ref_info:
            assert info["prob"] == ref_info["prob"], where
        if term or trunc:
            episodes += 1
            reseed = seed + 7 * episodes if episodes % 3 == 0 else None  # mostly continue the stream
            o, _ = ours.reset(seed=reseed)
            r, _ = ref.reset(seed=reseed)
            assert_same_obs(env_id, o, r, f"{where}: reset")
    assert episodes + resets >= 3, f"{env_id}: the trace must cross episode boundaries"


@pytest.mark.parametrize("mode", [None, "sync"])
@pytest.mark.parametrize("env_id", CLASSIC + TOY_TEXT)
def test_make_vec_matches_gymnasium_make_vec(env_id: str, mode: Optional[str]) -> None:
    """Default mode: what ``gymnasium.make_vec(id, n)`` builds (CartPole: its NumPy ``CartPoleVectorEnv``
    with one generator; the others: ``SyncVectorEnv``, env ``i`` seeded ``seed + i``); and ``"sync"``."""
    n, seed = 4, 42
    ours = rlox.make_vec(env_id, n, vectorization_mode=mode)
    ref = gymnasium.make_vec(env_id, n, vectorization_mode=mode)
    rng = np.random.default_rng(7)
    o, _ = ours.reset(seed=seed)
    r, _ = ref.reset(seed=seed)
    assert_same_obs(env_id, o, r, "reset")
    dones = 0
    for t in range(trace_length(env_id)):
        if t % 250 == 249:  # full resets too: continuing the streams, then reseeding
            reseed = None if t % 500 == 249 else seed + t
            o, _ = ours.reset(seed=reseed)
            r, _ = ref.reset(seed=reseed)
            assert_same_obs(env_id, o, r, f"{env_id} step {t}: reset")
            dones += 1
        a = sample_actions(ref.single_action_space, n, rng)
        o, rew, term, trunc, info = ours.step(a)
        r, ref_rew, ref_term, ref_trunc, ref_info = ref.step(a)
        where = f"{env_id} step {t}"
        assert_same_obs(env_id, o, r, where)
        assert rew.dtype == ref_rew.dtype and np.array_equal(rew, ref_rew), where
        assert np.array_equal(term, ref_term), where
        assert np.array_equal(trunc, ref_trunc), where
        # Gymnasium types an info array after the first env's value: an int reset "prob" truncates the
        # others' float probabilities, so compare where its array is real-valued.
        if "prob" in ref_info and ref_info["prob"].dtype.kind == "f":
            assert np.array_equal(info["prob"], ref_info["prob"]), where
            assert np.array_equal(info["_prob"], ref_info["_prob"]), where
        dones += int(np.sum(term | trunc))
    assert dones >= 3


def test_make_vec_matches_per_env_seeds_and_same_step_autoreset() -> None:
    ours = rlox.make_vec("CartPole-v1", 3, vectorization_mode="sync", autoreset_mode="SameStep")
    ref = gymnasium.make_vec("CartPole-v1", 3, vectorization_mode="sync", vector_kwargs={"autoreset_mode": "SameStep"})
    seeds = [5, None, 9]
    o, _ = ours.reset(seed=seeds)
    r, _ = ref.reset(seed=seeds)
    assert np.array_equal(o[[0, 2]], r[[0, 2]])
    ours.reset(seed=11)
    ref.reset(seed=11)
    rng = np.random.default_rng(0)
    finals = 0
    for _ in range(300):
        a = rng.integers(2, size=3)
        o, _, term, _, info = ours.step(a)
        r, _, ref_term, _, ref_info = ref.step(a)
        assert np.array_equal(o, r) and np.array_equal(term, ref_term)
        if "final_obs" in ref_info:
            finals += 1
            assert np.array_equal(info["_final_obs"], ref_info["_final_obs"])
            for i in np.flatnonzero(ref_info["_final_obs"]):
                assert np.array_equal(info["final_obs"][i], ref_info["final_obs"][i])
        else:
            assert "final_obs" not in info
    assert finals >= 3
