"""List the dependency features that differ between `cargo test --workspace` and a `-p rlox-py` build.

maturin builds `-p rlox-py` alone; every crate whose features differ from the workspace build gets a
different hash and is compiled a second time. crates/rlox-py/Cargo.toml requests the workspace's
features for those crates (its "one dependency build" block). This prints the lines that block still
needs (nothing when the two builds share every dependency):

    python3 tools/align_features.py            # after a dependency change; paste what it prints
"""

from __future__ import annotations

import subprocess
import sys


def features(args: list[str]) -> dict[str, set[str]]:
    out = subprocess.run(
        ["cargo", "tree", *args, "--format", "{p} [{f}]", "--prefix", "none"],
        capture_output=True, text=True, check=True,
    ).stdout
    found: dict[str, set[str]] = {}
    for line in out.splitlines():
        if " [" not in line:
            continue
        name, feats = line.split(" [", 1)
        name = name.split(" (")[0]
        feats = feats.split("]")[0]
        found.setdefault(name, set()).update(f for f in feats.split(",") if f)
    return found


def main() -> int:
    ws = features(["--workspace", "-e", "normal,build,dev"])
    py = features(["-p", "rlox-py", "-e", "normal,build"])
    missing = 0
    for pkg in sorted(py):
        extra = sorted(ws.get(pkg, set()) - py[pkg])
        if not extra:
            continue
        missing += 1
        name, version = pkg.rsplit(" v", 1)
        req = version.split(".")[0] if not version.startswith("0.") else ".".join(version.split(".")[:2])
        parts = [f'version = "{req}"']
        if "default" not in extra:
            parts.append("default-features = false")
        listed = [f for f in extra if f != "default"]
        if listed:
            parts.append("features = [" + ", ".join(f'"{f}"' for f in listed) + "]")
        print(f"{name} = {{ {', '.join(parts)} }}")
    print(f"# {missing} crates differ", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
