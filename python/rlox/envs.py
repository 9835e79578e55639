"""``rlox.make``: rlox's environments as ``gymnasium.Env`` objects, and their Gymnasium registration.

Every env of the Rust registry is registered under the ``rlox`` namespace when ``rlox`` is imported,
so ``gymnasium.make("rlox/CartPole-v1")`` works (with Gymnasium's usual wrappers: ``TimeLimit`` at
the registered limit, ``OrderEnforcing``, the passive env checker). ``rlox.make("CartPole-v1")``
returns the bare env, with the time limit counted in Rust, which is the faster of the two.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar, Optional, SupportsFloat

import gymnasium
import numpy as np
from gymnasium.envs.registration import EnvSpec

from rlox import _rlox
from rlox.spaces import to_gym

__all__ = ["NAMESPACE", "RloxEnv", "canonical_id", "make", "register_envs", "specs"]

#: Gymnasium namespace of rlox's envs: ``gymnasium.make("rlox/CartPole-v1")``.
NAMESPACE = "rlox"

#: Frames per second of each env's renderer (Gymnasium's values).
_RENDER_FPS = {
    "CartPole-v1": 50,
    "Acrobot-v1": 15,
    "MountainCar-v0": 30,
    "MountainCarContinuous-v0": 30,
    "Pendulum-v1": 30,
}

_UNSET: Any = object()


def specs() -> list[dict[str, Any]]:
    """Every env rlox has: ``id``, ``description``, ``max_episode_steps`` and ``options`` (in registry order)."""
    return list(_rlox.specs())


def _registered_limit(rlox_id: str) -> Optional[int]:
    for s in _rlox.specs():
        if s["id"] == rlox_id:
            return s["max_episode_steps"]
    return None


def canonical_id(env_id: str) -> str:
    """The rlox id of ``env_id`` (``"CartPole-v1"`` or ``"rlox/CartPole-v1"``).

    An id rlox does not have raises Gymnasium's own errors (``gymnasium.error.NameNotFound``,
    ``VersionNotFound``, ...), with Gymnasium's suggestions.
    """
    if not isinstance(env_id, str):
        raise TypeError(f"env id must be a str, not {type(env_id).__name__}")
    full = env_id if env_id.startswith(NAMESPACE + "/") else f"{NAMESPACE}/{env_id}"
    gymnasium.spec(full)  # raises gymnasium.error.NameNotFound / VersionNotFound / ...
    return full[len(NAMESPACE) + 1 :]


def _check_seed(seed: Any) -> None:
    # Gymnasium's own check first (same exception and message), then rlox's 64-bit limit.
    if seed is not None and not (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0):
        gymnasium.utils.seeding.np_random(seed)  # raises gymnasium.error.Error
    if seed is not None and int(seed) >= 2**64:
        raise ValueError(f"seed {seed} does not fit in 64 bits (rlox seeds are u64)")


def _check_options(env_id: str, options: Optional[dict[str, Any]]) -> None:
    if options is None:
        return
    if not isinstance(options, dict):
        raise TypeError(f"options must be a dict or None, not {type(options).__name__}")
    if options:
        raise ValueError(
            f"{env_id}: reset options {sorted(options)} are not implemented by rlox "
            "(Gymnasium's classic-control 'low'/'high' bounds would draw the initial state differently)"
        )


class RloxEnv(gymnasium.Env[Any, Any]):
    """One rlox environment with Gymnasium 1.x semantics.

    Build it with :func:`rlox.make` or ``gymnasium.make("rlox/<id>")``. The observation and action
    spaces, dtypes, ``reset(seed=..., options=...)`` and ``step`` follow Gymnasium; the dynamics run in
    Rust. ``env.state`` reads and writes the internal state (Gymnasium's ``env.unwrapped.state``).

    The dynamics draw from a Rust copy of Gymnasium's stream (NumPy's PCG64 seeded through
    SeedSequence), so ``reset(seed=s)`` starts where Gymnasium's env starts and the episode follows it
    under the same actions. ``env.np_random`` is the Python generator ``gymnasium.Env`` keeps, seeded
    the same way; drawing from it does not advance the Rust stream.
    """

    #: Set on the per-id subclasses that :func:`register_envs` creates.
    rlox_id: ClassVar[Optional[str]] = None
    metadata: dict[str, Any] = {"render_modes": [], "render_fps": None}  # noqa: RUF012 (Gymnasium's layout)

    def __init__(
        self,
        env_id: Optional[str] = None,
        render_mode: Optional[str] = None,
        *,
        rust_time_limit: Optional[int] = None,
        **options: Any,
    ) -> None:
        env_id = env_id or self.rlox_id
        if env_id is None:
            raise TypeError("RloxEnv needs an env id (or use rlox.make)")
        self._id = env_id
        modes = self.metadata.get("render_modes", [])
        if render_mode is not None and render_mode not in modes:
            raise ValueError(f"{env_id}: render_mode {render_mode!r} is not one of {modes}")
        self.render_mode = render_mode
        self._core = _rlox.Env(env_id, options, rust_time_limit)
        self.observation_space = to_gym(self._core.observation_space)
        self.action_space = to_gym(self._core.action_space)

    def reset(
        self, *, seed: Optional[int] = None, options: Optional[dict[str, Any]] = None
    ) -> tuple[Any, dict[str, Any]]:
        """Start an episode; ``seed`` reseeds the env (Gymnasium's semantics)."""
        _check_seed(seed)
        _check_options(self._id, options)
        seed = None if seed is None else int(seed)
        super().reset(seed=seed)
        return self._core.reset(seed)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Advance one step: ``(obs, reward, terminated, truncated, info)``."""
        return self._core.step(action)

    def render(self) -> Any:
        """An RGB frame (``render_mode="rgb_array"``), or ``None`` without a render mode."""
        if self.render_mode is None:
            gymnasium.logger.warn(
                "You are calling render method without specifying any render mode; set it at creation, "
                f'e.g. rlox.make("{self._id}", render_mode="rgb_array")'
            )
            return None
        return self._core.render()

    def close(self) -> None:
        """Release the env; further calls raise ``gymnasium.error.ClosedEnvironmentError``."""
        self._core.close()

    @property
    def state(self) -> np.ndarray:
        """The internal state (``float64``; layout documented by each env, e.g. ``[x, x_dot, theta, theta_dot]``)."""
        return self._core.state

    @state.setter
    def state(self, value: Any) -> None:
        self._core.state = [float(v) for v in np.asarray(value, dtype=np.float64).ravel()]

    def __repr__(self) -> str:
        return f"<RloxEnv<{self._id}>>"


def _env_class(rlox_id: str) -> type[RloxEnv]:
    fps = _RENDER_FPS.get(rlox_id)
    modes = ["rgb_array"] if fps is not None and _rlox.renders(rlox_id) else []
    name = "Rlox" + "".join(ch for ch in rlox_id.title() if ch.isalnum())
    return type(name, (RloxEnv,), {"rlox_id": rlox_id, "metadata": {"render_modes": modes, "render_fps": fps}})


_CLASSES: dict[str, type[RloxEnv]] = {}


def register_envs() -> None:
    """Register every rlox env as ``rlox/<id>`` with Gymnasium (idempotent)."""
    for s in _rlox.specs():
        env_id = s["id"]
        cls = _CLASSES.get(env_id) or _env_class(env_id)
        _CLASSES[env_id] = cls
        full = f"{NAMESPACE}/{env_id}"
        if full in gymnasium.registry:
            continue
        gymnasium.register(
            id=full,
            entry_point=cls,
            max_episode_steps=s["max_episode_steps"],
            kwargs={"rust_time_limit": None},
            vector_entry_point=functools.partial(_vector_entry_point, env_id),
        )


def _vector_entry_point(rlox_id: str, num_envs: int, **kwargs: Any) -> Any:
    """``gymnasium.make_vec("rlox/<id>", n)``: the rlox vector env (the time limit counted in Rust)."""
    from rlox.vector import make_vec

    kwargs.pop("rust_time_limit", None)
    return make_vec(rlox_id, num_envs, **kwargs)


def make(
    env_id: str,
    *,
    render_mode: Optional[str] = None,
    max_episode_steps: Optional[int] = _UNSET,
    **options: Any,
) -> RloxEnv:
    """Build an rlox env: ``rlox.make("FrozenLake-v1", is_slippery=False)``.

    Args:
        env_id: a Gymnasium id (``"CartPole-v1"``; ``"rlox/CartPole-v1"`` also works).
        render_mode: ``"rgb_array"`` for the envs that render, else ``None``.
        max_episode_steps: the time limit; default the registered one (``None``: no limit).
        **options: the env's Gymnasium keyword arguments (``map_name``, ``is_slippery``, ...).

    Raises:
        gymnasium.error.NameNotFound: unknown id (``VersionNotFound`` for an unknown version).
        TypeError: an unknown option, or an option of the wrong type.
        ValueError: an option value the env rejects.
    """
    rlox_id = canonical_id(env_id)
    limit = _registered_limit(rlox_id) if max_episode_steps is _UNSET else max_episode_steps
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"max_episode_steps must be a positive int or None, not {limit!r}")
    cls = _CLASSES.get(rlox_id) or _env_class(rlox_id)
    env = cls(render_mode=render_mode, rust_time_limit=limit, **options)
    base = gymnasium.spec(f"{NAMESPACE}/{rlox_id}")
    env.spec = EnvSpec(
        id=base.id,
        entry_point=base.entry_point,
        max_episode_steps=limit,
        kwargs={**options, "rust_time_limit": None},
        vector_entry_point=base.vector_entry_point,
    )
    return env
