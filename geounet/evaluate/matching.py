"""Object level: read footprint files and match predicted to true footprints by IoU."""

from __future__ import annotations

import os
from dataclasses import dataclass

import geopandas as gpd
import numpy as np

from ..errors import InputError
from ..labels import drop_contained, read_vector, require_polygons


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


def metric_crs(gdf: gpd.GeoDataFrame):
    """A projected CRS in metres for area ratios: the data's own if projected, else its UTM zone."""
    if gdf.crs is not None and gdf.crs.is_projected:
        return gdf.crs
    return gdf.estimate_utm_crs() if len(gdf) else "EPSG:3857"


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


@dataclass(frozen=True)
class ReferenceFootprints:
    """True footprints ready to be matched: in a metric CRS, each index 0..n-1, and (unless
    ``keep_contained``) without those inside a larger true footprint (``dropped`` of them).

    Prepared once, matched against any number of predictions (:meth:`match`): ``geounet
    evaluate`` matches one, a settings sweep many.
    """

    geoms: gpd.GeoSeries
    crs: object
    dropped: int = 0

    @classmethod
    def prepare(cls, truth: gpd.GeoDataFrame, keep_contained: bool = False,
                other: gpd.GeoDataFrame | None = None) -> "ReferenceFootprints":
        """From ``truth`` (with a CRS); the metric CRS is the truth's (``other``'s, the prediction's, if
        the truth is empty)."""
        crs = metric_crs(truth if len(truth) or other is None else other)
        geoms = truth.to_crs(crs).geometry if truth.crs is not None else truth.geometry.set_crs(crs)
        dropped = 0
        if not keep_contained:
            geoms, dropped = drop_contained(geoms)
        return cls(geoms.reset_index(drop=True), crs, dropped)

    def match(self, pred: gpd.GeoSeries, iou: float = 0.5) -> tuple[int, int, int]:
        """(TP, FP, FN) of the predicted footprints ``pred`` (any CRS; none when empty), see :func:`match_objects`."""
        if len(pred):
            pred = pred.to_crs(self.crs)
        return match_objects(pred.reset_index(drop=True), self.geoms, iou)
