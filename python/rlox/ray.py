"""Distributed rollouts on Ray: N actors each own an rlox vector env and a copy of the policy.

The layout Ray users know from RLlib: the driver broadcasts the policy weights once per iteration
with ``ray.put`` (every worker reads the same object from the object store), each
:class:`RolloutWorker` steps its own ``rlox.make_vec`` batch for ``num_steps`` calls and returns the
transitions as NumPy arrays, and the driver writes each worker's batch as one Parquet part file of
the Hive-partitioned store ``root/run=<run>/step=<iteration>/part-<worker>.parquet`` (names differ by
worker, so no coordination is needed; ``rlox sql`` and ``pyarrow`` read the store as one table).

The policy is a small NumPy MLP (``obs -> tanh(64) -> logits`` for discrete actions, a Gaussian mean
for boxes): enough to make the workers do a policy's work per step. ``collect`` takes an ``update``
callable for a learner; the default keeps the weights, which is what the throughput figures measure.

Seeds: worker ``w`` resets its envs with ``seed + w * num_envs`` (envs ``i`` get ``... + i``, so every
env of the cluster has its own seed) and samples actions from ``numpy.random.default_rng([seed, w])``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import gymnasium
import numpy as np

import rlox
from rlox.data import write_env_steps

__all__ = ["CollectReport", "MLPPolicy", "RolloutWorker", "collect"]

Weights = dict[str, np.ndarray]


class MLPPolicy:
    """``obs -> tanh(W1 obs + b1) -> W2 h + b2``: logits (discrete) or the action mean (box)."""

    def __init__(self, weights: Weights, discrete: bool, action_low: Any = None, action_high: Any = None) -> None:
        self.w1, self.b1, self.w2, self.b2 = (weights[k] for k in ("w1", "b1", "w2", "b2"))
        self.discrete = discrete
        self.low, self.high = action_low, action_high

    @staticmethod
    def init(obs_dim: int, out_dim: int, hidden: int = 64, seed: int = 0) -> Weights:
        """Random weights (scaled normal, float32)."""
        rng = np.random.default_rng(seed)
        return {
            "w1": (rng.standard_normal((obs_dim, hidden)) / np.sqrt(obs_dim)).astype(np.float32),
            "b1": np.zeros(hidden, dtype=np.float32),
            "w2": (rng.standard_normal((hidden, out_dim)) * 0.01).astype(np.float32),
            "b2": np.zeros(out_dim, dtype=np.float32),
        }

    def act(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One action per row of ``obs``: sampled from the softmax, or the mean plus N(0, 0.1) noise."""
        x = obs.reshape(len(obs), -1).astype(np.float32, copy=False)
        out = np.tanh(x @ self.w1 + self.b1) @ self.w2 + self.b2
        if self.discrete:
            # Gumbel-max: one uniform draw per logit, no per-row loop.
            g = -np.log(-np.log(rng.random(out.shape, dtype=np.float32) + 1e-12) + 1e-12)
            return np.argmax(out + g, axis=1)
        a = out + 0.1 * rng.standard_normal(out.shape, dtype=np.float32)
        return np.clip(a, self.low, self.high).astype(np.float32)


class RolloutWorker:
    """One rlox vector env and a policy; ``sample`` runs it for a batch of steps.

    Used as a Ray actor (``ray.remote(RolloutWorker)``) by :func:`collect`, or directly in a process.
    """

    def __init__(self, env_id: str, num_envs: int, worker: int, seed: int = 0, **env_options: Any) -> None:
        self.worker = worker
        self.env = rlox.make_vec(env_id, num_envs, copy=False, **env_options)
        self.obs, _ = self.env.reset(seed=seed + worker * num_envs)
        self.rng = np.random.default_rng([seed, worker])
        self.just_reset = np.zeros(num_envs, dtype=bool)
        space = self.env.single_action_space
        self.discrete = isinstance(space, gymnasium.spaces.Discrete)
        self.action_low = space.low if isinstance(space, gymnasium.spaces.Box) else None
        self.action_high = space.high if isinstance(space, gymnasium.spaces.Box) else None

    def sample(self, weights: Weights, num_steps: int) -> dict[str, Any]:
        """Step ``num_steps`` times; returns the transitions (rows) and the time spent."""
        policy = MLPPolicy(weights, self.discrete, self.action_low, self.action_high)
        n = self.env.num_envs
        obs_shape: tuple[int, ...] = self.env.single_observation_space.shape or ()
        obs = np.empty((num_steps, n, *obs_shape), dtype=self.obs.dtype)
        act_dim = 1 if self.discrete else int(np.prod(self.env.single_action_space.shape or (1,)))
        actions = np.empty((num_steps, n, act_dim), dtype=np.float64)
        rewards = np.empty((num_steps, n), dtype=np.float64)
        terminated = np.empty((num_steps, n), dtype=bool)
        truncated = np.empty((num_steps, n), dtype=bool)
        valid = np.empty((num_steps, n), dtype=bool)
        start = time.perf_counter()
        for t in range(num_steps):
            a = policy.act(self.obs, self.rng)
            obs[t] = self.obs  # copied before the step overwrites the env's buffer (copy=False)
            actions[t] = a.reshape(n, act_dim)
            valid[t] = ~self.just_reset  # NEXT_STEP: the call after an episode's end is a reset, not a transition
            self.obs, rewards[t], terminated[t], truncated[t], _ = self.env.step(a)
            self.just_reset = terminated[t] | truncated[t]
        seconds = time.perf_counter() - start
        keep = valid.reshape(-1)
        t_index, env_index = np.divmod(np.arange(num_steps * n), n)
        return {
            "worker": self.worker,
            "env": env_index[keep],
            "t": t_index[keep],
            "obs": obs.reshape(num_steps * n, -1)[keep],
            "action": actions.reshape(num_steps * n, act_dim)[keep],
            "reward": rewards.reshape(-1)[keep],
            "terminated": terminated.reshape(-1)[keep],
            "truncated": truncated.reshape(-1)[keep],
            "env_steps": num_steps * n,
            "seconds": seconds,
        }


@dataclass
class CollectReport:
    """What :func:`collect` did."""

    root: str
    run: str
    workers: int
    num_envs: int
    iterations: int
    rows: int = 0
    env_steps: int = 0
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0
    worker_seconds: float = 0.0

    @property
    def env_steps_per_second(self) -> float:
        """Env steps of the whole cluster per second of wall time (sampling, transfer and writing)."""
        return self.env_steps / self.seconds if self.seconds > 0 else 0.0


def collect(
    env_id: str = "CartPole-v1",
    *,
    num_workers: int = 2,
    num_envs: int = 64,
    num_steps: int = 128,
    iterations: int = 4,
    root: str = "rollouts",
    run: str = "ray",
    seed: int = 0,
    hidden: int = 64,
    update: Optional[Callable[[Weights, list[dict[str, Any]]], Weights]] = None,
    **env_options: Any,
) -> CollectReport:
    """Collect ``iterations`` batches from ``num_workers`` Ray actors into the Parquet store at ``root``.

    Needs a running Ray (``ray.init()`` for a local cluster, ``ray.init(address="auto")`` on a real
    one). Each iteration broadcasts the weights with ``ray.put``, gathers one batch per worker as the
    batches complete, and writes each as ``root/run=<run>/step=<iteration>/part-<worker>.parquet``.
    """
    import ray

    if not ray.is_initialized():
        raise RuntimeError("start Ray first: ray.init() (local) or ray.init(address=...) (a cluster)")
    probe = rlox.make_vec(env_id, 1, **env_options)
    obs_dim = int(np.prod(probe.single_observation_space.shape or (1,)))
    space = probe.single_action_space
    out_dim = int(space.n) if isinstance(space, gymnasium.spaces.Discrete) else int(np.prod(space.shape or (1,)))
    probe.close()
    weights = MLPPolicy.init(obs_dim, out_dim, hidden, seed)
    actor: Any = ray.remote(num_cpus=1)(RolloutWorker)
    workers = [actor.remote(env_id, num_envs, w, seed, **env_options) for w in range(num_workers)]
    ray.get([w.__ray_ready__.remote() for w in workers])  # actors started before the clock starts
    report = CollectReport(str(Path(root)), run, num_workers, num_envs, iterations)
    start = time.perf_counter()
    for it in range(iterations):
        weights_ref = ray.put(weights)
        pending = [w.sample.remote(weights_ref, num_steps) for w in workers]
        batches = []
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            batch = ray.get(done[0])
            report.files.append(
                write_env_steps(
                    root,
                    run,
                    it,
                    batch["worker"],
                    env=batch["env"],
                    t=batch["t"],
                    obs=batch["obs"],
                    action=batch["action"],
                    reward=batch["reward"],
                    terminated=batch["terminated"],
                    truncated=batch["truncated"],
                )
            )
            report.rows += len(batch["reward"])
            report.env_steps += batch["env_steps"]
            report.worker_seconds += batch["seconds"]
            batches.append(batch)
        if update is not None:
            weights = update(weights, batches)
    report.seconds = time.perf_counter() - start
    for w in workers:
        ray.kill(w)
    return report
