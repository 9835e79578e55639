#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this): the Rust workspace tests, then the
# Python package's pytest suite against a fresh maturin build of python/.
#
#   tools/test.sh                 # cargo test + pytest -m "not slow"
#   tools/test.sh -m slow         # extra arguments go to pytest (here: the long SB3 PPO training)
#   RLOX_SKIP_CARGO=1 tools/test.sh   # only the Python part
#
# The Python side lives outside the clone: tools/py_setup.sh makes the venv ($RLOX_PY_VENV, default
# /var/tmp/rlox-py-venv) with the pinned test dependencies and installs the maturin-built wheel, reusing
# CARGO_TARGET_DIR's compiled dependencies so only crates/rlox-py compiles.
set -euo pipefail
cd "$(dirname "$0")/.."
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-1}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

if [[ -z "${RLOX_SKIP_CARGO:-}" ]]; then
    cargo test --workspace --release
fi

VENV="${RLOX_PY_VENV:-/var/tmp/rlox-py-venv}"
# The venv, the pinned test dependencies and the wheel (.ci/run prepares them first and sets RLOX_PY_READY=1).
if [[ -z "${RLOX_PY_READY:-}" ]]; then
    tools/py_setup.sh
fi

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
