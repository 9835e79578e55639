"""Stable-Baselines3 adapter: ``rlox.sb3.make_vec_env("CartPole-v1", 8)`` is an SB3 ``VecEnv``.

``stable_baselines3.PPO("MlpPolicy", rlox.sb3.make_vec_env("CartPole-v1", 8))`` trains unchanged.
The envs step in one Rust call with SB3's semantics: an env that ends is reset in the same step, its
last observation is in ``infos[i]["terminal_observation"]``, ``infos[i]["TimeLimit.truncated"]`` says
whether the time limit cut it, and ``infos[i]["episode"]`` carries the return, length and time of the
episode as SB3's ``Monitor`` wrapper writes them (so ``ep_rew_mean`` is logged and ``evaluate_policy``
counts whole episodes).

Seeding follows SB3: ``seed(s)`` (or ``make_vec_env(..., seed=s)``) seeds env ``i`` with ``s + i`` at
the next ``reset()``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any, Optional, Union

import gymnasium
import numpy as np
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

from rlox import _rlox
from rlox.envs import _UNSET, _registered_limit, canonical_id
from rlox.spaces import to_gym

__all__ = ["RloxSB3VecEnv", "make_vec_env"]


class RloxSB3VecEnv(VecEnv):
    """``n_envs`` rlox envs as one SB3 ``VecEnv`` (see the module documentation)."""

    def __init__(self, env_id: str, n_envs: int, *, max_episode_steps: Optional[int], **options: Any) -> None:
        self._id = env_id
        self._core = _rlox.VecEnv(env_id, n_envs, options, max_episode_steps, "SameStep", "per_env", True)
        observation_space = to_gym(self._core.single_observation_space)
        action_space = to_gym(self._core.single_action_space)
        super().__init__(n_envs, observation_space, action_space)
        self._actions: Optional[np.ndarray] = None
        self._episode_return = np.zeros(n_envs, dtype=np.float64)
        self._episode_length = np.zeros(n_envs, dtype=np.int64)
        self._t_start = time.time()
        self.render_mode = None

    def reset(self) -> VecEnvObs:
        seeds = self._seeds if any(s is not None for s in self._seeds) else None
        obs, infos = self._core.reset(seeds)
        self.reset_infos = self._split_infos(infos)
        self._reset_seeds()
        self._reset_options()
        self._episode_return[:] = 0.0
        self._episode_length[:] = 0
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async()")
        actions = np.asarray(self._actions)
        if isinstance(self.action_space, gymnasium.spaces.Discrete):
            actions = actions.reshape(self.num_envs)
        obs, rewards, terminated, truncated, infos = self._core.step(actions)
        self._actions = None
        dones = terminated | truncated
        self._episode_return += rewards
        self._episode_length += 1
        out = self._split_infos(infos)
        for i in range(self.num_envs):
            out[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        if dones.any():
            final_obs = infos["final_obs"]
            elapsed = round(time.time() - self._t_start, 6)
            for i in np.flatnonzero(dones).tolist():
                out[i]["terminal_observation"] = final_obs[i]
                out[i]["episode"] = {
                    "r": round(float(self._episode_return[i]), 6),
                    "l": int(self._episode_length[i]),
                    "t": elapsed,
                }
                self._episode_return[i] = 0.0
                self._episode_length[i] = 0
        return obs, rewards.astype(np.float32), dones, out

    def _split_infos(self, infos: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for key, values in infos.items():
            if key.startswith("_") or key in ("final_obs", "final_info"):
                continue
            mask = infos.get("_" + key)
            for i in range(self.num_envs):
                if mask is None or mask[i]:
                    out[i][key] = values[i]
        return out

    def close(self) -> None:
        self._core.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        n = len(list(self._get_indices(indices)))
        known = {
            "render_mode": None,
            "observation_space": self.observation_space,
            "action_space": self.action_space,
            "spec": gymnasium.spec(f"rlox/{self._id}"),
        }
        if attr_name not in known:
            raise AttributeError(f"rlox {self._id} envs have no attribute {attr_name!r}")
        return [known[attr_name]] * n

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        raise AttributeError(f"rlox {self._id} envs do not support setting {attr_name!r}")

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        raise AttributeError(f"rlox {self._id} envs have no method {method_name!r} callable through env_method")

    def env_is_wrapped(self, wrapper_class: type[gymnasium.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        # The adapter writes Monitor's episode statistics itself, so code that checks for Monitor
        # (evaluate_policy) may rely on infos["episode"].
        return [wrapper_class is Monitor] * len(list(self._get_indices(indices)))

    def get_images(self) -> Sequence[Optional[np.ndarray]]:
        return [None] * self.num_envs

    def _get_indices(self, indices: VecEnvIndices) -> Iterable[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int):
            return [indices]
        return indices


def make_vec_env(
    env_id: str,
    n_envs: int = 1,
    seed: Optional[int] = None,
    *,
    max_episode_steps: Union[int, None] = _UNSET,
    **options: Any,
) -> RloxSB3VecEnv:
    """``n_envs`` copies of an rlox env as an SB3 ``VecEnv`` (SB3's ``make_vec_env`` signature, in short).

    ``seed`` seeds env ``i`` with ``seed + i`` at the first ``reset()``, as SB3 does.
    """
    rlox_id = canonical_id(env_id)
    if isinstance(n_envs, bool) or not isinstance(n_envs, int) or n_envs < 1:
        raise ValueError(f"n_envs must be a positive int, not {n_envs!r}")
    limit = _registered_limit(rlox_id) if max_episode_steps is _UNSET else max_episode_steps
    env = RloxSB3VecEnv(rlox_id, n_envs, max_episode_steps=limit, **options)
    if seed is not None:
        env.seed(seed)
    return env
