#!/usr/bin/env python3
"""Recall of dagrun's approximate kNN graph at scale, against exact neighbours of a random
sample of rows (brute force over all rows, in float64 blocks).

    python benches/knn_recall.py PIPELINE.toml KNN_NODE FEATURES.parquet [--k 49] [--sample 1000]

PIPELINE.toml / KNN_NODE: a pipeline whose node (e.g. `umap.knn`) is the graph, exported
with `dagrun export` (computed if needed); FEATURES.parquet: the same rows, in the same
order, with `feat_*` columns. Prints the mean recall@k over the sample, and the time the
node took. Needs numpy and pyarrow.
"""
import argparse, json, os, subprocess, tempfile, time

import numpy as np
import pyarrow.parquet as pq


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pipeline")
    ap.add_argument("node")
    ap.add_argument("features")
    ap.add_argument("--k", type=int, default=49)
    ap.add_argument("--sample", type=int, default=1000)
    ap.add_argument("--prefix", default="feat_")
    ap.add_argument("--dagrun", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "dagrun"))
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "knn.parquet")
        t = time.perf_counter()
        subprocess.run([a.dagrun, "-q", "export", a.pipeline, a.node, "--out", out], check=True)
        wall = time.perf_counter() - t
        g = pq.read_table(out)
    tb = pq.read_table(a.features)
    cols = [c for c in tb.column_names if c.startswith(a.prefix)]
    X = np.column_stack([tb[c].to_numpy() for c in cols]).astype(np.float64)
    n = len(X)
    rng = np.random.default_rng(0)
    q = np.sort(rng.choice(n, size=min(a.sample, n), replace=False))
    nn = np.column_stack([g[f"nn_{s}"].to_numpy() for s in range(a.k)])
    sq = (X * X).sum(1)
    hits = 0
    for i in q:
        d = sq - 2 * X @ X[i] + sq[i]
        d[i] = np.inf
        exact = np.argpartition(d, a.k)[: a.k]
        hits += len(set(exact.tolist()) & set(nn[i].tolist()))
    print(json.dumps({"n": n, "dims": len(cols), "k": a.k, "sample": len(q), "recall": hits / (len(q) * a.k), "export_wall_s": round(wall, 2)}))


if __name__ == "__main__":
    main()
