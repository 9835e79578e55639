"""``rlox.train``: CLI configs from Python, the CLI's run directory, resume, and errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

import rlox

#: A short DQN run on CartPole (a few seconds): the zoo's settings, fewer steps, two checkpoints.
DQN_DICT: dict[str, Any] = {
    "name": "dqn-short",
    "seed": 4,
    "algo": "dqn",
    "total_steps": 3000,
    "eval_every": 1500,
    "eval_episodes": 2,
    "checkpoint_every": 1500,
    "env": {"id": "CartPole-v1"},
    "dqn": {"learning_starts": 500, "train_freq": 100, "gradient_steps": 10, "net_arch": [32, 32]},
}


def metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The records of ``metrics.jsonl`` without wall-clock fields (those differ between any two runs)."""
    out = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        out.append({k: v for k, v in record.items() if "time" not in k and "per_second" not in k and "fps" not in k})
    return out


def test_a_dict_config_runs_like_the_cli(tmp_path: Path, rlox_bin: str) -> None:
    summary = rlox.train(DQN_DICT, runs_dir=tmp_path / "py")
    run_dir = Path(summary["run_dir"])
    assert run_dir.parent == tmp_path / "py" and run_dir.name.startswith("dqn-short-")
    for name in ("config.toml", "metrics.jsonl", "summary.json"):
        assert (run_dir / name).is_file(), name
    assert summary["env_steps"] == 3000
    assert json.loads((run_dir / "summary.json").read_text())["eval_return_mean"] == summary["eval_return_mean"]
    # The CLI on the resolved config the Python run wrote: same seed, same numbers.
    cli = subprocess.run(
        [rlox_bin, "train", str(run_dir / "config.toml"), "--runs-dir", str(tmp_path / "cli"), "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    cli_dir = next((tmp_path / "cli").iterdir())
    assert metrics(cli_dir) == metrics(run_dir)
    assert cli.returncode == 0


def test_a_toml_file_with_overrides(tmp_path: Path) -> None:
    summary = rlox.train(REPO / "configs" / "ppo_cartpole.toml", total_steps=2048, seed=3, runs_dir=tmp_path)
    # Whole rollouts of 8 envs x 32 calls; autoreset calls (Gymnasium's NEXT_STEP) are not transitions.
    assert 2048 <= summary["env_steps"] < 2048 + 8 * 32
    config = (Path(summary["run_dir"]) / "config.toml").read_text()
    assert 'algo = "ppo"' in config and "seed = 3" in config


def test_resume_continues_in_the_same_directory(tmp_path: Path) -> None:
    first = rlox.train(DQN_DICT, runs_dir=tmp_path)
    run_dir = Path(first["run_dir"])
    again = rlox.train(resume=run_dir)
    assert Path(again["run_dir"]) == run_dir
    assert again["resumed_from"] is not None
    assert again["env_steps"] == first["env_steps"]
    assert again["eval_return_mean"] == first["eval_return_mean"]
    assert [p.name for p in tmp_path.iterdir()] == [run_dir.name]


def test_bad_configs_raise_what_python_users_expect(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="learning_rat"):
        rlox.train({**DQN_DICT, "dqn": {"learning_rat": 0.1}}, runs_dir=tmp_path)
    with pytest.raises(ValueError, match="Pong"):
        rlox.train({**DQN_DICT, "env": {"id": "Pong-v5"}}, runs_dir=tmp_path)
    with pytest.raises(ValueError, match="nope"):
        rlox.train(DQN_DICT, algo="nope", runs_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"missing\.toml"):
        rlox.train(tmp_path / "missing.toml")
    with pytest.raises(FileNotFoundError):
        rlox.train(resume=tmp_path / "no-run")
    with pytest.raises(TypeError):
        rlox.train(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        rlox.train(DQN_DICT, total_steps="10")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        rlox.train({**DQN_DICT, "seed": object()})
    bad = tmp_path / "bad.toml"
    bad.write_text('algo = "dqn"\ntotal_steps = 100\nbogus_key = 1\n[env]\nid = "CartPole-v1"\n')
    with pytest.raises(ValueError, match=r"bad\.toml.*line 3|bogus_key"):
        rlox.train(bad, runs_dir=tmp_path)
    assert not any(tmp_path.glob("dqn-*")), "a rejected config must not leave a run directory"
