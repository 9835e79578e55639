"""Every bad input is the Python exception Gymnasium or NumPy raises, never a crash or a panic."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium.error import ClosedEnvironmentError, NameNotFound, ResetNeeded, VersionNotFound

import rlox
from rlox import InvalidAction


def test_unknown_ids() -> None:
    with pytest.raises(NameNotFound):
        rlox.make("NoSuchEnv-v0")
    with pytest.raises(VersionNotFound):
        rlox.make("CartPole-v9")
    with pytest.raises(NameNotFound):
        gymnasium.make("rlox/NoSuchEnv-v0")
    with pytest.raises(NameNotFound):
        rlox.make_vec("NoSuchEnv-v0", 2)
    with pytest.raises(TypeError):
        rlox.make(3)  # type: ignore[arg-type]


def test_wrong_option_names_and_types() -> None:
    with pytest.raises(TypeError, match="'rainy'"):
        rlox.make("Taxi-v4", rainy=True)
    with pytest.raises(TypeError, match=r"is_slippery.*must be a bool"):
        rlox.make("FrozenLake-v1", is_slippery="yes")
    with pytest.raises(TypeError, match="desc"):
        rlox.make("FrozenLake-v1", desc="SFFFFHFHFFFHHFFG")
    with pytest.raises(ValueError, match="9x9"):
        rlox.make("FrozenLake-v1", map_name="9x9")
    with pytest.raises(ValueError, match="success_rate"):
        rlox.make("FrozenLake-v1", success_rate=2.0)
    with pytest.raises(ValueError, match="not implemented by rlox"):
        rlox.make("CartPole-v1", sutton_barto_reward=True)
    with pytest.raises(TypeError, match="unexpected keyword"):
        rlox.make("CartPole-v1", foo=1)
    with pytest.raises(TypeError, match="unexpected keyword"):
        gymnasium.make("rlox/CartPole-v1", foo=1)
    with pytest.raises(TypeError, match="unexpected keyword"):
        rlox.make_vec("CartPole-v1", 2, foo=1)
    with pytest.raises(ValueError):
        rlox.make_vec("CartPole-v1", 0)
    with pytest.raises(ValueError):
        rlox.make("CartPole-v1", max_episode_steps=0)


@pytest.mark.parametrize("action", [2, -1, 1.5, "1", None, np.array([1]), np.float64(1.0)])
def test_discrete_action_outside_the_space(action: object) -> None:
    env = rlox.make("CartPole-v1")
    env.reset(seed=0)
    with pytest.raises(InvalidAction) as e:
        env.step(action)
    assert isinstance(e.value, ValueError) and isinstance(e.value, AssertionError)
    assert "CartPole-v1" in str(e.value) and "Discrete(2)" in str(e.value)
    env.step(np.int64(1))  # the env is still usable


@pytest.mark.parametrize("action", [[np.nan], [np.inf], [0.1, 0.2], [], "x"])
def test_continuous_action_outside_the_space(action: object) -> None:
    env = rlox.make("Pendulum-v1")
    env.reset(seed=0)
    with pytest.raises(InvalidAction):
        env.step(action)


def test_wrong_action_batches_leave_every_env_unmoved() -> None:
    envs = rlox.make_vec("CartPole-v1", 4)
    twin = rlox.make_vec("CartPole-v1", 4)
    envs.reset(seed=3)
    twin.reset(seed=3)
    bad = [
        np.array([0, 1, 1]),  # too few
        np.array([[0, 1, 1, 0]]),  # wrong rank
        np.array([0.0, 1.0, 1.0, 0.0]),  # floats
        np.array([0, 1, 2, 0]),  # 2 is outside Discrete(2)
        np.array([0, -1, 1, 0]),
        "0101",
    ]
    for actions in bad:
        with pytest.raises(InvalidAction):
            envs.step(actions)
    a = np.array([1, 0, 1, 1])
    assert np.array_equal(envs.step(a)[0], twin.step(a)[0])
    cont = rlox.make_vec("Pendulum-v1", 2)
    cont.reset(seed=0)
    for actions in [np.zeros(2, np.float32), np.zeros((2, 2), np.float32), np.array([[np.nan], [0.0]], np.float32)]:
        with pytest.raises(InvalidAction):
            cont.step(actions)
    toy = rlox.make_vec("Taxi-v4", 2)
    toy.reset(seed=0)
    with pytest.raises(InvalidAction):
        toy.step(np.array([0, 6]))


def test_step_before_reset() -> None:
    with pytest.raises(ResetNeeded):
        rlox.make("CartPole-v1").step(0)
    with pytest.raises(ResetNeeded):
        rlox.make_vec("CartPole-v1", 2).step(np.zeros(2, np.int64))
    with pytest.raises(ResetNeeded):
        rlox.make_vec("FrozenLake-v1", 2).step(np.zeros(2, np.int64))
    with pytest.raises(ResetNeeded):
        gymnasium.make("rlox/CartPole-v1").step(0)


def test_closed_envs() -> None:
    env = rlox.make("CartPole-v1")
    env.reset(seed=0)
    env.close()
    env.close()  # closing twice is allowed
    with pytest.raises(ClosedEnvironmentError):
        env.step(0)
    with pytest.raises(ClosedEnvironmentError):
        env.reset()
    envs = rlox.make_vec("CartPole-v1", 2)
    envs.reset(seed=0)
    envs.close()
    assert envs.closed
    with pytest.raises(ClosedEnvironmentError):
        envs.step(np.zeros(2, np.int64))


def test_bad_seeds_and_options() -> None:
    env = rlox.make("CartPole-v1")
    with pytest.raises(gymnasium.error.Error, match="greater or equal to zero"):
        env.reset(seed=-1)
    with pytest.raises(gymnasium.error.Error, match="python integer"):
        env.reset(seed=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="64 bits"):
        env.reset(seed=2**64)
    with pytest.raises(ValueError, match="not implemented by rlox"):
        env.reset(seed=0, options={"low": -0.1, "high": 0.1})
    envs = rlox.make_vec("CartPole-v1", 2)
    with pytest.raises(ValueError, match="2 envs"):
        envs.reset(seed=[1, 2, 3])
    with pytest.raises(ValueError, match="one seed"):
        envs.reset(seed=[1, 5])  # the batched CartPole takes seed, seed + 1
    sync = rlox.make_vec("CartPole-v1", 2, vectorization_mode="sync")
    sync.reset(seed=[1, 5])  # scalar envs take any per-env seeds


def test_a_rust_panic_is_a_runtime_error_and_the_interpreter_survives() -> None:
    from rlox import _rlox

    with pytest.raises(RuntimeError, match="internal error in rlox"):
        _rlox._panic_for_tests("boom")
    assert rlox.make("CartPole-v1").reset(seed=0)[0].shape == (4,)
