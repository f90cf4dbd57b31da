#!/usr/bin/env bash
# The Python face's tests: build the wheel (scripts/build-wheel.sh), install it into a fresh
# venv with polars and pytest from PyPI, and run python/tests with no Rust toolchain on
# PATH: what a notebook user gets from `pip install dagrun-*.whl`.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEEL="$(scripts/build-wheel.sh | tail -1)"
echo "wheel: $WHEEL ($(du -k "$WHEEL" | cut -f1) KiB)" >&2
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install --quiet "$WHEEL" "polars>=1.0" "pytest>=7"
# Only the venv and the system's tools: no cargo, no rustc, no target directory.
env -i HOME="$HOME" PATH="$WORK/venv/bin:/usr/bin:/bin" DAGRUN_WHEEL="$WHEEL" ${CI:+CI="$CI"} \
    "$WORK/venv/bin/python" -m pytest -q -p no:cacheprovider python/tests
