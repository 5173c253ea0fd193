"""Predict and score one or more models on each labelled raster of ../shared/data.

    python benchmarks/places_eval.py MODEL [MODEL ...] [--shared ../shared/data] [--out /tmp/places-eval]
                                    [--places banepa,zanzibar,...] [--extra-predict-args "..."]

For every model and place: `geounet predict RASTER --model MODEL` (its defaults: --pixel-size auto,
--separate when the model has border/contact outputs), then `geounet evaluate PRED TRUTH --raster RASTER`
(object F1 at IoU 0.5, SpaceNet matching; pixel IoU inside the raster's valid area). MODEL may be
`default` (the bundled model). Prints a Markdown table on stdout, one row per model and place, with the
predict wall time. Read the numbers for what they are: a place the model was trained on is in-domain.
Cox's Bazar (chips and one polygon file) is not scored here: its truth is one file for 21 chips.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

PLACES = ["banepa", "banepa_z20", "zanzibar", "joplin", "nacala"]


def sh(args: list[str]) -> str:
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"failed: {' '.join(args)}\n{proc.stderr[-2000:]}")
    return proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    ap.add_argument("--out", default="/tmp/places-eval")
    ap.add_argument("--places", default=",".join(PLACES))
    ap.add_argument("--extra-predict-args", default="")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    print("| model | place | TP | FP | FN | precision | recall | object F1 | pixel IoU | predict s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for m, model in enumerate(a.models):
        model_args = [] if model == "default" else ["--model", model]
        for place in a.places.split(","):
            tif = Path(a.shared) / place / f"{place}.tif"
            truth = Path(a.shared) / place / f"{place}_buildings.geojson"
            pred = out / f"m{m}-{place}.gpkg"
            t0 = time.time()
            sh(["geounet", "-q", "predict", str(tif), "-o", str(pred), *model_args, "--overwrite",
                *shlex.split(a.extra_predict_args)])
            secs = time.time() - t0
            p = json.loads(sh(["geounet", "evaluate", str(pred), str(truth), "--raster", str(tif), "--json"]))["pairs"][0]
            print(f"| {model} | {place} | {p['tp']} | {p['fp']} | {p['fn']} | {p['precision']:.3f} | {p['recall']:.3f} | "
                  f"**{p['f1']:.3f}** | {p['pixel']['iou']:.3f} | {secs:.0f} |", flush=True)


if __name__ == "__main__":
    main()
