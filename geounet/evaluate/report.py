"""Formatting evaluation results for stdout: a plain table for people, JSON for scripts."""

from __future__ import annotations

import json

from .pairs import PairResult


def evaluation_table(results: list[PairResult], pooled: PairResult) -> str:
    """One row per pair (and a pooled row when there are several)."""
    pixel = any(r.pixel is not None for r in results)
    head = ["pred", "truth", "TP", "FP", "FN", "precision", "recall", "F1"]
    if pixel:
        head += ["pixel_IoU", "pixel_P", "pixel_R"]
    rows = results + ([pooled] if len(results) > 1 else [])
    body = []
    for r in rows:
        row = [r.pred, r.truth, str(r.tp), str(r.fp), str(r.fn), f"{r.precision:.3f}", f"{r.recall:.3f}", f"{r.f1:.3f}"]
        if pixel:
            px = r.pixel or {}
            row += [f"{px[k]:.3f}" if k in px else "-" for k in ("iou", "precision", "recall")]
        body.append(row)
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(head)] + [fmt(b) for b in body])


def evaluation_json(results: list[PairResult], pooled: PairResult, iou: float) -> str:
    return json.dumps(
        {"iou_threshold": iou, "pairs": [r.to_dict() for r in results], "pooled": pooled.to_dict()}, indent=2
    )
