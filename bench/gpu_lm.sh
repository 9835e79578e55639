#!/usr/bin/env bash
# The 24-layer Qwen2.5-0.5B-shaped benchmark on a GPU: rlox (burn's LibTorch backend, feature `tch`)
# beside transformers, both on CUDA, same directory of random weights, same work as bench/lm_bench.py
# (forward of [1, 128], forward + backward, greedy generation of 64 tokens after 32).
#
# Two halves, because the GPU machine (the `device` tool's nvidia-h100-x1 / nvidia-h200) has PyTorch
# 2.11 (CUDA 13) but no Rust toolchain and no network:
#
#   bench/gpu_lm.sh build     # HERE: a venv with the CPU wheel of the GPU machine's torch version (same
#                             # C++ ABI), rlox's lm_bench built against it with --features tch, copied
#                             # with the Python scripts into .gpu/ (git-ignored through .git/info/exclude)
#   bench/gpu_lm.sh run       # THERE (device tool, `carry: [".gpu"]`): makes the model with transformers,
#                             # runs both sides, writes $OUT/gpu_lm.json and prints the table
#
# device call: run(command="bash .gpu/gpu_lm.sh run", carry=[".gpu"], timeout_s=540)
#
# Status: written for issue 22 and checked only as far as this machine allows (`cargo check
# --features tch-check`); it has not run on a GPU: no device machine was lent to the session that
# wrote it. tch 0.22 targets libtorch 2.9; against 2.11 it builds with LIBTORCH_BYPASS_VERSION_CHECK=1
# only if torch's C++ API kept the functions tch's wrapper calls.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TORCH_VERSION="${TORCH_VERSION:-2.11.0}"

build() {
    cd "$ROOT"
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> "$(git rev-parse --git-path info/exclude)"
    local venv="$ROOT/bench/.venv-tch"
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q "torch==$TORCH_VERSION" --index-url https://download.pytorch.org/whl/cpu
    fi
    PATH="$venv/bin:$PATH" LIBTORCH_USE_PYTORCH=1 LIBTORCH_BYPASS_VERSION_CHECK=1 \
        cargo build --release -p rlox-lm --features tch --example lm_bench
    mkdir -p .gpu
    cp "${CARGO_TARGET_DIR:-target}/release/examples/lm_bench" .gpu/lm_bench
    cp bench/gpu_lm.sh bench/gpu_lm.py tools/qwen_shapes.py .gpu/
    du -sh .gpu
}

run() {
    # On the GPU machine, from the repository root: .gpu/ holds the binary and the scripts.
    local here
    here="$(cd "$(dirname "$0")" && pwd)"
    local torch_lib
    torch_lib="$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
    export LD_LIBRARY_PATH="$torch_lib:${LD_LIBRARY_PATH:-}"
    # The binary was linked against the CPU wheel: load libtorch's CUDA part so that CUDA devices exist.
    export LD_PRELOAD="$torch_lib/libtorch_cuda.so"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    python3 "$here/qwen_shapes.py" make --layers 24 --out /tmp/qwen05b-24l
    PYTHONUNBUFFERED=1 python3 "$here/gpu_lm.py" --model /tmp/qwen05b-24l --rlox-exe "$here/lm_bench" \
        --out "${OUT:-/tmp}/gpu_lm.json"
}

case "${1:-}" in
    build) build ;;
    run) run ;;
    *) echo "usage: $0 build|run" >&2; exit 2 ;;
esac
