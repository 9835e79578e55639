"""rlox.make and gymnasium.make("rlox/..."): Gymnasium's contract for every env."""

from __future__ import annotations

import warnings

import gymnasium
import numpy as np
import pytest
from conftest import ALL_IDS, CLASSIC, GYM_IDS
from gymnasium.utils.env_checker import check_env

import rlox


def checker_warnings(env: gymnasium.Env, render: bool = False) -> set[str]:
    """The messages of the warnings Gymnasium's ``check_env`` raises for ``env`` (it fails by raising)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=not render)
    return {str(w.message) for w in caught}


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_gymnasium_check_env_passes_for_every_env(env_id: str) -> None:
    checker_warnings(rlox.make(env_id), render=True)  # rlox's renderers need no pygame
    ours = checker_warnings(rlox.make(env_id))
    assert checker_warnings(gymnasium.make(f"rlox/{env_id}").unwrapped) == ours
    # No warning that Gymnasium's own env does not also get (e.g. CartPole's infinite bounds); its
    # render check is skipped on both sides (Gymnasium's renderers need pygame).
    theirs = checker_warnings(gymnasium.make(env_id).unwrapped) if env_id in GYM_IDS else set()
    assert ours <= theirs, ours - theirs


@pytest.mark.parametrize("env_id", GYM_IDS)
def test_spaces_and_dtypes_equal_gymnasiums(env_id: str) -> None:
    ours, theirs = rlox.make(env_id), gymnasium.make(env_id)
    assert ours.observation_space == theirs.observation_space
    assert ours.action_space == theirs.action_space
    assert ours.observation_space.dtype == theirs.observation_space.dtype
    obs, _ = ours.reset(seed=1)
    ref, _ = theirs.reset(seed=1)
    assert type(obs) is type(ref)
    if isinstance(obs, np.ndarray):
        assert obs.dtype == ref.dtype and obs.shape == ref.shape


@pytest.mark.parametrize("env_id", GYM_IDS)
def test_registration_and_spec(env_id: str) -> None:
    env = gymnasium.make(f"rlox/{env_id}")
    assert isinstance(env.unwrapped, rlox.RloxEnv)
    assert env.spec is not None and env.spec.max_episode_steps == gymnasium.spec(env_id).max_episode_steps
    assert rlox.make(env_id).spec.max_episode_steps == gymnasium.spec(env_id).max_episode_steps


def test_time_limit_counts_in_rust_and_can_be_changed() -> None:
    env = rlox.make("Pendulum-v1", max_episode_steps=7)
    env.reset(seed=0)
    flags = [env.step(np.zeros(1, np.float32))[3] for _ in range(7)]
    assert flags == [False] * 6 + [True]
    env = gymnasium.make("rlox/Pendulum-v1", max_episode_steps=3)  # Gymnasium's TimeLimit instead
    env.reset(seed=0)
    assert [env.step(np.zeros(1, np.float32))[3] for _ in range(3)] == [False, False, True]
    env = rlox.make("CartPole-v1", max_episode_steps=None)
    assert env.spec.max_episode_steps is None


def test_seeded_reset_is_deterministic_and_unseeded_reset_continues_the_stream() -> None:
    env = rlox.make("CartPole-v1")
    a, _ = env.reset(seed=5)
    b, _ = env.reset()
    c, _ = env.reset(seed=5)
    d, _ = env.reset()
    assert np.array_equal(a, c) and np.array_equal(b, d) and not np.array_equal(a, b)


def test_state_reads_and_writes_the_rust_state() -> None:
    env = rlox.make("CartPole-v1")
    env.reset(seed=0)
    env.state = [0.1, 0.0, 0.05, 0.0]
    assert env.state.tolist() == [0.1, 0.0, 0.05, 0.0]
    obs, *_ = env.step(1)
    ref = gymnasium.make("CartPole-v1").unwrapped
    ref.reset(seed=0)
    ref.state = np.array([0.1, 0.0, 0.05, 0.0])
    assert np.array_equal(obs, ref.step(1)[0])


@pytest.mark.parametrize("env_id", CLASSIC)
def test_rgb_array_render(env_id: str) -> None:
    env = rlox.make(env_id, render_mode="rgb_array")
    assert env.metadata["render_modes"] == ["rgb_array"]
    env.reset(seed=0)
    frame = env.render()
    # Gymnasium's frame sizes (its renderers need pygame, which the suite does not install).
    shapes = {"CartPole-v1": (400, 600, 3), "Acrobot-v1": (500, 500, 3), "Pendulum-v1": (500, 500, 3)}
    assert frame.dtype == np.uint8 and frame.shape == shapes.get(env_id, (400, 600, 3))
    assert frame.std() > 0, "a frame with something drawn on it"


def test_toy_text_infos_are_gymnasiums() -> None:
    env = rlox.make("Taxi-v4")
    _, info = env.reset(seed=3)
    ref = gymnasium.make("Taxi-v4")
    _, ref_info = ref.reset(seed=3)
    assert set(info) == set(ref_info)
    assert info["action_mask"].dtype == ref_info["action_mask"].dtype == np.int8
