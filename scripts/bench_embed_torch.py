#!/usr/bin/env python3
"""Reference throughput for dagrun's `embed` op: EfficientNet-Lite0 pooled features over a
catalogue of images, decode included, in PyTorch (default) or onnxruntime's Python API.

    python scripts/bench_embed_torch.py CATALOG.csv [--threads 2] [--batch 32] [--size 224]
    python scripts/bench_embed_torch.py CATALOG.csv --onnx efficientnet-lite0.onnx

Per image: PIL open -> RGB -> resize the shorter side to SIZE (bilinear) -> centre crop
SIZE x SIZE -> x/255 -> (x - mean)/std (default: EfficientNet-Lite's 127/255, 128/255) ->
NCHW float32. Images are decoded in the main thread, batch by batch, then the batch is run
(torch: under inference_mode with torch.set_num_threads(threads); onnxruntime: intra-op
threads = threads, inter-op 1). The first batch is a warm-up and is not timed. Prints one
JSON line: images/s, total seconds, and the decode / inference split.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from embed_common import (LITE0_MEAN, LITE0_STD, add_norm_args, load_rgb, read_catalog,  # noqa: E402
                          resize_short_side_crop, resolve_norm, to_chw)


def make_runner(a):
    """A function batch[n,3,S,S] float32 -> features[n, d], plus a description."""
    if a.onnx:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = a.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        sess = ort.InferenceSession(a.onnx, so, providers=["CPUExecutionProvider"])
        name_in = sess.get_inputs()[0].name
        name_out = a.output or sess.get_outputs()[0].name
        return (lambda x: sess.run([name_out], {name_in: x})[0],
                {"engine": "onnxruntime", "version": ort.__version__, "model": a.onnx})

    import torch
    from embed_common import load_lite0_features_model

    torch.set_num_threads(a.threads)
    model = load_lite0_features_model()
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)

    def run(x):
        with torch.inference_mode():
            return model(torch.from_numpy(x).contiguous(memory_format=fmt)).numpy()

    return run, {"engine": "torch", "version": torch.__version__, "channels_last": a.channels_last,
                 "model": "efficientnet-lite0 (efficientnet-lite-pytorch)"}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("catalog", help="catalogue CSV; image paths relative to its folder")
    ap.add_argument("--threads", type=int, default=2, help="inference threads (default: %(default)s)")
    ap.add_argument("--batch", type=int, default=32, help="batch size (default: %(default)s)")
    ap.add_argument("--size", type=int, default=224, help="model input side (default: %(default)s)")
    ap.add_argument("--onnx", metavar="MODEL", help="run this ONNX model with onnxruntime instead of torch")
    ap.add_argument("--output", help="ONNX output to fetch (default: the first)")
    ap.add_argument("--channels-last", action="store_true",
                    help="torch only: run in channels_last (NHWC) memory format")
    ap.add_argument("--id", default="id_str", help="id column (default: %(default)s)")
    ap.add_argument("--image-col", default="file_loc", help="image path column (default: %(default)s)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N images (default: all)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="go over the catalogue this many times (more timed images) (default: %(default)s)")
    add_norm_args(ap, list(LITE0_MEAN), list(LITE0_STD))
    a = ap.parse_args()
    mean, std = resolve_norm(a)

    items = read_catalog(a.catalog, a.id, a.image_col)
    if a.limit:
        items = items[:a.limit]
    paths = [p for _, p in items] * a.repeat
    if len(paths) <= a.batch:
        sys.exit(f"need more than one batch of images ({len(paths)} <= --batch {a.batch})")
    run, info = make_runner(a)

    def load_batch(ps):
        return np.stack([to_chw(resize_short_side_crop(load_rgb(p), a.size), mean, std) for p in ps])

    # Warm-up: the first batch, decode + forward, untimed.
    dim = run(load_batch(paths[:a.batch])).shape[1]

    t_decode = t_infer = 0.0
    t0 = time.perf_counter()
    for i in range(a.batch, len(paths), a.batch):
        t1 = time.perf_counter()
        x = load_batch(paths[i:i + a.batch])
        t2 = time.perf_counter()
        feats = run(x)
        t3 = time.perf_counter()
        t_decode += t2 - t1
        t_infer += t3 - t2
        assert feats.shape == (len(x), dim)
    total = time.perf_counter() - t0
    n = len(paths) - a.batch

    print(json.dumps({
        **info, "threads": a.threads, "batch": a.batch, "size": a.size, "dim": dim,
        "images_timed": n, "warmup_images": a.batch,
        "total_s": round(total, 3), "images_per_s": round(n / total, 2),
        "decode_s": round(t_decode, 3), "infer_s": round(t_infer, 3),
        "infer_images_per_s": round(n / t_infer, 2),
    }))


if __name__ == "__main__":
    main()
