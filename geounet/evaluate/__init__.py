"""Scoring building footprints against reference footprints (``geounet evaluate``).

Object level, as SpaceNet scores it: a predicted and a true footprint match when their
intersection over union is at least ``iou`` (0.5); each footprint matches at most once,
pairs taken from the highest IoU down (greedy, which is what SpaceNet's scorer does).
Unmatched predictions are false positives, unmatched truths false negatives.

True footprints that lie inside a larger true footprint (duplicates, or clipped copies from
label files joined from per-chip exports) are not counted as buildings of their own: no
prediction could match both, so they would cap recall. ``keep_contained=True`` counts them.

Pixel level, with a raster: both sets are rasterized on the raster's grid, strip by strip,
and compared inside the raster's valid area only.

Modules: :mod:`.matching` (reading footprints, prepared reference footprints, object
matching), :mod:`.pixels` (pixel counts on a raster's grid), :mod:`.pairs` (one pair's
result, pooling several pairs),
:mod:`.report` (table and JSON for stdout). The ratios themselves are
:mod:`geounet.metrics`, shared with training.
"""

from __future__ import annotations

from .matching import ReferenceFootprints, match_objects, metric_crs, read_footprints
from .pairs import PairResult, evaluate, evaluate_pair
from .pixels import pixel_counts, pixel_scores

__all__ = [
    "PairResult", "ReferenceFootprints", "evaluate", "evaluate_pair", "match_objects", "metric_crs", "pixel_counts",
    "pixel_scores", "read_footprints",
]
