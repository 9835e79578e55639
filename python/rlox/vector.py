"""``rlox.make_vec``: a ``gymnasium.vector.VectorEnv`` whose envs all step in one Rust call.

Observations, rewards and flags come back as NumPy arrays filled by one ``memcpy`` each from the
Rust batch (``copy=False``: the same preallocated arrays every step, no allocation at all). Autoreset
follows Gymnasium 1.x's ``NEXT_STEP`` mode by default: an env that ends at step ``t`` is reset at
step ``t + 1``, which ignores its action and returns reward 0 with both flags false.
``autoreset_mode=AutoresetMode.SAME_STEP`` resets in the same step and reports the last observation
in ``infos["final_obs"]`` and the last info in ``infos["final_info"]``, as Gymnasium does.

Infos use Gymnasium's vector layout: ``infos[key]`` holds one value per env and ``infos["_" + key]``
says which envs reported it. The classic-control envs report none (``{}``).
"""

from __future__ import annotations

from typing import Any, Optional, Union

import gymnasium
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from rlox import _rlox
from rlox.envs import _RENDER_FPS, _UNSET, NAMESPACE, _check_options, _check_seed, _registered_limit, canonical_id
from rlox.spaces import to_gym

__all__ = ["RloxVectorEnv", "make_vec"]


class RloxVectorEnv(VectorEnv[Any, Any, np.ndarray]):
    """``num_envs`` rlox envs stepped together. Build it with :func:`rlox.make_vec`."""

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        *,
        max_episode_steps: Optional[int],
        autoreset_mode: AutoresetMode = AutoresetMode.NEXT_STEP,
        vectorization: str = "auto",
        copy: bool = True,
        render_mode: Optional[str] = None,
        **options: Any,
    ) -> None:
        self._id = env_id
        if render_mode is not None:
            raise ValueError(f"{env_id}: rlox vector envs do not render (render_mode={render_mode!r})")
        self._core = _rlox.VecEnv(
            env_id, num_envs, options, max_episode_steps, autoreset_mode.value, vectorization, copy
        )
        self.num_envs = num_envs
        self.render_mode = None
        self.single_observation_space = to_gym(self._core.single_observation_space)
        self.single_action_space = to_gym(self._core.single_action_space)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.metadata = {
            "autoreset_mode": autoreset_mode,
            "render_modes": [],
            "render_fps": _RENDER_FPS.get(env_id),
        }

    def reset(
        self,
        *,
        seed: Union[int, list[Optional[int]], None] = None,
        options: Optional[dict[str, Any]] = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every env: ``seed=s`` seeds env ``i`` with ``s + i``; a list gives one seed (or ``None``) per env."""
        _check_options(self._id, options)
        if isinstance(seed, (list, tuple)):
            if len(seed) != self.num_envs:
                raise ValueError(f"got {len(seed)} seeds for {self.num_envs} envs")
            for s in seed:
                _check_seed(s)
            return self._core.reset([None if s is None else int(s) for s in seed])
        _check_seed(seed)
        seed = None if seed is None else int(seed)
        super().reset(seed=seed)
        return self._core.reset(seed)

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every env: ``(obs, rewards, terminated, truncated, infos)``."""
        return self._core.step(actions)

    def close_extras(self, **kwargs: Any) -> None:
        """Release the Rust batch."""
        self._core.close()

    @property
    def copy(self) -> bool:
        """Whether ``step`` returns fresh arrays (``False``: the same arrays, overwritten at every step)."""
        return bool(self._core.copy)

    def __repr__(self) -> str:
        return f"RloxVectorEnv({self._id}, num_envs={self.num_envs})"


def make_vec(
    env_id: str,
    num_envs: int = 1,
    *,
    vectorization_mode: Optional[str] = None,
    autoreset_mode: Union[AutoresetMode, str] = AutoresetMode.NEXT_STEP,
    copy: bool = True,
    max_episode_steps: Optional[int] = _UNSET,
    render_mode: Optional[str] = None,
    **options: Any,
) -> RloxVectorEnv:
    """Build ``num_envs`` copies of an rlox env as one ``gymnasium.vector.VectorEnv``.

    Args:
        env_id: a Gymnasium id (``"CartPole-v1"`` or ``"rlox/CartPole-v1"``).
        num_envs: number of envs.
        vectorization_mode: ``None`` (the hand-vectorised Rust batch where the env has one, the
            classic-control envs; scalar envs in a Rust loop otherwise) or ``"sync"`` (scalar envs in a
            loop for every env, like Gymnasium's ``SyncVectorEnv``). ``"async"`` is not offered: the
            whole batch steps in one call already; use several processes (``rlox.ray``) to use cores.
        autoreset_mode: ``NEXT_STEP`` (default) or ``SAME_STEP``.
        copy: return fresh arrays at every step (default, as Gymnasium), or reuse the same ones.
        max_episode_steps: the time limit; default the registered one.
        **options: the env's Gymnasium keyword arguments.
    """
    rlox_id = canonical_id(env_id)
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"num_envs must be a positive int, not {num_envs!r}")
    mode = AutoresetMode(autoreset_mode) if isinstance(autoreset_mode, str) else autoreset_mode
    if mode == AutoresetMode.DISABLED:
        raise ValueError("rlox vector envs autoreset (NEXT_STEP or SAME_STEP); DISABLED is not offered")
    vec_mode = getattr(vectorization_mode, "value", vectorization_mode)
    if vec_mode in (None, "vector_entry_point"):
        vectorization = "auto"
    elif vec_mode == "sync":
        vectorization = "sync"
    else:
        raise ValueError(f"vectorization_mode {vec_mode!r}: rlox offers None (batched) or 'sync'")
    limit = _registered_limit(rlox_id) if max_episode_steps is _UNSET else max_episode_steps
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"max_episode_steps must be a positive int or None, not {limit!r}")
    env = RloxVectorEnv(
        rlox_id,
        num_envs,
        max_episode_steps=limit,
        autoreset_mode=mode,
        vectorization=vectorization,
        copy=copy,
        render_mode=render_mode,
        **options,
    )
    env.spec = gymnasium.spec(f"{NAMESPACE}/{rlox_id}")
    return env
