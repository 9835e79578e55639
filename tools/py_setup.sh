#!/usr/bin/env bash
# What the Python tests need, outside the clone: a venv ($RLOX_PY_VENV, default /var/tmp/rlox-py-venv) with
# the pinned packages of python/requirements-test.txt (pip cache $PIP_CACHE_DIR, default
# /var/tmp/rlox-pip-cache), and the rlox wheel built by maturin into it. maturin uses CARGO_TARGET_DIR (default:
# the clone's target/), so after a workspace build it compiles only crates/rlox-py.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
VENV="${RLOX_PY_VENV:-/var/tmp/rlox-py-venv}"
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-/var/tmp/rlox-pip-cache}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
fi
start=$(date +%s)
"$VENV/bin/pip" install -q -r python/requirements-test.txt
echo "python test dependencies ready in $(( $(date +%s) - start )) s"

start=$(date +%s)
WHEELS="$CARGO_TARGET_DIR/python-wheels"
rm -rf "$WHEELS"
(cd python && "$VENV/bin/maturin" build --release -o "$WHEELS")
"$VENV/bin/pip" install -q --force-reinstall --no-deps "$WHEELS"/rlox-*.whl
echo "rlox wheel built and installed in $(( $(date +%s) - start )) s"
