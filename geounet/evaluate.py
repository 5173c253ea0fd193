"""Scoring building footprints against reference footprints.

Object level, as SpaceNet scores it: a predicted and a true footprint match when their
intersection over union is at least ``iou`` (0.5); each footprint matches at most once,
pairs taken from the highest IoU down (greedy, which is what SpaceNet's scorer does).
Unmatched predictions are false positives, unmatched truths false negatives.

True footprints that lie inside a larger true footprint (duplicates, or clipped copies from
label files joined from per-chip exports) are not counted as buildings of their own: no
prediction could match both, so they would cap recall. ``keep_contained=True`` counts them.

Pixel level, with a raster: both sets are rasterized on the raster's grid, strip by strip,
and compared inside the raster's valid area only.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field

import geopandas as gpd
import numpy as np
from rasterio.features import rasterize
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from rasterio.windows import transform as window_transform
from shapely.geometry import box

from . import metrics
from .errors import InputError
from .labels import drop_contained, read_vector, require_polygons
from .raster import open_raster, read_valid_mask

log = logging.getLogger(__name__)


@dataclass
class PairResult:
    """Scores of one prediction file against one truth file."""

    pred: str
    truth: str
    tp: int = 0
    fp: int = 0
    fn: int = 0
    truth_dropped: int = 0
    pixel: dict[str, float] | None = None
    pixel_counts: list[float] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return metrics.precision(self.tp, self.fp)

    @property
    def recall(self) -> float:
        return metrics.recall(self.tp, self.fn)

    @property
    def f1(self) -> float:
        return metrics.f1(self.precision, self.recall)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("pixel_counts")
        d.update(precision=self.precision, recall=self.recall, f1=self.f1)
        return d


def read_footprints(path: str | os.PathLike, role: str) -> gpd.GeoDataFrame:
    """Polygons of a vector file (any format geopandas reads); an empty file is allowed."""
    p = os.fspath(path)
    gdf = read_vector(p)
    if len(gdf) and gdf.crs is None:
        raise InputError(f"{role} footprints have no CRS", p)
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    require_polygons(gdf.geometry, f"{role} footprints", p)
    gdf = gdf[["geometry"]].copy()
    gdf["geometry"] = gdf.geometry.make_valid()
    return gdf.reset_index(drop=True)


def match_objects(pred: gpd.GeoSeries, truth: gpd.GeoSeries, iou: float = 0.5) -> tuple[int, int, int]:
    """(TP, FP, FN): greedy one-to-one matching by descending IoU, pairs below ``iou`` never match."""
    if len(pred) == 0 or len(truth) == 0:
        return 0, len(pred), len(truth)
    pi, ti = truth.sindex.query(pred.values, predicate="intersects")
    if len(pi) == 0:
        return 0, len(pred), len(truth)
    p, t = pred.values[pi], truth.values[ti]
    inter = np.asarray([a.intersection(b).area for a, b in zip(p, t)])
    union = np.asarray([a.area for a in p]) + np.asarray([b.area for b in t]) - inter
    ious = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    order = np.argsort(-ious, kind="stable")
    used_p, used_t, tp = set(), set(), 0
    for k in order:
        if ious[k] < iou:
            break
        a, b = int(pi[k]), int(ti[k])
        if a in used_p or b in used_t:
            continue
        used_p.add(a)
        used_t.add(b)
        tp += 1
    return tp, len(pred) - tp, len(truth) - tp


def pixel_counts(pred: gpd.GeoSeries, truth: gpd.GeoSeries, raster: str, strip: int = 2048) -> np.ndarray:
    """``[tp, fp, fn, tn]`` of building pixels on ``raster``'s grid, inside its valid area, strip by strip."""
    counts = np.zeros(4, dtype=np.float64)
    with open_raster(raster) as src:
        pred = pred.to_crs(src.crs)
        truth = truth.to_crs(src.crs)
        for r in range(0, src.height, strip):
            win = Window(0, r, src.width, min(strip, src.height - r))
            shape = (int(win.height), int(win.width))
            tr = window_transform(win, src.transform)
            frame = box(*window_bounds(win, src.transform))
            masks = []
            for geoms in (pred, truth):
                sel = geoms[geoms.intersects(frame)]
                masks.append(
                    rasterize(((g, 1) for g in sel), out_shape=shape, transform=tr, dtype="uint8").astype(bool)
                    if len(sel) else np.zeros(shape, bool)
                )
            p, t = masks
            valid = read_valid_mask(src, win)
            counts += [(p & t & valid).sum(), (p & ~t & valid).sum(), (~p & t & valid).sum(), (~p & ~t & valid).sum()]
    return counts


def pixel_scores(counts) -> dict[str, float]:
    """Pixel IoU, precision and recall from ``[tp, fp, fn, tn]``."""
    s = metrics.scores(counts)
    return {k: s[k] for k in ("iou", "precision", "recall")}


def _metric_crs(gdf: gpd.GeoDataFrame):
    """A projected CRS in metres for area ratios: the data's own if projected, else its UTM zone."""
    if gdf.crs is not None and gdf.crs.is_projected:
        return gdf.crs
    return gdf.estimate_utm_crs() if len(gdf) else "EPSG:3857"


def evaluate_pair(
    pred_path: str, truth_path: str, raster: str | None = None, iou: float = 0.5, keep_contained: bool = False
) -> PairResult:
    """Score one prediction file against one truth file (truth reprojected to the prediction's CRS)."""
    pred = read_footprints(pred_path, "predicted")
    truth = read_footprints(truth_path, "true")
    if len(truth) == 0 and len(pred) == 0:
        return PairResult(str(pred_path), str(truth_path))
    crs = pred.crs if len(pred) else truth.crs
    truth = truth.to_crs(crs) if len(truth) else truth.set_crs(crs, allow_override=True)
    pred = pred.set_crs(crs, allow_override=True) if len(pred) == 0 else pred
    metric = _metric_crs(truth if len(truth) else pred)
    p = pred.to_crs(metric).geometry
    t = truth.to_crs(metric).geometry
    dropped = 0
    if not keep_contained:
        t, dropped = drop_contained(t)
        if dropped:
            log.info("%s: %d true footprint(s) inside a larger one not counted", truth_path, dropped)
    tp, fp, fn = match_objects(p, t.reset_index(drop=True), iou)
    result = PairResult(str(pred_path), str(truth_path), tp, fp, fn, truth_dropped=dropped)
    if raster is not None:
        counts = pixel_counts(pred.geometry, truth.geometry, raster)
        result.pixel_counts = counts.tolist()
        result.pixel = pixel_scores(counts)
    return result


def evaluate(
    pairs: list[tuple[str, str]], rasters: list[str] | None = None, iou: float = 0.5, keep_contained: bool = False
) -> tuple[list[PairResult], PairResult]:
    """Score several (prediction, truth) pairs; returns per-pair results and the pooled result."""
    if rasters and len(rasters) != len(pairs):
        raise InputError(f"{len(rasters)} --raster for {len(pairs)} PRED/TRUTH pair(s): give one per pair or none")
    results = [
        evaluate_pair(p, t, rasters[i] if rasters else None, iou, keep_contained) for i, (p, t) in enumerate(pairs)
    ]
    pooled = PairResult(
        "pooled", "pooled", sum(r.tp for r in results), sum(r.fp for r in results), sum(r.fn for r in results),
        truth_dropped=sum(r.truth_dropped for r in results),
    )
    if rasters:
        counts = np.sum([r.pixel_counts for r in results], axis=0)
        pooled.pixel_counts = counts.tolist()
        pooled.pixel = pixel_scores(counts)
    return results, pooled
