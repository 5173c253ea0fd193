"""One prediction file scored against one truth file, and several pairs pooled (see the package
docstring for how footprints are matched and pixels counted)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import metrics
from ..errors import InputError
from .matching import ReferenceFootprints, read_footprints
from .pixels import pixel_counts, pixel_scores, valid_pixels

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


def evaluate_pair(
    pred_path: str, truth_path: str, raster: str | None = None, iou: float = 0.5, keep_contained: bool = False
) -> PairResult:
    """Score one prediction file against one truth file (truth reprojected to the prediction's CRS)."""
    pred = read_footprints(pred_path, "predicted")
    truth = read_footprints(truth_path, "true")
    if len(truth) == 0 and len(pred) == 0:
        # nothing to match; its valid pixels are true negatives (they count when pairs are pooled)
        result = PairResult(str(pred_path), str(truth_path))
        if raster is not None:
            result.pixel_counts = [0.0, 0.0, 0.0, float(valid_pixels(raster))]
            result.pixel = pixel_scores(result.pixel_counts)
        return result
    crs = pred.crs if len(pred) else truth.crs
    truth = truth.to_crs(crs) if len(truth) else truth.set_crs(crs, allow_override=True)
    pred = pred.set_crs(crs, allow_override=True) if len(pred) == 0 else pred
    reference = ReferenceFootprints.prepare(truth, keep_contained, other=pred)
    dropped = reference.dropped
    if dropped:
        log.info("%s: %d true footprint(s) inside a larger one not counted", truth_path, dropped)
    tp, fp, fn = reference.match(pred.geometry, iou)
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
