#!/usr/bin/env python3
"""Build a tiny, deterministic ONNX image encoder for dagrun's `embed` tests, with onnx.helper
and numpy only (no torch).

    python scripts/make_tiny_onnx.py --out tiny.onnx [--seed 0] [--golden tiny.json]

Graph (opset 17, IR version 8, loads in onnxruntime >= 1.14):
  image    float32 [N, 3, 32, 32]  (dynamic N)
  -> Conv 3->8, 3x3, pad 1 -> Relu            [N, 8, 32, 32]
  -> Conv 8->16, 3x3, stride 2, no pad -> Relu [N, 16, 15, 15]
  -> GlobalAveragePool -> Flatten
  -> features  float32 [N, 16]   (output 0)
  -> MatMul W[16, 4]
  -> logits    float32 [N, 4]    (output 1; lets tests pick an output by name)

Weights come from numpy.random.default_rng(seed): He-scaled normal conv weights
(std sqrt(2 / fan_in)), biases normal * 0.1, W normal / sqrt(16), all float32, so the same
seed gives the same bytes with any numpy >= 1.17.

The script checks the model with onnx.checker, compares onnxruntime (when installed) with a
plain-numpy forward pass, and with --golden writes the expected outputs for a fixed input
pattern (see golden_input) as JSON so tests can check values without Python.
"""
import argparse
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8  # onnxruntime 1.32 reads IR versions up to 10; 8 is what opset 17 needs


def make_weights(seed):
    rng = np.random.default_rng(seed)

    def he(shape):  # shape = [out, in, kh, kw]
        fan_in = int(np.prod(shape[1:]))
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    w1 = he((8, 3, 3, 3))
    b1 = (rng.standard_normal(8) * 0.1).astype(np.float32)
    w2 = he((16, 8, 3, 3))
    b2 = (rng.standard_normal(16) * 0.1).astype(np.float32)
    w3 = (rng.standard_normal((16, 4)) / np.sqrt(16.0)).astype(np.float32)
    return {"w1": w1, "b1": b1, "w2": w2, "b2": b2, "w3": w3}


def build_model(wts, seed):
    nodes = [
        helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], name="conv1",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2",
                         kernel_shape=[3, 3], pads=[0, 0, 0, 0], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["features"], name="flatten", axis=1),
        helper.make_node("MatMul", ["features", "w3"], ["logits"], name="head"),
    ]
    inits = [numpy_helper.from_array(v, name=k) for k, v in wts.items()]
    graph = helper.make_graph(
        nodes, "tiny_embed",
        inputs=[helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 32, 32])],
        outputs=[helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 16]),
                 helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 4])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="dagrun/scripts/make_tiny_onnx.py")
    model.ir_version = IR_VERSION
    model.doc_string = f"tiny test encoder, seed {seed}: image [N,3,32,32] -> features [N,16], logits [N,4]"
    helper.set_model_props(model, {"seed": str(seed), "mean": "[0, 0, 0]", "std": "[1, 1, 1]", "size": "32"})
    onnx.checker.check_model(model, full_check=True)
    return model


def numpy_forward(x, w):
    """Reference forward pass in float64 numpy (independent of any ONNX runtime)."""
    def conv(x, k, b, stride, pad):
        x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        n, c, h, wd = x.shape
        o, _, kh, kw = k.shape
        oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
        out = np.zeros((n, o, oh, ow))
        for i in range(kh):
            for j in range(kw):
                patch = x[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]  # [n, c, oh, ow]
                out += np.einsum("nchw,oc->nohw", patch, k[:, :, i, j])
        return out + b[None, :, None, None]

    x = x.astype(np.float64)
    h = np.maximum(conv(x, w["w1"].astype(np.float64), w["b1"], 1, 1), 0)
    h = np.maximum(conv(h, w["w2"].astype(np.float64), w["b2"], 2, 0), 0)
    feats = h.mean(axis=(2, 3))
    return feats, feats @ w["w3"].astype(np.float64)


def golden_input(n=2):
    """Fixed input: image[b, c, y, x] = ((b*7 + c*3 + y*5 + x) % 17) / 16, in 0..1."""
    b, c, y, x = np.meshgrid(np.arange(n), np.arange(3), np.arange(32), np.arange(32), indexing="ij")
    return (((b * 7 + c * 3 + y * 5 + x) % 17) / 16.0).astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="ONNX file to write")
    ap.add_argument("--seed", type=int, default=0, help="numpy default_rng seed for the weights (default: %(default)s)")
    ap.add_argument("--golden", help="also write the expected outputs for golden_input() as JSON here")
    ap.add_argument("--no-check", action="store_true", help="skip the onnxruntime run")
    a = ap.parse_args()

    wts = make_weights(a.seed)
    model = build_model(wts, a.seed)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)) or ".", exist_ok=True)
    onnx.save(model, a.out)

    x = golden_input()
    feats, logits = numpy_forward(x, wts)
    report = {"out": os.path.abspath(a.out), "bytes": os.path.getsize(a.out), "seed": a.seed,
              "opset": OPSET, "ir_version": IR_VERSION,
              "golden_features_row0_head": [round(float(v), 6) for v in feats[0, :4]]}

    if not a.no_check:
        try:
            import onnxruntime as ort
        except ImportError:
            print("onnxruntime not installed: skipped the runtime check", file=sys.stderr)
        else:
            so = ort.SessionOptions()
            so.intra_op_num_threads = 1
            sess = ort.InferenceSession(a.out, so, providers=["CPUExecutionProvider"])
            got_f, got_l = sess.run(["features", "logits"], {"image": x})
            got_l1 = sess.run(["logits"], {"image": x[:1]})[0]  # another batch size, one output
            err = max(float(np.abs(got_f - feats).max()), float(np.abs(got_l - logits).max()),
                      float(np.abs(got_l1 - logits[:1]).max()))
            report.update(onnxruntime=ort.__version__, max_abs_diff_vs_numpy=err)
            if not err < 1e-5:
                print(json.dumps(report))
                sys.exit(f"FAIL: onnxruntime differs from the numpy reference by {err:.3g}")

    if a.golden:
        with open(a.golden, "w") as f:
            json.dump({"model": os.path.basename(a.out), "seed": a.seed,
                       "input": "image[b,c,y,x] = ((b*7 + c*3 + y*5 + x) % 17) / 16, shape [2,3,32,32]",
                       "features": feats.round(7).tolist(), "logits": logits.round(7).tolist()}, f, indent=1)
        report["golden"] = os.path.abspath(a.golden)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
