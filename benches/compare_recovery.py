#!/usr/bin/env python3
"""Downstream quality of two UMAP layouts of the same galaxies: HDBSCAN leaf clusters
(dagrun's `cluster` + `select-leaves`, the same settings for both) and how many planted
classes of the built-in sample each layout's clusters recover (best-match Jaccard >= 0.9).

    python benches/compare_recovery.py OUTDIR TRUTH.parquet [--ms 300] [--mcs 10]

OUTDIR: a folder written by benches/compare_umap.py (input.parquet, dagrun.parquet,
umap_learn.parquet, rows in the same order). TRUTH.parquet: the id and `planted_class`
(e.g. the `featured` export the layouts came from); values `bulk:*` are background.
Needs numpy and pyarrow.
"""
import argparse, json, os, subprocess, sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("truth")
    ap.add_argument("--ms", type=int, default=300)
    ap.add_argument("--mcs", type=int, default=10)
    ap.add_argument("--dagrun", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "dagrun"))
    a = ap.parse_args()
    ids = pq.read_table(os.path.join(a.out, "input.parquet"), columns=["id"])["id"].to_numpy()
    truth_tb = pq.read_table(a.truth, columns=["id", "planted_class"])
    truth_of = dict(zip(truth_tb["id"].to_pylist(), truth_tb["planted_class"].to_pylist()))
    truth = np.array([truth_of[i] for i in ids.tolist()], dtype=object)
    planted = sorted({t for t in truth if not str(t).startswith("bulk:")})
    layouts = {}
    ours = pq.read_table(os.path.join(a.out, "dagrun.parquet"))
    assert ours["id"].to_numpy().tolist() == ids.tolist(), "dagrun's layout rows are in input order"
    layouts["dagrun"] = np.column_stack([ours[c].to_numpy() for c in ours.column_names if c.startswith("umap_")])
    ref = pq.read_table(os.path.join(a.out, "umap_learn.parquet"))
    layouts["umap-learn"] = np.column_stack([ref[c].to_numpy() for c in ref.column_names])
    result = {"n": len(ids), "min_samples": a.ms, "min_cluster_size": a.mcs, "planted": planted}
    for name, E in layouts.items():
        d = os.path.join(a.out, f"recovery-{name}")
        os.makedirs(d, exist_ok=True)
        cols = {"id": ids}
        cols.update({f"l{j}": E[:, j].astype(np.float32) for j in range(E.shape[1])})
        pq.write_table(pa.table(cols), os.path.join(d, "layout.parquet"))
        with open(os.path.join(d, "p.toml"), "w") as f:
            f.write(f'[nodes.layout]\nop = "read"\npath = "layout.parquet"\n'
                    f'[nodes.tree]\nop = "cluster"\ninput = "layout"\ncolumns = "l*"\nmin_samples = {a.ms}\nmin_cluster_size = {a.mcs}\n'
                    f'[nodes.classes]\nop = "select-leaves"\ninput = "tree"\n')
        subprocess.run([a.dagrun, "-q", "export", os.path.join(d, "p.toml"), "classes", "--out", os.path.join(d, "classes.parquet"),
                        "--cache", os.path.join(d, "cache")], check=True)
        cl = pq.read_table(os.path.join(d, "classes.parquet"))
        assert cl["id"].to_numpy().tolist() == ids.tolist()
        lab = cl["label"].to_numpy()
        per = {}
        for p in planted:
            t = truth == p
            best = 0.0
            for c in np.unique(lab[t]):
                if c < 0:
                    continue
                m = lab == c
                best = max(best, (t & m).sum() / (t | m).sum())
            per[p] = round(float(best), 4)
        result[name] = {"classes": int(lab.max() + 1), "clustered": round(float((lab >= 0).mean()), 4),
                        "recovered": sum(v >= 0.9 for v in per.values()), "best_jaccard": per}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
