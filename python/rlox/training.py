"""``rlox.train``: any ``rlox train`` config run from Python, in the CLI's run directory layout.

>>> import rlox
>>> summary = rlox.train("configs/ppo_cartpole.toml", total_steps=20_000, runs_dir="runs")
>>> summary["eval_return_mean"], summary["run_dir"]
>>> rlox.train({"algo": "dqn", "env": {"id": "CartPole-v1"}, "total_steps": 5_000, "seed": 1})
>>> rlox.train(resume=summary["run_dir"])          # a killed run continues where its checkpoint left it

The training itself runs in Rust (``rlox_runner``, the code behind ``rlox train``) with the GIL
released; the run directory holds the same ``config.toml``, ``metrics.jsonl``, checkpoints and
``summary.json`` as a CLI run, so ``rlox train --resume DIR`` and ``rlox.train(resume=DIR)`` are
interchangeable.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from rlox import _rlox

ConfigLike = Union[str, "os.PathLike[str]", Mapping[str, Any]]


def train(
    config: Optional[ConfigLike] = None,
    *,
    resume: Optional[Union[str, os.PathLike[str]]] = None,
    algo: Optional[str] = None,
    env: Optional[str] = None,
    total_steps: Optional[int] = None,
    seed: Optional[int] = None,
    runs_dir: Optional[Union[str, os.PathLike[str]]] = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Run a training config and return its summary (also written to ``<run_dir>/summary.json``).

    Args:
        config: a TOML file (``str`` or path) in the layout of ``configs/*.toml``, or the same
            content as a ``dict`` (run settings at the top level, ``env`` and the method's table as
            nested dicts). ``None`` runs the default config (the book's grid world), or the named
            ``algo``'s defaults.
        resume: a run directory to continue from its last checkpoint (instead of ``config``).
        algo, env, total_steps, seed, runs_dir: the CLI's overrides (``--algo``, ``--env``, ...).
        progress: show the progress bar on stderr.

    Raises:
        FileNotFoundError: the config file or the run directory does not exist.
        TypeError: ``config`` is neither a path nor a mapping, or an override has the wrong type.
        ValueError: the config is invalid (the message names the key, and the file and line).
        FloatingPointError: the training diverged (a NaN or infinite loss); the last good
            checkpoint is kept.
    """
    for name, value, kind in (
        ("algo", algo, str),
        ("env", env, str),
        ("total_steps", total_steps, int),
        ("seed", seed, int),
    ):
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise TypeError(f"{name} must be {kind.__name__}, got {type(value).__name__}")
    for name, count in (("total_steps", total_steps), ("seed", seed)):
        if count is not None and count < 0:
            raise ValueError(f"{name} must be >= 0, got {count}")
    toml_text: Optional[str] = None
    origin: Optional[str] = None
    as_json: Optional[str] = None
    if config is None:
        pass
    elif isinstance(config, Mapping):
        try:
            as_json = json.dumps(config, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise TypeError(f"the config dict must hold TOML values (str, int, float, bool, lists, dicts): {e}") from e
    elif isinstance(config, (str, os.PathLike)):
        path = Path(config)
        if not path.is_file():
            raise FileNotFoundError(f"config file {str(path)!r} does not exist")
        toml_text = path.read_text(encoding="utf-8")
        origin = str(path)
    else:
        raise TypeError(f"config must be a path or a dict, got {type(config).__name__}")
    resume_dir: Optional[str] = None
    if resume is not None:
        if config is not None:
            raise ValueError("resume= continues a run with the config.toml in its directory; do not pass a config")
        if not Path(resume).is_dir():
            raise FileNotFoundError(f"run directory {str(resume)!r} does not exist")
        resume_dir = os.fspath(resume)
    summary = _rlox.train(
        toml_text=toml_text,
        origin=origin,
        json=as_json,
        resume=resume_dir,
        algo=algo,
        env=env,
        total_steps=total_steps,
        seed=seed,
        runs_dir=None if runs_dir is None else os.fspath(runs_dir),
        progress=progress,
    )
    result: dict[str, Any] = json.loads(summary)
    return result
