"""Pixel metrics from confusion counts, accumulated over batches (and over DDP ranks by summing)."""

from __future__ import annotations

import torch

IGNORE = 255


def confusion(logits: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Counts ``[tp, fp, fn, tn]`` (float64) of the building channel over valid pixels;
    logits (N,C,H,W), target (N,C,H,W)."""
    target = target[:, 0]
    valid = target != IGNORE
    pred = torch.sigmoid(logits[:, 0].float()) >= threshold
    truth = target == 1
    tp = (pred & truth & valid).sum()
    fp = (pred & ~truth & valid).sum()
    fn = (~pred & truth & valid).sum()
    tn = (~pred & ~truth & valid).sum()
    return torch.stack([tp, fp, fn, tn]).double()


def scores(counts: torch.Tensor | list[float]) -> dict[str, float]:
    """IoU, precision, recall and F1 of the building class from ``[tp, fp, fn, tn]``."""
    tp, fp, fn, _ = (float(c) for c in counts)
    iou = tp / (tp + fp + fn) if tp + fp + fn else 0.0
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"iou": iou, "precision": precision, "recall": recall, "f1": f1}
