#!/usr/bin/env python3
"""Numeric parity check of dagrun's `embed` op against onnxruntime's Python API.

Resize implementations differ between libraries, so the check runs on cutouts that are
already at the model's input size and stored losslessly; then decoding, x/255,
normalisation, NCHW layout and inference are all that is compared.

1. prepare: write such cutouts (centre-crop to square, PIL bilinear resize to SIZE, PNG) and
   a catalogue CSV for them (all columns kept, the image column pointing at the PNGs,
   relative to the CSV's folder):

     python scripts/compare_embed.py prepare ../shared/data/decals-rings/catalog.csv \\
         /tmp/rings224 [--size 224] [--limit N]

2. run dagrun's embed op on /tmp/rings224/catalog.csv with the same model and mean/std,
   writing Parquet with the id column and feat_0..feat_{d-1} (Float32);

3. check: embed the PNGs here with onnxruntime (2 threads) and compare row by row:

     python scripts/compare_embed.py check MODEL.onnx /tmp/rings224/catalog.csv \\
         DAGRUN_OUT.parquet --norm lite0 [--tol 1e-4]

   It prints one JSON line: rows matched, max abs diff, max per-row relative diff
   (max|a-b| / max|b| over a row) and max elementwise relative diff (|a-b| / max(|b|,
   floor)). It exits 1 when the per-row relative diff exceeds --tol, or when ids are
   missing on either side (unless --allow-missing).
"""
import argparse
import csv
import json
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from embed_common import add_norm_args, centre_crop_square, load_rgb, read_catalog, resolve_norm, to_chw  # noqa: E402


def safe_name(s):
    """File name for an id (DECaLS ids like J000411.19+020924.0 are fine as they are)."""
    return re.sub(r"[^A-Za-z0-9._+-]", "_", s)


def cmd_prepare(a):
    from PIL import Image

    os.makedirs(os.path.join(a.outdir, "images"), exist_ok=True)
    src_root = os.path.dirname(os.path.abspath(a.catalog))
    with open(a.catalog, newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames
        rows = list(reader)
    for col in (a.id, a.image_col):
        if col not in fields:
            sys.exit(f"{a.catalog}: no column {col!r}")
    if a.limit:
        rows = rows[:a.limit]
    seen = set()
    for row in rows:
        name = safe_name(row[a.id])
        if name in seen:
            sys.exit(f"duplicate id {row[a.id]!r}")
        seen.add(name)
        im = centre_crop_square(load_rgb(os.path.join(src_root, row[a.image_col])))
        if im.size != (a.size, a.size):
            im = im.resize((a.size, a.size), Image.BILINEAR)
        rel = os.path.join("images", name + ".png")
        im.save(os.path.join(a.outdir, rel), format="PNG")  # 8-bit RGB, lossless
        row[a.image_col] = rel
    out_csv = os.path.join(a.outdir, "catalog.csv")
    with open(out_csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    print(json.dumps({"catalog": os.path.abspath(out_csv), "rows": len(rows), "size": a.size}))


def embed_onnxruntime(model, items, mean, std, threads, batch, output):
    """ids, features [n, d] (float32) for (id, path) items, run through onnxruntime."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    out_name = output or sess.get_outputs()[0].name
    want_hw = [d if isinstance(d, int) else None for d in inp.shape[2:]]
    feats = []
    for i in range(0, len(items), batch):
        xs = []
        for _, path in items[i:i + batch]:
            x = to_chw(load_rgb(path), mean, std)
            if any(w is not None and w != g for w, g in zip(want_hw, x.shape[1:])):
                sys.exit(f"{path}: {x.shape[1:]} but the model wants {want_hw}; run `prepare` "
                         f"with --size matching the model")
            xs.append(x)
        feats.append(sess.run([out_name], {inp.name: np.stack(xs)})[0])
    return [i for i, _ in items], np.concatenate(feats).astype(np.float32), out_name


def read_dagrun(path, id_col, prefix):
    import pyarrow.parquet as pq

    tb = pq.read_table(path)
    if id_col not in tb.column_names:
        sys.exit(f"{path}: no id column {id_col!r} (has {tb.column_names[:8]}...)")
    pat = re.compile(re.escape(prefix) + r"(\d+)$")
    cols = sorted((int(m.group(1)), c) for c in tb.column_names if (m := pat.match(c)))
    if not cols or [k for k, _ in cols] != list(range(len(cols))):
        sys.exit(f"{path}: want columns {prefix}0..{prefix}{{d-1}}, found {[c for _, c in cols][:5]}...")
    types = {str(tb.schema.field(c).type) for _, c in cols}
    ids = [str(v) for v in tb.column(id_col).to_pylist()]
    x = np.stack([tb.column(c).to_numpy(zero_copy_only=False) for _, c in cols], axis=1)
    return ids, x, types


def cmd_check(a):
    mean, std = resolve_norm(a)
    items = read_catalog(a.catalog, a.id, a.image_col)
    ref_ids, ref, out_name = embed_onnxruntime(a.model, items, mean, std, a.threads, a.batch, a.output)
    got_ids, got, types = read_dagrun(a.parquet, a.id, a.prefix)

    report = {"model": a.model, "output": out_name, "mean": mean, "std": std,
              "rows_reference": len(ref_ids), "rows_dagrun": len(got_ids), "dim_reference": ref.shape[1],
              "dim_dagrun": got.shape[1], "dagrun_feature_types": sorted(types)}
    fail = []
    if types != {"float"}:
        fail.append(f"feature columns should be Float32, are {sorted(types)}")
    if ref.shape[1] != got.shape[1]:
        fail.append("feature dimension differs")
        print(json.dumps(report))
        sys.exit("FAIL: " + "; ".join(fail))
    if len(set(got_ids)) != len(got_ids):
        fail.append("duplicate ids in dagrun's output")

    pos = {k: i for i, k in enumerate(got_ids)}
    pairs = [(i, pos[k]) for i, k in enumerate(ref_ids) if k in pos]
    missing_in_dagrun = [k for k in ref_ids if k not in pos]
    extra_in_dagrun = sorted(set(got_ids) - set(ref_ids))
    report.update(rows_matched=len(pairs), missing_in_dagrun=len(missing_in_dagrun),
                  extra_in_dagrun=len(extra_in_dagrun))
    if missing_in_dagrun or extra_in_dagrun:
        report["examples_unmatched"] = (missing_in_dagrun + extra_in_dagrun)[:5]
        if not a.allow_missing:
            fail.append("ids differ between the catalogue and dagrun's output")
    if not pairs:
        print(json.dumps(report))
        sys.exit("FAIL: no rows matched")

    r = ref[[i for i, _ in pairs]].astype(np.float64)   # onnxruntime (reference)
    g = got[[j for _, j in pairs]].astype(np.float64)   # dagrun
    diff = np.abs(g - r)
    row_scale = np.maximum(np.abs(r).max(axis=1), 1e-6)
    row_rel = diff.max(axis=1) / row_scale
    elem_rel = diff / np.maximum(np.abs(r), a.rel_floor)
    worst = int(row_rel.argmax())
    report.update(
        max_abs_diff=float(diff.max()),
        mean_abs_diff=float(diff.mean()),
        max_row_rel_diff=float(row_rel.max()),
        max_elem_rel_diff=float(elem_rel.max()),
        rel_floor=a.rel_floor,
        worst_row=ref_ids[pairs[worst][0]],
        nonfinite_dagrun=int((~np.isfinite(g)).sum()),
        tol=a.tol,
    )
    if report["nonfinite_dagrun"]:
        fail.append("non-finite values in dagrun's output")
    if not row_rel.max() <= a.tol:
        fail.append(f"per-row relative diff {row_rel.max():.3g} > tol {a.tol:g}")
    report["ok"] = not fail
    print(json.dumps(report))
    if fail:
        sys.exit("FAIL: " + "; ".join(fail))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)

    p = sub.add_parser("prepare", help="write model-sized PNG cutouts and their catalogue")
    p.add_argument("catalog", help="source catalogue CSV (image paths relative to its folder)")
    p.add_argument("outdir", help="folder for catalog.csv and images/*.png")
    p.add_argument("--size", type=int, default=224, help="output side in pixels (default: %(default)s)")
    p.add_argument("--limit", type=int, default=0, help="only the first N rows (default: all)")
    p.add_argument("--id", default="id_str", help="id column (default: %(default)s)")
    p.add_argument("--image-col", default="file_loc", help="image path column (default: %(default)s)")
    p.set_defaults(func=cmd_prepare)

    c = sub.add_parser("check", help="embed the PNGs with onnxruntime and compare with dagrun's Parquet")
    c.add_argument("model", help="ONNX model file")
    c.add_argument("catalog", help="catalogue CSV written by `prepare` (images already at model size)")
    c.add_argument("parquet", help="dagrun's output: id column + feat_0..feat_{d-1} Float32")
    add_norm_args(c)
    c.add_argument("--id", default="id_str", help="id column in both files (default: %(default)s)")
    c.add_argument("--image-col", default="file_loc", help="image path column (default: %(default)s)")
    c.add_argument("--prefix", default="feat_", help="feature column prefix (default: %(default)s)")
    c.add_argument("--output", help="model output to compare (default: the first)")
    c.add_argument("--tol", type=float, default=1e-4,
                   help="max allowed per-row relative diff, max|a-b| / max|b| (default: %(default)s)")
    c.add_argument("--rel-floor", type=float, default=1e-3,
                   help="absolute floor of |b| in the elementwise relative diff (default: %(default)s)")
    c.add_argument("--allow-missing", action="store_true", help="do not fail on ids present on one side only")
    c.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads (default: %(default)s)")
    c.add_argument("--batch", type=int, default=32, help="inference batch size (default: %(default)s)")
    c.set_defaults(func=cmd_check)

    a = ap.parse_args()
    a.func(a)


if __name__ == "__main__":
    main()
