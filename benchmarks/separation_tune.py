"""Tune instance separation offline: vectorise a --probs GeoTIFF (building, border, contact bands)
with several seed settings and score each against true footprints.

Usage:
    python benchmarks/separation_tune.py PROBS.tif TRUTH.geojson --raster RASTER.tif \
        [--seed-threshold 0.3,0.5,0.7] [--reach-m 3] [--seed-min-m2 4] [--min-area 2] [--regularize 0,1] [--plain]

PROBS.tif comes from ``geounet predict ... --separate --probs PROBS.tif`` (three bands, or one band
from a building-only model: then seeds are eroded, ``--plain-erode-m``); the
model runs once and every setting reuses its probabilities (quantised to 1/255, so scores can
differ from a full run in the third decimal). Prints a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import rasterio

from geounet.evaluate import evaluate
from geounet.io.raster import read_valid_mask
from geounet.io.vector import VectorWriter
from geounet.predict import RunOptions, vectorize_options
from geounet.vectorize import StripVectorizer, VectorizeOptions

STRIP = 384  # rows per strip, as predict hands them over with 512 px windows


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def vectorise_file(probs_path: Path, out: Path, opts: RunOptions, channels: tuple[str, ...] | None = None,
                   adjust: Callable[[rasterio.io.DatasetReader, VectorizeOptions], VectorizeOptions] | None = None) -> float:
    """Vectorise a --probs GeoTIFF strip by strip as predict does; returns the seconds spent vectorising.

    ``channels``: the bands to use (default: all when ``opts.separate``, else building only);
    ``adjust`` may change the per-raster :class:`VectorizeOptions` (e.g. seed erosion, reach).
    """
    with rasterio.open(probs_path) as src:
        names = tuple(d.split(" ")[0] for d in src.descriptions)
        if channels is None:
            channels = names if opts.separate else ("building",)
        vopt = vectorize_options(src, opts, channels, bool(opts.separate))
        if adjust is not None:
            vopt = adjust(src, vopt)
        writer = VectorWriter(out, src.crs)
        vec = StripVectorizer(src.height, src.width, src.transform, src.crs, vopt, writer.write)
        bands = [names.index(c) + 1 for c in channels]
        spent = 0.0
        for r in range(0, src.height, STRIP):
            win = rasterio.windows.Window(0, r, src.width, min(STRIP, src.height - r))
            p = src.read(bands, window=win).astype(np.float32) / 255.0
            v = read_valid_mask(src, win)
            t1 = time.perf_counter()
            vec.add_rows(r, p, v)
            spent += time.perf_counter() - t1
        t1 = time.perf_counter()
        vec.finish()
        spent += time.perf_counter() - t1
        writer.commit()
    return spent


def run(probs_path: Path, out: Path, opts: RunOptions, reach_m: float, seed_min_m2: float, separate: bool) -> float:
    return vectorise_file(probs_path, out, replace(opts, reach_m=reach_m, seed_min_m2=seed_min_m2, separate=separate))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("probs", type=Path)
    ap.add_argument("truth", type=Path)
    ap.add_argument("--raster", type=Path, required=True)
    ap.add_argument("--seed-threshold", default="0.5")
    ap.add_argument("--reach-m", default=str(RunOptions.reach_m))
    ap.add_argument("--seed-min-m2", default=str(RunOptions.seed_min_m2))
    ap.add_argument("--min-area", default=str(RunOptions.min_area))
    ap.add_argument("--regularize", default="0")
    ap.add_argument("--plain", action="store_true", help="also score --no-separate")
    ap.add_argument("--plain-erode-m", type=float, default=RunOptions.plain_erode_m,
                    help="seed erosion for building-only models (probabilities with one band)")
    a = ap.parse_args()
    base = RunOptions(tile=512, overlap=128, batch_size=1, plain_erode_m=a.plain_erode_m)
    grid = list(itertools.product(floats(a.seed_threshold), floats(a.reach_m), floats(a.seed_min_m2),
                                  floats(a.min_area), [bool(int(v)) for v in a.regularize.split(",")]))
    rows = []
    settings = [(False, None)] if a.plain else []
    settings += [(True, g) for g in grid]
    with tempfile.TemporaryDirectory() as tmp:
        for k, (sep, g) in enumerate(settings):
            if sep:
                st, reach, smin, min_area, reg = g
            else:
                st, reach, smin, min_area, reg = None, 0.0, 0.0, floats(a.min_area)[0], False
            opts = replace(base, seed_threshold=st, min_area=min_area, regularize=reg, separate=sep)
            out = Path(tmp) / f"run{k}.gpkg"
            secs = run(a.probs, out, opts, reach or base.reach_m, smin or base.seed_min_m2, sep)
            res, _ = evaluate([(out, a.truth)], [a.raster], 0.5)
            r = res[0]
            row = ("separate" if sep else "no-separate", st, reach if sep else "", smin if sep else "", min_area,
                   "yes" if reg else "no", r.tp, r.fp, r.fn, r.precision, r.recall, r.f1, r.pixel["iou"], secs)
            rows.append(row)
            print(" ".join(str(x) for x in row), file=sys.stderr)
    print("| mode | seed threshold | reach m | seed min m² | min-area m² | regularize | TP | FP | FN | precision | recall | object F1 | pixel IoU | vectorise s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(f"{x:.3f}" if isinstance(x, float) and not isinstance(x, bool) and i >= 9 else str(x)
                                for i, x in enumerate(r)) + " |")


if __name__ == "__main__":
    main()
