"""The Ray example on a local cluster: 2 workers fill a Parquet store that rlox sql and pyarrow read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

ray = pytest.importorskip("ray")
pytest.importorskip("pyarrow")


def test_ray_example_writes_a_store_that_rlox_sql_and_pyarrow_read(tmp_path: Path, rlox_bin: str) -> None:
    store = tmp_path / "store"
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "python" / "examples" / "ray_rollouts.py"),
            "--workers",
            "2",
            "--num-envs",
            "16",
            "--steps",
            "32",
            "--iterations",
            "3",
            "--root",
            str(store),
            "--run",
            "test",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["workers"] == 2 and len(report["files"]) == 2 * 3
    parts = sorted(p.relative_to(store).as_posix() for p in store.rglob("*.parquet"))
    assert parts == [f"run=test/step={s}/part-{w:05d}.parquet" for s in range(3) for w in range(2)]

    import rlox.data

    table = rlox.data.read_table(store)
    assert table.num_rows == report["rows"]
    # Every call of every env is a row, except the calls that only reset an env (NEXT_STEP).
    assert 0 < report["rows"] <= 2 * 16 * 32 * 3
    sql = subprocess.run(
        [
            rlox_bin,
            "sql",
            "SELECT count(*) AS n, count(DISTINCT worker) AS w, max(step) AS s FROM steps",
            "--table",
            f"steps={store}",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert sql.returncode == 0, sql.stderr
    rows = json.loads(sql.stdout)
    row = rows[0] if isinstance(rows, list) else rows["rows"][0]
    assert int(row["n"]) == report["rows"] and int(row["w"]) == 2 and int(row["s"]) == 2
