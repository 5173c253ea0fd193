"""How many true buildings a prediction merges: truths with half their area or more inside one
predicted polygon that holds two or more such truths (what separation can split).

Usage: python benchmarks/merged_blobs.py PRED TRUTH [PRED TRUTH ...]
Truth is de-duplicated as `geounet evaluate` does (footprints inside a larger one not counted).
"""

from __future__ import annotations

import argparse

import geopandas as gpd
import numpy as np

from geounet.labels import drop_contained


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    print("| prediction | truths | truths in merged blobs | merged blobs |")
    print("|---|---|---|---|")
    for pred_path, truth_path in zip(a.files[::2], a.files[1::2]):
        t = gpd.read_file(truth_path)
        crs = t.estimate_utm_crs()
        truth, _ = drop_contained(t.to_crs(crs).geometry.make_valid())
        truth = truth.reset_index(drop=True)
        pred = gpd.read_file(pred_path).to_crs(crs).geometry.reset_index(drop=True)
        ti, pi = pred.sindex.query(truth.values, predicate="intersects")
        share = np.asarray([x.area for x in truth.values[ti].intersection(pred.values[pi])]) / truth.area.values[ti]
        per_pred = np.bincount(pi[share >= 0.5], minlength=len(pred))
        merged = per_pred >= 2
        print(f"| {pred_path} | {len(truth)} | {per_pred[merged].sum()} | {merged.sum()} |")


if __name__ == "__main__":
    main()
