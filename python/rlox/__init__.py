"""rlox from Python: Gymnasium's environments stepped in Rust, bit for bit.

>>> import rlox, gymnasium
>>> env = rlox.make("CartPole-v1")                   # a gymnasium.Env
>>> envs = rlox.make_vec("CartPole-v1", 256)         # a gymnasium.vector.VectorEnv, one Rust call per step
>>> env = gymnasium.make("rlox/CartPole-v1")         # registered under the "rlox" namespace on import
>>> from rlox.sb3 import make_vec_env                # a Stable-Baselines3 VecEnv
>>> rlox.train("configs/ppo_cartpole.toml")         # any `rlox train` config; returns the summary

Same seed, same episode as Gymnasium: the envs draw from NumPy's PCG64 stream seeded through
SeedSequence, exactly as Gymnasium's envs do.
"""

from __future__ import annotations

from rlox._rlox import __version__
from rlox.envs import NAMESPACE, RloxEnv, make, register_envs, specs
from rlox.errors import InvalidAction
from rlox.training import train
from rlox.vector import RloxVectorEnv, make_vec

__all__ = [
    "NAMESPACE",
    "InvalidAction",
    "RloxEnv",
    "RloxVectorEnv",
    "__version__",
    "make",
    "make_vec",
    "register_envs",
    "specs",
    "train",
]

register_envs()
