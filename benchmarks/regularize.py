"""Squared outlines: geounet's ``--regularize`` against the ``buildingregulariser`` package and no squaring.

    pip install buildingregulariser==0.2.5   # the package compared against (not a geounet dependency)
    python benchmarks/regularize.py [--raster PATH --truth PATH] [--window COL ROW WIDTH HEIGHT]...

The bundled model predicts crops of a real aerial scene (default: three 1536 x 1536 px crops of
Banepa, 0.13 m, with its OpenStreetMap footprints) twice: without squaring (``none``) and with
``--regularize`` (``geounet``). ``buildingregulariser`` 0.2.5 (``regularize_geodataframe``, right
angles only, no circles, tolerances 0.5 m like geounet's) squares the ``none`` footprints in the
scene's UTM zone (``theirs``). For each: the share of corners within 10 degrees of a right angle
or of a straight line, the total area against ``none``, object F1 against the truth footprints
whose centroid lies in the crop (IoU >= 0.5, :func:`geounet.evaluate.match_objects`), and the
seconds the squaring took (predict's with and without, and theirs alone).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def corner_angles(geoms) -> np.ndarray:
    """Interior angle in degrees at every vertex of every ring (exteriors and holes)."""
    out = []
    for g in shapely.get_parts(np.asarray(geoms, dtype=object)):
        for ring in [g.exterior, *g.interiors]:
            p = np.asarray(ring.coords)[:-1]
            if len(p) < 3:
                continue
            u, v = np.roll(p, 1, axis=0) - p, np.roll(p, -1, axis=0) - p
            cos = (u * v).sum(1) / np.maximum(np.hypot(*u.T) * np.hypot(*v.T), 1e-12)
            out.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    return np.concatenate(out) if out else np.zeros(0)


def square_share(geoms, tol: float = 10.0) -> float:
    """Share of corners within ``tol`` degrees of 90 (a right angle) or 180 (a straight line)."""
    a = corner_angles(geoms)
    return float(((np.abs(a - 90) <= tol) | (np.abs(a - 180) <= tol)).mean()) if a.size else 1.0


def object_f1(pred: gpd.GeoSeries, truth: gpd.GeoSeries) -> float:
    from geounet import metrics
    from geounet.evaluate import match_objects

    tp, fp, fn = match_objects(pred.reset_index(drop=True), truth.reset_index(drop=True))
    return metrics.f1(metrics.precision(tp, fp), metrics.recall(tp, fn))


def theirs(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    from buildingregulariser import regularize_geodataframe

    return regularize_geodataframe(gdf, parallel_threshold=0.5, simplify_tolerance=0.5, allow_45_degree=False,
                                   allow_circles=False, num_cores=1)


def crop(raster: Path, window: tuple[int, int, int, int], out: Path):
    """Write ``window`` of ``raster`` (with its mask) to ``out``; its bounds and the raster's CRS."""
    with rasterio.open(raster) as src:
        win = Window(*window)
        profile = src.profile | dict(width=win.width, height=win.height, transform=window_transform(win, src.transform),
                                     driver="GTiff", compress="deflate", photometric=None)
        with rasterio.open(out, "w", **profile) as dst:
            dst.write(src.read(window=win))
            dst.write_mask(src.dataset_mask(window=win))
        return shapely.box(*rasterio.windows.bounds(win, src.transform)), src.crs


def scene(raster: Path, truth_path: Path, window: tuple[int, int, int, int]) -> list[str]:
    """Table rows (none, geounet, buildingregulariser) for one crop."""
    from geounet.labels import drop_contained
    from geounet.predict import PredictConfig, predict

    rows, seconds = {}, {}
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        bounds, raster_crs = crop(raster, window, d / "crop.tif")
        for name, reg in (("none", False), ("geounet", True)):
            t0 = time.perf_counter()
            predict(PredictConfig(inputs=[d / "crop.tif"], output=d / f"{name}.gpkg", regularize=reg, progress=False))
            seconds[name] = time.perf_counter() - t0
            rows[name] = gpd.read_file(d / f"{name}.gpkg")
    crs = rows["none"].estimate_utm_crs()
    rows = {k: v.to_crs(crs) for k, v in rows.items()}
    t0 = time.perf_counter()
    rows["buildingregulariser"] = theirs(rows["none"])
    seconds["buildingregulariser"] = time.perf_counter() - t0
    truth = gpd.read_file(truth_path).to_crs(raster_crs)
    truth = truth[truth.geometry.centroid.within(bounds)].to_crs(crs)
    truth = gpd.GeoSeries(drop_contained(truth.geometry.make_valid())[0], crs=crs)
    area0 = rows["none"].area.sum()
    where = f"{raster.stem} {window[2]}x{window[3]} at ({window[0]}, {window[1]}), {len(truth)} true"
    out = []
    for name, gdf in rows.items():
        g = gdf.geometry[~gdf.geometry.is_empty]
        secs = (f"{seconds[name]:.1f} (predict)" if name == "none" else
                f"{seconds[name] - seconds['none']:+.1f} (in predict)" if name == "geounet" else
                f"{seconds[name]:.1f} (after predict)")
        out.append(f"| {where} | {name} | {len(g)} | {corner_angles(g.values).size} | {square_share(g.values):.3f} | "
                   f"{g.area.sum() / area0:.3f} | {object_f1(g, truth):.3f} | {secs} |")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raster", type=Path, default=DATA / "banepa" / "banepa.tif")
    ap.add_argument("--truth", type=Path, default=DATA / "banepa" / "banepa_buildings.geojson")
    ap.add_argument("--window", type=int, nargs=4, action="append", metavar=("COL", "ROW", "W", "H"),
                    help="crop to predict (repeatable); default: three 1536 px crops of Banepa")
    args = ap.parse_args(argv)
    windows = args.window or [(1024, 1024, 1536, 1536), (0, 0, 1536, 1536), (1536, 2560, 1536, 1536)]
    print("| scene | squaring | buildings | corners | right or straight (10 deg) | total area / none | object F1 "
          "| seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for window in windows:
        for row in scene(args.raster, args.truth, tuple(window)):
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
