"""Fine-tuning on half a town, scored on the other half (docs/model.md, "Fine-tuning").

    python benchmarks/finetune_eval.py PLACE [PLACE ...] [--minutes 1,2,4,8] [--scratch-minutes 8]
                                        [--init default] [--out /tmp/finetune] [--shared ../shared/data]

For each place (a folder of ../shared/data with PLACE.tif and PLACE_buildings.geojson) the raster is
cut at the median x of the building centroids: the west part and the buildings touching it are the
training data, the east part and its buildings (clipped to it) the test. A place of chips with one
polygon file (PLACE/images/, Cox's Bazar) is split chip by chip at that median (`split_chips`). Then,
on the east part: zero-shot (the --init model as it is, with and without --adapt), `geounet train --init MODEL` on the
west part for each budget in --minutes, and the same recipe from random weights (`--scratch-minutes`,
same width and working pixel size as the --init model), each scored with `geounet evaluate` (object F1
at IoU 0.5, pixel IoU). Every training uses --epochs 100000 so the time budget decides, and
--val-fraction 0: half a small town leaves a handful of windows, too few to hold some out and pick a
checkpoint by (two validation windows picked the first epoch's model every time), so the model scored
is the one at the end of the schedule (last.pt). Run it alone on the machine:
the budgets are wall-clock minutes. Prints a Markdown table on stdout; everything it made is in --out.

--init must be a model that never saw PLACE for the numbers to mean "your own town": the bundled default
was trained on every shared place, so for a shared place pass a leave-one-place-out model of its recipe
(``--init runs/lopo80/without-PLACE/best.pt``, scripts/lopo_train.sh).
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.windows import Window
from shapely.geometry import box

from geounet.io.raster import has_validity_mask
from lopo_eval import SHARED, chip_frames, clip_to, score, sh  # this folder: the same scoring as leave-one-place-out


def crop(src, window: Window, path: Path) -> box:
    """Write ``window`` of ``src`` to ``path`` (same profile, mask kept); return its bounds as a box."""
    profile = src.profile.copy()
    for key in ("photometric", "jpeg_quality"):  # a JPEG/YCbCr source (Banepa) is written deflated, as RGB
        profile.pop(key, None)
    transform = src.window_transform(window)
    profile.update(width=int(window.width), height=int(window.height), transform=transform,
                   tiled=True, blockxsize=256, blockysize=256, compress="deflate")
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(src.read(window=window))
            if has_validity_mask(src):
                dst.write_mask(src.dataset_mask(window=window))
    return box(*rasterio.windows.bounds(window, src.transform))


def split_place(shared: Path, place: str, out: Path) -> tuple[list, list[tuple[Path, Path]]]:
    """``(train_args, test_pairs)`` of ``place``: its west part to train on, its east part to score.

    A place with one raster (PLACE/PLACE.tif) is cut at the median x of its building centroids: the west
    part and the buildings touching it train (``--raster --labels``), the east part and its buildings
    clipped to it are the test. A place of chips (PLACE/images/*.tif plus one PLACE_buildings.geojson,
    Cox's Bazar) is split chip by chip: a chip whose centre lies west of that median trains (``--images
    DIR --labels FILE``, the west chips linked into one folder), the others are the test, each scored
    against the footprints inside its bounds, clipped to them, pooled as benchmarks/lopo_eval.py does.
    """
    labels = shared / place / f"{place}_buildings.geojson"
    if (shared / place / "images").is_dir():
        return split_chips(shared / place / "images", labels, place, out)
    tif = shared / place / f"{place}.tif"
    with rasterio.open(tif) as src:
        gdf = gpd.read_file(labels).to_crs(src.crs)
        median_x = float(np.median(gdf.geometry.centroid.x))
        col = int(round((~src.transform * (median_x, src.bounds.top))[0]))  # north-up rasters
        west_box = crop(src, Window(0, 0, col, src.height), out / f"{place}_west.tif")
        east_box = crop(src, Window(col, 0, src.width - col, src.height), out / f"{place}_east.tif")
    west = gdf[gdf.intersects(west_box)]
    east = gdf[gdf.intersects(east_box)].copy()
    east["geometry"] = east.geometry.intersection(east_box)
    east = east[~east.geometry.is_empty & (east.geometry.area > 0)]
    west[["geometry"]].to_file(out / f"{place}_west.gpkg")
    east[["geometry"]].to_file(out / f"{place}_east.gpkg")
    print(f"<!-- {place}: cut at column {col}; west {len(west)} buildings, east {len(east)} -->", flush=True)
    return (["--raster", out / f"{place}_west.tif", "--labels", out / f"{place}_west.gpkg"],
            [(out / f"{place}_east.tif", out / f"{place}_east.gpkg")])


def split_chips(images: Path, labels: Path, place: str, out: Path) -> tuple[list, list[tuple[Path, Path]]]:
    """The chip version of :func:`split_place` (see there)."""
    gdf = gpd.read_file(labels)
    frames = chip_frames(images, gdf.crs)
    utm = gdf.estimate_utm_crs()  # centroids and the median in metres, not degrees
    median_x = float(np.median(gdf.geometry.to_crs(utm).centroid.x))
    is_west = frames.to_crs(utm).centroid.x < median_x
    west_dir = out / f"{place}_west_images"
    west_dir.mkdir(parents=True, exist_ok=True)
    for old in west_dir.iterdir():
        old.unlink()
    for tif in frames.index[is_west]:
        (west_dir / tif.name).symlink_to(tif.resolve())
    west = gdf[gdf.intersects(frames[is_west].union_all())]
    west[["geometry"]].to_file(out / f"{place}_west.gpkg")
    test, n_east = [], 0
    for tif, frame in frames[~is_west].items():
        east = clip_to(gdf, frame)
        truth = out / f"{place}_east_truth" / f"{tif.stem}.gpkg"
        truth.parent.mkdir(parents=True, exist_ok=True)
        east[["geometry"]].to_file(truth, driver="GPKG")
        test.append((tif, truth))
        n_east += len(east)
    print(f"<!-- {place}: {is_west.sum()} west chips ({len(west)} buildings), {len(test)} east chips "
          f"({n_east} buildings) -->", flush=True)
    return ["--images", west_dir, "--labels", out / f"{place}_west.gpkg"], test


def train(train_args: list, run: Path, minutes: float, *extra: str) -> None:
    sh(["geounet", "-q", "train", *train_args, "--out", run,
        "--epochs", "100000", "--max-minutes", minutes, "--val-fraction", "0", "--overwrite", *extra])


def row(place: str, what: str, p: dict, secs: float) -> None:
    print(f"| {place} | {what} | {p['tp']} | {p['fp']} | {p['fn']} | {p['precision']:.3f} | {p['recall']:.3f} | "
          f"**{p['f1']:.3f}** | {p['pixel']['iou']:.3f} | {secs:.0f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("places", nargs="+")
    ap.add_argument("--shared", default=str(SHARED))
    ap.add_argument("--out", default="/tmp/finetune")
    ap.add_argument("--init", default="default")
    ap.add_argument("--minutes", default="1,2,4,8")
    ap.add_argument("--scratch-minutes", type=float, default=8)
    ap.add_argument("--skip-zero-shot", action="store_true")
    ap.add_argument("--pixel-size", type=float, default=None,
                    help="train (fine-tune and scratch) at this pixel size instead of the --init model's")
    ap.add_argument("--finetune-args", default="", help="more `geounet train` options for the fine-tunes, "
                                                        "e.g. --finetune-args=--freeze-encoder")
    ap.add_argument("--predict-args", default="", help="more `geounet predict` options for every model scored, "
                                                       "e.g. --predict-args='--nodata 0'")
    ap.add_argument("--score", action="append", default=[], metavar="CKPT",
                    help="also score this checkpoint (e.g. an earlier run's fine-tuned last.pt) on the test part")
    a = ap.parse_args()
    pargs = shlex.split(a.predict_args)
    note = f" {a.predict_args}" if a.predict_args else ""
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    import geounet

    info = geounet.load_model(a.init)[1]
    print("| place | model | TP | FP | FN | precision | recall | object F1 | pixel IoU | predict s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    scale_args = ["--pixel-size", str(a.pixel_size)] if a.pixel_size else []
    for place in a.places:
        train_args, test = split_place(Path(a.shared), place, out)
        if not a.skip_zero_shot:
            for what, extra in ((f"{a.init}, zero-shot", []), (f"{a.init}, zero-shot --adapt", ["--adapt"])):
                p, secs = score(a.init, test, out / f"{place}-zero{len(extra)}", extra + pargs)
                row(place, what + note, p, secs)
        for i, ckpt in enumerate(a.score):
            p, secs = score(ckpt, test, out / f"{place}-scored{i}", pargs)
            row(place, f"{ckpt}{note}", p, secs)
        for minutes in [float(m) for m in a.minutes.split(",") if m]:
            run = out / f"{place}-ft{minutes:g}"
            train(train_args, run, minutes, "--init", a.init, *scale_args, *shlex.split(a.finetune_args))
            p, secs = score(str(run / "last.pt"), test, out / f"{place}-ft{minutes:g}", pargs)
            row(place, f"--init {a.init} {a.finetune_args}, {minutes:g} min"
                       f"{' at %g m' % a.pixel_size if a.pixel_size else ''}{note}", p, secs)
        if a.scratch_minutes:
            run = out / f"{place}-scratch"
            p = info.preprocessing
            scale = scale_args or (["--pixel-size-range", *map(str, p.pixel_size_range_m)] if p.pixel_size_range_m
                                   else ["--pixel-size", f"{p.pixel_size_m:.6f}"])
            train(train_args, run, a.scratch_minutes, "--width", str(info.model.width), *scale)
            p, secs = score(str(run / "last.pt"), test, out / f"{place}-scratch", pargs)
            row(place, f"from scratch, {a.scratch_minutes:g} min{' at %g m' % a.pixel_size if a.pixel_size else ''}{note}",
                p, secs)


if __name__ == "__main__":
    main()
