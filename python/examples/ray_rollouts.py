"""Distributed rollouts on a local Ray cluster: N actors, each with an rlox vector env and a policy.

    python python/examples/ray_rollouts.py --workers 2 --num-envs 64 --steps 128 --iterations 8

The driver broadcasts the policy weights with ``ray.put`` every iteration, gathers one batch of
transitions per worker, and writes each as one Parquet part file of the Hive-partitioned store
``<root>/run=<run>/step=<iteration>/part-<worker>.parquet``. Read it back with
``rlox sql "SELECT step, count(*) FROM steps GROUP BY step" --table steps=<root>`` or
``rlox.data.read_table(<root>)``. On a real cluster: ``--address auto`` and a ``--root`` on shared
storage (see docs/scaling.md).
"""

from __future__ import annotations

import argparse
import json
import os

import ray

from rlox.ray import collect


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--num-envs", type=int, default=64, help="envs per worker")
    p.add_argument("--steps", type=int, default=128, help="calls per worker per iteration")
    p.add_argument("--iterations", type=int, default=8)
    p.add_argument("--root", default="rollouts")
    p.add_argument("--run", default="ray")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--address", default=None, help="a Ray cluster address (default: start a local one)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args()

    if args.address:
        ray.init(address=args.address)
    else:
        # A local cluster sized to the workers; a small object store (batches are a few MB).
        ray.init(
            num_cpus=max(args.workers, 1),
            object_store_memory=256 * 1024 * 1024,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"RAYON_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}},
        )
    try:
        report = collect(
            args.env,
            num_workers=args.workers,
            num_envs=args.num_envs,
            num_steps=args.steps,
            iterations=args.iterations,
            root=args.root,
            run=args.run,
            seed=args.seed,
        )
    finally:
        ray.shutdown()
    summary = {
        "env": args.env,
        "workers": report.workers,
        "num_envs": report.num_envs,
        "iterations": report.iterations,
        "env_steps": report.env_steps,
        "rows": report.rows,
        "seconds": round(report.seconds, 4),
        "env_steps_per_second": round(report.env_steps_per_second, 1),
        "worker_env_steps_per_second": round(report.env_steps / report.worker_seconds * report.workers, 1)
        if report.worker_seconds > 0
        else 0.0,
        "files": [os.path.relpath(f, args.root) for f in report.files],
        "root": args.root,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        for k, v in summary.items():
            if k != "files":
                print(f"{k:>28}: {v}")
        print(f"{'files':>28}: {len(report.files)} part files under {args.root}")


if __name__ == "__main__":
    main()
