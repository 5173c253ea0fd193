"""Compare seed rules for instance separation on one model's probabilities (offline, same vectoriser as predict).

Usage:
    geounet predict AREA.tif -o x.gpkg --model CKPT --probs PROBS.tif      # once per model and area
    python benchmarks/separation_seeds.py PROBS.tif TRUTH.geojson --raster AREA.tif [--reach-m 3]

Rules (each row): no separation; the trained seeds of a border/contact model
(``p_building * (1 - p_border) * (1 - p_contact) >= 0.5``, what ``--separate`` does with such a model);
the contact channel alone; and seeds eroded from a confident building probability
(``p_building >= T`` eroded by E metres, what ``--separate`` does with a building-only model), for
a few T and E. Rules needing border/contact bands are skipped for one-band probabilities.
Probabilities are quantised to 1/255 in PROBS.tif, so scores can differ from a full run in the
third decimal. Prints a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from dataclasses import replace
from pathlib import Path

import rasterio
from separation_tune import vectorise_file

from geounet.evaluate import evaluate
from geounet.io.raster import pixel_size_m
from geounet.predict import RunOptions
from geounet.vectorize import VectorizeOptions

SEP = ("building", "border", "contact")


def vectorise(probs: Path, out: Path, channels: tuple[str, ...], separate: bool, threshold: float,
              erode_m: float, reach_m: float) -> None:
    def seeds(src, vopt: VectorizeOptions) -> VectorizeOptions:
        if not separate:
            return vopt
        px = pixel_size_m(src)
        return replace(vopt, seed_erode_px=int(round(erode_m / px)), reach_px=math.ceil(reach_m / px))

    opts = replace(RunOptions(tile=512, overlap=128, batch_size=1), seed_threshold=threshold, separate=separate)
    vectorise_file(probs, out, opts, channels, seeds)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("probs", type=Path)
    ap.add_argument("truth", type=Path)
    ap.add_argument("--raster", type=Path, required=True)
    ap.add_argument("--reach-m", type=float, default=RunOptions.reach_m,
                    help=f"growth reach of the seeds (predict: {RunOptions.reach_m:g} m)")
    a = ap.parse_args()
    with rasterio.open(a.probs) as src:
        bands = tuple(d.split(" ")[0] for d in src.descriptions)
    rules = [("no separation", ("building",), False, 0.5, 0.0)]
    if bands == SEP:
        rules += [("border/contact seeds >= 0.5", SEP, True, 0.5, 0.0),
                  ("contact seeds >= 0.5", ("building", "contact"), True, 0.5, 0.0)]
    for t, e in ((0.95, 0.45), (0.9, 0.45), (0.9, 0.6), (0.8, 0.45)):
        rules.append((f"p_building >= {t} eroded {e} m", ("building",), True, t, e))
    print("| seeds | TP | FP | FN | precision | recall | object F1 | pixel IoU |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for k, (name, channels, separate, t, e) in enumerate(rules):
            out = Path(tmp) / f"{k}.gpkg"
            vectorise(a.probs, out, channels, separate, t, e, a.reach_m)
            r = evaluate([(str(out), str(a.truth))], [str(a.raster)], 0.5)[0][0]
            print(f"| {name} | {r.tp} | {r.fp} | {r.fn} | {r.precision:.3f} | {r.recall:.3f} | **{r.f1:.3f}** | "
                  f"{r.pixel['iou']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
