#!/bin/sh
# Install ONNX Runtime for dagrun's `embed` op, offline-safe at run time: the `onnxruntime`
# wheel from PyPI, unpacked (not pip-installed) into ${DAGRUN_ORT_DIR:-~/.cache/dagrun/ort}.
# dagrun loads onnxruntime/capi/libonnxruntime.so.* from there at run time (or from
# ORT_DYLIB_PATH). Idempotent: does nothing when the library is already there.
# Needs python3 with pip (for `pip download`) and access to PyPI, once.
set -eu
VERSION=${ORT_VERSION:-1.32.0}
DIR=${DAGRUN_ORT_DIR:-$HOME/.cache/dagrun/ort}
if ls "$DIR"/onnxruntime/capi/libonnxruntime.so.* >/dev/null 2>&1; then
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "installing ONNX Runtime $VERSION (PyPI wheel) into $DIR" >&2
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: "onnxruntime==$VERSION" -d "$tmp"
python3 -m zipfile -e "$tmp"/onnxruntime-*.whl "$tmp/wheel"
mkdir -p "$DIR"
rm -rf "$DIR/onnxruntime.partial"
mv "$tmp/wheel/onnxruntime" "$DIR/onnxruntime.partial"
rm -rf "$DIR/onnxruntime"
mv "$DIR/onnxruntime.partial" "$DIR/onnxruntime"
ls "$DIR"/onnxruntime/capi/libonnxruntime.so.* >&2
