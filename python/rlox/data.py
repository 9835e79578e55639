"""rlox's Parquet outputs as pyarrow tables, and the env-step store of the rollout workers.

Everything rlox writes is plain Parquet in Hive's layout (``run=<run>/step=<step>/part-*.parquet``),
so pyarrow (and through it pandas, polars and Hugging Face ``datasets``) reads it directly:

>>> import rlox.data
>>> steps = rlox.data.read_table("rollouts/")                 # run and step come from the directory names
>>> tables = rlox.data.read_run("runs/ppo-CartPole-v1-...")    # metrics, episodes, rollouts
>>> df = steps.to_pandas()
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from rlox import _rlox

__all__ = ["read_run", "read_table", "write_env_steps"]

PathLike = Union[str, "os.PathLike[str]"]


def read_table(path: PathLike, *, columns: Optional[list[str]] = None) -> Any:
    """A Parquet file, a directory of part files or a Hive-partitioned store as one ``pyarrow.Table``.

    Hive partition directories (``run=demo/step=3/``) become columns; files being written (hidden
    ``.name.tmp.*``) are skipped.
    """
    import pyarrow.dataset as ds

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or directory")
    dataset = ds.dataset(str(p), format="parquet", partitioning="hive")
    return dataset.to_table(columns=columns)


def read_run(run_dir: PathLike) -> dict[str, Any]:
    """The tables of an ``rlox train`` (or ``rlox grpo``, ...) run directory, by name.

    ``metrics`` (``metrics.parquet``), ``episodes`` (``episodes/``) and ``rollouts`` (``rollouts/``),
    whichever exist.
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a run directory")
    tables = {}
    for name, rel in (("metrics", "metrics.parquet"), ("episodes", "episodes"), ("rollouts", "rollouts")):
        if (root / rel).exists():
            tables[name] = read_table(root / rel)
    if not tables:
        raise FileNotFoundError(f"{root}: no metrics.parquet, episodes/ or rollouts/ in it")
    return tables


def write_env_steps(
    root: PathLike,
    run: str,
    step: int,
    worker: int,
    *,
    env: np.ndarray,
    t: np.ndarray,
    obs: np.ndarray,
    action: np.ndarray,
    reward: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    compression: str = "zstd",
) -> str:
    """Write one worker's transitions of one step to ``root/run=<run>/step=<step>/part-<worker>.parquet``.

    Rows are transitions: ``obs`` is the observation the ``action`` was taken in. The file is written
    by rlox-data (Hive/Spark-safe profile, atomic rename); returns its path.
    """
    rows = len(reward)
    obs2 = np.ascontiguousarray(np.asarray(obs, dtype=np.float32).reshape(rows, -1))
    act2 = np.ascontiguousarray(np.asarray(action, dtype=np.float64).reshape(rows, -1))
    return str(
        _rlox.write_env_steps(
            os.fspath(root),
            run,
            int(step),
            int(worker),
            np.ascontiguousarray(env, dtype=np.int64),
            np.ascontiguousarray(t, dtype=np.int64),
            obs2,
            act2,
            np.ascontiguousarray(reward, dtype=np.float64),
            np.ascontiguousarray(terminated, dtype=np.bool_),
            np.ascontiguousarray(truncated, dtype=np.bool_),
            compression,
        )
    )
