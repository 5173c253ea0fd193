"""Precision, recall, IoU and F1: one definition for training's pixel scores and evaluation's
object and pixel scores.

Counts are true positives, false positives and false negatives, of pixels or of matched
footprints. A ratio whose denominator is 0 (nothing predicted, nothing true) is 0. Pure
Python on purpose: ``geounet evaluate`` imports it without paying for torch.
"""

from __future__ import annotations

from collections.abc import Sequence


def precision(tp: float, fp: float) -> float:
    """Share of the predicted that is true."""
    return tp / (tp + fp) if tp + fp else 0.0


def recall(tp: float, fn: float) -> float:
    """Share of the true that is predicted."""
    return tp / (tp + fn) if tp + fn else 0.0


def iou(tp: float, fp: float, fn: float) -> float:
    """Intersection over union (Jaccard) of predicted and true."""
    return tp / (tp + fp + fn) if tp + fp + fn else 0.0


def f1(p: float, r: float) -> float:
    """Harmonic mean of a precision and a recall."""
    return 2 * p * r / (p + r) if p + r else 0.0


def scores(counts: Sequence[float]) -> dict[str, float]:
    """IoU, precision, recall and F1 of the building class from ``[tp, fp, fn, tn]`` (any sequence of
    numbers: a list, a numpy array, a torch tensor)."""
    tp, fp, fn, _ = (float(c) for c in counts)
    p, r = precision(tp, fp), recall(tp, fn)
    return {"iou": iou(tp, fp, fn), "precision": p, "recall": r, "f1": f1(p, r)}
