#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this): the Rust workspace tests, then the
# Python package's pytest suite against a fresh maturin build of python/.
#
#   tools/test.sh                 # cargo test + pytest -m "not slow"
#   tools/test.sh -m slow         # extra arguments go to pytest (here: the long SB3 PPO training)
#   RLOX_SKIP_CARGO=1 tools/test.sh   # only the Python part
#
# The Python side lives outside the clone: a venv ($RLOX_PY_VENV, default /var/tmp/rlox-py-venv) with
# the pinned test dependencies of python/requirements-test.txt and a pip cache ($PIP_CACHE_DIR,
# default /var/tmp/rlox-pip-cache). maturin builds with the same CARGO_TARGET_DIR and profile as the
# cargo tests, so it reuses their compiled dependencies and compiles only crates/rlox-py.
set -euo pipefail
cd "$(dirname "$0")/.."
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-1}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

if [[ -z "${RLOX_SKIP_CARGO:-}" ]]; then
    cargo test --workspace --release
fi

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

# The CLI the data tests query (built by the cargo tests above; built here if they were skipped).
if [[ ! -x "$CARGO_TARGET_DIR/release/rlox" ]]; then
    cargo build --release -p rlox-cli
fi
export RLOX_BIN="$CARGO_TARGET_DIR/release/rlox"
export OMP_NUM_THREADS=1
# Run from the repository root so `import rlox` finds the installed package, not python/rlox.
if [[ $# -eq 0 ]]; then
    set -- -m "not slow"
fi
"$VENV/bin/pytest" python/tests -p no:cacheprovider -q "$@"
