"""Segmentation losses and pixel confusion counts on logits, with an ignore value (no-data and padding
pixels count for nothing)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .targets import IGNORE, WEIGHT_SCALE


def _valid(target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    valid = target != IGNORE
    return valid, torch.where(valid, target, torch.zeros_like(target)).float()


def bce_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy averaged over valid pixels, each pixel times ``weight`` when given."""
    valid, t = _valid(target)
    per_px = F.binary_cross_entropy_with_logits(logits.float(), t, reduction="none")
    if weight is not None:
        per_px = per_px * weight
    return (per_px * valid).sum() / valid.sum().clamp(min=1)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft Dice over the valid pixels of the whole batch (1 - Dice)."""
    valid, t = _valid(target)
    p = torch.sigmoid(logits.float()) * valid
    t = t * valid
    inter = (p * t).sum()
    return 1 - (2 * inter + eps) / (p.sum() + t.sum() + eps)


# Each takes (logits, target, weight=None); the pixel weight only enters the cross-entropy
# (Dice is a ratio over the whole batch).
LOSSES = {
    "bce": bce_loss,
    "dice": lambda lo, t, w=None: dice_loss(lo, t),
    "bce+dice": lambda lo, t, w=None: bce_loss(lo, t, w) + dice_loss(lo, t),
}


AUX_WEIGHT = 0.5


def segmentation_loss(name: str, weighted: bool = False):
    """Loss by name (``bce``, ``dice`` or ``bce+dice``) over logits (N,C,H,W) and uint8 targets (N,C,H,W).

    Channel 0 (building) has weight 1; auxiliary channels (border, contact) weight 0.5 each,
    enough to teach the gaps between buildings without trading away the building mask.
    With ``weighted`` the targets carry one more channel, the U-Net paper's pixel weights
    (:func:`geounet.train.targets.weight_map`, as uint8 ``w * WEIGHT_SCALE``), applied to the
    building channel's cross-entropy; Dice, a ratio over the whole batch, stays unweighted.
    """
    fn = LOSSES[name]

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        w = None
        if weighted:
            w = target[:, -1].float() / WEIGHT_SCALE
            target = target[:, :-1]
        total = fn(logits[:, 0], target[:, 0], w)
        for c in range(1, logits.shape[1]):
            total = total + AUX_WEIGHT * fn(logits[:, c], target[:, c])
        return total

    return loss


def confusion(logits: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Counts ``[tp, fp, fn, tn]`` (float64) of the building channel over valid pixels;
    logits (N,C,H,W), target (N,C,H,W). Summed over batches and DDP ranks, then scored by
    :func:`geounet.metrics.scores`."""
    target = target[:, 0]
    valid = target != IGNORE
    pred = torch.sigmoid(logits[:, 0].float()) >= threshold
    truth = target == 1
    tp = (pred & truth & valid).sum()
    fp = (pred & ~truth & valid).sum()
    fn = (~pred & truth & valid).sum()
    tn = (~pred & ~truth & valid).sum()
    return torch.stack([tp, fp, fn, tn]).double()
