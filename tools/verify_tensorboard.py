#!/usr/bin/env python3
"""Read rlox's TensorBoard event files back with TensorBoard's own reader (EventAccumulator).

Usage:  python3 tools/verify_tensorboard.py [RUN_DIR]

Without RUN_DIR it runs `cargo run --release -- train` into a temporary directory first. It creates
tools/.venv with the `tensorboard` package on first use, reads every scalar tag of the run's tb/
directory and checks them against metrics.jsonl (same tags, steps and values to float32 precision).
Exit status 0 when everything matches.
"""
import json
import os
import subprocess
import sys
import tempfile
import venv

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV = os.path.join(HERE, ".venv")


def ensure_venv():
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        venv.create(VENV, with_pip=True)
    check = subprocess.run([py, "-c", "import tensorboard"], capture_output=True)
    if check.returncode != 0:
        subprocess.run([py, "-m", "pip", "install", "-q", "tensorboard"], check=True)
    return py


def main():
    if len(sys.argv) > 1 and sys.argv[1] != "--inner":
        run_dir = sys.argv[1]
    elif len(sys.argv) > 2:
        run_dir = sys.argv[2]
    else:
        runs = tempfile.mkdtemp(prefix="rlox-tb-")
        out = subprocess.run(
            ["cargo", "run", "--release", "-q", "--", "train", "--runs-dir", runs, "--format", "json"],
            cwd=ROOT, check=True, capture_output=True, text=True,
        )
        run_dir = json.loads(out.stdout)["run_dir"]
    if "--inner" not in sys.argv:
        py = ensure_venv()
        sys.exit(subprocess.run([py, os.path.abspath(__file__), "--inner", run_dir]).returncode)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    import numpy as np

    acc = EventAccumulator(os.path.join(run_dir, "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    tags = sorted(acc.Tags()["scalars"])
    expected = {}
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            rec = json.loads(line)
            for k, v in rec.items():
                if k in ("step", "wall_time") or v is None:
                    continue
                expected.setdefault(k, []).append((rec["step"], v))
    assert tags == sorted(expected), f"tags differ: {tags} vs {sorted(expected)}"
    total = 0
    for tag in tags:
        events = acc.Scalars(tag)
        got = [(e.step, e.value) for e in events]
        want = expected[tag]
        assert len(got) == len(want), f"{tag}: {len(got)} events, {len(want)} in metrics.jsonl"
        for (gs, gv), (ws, wv) in zip(got, want):
            assert gs == ws, f"{tag}: step {gs} vs {ws}"
            assert gv == np.float32(wv), f"{tag}@{gs}: {gv} vs {wv}"
        total += len(got)
        print(f"{tag:28s} {len(got):6d} scalars, first (step {got[0][0]}, {got[0][1]:.6g}), last (step {got[-1][0]}, {got[-1][1]:.6g})")
    print(f"OK: TensorBoard's EventAccumulator read {total} scalars in {len(tags)} tags from {run_dir}/tb, all equal to metrics.jsonl")


if __name__ == "__main__":
    main()
