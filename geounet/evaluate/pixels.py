"""Pixel level: predicted and true footprints rasterized on a raster's grid, strip by strip,
compared inside the raster's valid area only."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
from rasterio.features import rasterize
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from shapely.geometry import box

from .. import metrics
from ..errors import InputError
from ..io.raster import open_raster, read_valid_mask


def _frame(transform, shape: tuple[int, int]):
    """The box around a grid of ``shape`` pixels, from its four corners (rasterio's window bounds take
    two, which on a rotated grid span no area)."""
    h, w = shape
    xs, ys = zip(*(transform @ c for c in ((0, 0), (w, 0), (0, h), (w, h))))
    return box(min(xs), min(ys), max(xs), max(ys))


def _strips(src, strip: int):
    """Full-width windows of at most ``strip`` rows, top to bottom: the strips both counts walk."""
    for r in range(0, src.height, strip):
        yield Window(0, r, src.width, min(strip, src.height - r))


def pixel_counts(pred: gpd.GeoSeries, truth: gpd.GeoSeries, raster: str, strip: int = 2048) -> np.ndarray:
    """``[tp, fp, fn, tn]`` of building pixels on ``raster``'s grid, inside its valid area, strip by strip."""
    counts = np.zeros(4, dtype=np.float64)
    with open_raster(raster) as src:
        pred = pred.to_crs(src.crs)
        truth = truth.to_crs(src.crs)
        whole = _frame(src.transform, (src.height, src.width))
        if not (pred.intersects(whole).any() or truth.intersects(whole).any()):
            raise InputError("raster does not overlap the predicted or the true footprints: no pixel scores "
                             "to give (is it the raster of this pair?)", raster)
        for win in _strips(src, strip):
            shape = (int(win.height), int(win.width))
            tr = window_transform(win, src.transform)
            frame = _frame(tr, shape)
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


def valid_pixels(raster: str, strip: int = 2048) -> int:
    """The number of valid pixels of ``raster``, strip by strip."""
    n = 0
    with open_raster(raster) as src:
        for win in _strips(src, strip):
            n += int(read_valid_mask(src, win).sum())
    return n


def pixel_scores(counts) -> dict[str, float]:
    """Pixel IoU, precision and recall from ``[tp, fp, fn, tn]``."""
    s = metrics.scores(counts)
    return {k: s[k] for k in ("iou", "precision", "recall")}
