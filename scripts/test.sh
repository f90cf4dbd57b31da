#!/usr/bin/env bash
# The test command (README's second command; `.ci/run` calls exactly this): a one-node SLURM
# cluster for the --executor slurm tests, Chromium and chromedriver for the browser tests of
# `dagrun serve`, ONNX Runtime for `embed`, the formatting and lint gates, every Rust test,
# then the wheel and its Python tests (scripts/python-test.sh).
# Each setup step does nothing when what it sets up is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/slurm-up.sh
scripts/browser-up.sh
scripts/install-ort.sh
cargo fmt --check
cargo clippy --release --all-targets -- -D warnings
cargo test --release
scripts/python-test.sh
