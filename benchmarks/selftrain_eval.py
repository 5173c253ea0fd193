"""Self-training on a place a model never saw: fine-tune it on its own predictions, without labels.

    python benchmarks/selftrain_eval.py RUNS_DIR [--places joplin,nacala,...] [--minutes 4]
                                        [--checkpoint best.pt] [--out /tmp/selftrain]

For each place, RUNS_DIR/without-PLACE/CHECKPOINT (a model that never saw the place, as in
``lopo_eval.py``) predicts the place with its defaults and is scored (zero-shot). Its predicted
footprints then serve as the labels of ``geounet train --init CHECKPOINT`` on the same imagery
(``--raster R --labels R.gpkg`` per raster; Cox's Bazar's chips as ``--images DIR --labels FILE`` with
the chips' predictions merged), for ``--minutes`` of wall clock (``--epochs 100000 --val-fraction 0``:
the time decides, and there is nothing labelled to validate on), and the fine-tuned model at the end of
its schedule predicts and is scored the same way. No label of the place is used before the scoring: what a
user without any footprints of their town could run with today's commands. Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import geopandas as gpd
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lopo_eval import PLACES, SHARED, cell, inputs, score, sh  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs")
    ap.add_argument("--shared", default=str(SHARED))
    ap.add_argument("--out", default="/tmp/selftrain")
    ap.add_argument("--places", default=",".join(PLACES))
    ap.add_argument("--checkpoint", default="best.pt")
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    shared, out = Path(a.shared), Path(a.out)
    print(f"\n{a.runs}, {a.checkpoint}; self-trained {a.minutes:g} min, seed {a.seed}\n")
    print("| held-out place | zero-shot: object F1 / pixel IoU (TP / FP / FN) | self-trained | predict s | train s |")
    print("|---|---|---|---|---|")
    means = {"zero": [0.0, 0.0], "self": [0.0, 0.0]}
    places = a.places.split(",")
    for place in places:
        model = Path(a.runs) / f"without-{place}" / a.checkpoint
        pairs = inputs(shared, place, out)
        zero, secs = score(model, pairs, out / "zero" / place, [])
        preds = [out / "zero" / place / f"{r.stem}.gpkg" for r, _ in pairs]
        if place == "coxsbazar":  # chips: one merged label file over the folder of chips
            frames = [gpd.read_file(p) for p in preds]
            crs = frames[0].crs
            merged = gpd.GeoDataFrame(pd.concat([f.to_crs(crs) for f in frames], ignore_index=True), crs=crs)
            labels = out / "zero" / place / "pseudo_labels.gpkg"
            merged.to_file(labels, driver="GPKG")
            data = ["--images", shared / "coxsbazar" / "images", "--labels", labels]
        else:
            data = [x for (r, _), p in zip(pairs, preds) for x in ("--raster", r, "--labels", p)]
        run = out / "run" / place
        t0 = time.time()
        sh(["geounet", "-q", "train", "--init", model, *data, "--out", run, "--epochs", "100000",
            "--max-minutes", a.minutes, "--val-fraction", "0", "--seed", a.seed, "--overwrite"])
        train_s = time.time() - t0
        self_, _ = score(run / "last.pt", pairs, out / "self" / place, [])
        for k, p in (("zero", zero), ("self", self_)):
            means[k][0] += p["f1"] / len(places)
            means[k][1] += p["pixel"]["iou"] / len(places)
        print(f"| {place} | {cell(zero)} | {cell(self_)} | {secs:.0f} | {train_s:.0f} |", flush=True)
    print(f"| **mean** | **{means['zero'][0]:.3f} / {means['zero'][1]:.3f}** | "
          f"**{means['self'][0]:.3f} / {means['self'][1]:.3f}** | | |")


if __name__ == "__main__":
    main()
