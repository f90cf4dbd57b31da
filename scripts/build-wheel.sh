#!/usr/bin/env bash
# Build the wheel that carries dagrun (pyproject.toml: maturin, `bindings = "bin"`) into
# DIR (default: $CARGO_TARGET_DIR/wheels). maturin comes from PyPI into a venv outside the
# repository; the build reuses the target directory the tests use, so only the dagrun
# binary is linked again (stripped), not polars.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/dagrun-target}"
VENV="${DAGRUN_WHEEL_VENV:-$HOME/.cache/dagrun/wheel-venv}"
OUT="${1:-$CARGO_TARGET_DIR/wheels}"
if ! "$VENV/bin/maturin" --version >/dev/null 2>&1; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "maturin>=1.5,<2"
fi
rm -rf "$OUT"
"$VENV/bin/maturin" build --release --out "$OUT" --compatibility linux >&2
ls "$OUT"/dagrun-*.whl
