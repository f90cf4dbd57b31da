#!/usr/bin/env python3
"""Held-out check of `assign` (pipelines/held-out.toml): the search fitted on 80% of a
planted sample, the other 20% assigned into it.

- For every planted class the fit recovers (Jaccard >= 0.9 with one of its classes) that
  has >= 20 held-out members: the share of those members assigned to that class (>= 0.9).
- Bulk galaxies: the share assigned to any class against the share in classes in the fit
  (at most twice as often).
- With --hdbscan: the prediction step alone against the `hdbscan` library's
  `approximate_predict` on the same fitted layout and the same assigned positions (labels
  matched through the fitted galaxies' labels).

Run from the repository root after `cargo build --release` (python with numpy, pyarrow;
hdbscan for --hdbscan):
    python3 benches/assign_heldout.py [--set catalog.n=300000] [--hdbscan]
"""
import argparse, json, os, subprocess, sys, tempfile, time
from collections import Counter

import numpy as np
import pyarrow.parquet as pq

ap = argparse.ArgumentParser()
ap.add_argument("--pipeline", default="pipelines/held-out.toml")
ap.add_argument("--set", action="append", default=[])
ap.add_argument("--cache", default=None)
ap.add_argument("--hdbscan", action="store_true")
ap.add_argument("--dagrun", default=None)
a = ap.parse_args()

target = os.environ.get("CARGO_TARGET_DIR", "target")
dagrun = a.dagrun or os.path.join(target, "release", "dagrun")
sets = sum((["--set", s] for s in a.set), [])
cache = ["--cache", a.cache] if a.cache else []
tmp = tempfile.mkdtemp()


def export(node):
    out = os.path.join(tmp, node + ".parquet")
    subprocess.run([dagrun, "export", a.pipeline, node, "--out", out, "-q"] + sets + cache, check=True)
    return pq.read_table(out).to_pandas()


t = time.perf_counter()
subprocess.run([dagrun, a.pipeline, "-q"] + sets + cache, check=True)
print(f"pipeline: {time.perf_counter() - t:.1f} s")
featured = export("featured").set_index("id")
classes = export("classes")
layout = export("umap")
assigned = export("assigned")
truth_fit = featured.loc[classes["id"], "planted_class"].to_numpy()
truth_new = featured.loc[assigned["id"], "planted_class"].to_numpy()
lab_fit = classes["label"].to_numpy()
lab_new = assigned["label"].to_numpy()

report = {"fitted": len(classes), "assigned": len(assigned), "classes": int(lab_fit.max() + 1), "planted": []}
ok = True
for c in sorted(set(truth_fit)):
    if c.startswith("bulk"):
        continue
    members = truth_fit == c
    best, jac = -1, 0.0
    for lab, _ in Counter(lab_fit[members & (lab_fit >= 0)]).most_common(3):
        inter = np.sum(members & (lab_fit == lab))
        j = inter / np.sum(members | (lab_fit == lab))
        if j > jac:
            best, jac = int(lab), float(j)
    held = truth_new == c
    row = {"class": c, "fit_members": int(members.sum()), "jaccard": round(jac, 3), "held_out": int(held.sum())}
    if jac >= 0.9 and held.sum() >= 20:
        row["landed"] = round(float(np.mean(lab_new[held] == best)), 4)
        ok &= row["landed"] >= 0.9
    report["planted"].append(row)
bulk_fit = float(np.mean(lab_fit[np.char.startswith(truth_fit.astype(str), "bulk")] >= 0))
bulk_new = float(np.mean(lab_new[np.char.startswith(truth_new.astype(str), "bulk")] >= 0))
report["bulk_in_a_class"] = {"fit": round(bulk_fit, 5), "assigned": round(bulk_new, 5), "ratio": round(bulk_new / max(bulk_fit, 1e-12), 3)}
ok &= bulk_new <= 2 * bulk_fit

if a.hdbscan:
    import hdbscan

    cols = [c for c in layout.columns if c.startswith("umap_")]
    tree = subprocess.run([dagrun, "show", a.pipeline, "tree", "--json"] + sets + cache, capture_output=True, text=True)
    ms = 300
    for s in a.set:
        if s.startswith("tree.min_samples="):
            ms = int(s.split("=")[1])
    X = layout[cols].to_numpy(np.float64)
    t = time.perf_counter()
    # hdbscan's fit counts min_samples as dagrun does; its prediction data counts one
    # neighbour fewer for fitted points and one more for new ones (see numeric/predict.rs).
    cl = hdbscan.HDBSCAN(min_samples=ms, min_cluster_size=10, cluster_selection_method="leaf", prediction_data=True, core_dist_n_jobs=2).fit(X)
    fit_s = time.perf_counter() - t
    # Map hdbscan's labels to dagrun's through the fitted galaxies.
    mapping = {}
    for lab in set(cl.labels_) - {-1}:
        ours = Counter(lab_fit[cl.labels_ == lab]).most_common(1)[0][0]
        mapping[lab] = ours
    fit_agree = float(np.mean([mapping.get(l, -1) == o if l >= 0 else o == -1 for l, o in zip(cl.labels_, lab_fit)]))
    t = time.perf_counter()
    pred, _ = hdbscan.approximate_predict(cl, assigned[cols].to_numpy(np.float64))
    pred_s = time.perf_counter() - t
    mapped = np.array([mapping.get(l, -1) if l >= 0 else -1 for l in pred])
    report["hdbscan"] = {
        "fit_labels_agree": round(fit_agree, 5),
        "predicted_labels_agree": round(float(np.mean(mapped == lab_new)), 5),
        "in_a_class": {"dagrun": int(np.sum(lab_new >= 0)), "hdbscan": int(np.sum(mapped >= 0))},
        "seconds": {"fit": round(fit_s, 1), "approximate_predict": round(pred_s, 1)},
    }
    ok &= report["hdbscan"]["predicted_labels_agree"] >= 0.99

report["pass"] = bool(ok)
print(json.dumps(report, indent=1))
sys.exit(0 if ok else 1)
