"""Score leave-one-place-out models (scripts/lopo_train.sh) on the place each never saw.

    python benchmarks/lopo_eval.py RUNS_DIR [--places banepa,zanzibar,...] [--out /tmp/lopo-eval]
                                   [--checkpoint best.pt] [--modes plain,adapt] [--keep-probs]

For each place, RUNS_DIR/without-PLACE/CHECKPOINT predicts the place's imagery with `geounet predict`
(the model's own defaults: --pixel-size auto, separation on) and `geounet evaluate` scores it against
the place's footprints (object F1 at IoU 0.5; pixel IoU inside the valid area). Banepa is one place of
two folders (banepa, banepa_z20): both are predicted and pooled. Cox's Bazar is 21 chips with one
polygon file: each chip is scored against the footprints inside its bounds (clipped), and the chips are
pooled. Modes: `plain` (as trained) and `adapt` (`predict --adapt`). Prints a Markdown table per mode,
with the mean object F1 and pixel IoU over places (pooled TP/FP/FN within a place; pixel IoU is the
pooled intersection over the pooled union). Run it alone on the machine (predict times are printed).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import rasterio
from shapely.geometry import box

PLACES = ["banepa", "zanzibar", "joplin", "nacala", "coxsbazar"]
FOLDERS = {"banepa": ["banepa", "banepa_z20"]}
MODES = {"plain": [], "adapt": ["--adapt"]}
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"  # ../shared/data beside the repo


def sh(args: list) -> str:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"failed: {shlex.join(map(str, args))}\n{proc.stderr[-2000:]}")
    return proc.stdout


def chip_frames(images: Path, crs) -> gpd.GeoSeries:
    """The bounds of every chip (``images/*.tif``, sorted) in ``crs``, indexed by the chip's path."""
    frames = {}
    for tif in sorted(images.glob("*.tif")):
        with rasterio.open(tif) as src:
            frames[tif] = gpd.GeoSeries([box(*src.bounds)], crs=src.crs).to_crs(crs).iloc[0]
    return gpd.GeoSeries(frames, crs=crs)


def clip_to(truth: gpd.GeoDataFrame, frame) -> gpd.GeoDataFrame:
    """The footprints of ``truth`` inside ``frame``, clipped to it: what a chip is scored against."""
    return truth[truth.intersects(frame)].clip(frame)


def chip_truths(shared: Path, out: Path) -> list[tuple[Path, Path]]:
    """(chip, its clipped truth file) for every Cox's Bazar chip."""
    truth = gpd.read_file(shared / "coxsbazar" / "coxsbazar_buildings.geojson")
    pairs = []
    for tif, frame in chip_frames(shared / "coxsbazar" / "images", truth.crs).items():
        path = out / "truth" / f"{tif.stem}.gpkg"
        path.parent.mkdir(parents=True, exist_ok=True)
        clip_to(truth, frame).to_file(path, driver="GPKG")
        pairs.append((tif, path))
    return pairs


def inputs(shared: Path, place: str, out: Path) -> list[tuple[Path, Path]]:
    """(raster, truth) pairs of a place."""
    if place == "coxsbazar":
        return chip_truths(shared, out)
    return [(shared / f / f"{f}.tif", shared / f / f"{f}_buildings.geojson") for f in FOLDERS.get(place, [place])]


def score(model: Path, pairs: list[tuple[Path, Path]], out: Path, extra: list[str]) -> tuple[dict, float]:
    """Predict every raster of ``pairs`` into ``out``, evaluate them together: (pooled scores, seconds)."""
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    sh(["geounet", "-q", "predict", *[r for r, _ in pairs], "-o", f"{out}/", "--model", model, "--overwrite",
        "--format", "gpkg", *extra])
    secs = time.time() - t0
    return evaluate_pooled([(out / f"{r.stem}.gpkg", t, r) for r, t in pairs]), secs


def evaluate_pooled(triples: list[tuple[Path, Path, Path]]) -> dict:
    """``geounet evaluate``'s pooled scores of (predicted file, truth file, raster) triples, evaluated together."""
    args = [x for pred, truth, _ in triples for x in (pred, truth)]
    rasters = [x for _, _, raster in triples for x in ("--raster", raster)]
    return json.loads(sh(["geounet", "evaluate", *args, *rasters, "--json"]))["pooled"]


def cell(p: dict) -> str:
    """A table cell of pooled scores: object F1 / pixel IoU (TP / FP / FN)."""
    return f"{p['f1']:.3f} / {p['pixel']['iou']:.3f} ({p['tp']} / {p['fp']} / {p['fn']})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs")
    ap.add_argument("--shared", default=str(SHARED))
    ap.add_argument("--out", default="/tmp/lopo-eval")
    ap.add_argument("--places", default=",".join(PLACES))
    ap.add_argument("--checkpoint", default="best.pt")
    ap.add_argument("--modes", default="plain,adapt")
    ap.add_argument("--extra-predict-args", default="")
    ap.add_argument("--keep-probs", action="store_true",
                    help="Also write each raster's probabilities to OUT/MODE/PLACE/probs/ (for benchmarks/seed_sweep.py)")
    a = ap.parse_args()
    shared, out = Path(a.shared), Path(a.out)
    for mode in a.modes.split(","):
        print(f"\n{a.runs}, {a.checkpoint}, predict {' '.join(MODES[mode] + [a.extra_predict_args]) or '(defaults)'}\n")
        print("| held-out place | TP | FP | FN | precision | recall | object F1 | pixel IoU | predict s |")
        print("|---|---|---|---|---|---|---|---|---|")
        f1s, ious = [], []
        for place in a.places.split(","):
            model = Path(a.runs) / f"without-{place}" / a.checkpoint
            probs = ["--probs", f"{out / mode / place / 'probs'}/"] if a.keep_probs else []
            p, secs = score(model, inputs(shared, place, out), out / mode / place,
                            MODES[mode] + probs + shlex.split(a.extra_predict_args))
            f1s.append(p["f1"])
            ious.append(p["pixel"]["iou"])
            print(f"| {place} | {p['tp']} | {p['fp']} | {p['fn']} | {p['precision']:.3f} | {p['recall']:.3f} | "
                  f"**{p['f1']:.3f}** | {p['pixel']['iou']:.3f} | {secs:.0f} |", flush=True)
        print(f"| **mean** | | | | | | **{sum(f1s) / len(f1s):.3f}** | **{sum(ious) / len(ious):.3f}** | |")


if __name__ == "__main__":
    main()
