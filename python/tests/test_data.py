"""The env-step store: rlox-data writes it, pyarrow reads it (Hive partitions as columns)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import rlox.data

pa = pytest.importorskip("pyarrow")


def test_write_env_steps_then_read_with_pyarrow(tmp_path: Path) -> None:
    rows = 5
    for step in range(2):
        for worker in range(3):
            path = rlox.data.write_env_steps(
                tmp_path,
                "demo",
                step,
                worker,
                env=np.arange(rows),
                t=np.zeros(rows),
                obs=np.arange(rows * 4, dtype=np.float32).reshape(rows, 4) + worker,
                action=np.ones(rows),
                reward=np.full(rows, 0.5),
                terminated=np.zeros(rows, bool),
                truncated=np.array([False] * 4 + [True]),
            )
            assert path.endswith(f"run=demo/step={step}/part-{worker:05d}.parquet")
    table = rlox.data.read_table(tmp_path)
    assert table.num_rows == 2 * 3 * rows
    assert {"run", "step", "worker", "env", "t", "obs", "action", "reward", "terminated", "truncated"} <= set(
        table.column_names
    )
    df = table.to_pandas()
    first = df[(df.step == 1) & (df.worker == 2) & (df.env == 3)].iloc[0]
    assert list(first.obs) == [14.0, 15.0, 16.0, 17.0] and first.run == "demo"
    assert df.truncated.sum() == 6


def test_read_run_finds_the_tables_of_a_run_directory(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table({"step": [0, 1], "name": ["loss", "loss"], "value": [1.0, 0.5]}), tmp_path / "metrics.parquet"
    )
    for step in range(2):
        rlox.data.write_env_steps(
            tmp_path / "rollouts",
            "r",
            step,
            0,
            env=np.zeros(1),
            t=np.zeros(1),
            obs=np.zeros((1, 2)),
            action=np.zeros(1),
            reward=np.ones(1),
            terminated=np.zeros(1, bool),
            truncated=np.zeros(1, bool),
        )
    tables = rlox.data.read_run(tmp_path)
    assert sorted(tables) == ["metrics", "rollouts"]
    assert tables["metrics"].num_rows == 2 and tables["rollouts"].num_rows == 2


def test_bad_inputs_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="column env has 2 values"):
        rlox.data.write_env_steps(
            tmp_path,
            "r",
            0,
            0,
            env=np.arange(2),
            t=np.zeros(1),
            obs=np.zeros((1, 1)),
            action=np.zeros(1),
            reward=np.zeros(1),
            terminated=np.zeros(1, bool),
            truncated=np.zeros(1, bool),
        )
    with pytest.raises(FileNotFoundError):
        rlox.data.read_table(tmp_path / "missing")
    with pytest.raises(FileNotFoundError):
        rlox.data.read_run(tmp_path)
