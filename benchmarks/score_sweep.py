"""How a building's score (its mean building probability) tells true buildings from false ones, and what
``--min-score`` does to object F1, on places a model never saw.

    python benchmarks/lopo_eval.py RUNS --modes plain --extra-predict-args="--min-score 0" --out EVAL
    python benchmarks/score_sweep.py EVAL/plain [--places banepa,zanzibar,...] [--min-scores 0.5,0.6,...]

For each place, the footprints ``lopo_eval.py`` predicted (``EVAL/plain/PLACE/RASTER.gpkg``; predicted with
``--min-score 0`` so that every building the threshold draws is there) are matched against the place's
truth with ``geounet evaluate``'s object matching (IoU 0.5). Prints, per place, the share of buildings that
are true positives in each score bin, and object F1 with the buildings under each minimum score dropped
(which is what predict's ``--min-score`` does: it drops finished buildings by their ``score``), with the
mean over places. No model runs: seconds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import geopandas as gpd
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lopo_eval import PLACES, SHARED, inputs  # noqa: E402
from seed_sweep import f1  # noqa: E402

from geounet.evaluate import ReferenceFootprints, read_footprints  # noqa: E402

BINS = [0.5, 0.6, 0.65, 0.7, 0.8, 1.0001]


def true_share(pred: gpd.GeoDataFrame, ref: ReferenceFootprints) -> np.ndarray:
    """Whether each predicted building alone matches a true one (IoU >= 0.5 with its best match)."""
    return np.array([ref.match(pred.geometry.iloc[[k]])[0] > 0 for k in range(len(pred))], dtype=bool)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("eval_dir", help="OUT/plain of benchmarks/lopo_eval.py, predicted with --min-score 0")
    ap.add_argument("--shared", default=str(SHARED))
    ap.add_argument("--places", default=",".join(PLACES))
    ap.add_argument("--min-scores", default="0.5,0.55,0.6,0.65,0.7,0.75,0.8")
    a = ap.parse_args()
    root, places = Path(a.eval_dir), a.places.split(",")
    mins = [float(v) for v in a.min_scores.split(",")]
    f1s, bins = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for place in places:
            counts = np.zeros((len(mins), 3), dtype=np.int64)
            hit, score = [], []
            for raster, truth in inputs(Path(a.shared), place, Path(tmp)):
                pred = gpd.read_file(root / place / f"{raster.stem}.gpkg")
                ref = ReferenceFootprints.prepare(read_footprints(truth, "true"))
                for k, m in enumerate(mins):
                    counts[k] += ref.match(pred.geometry[(pred["score"] >= m).to_numpy()])
                hit.append(true_share(pred, ref))
                score.append(pred["score"].to_numpy())
            f1s[place] = [f1(*c) for c in counts]
            hit, score = np.concatenate(hit), np.concatenate(score)
            bins[place] = [(int(((score >= lo) & (score < hi)).sum()), hit[(score >= lo) & (score < hi)])
                           for lo, hi in zip(BINS, BINS[1:])]
            print(f"{place}: done", file=sys.stderr, flush=True)
    print("Share of predicted buildings that are true, by score (buildings in the bin):\n")
    print("| place | " + " | ".join(f"{lo:g}-{min(hi, 1):g}" for lo, hi in zip(BINS, BINS[1:])) + " |")
    print("|---|" + "---|" * (len(BINS) - 1))
    for p in places:
        print(f"| {p} | " + " | ".join(f"{h.mean():.2f} ({n})" if n else "- (0)" for n, h in bins[p]) + " |")
    print("\nObject F1 with buildings under the minimum score dropped:\n")
    print("| place | " + " | ".join(f"{m:g}" for m in mins) + " |")
    print("|---|" + "---|" * len(mins))
    for p in places:
        print(f"| {p} | " + " | ".join(f"{v:.3f}" for v in f1s[p]) + " |")
    mean = np.mean([f1s[p] for p in places], axis=0)
    print("| **mean** | " + " | ".join(f"**{v:.3f}**" for v in mean) + " |")


if __name__ == "__main__":
    main()
