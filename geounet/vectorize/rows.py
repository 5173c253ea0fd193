"""What the vectoriser holds of the strips' rows until stage 1 is done with them.

Strips come as float32 probabilities, or as the uint8 levels ``--probs`` stores
(:func:`~geounet.io.probs.quantize`, ``levels``), as predict and ``geounet vectorize`` give them.
Levels are held as levels, a quarter of float32, with the seeds' cut channels as they came
rather than their float32 product (:func:`.stages.seed_cut`), and read as
:func:`~geounet.io.probs.dequantize` where a stage uses them. Every stage therefore computes with
the values it would get from float32 strips of the dequantised levels, the same products in the
same order, so the polygons are those of the float32 path, bit for bit.
"""

from __future__ import annotations

import numpy as np

from ..io.probs import dequantize
from .stages import seed_cut, seed_pixels

__all__ = ["HeldRows"]

SEED_CHUNK_ROWS = 64  # rows of held levels turned into seed pixels at a time (float32 temporaries of this height)


class HeldRows:
    """The fields a strip is held as (building probability, validity, the seeds' cut) and how the
    stages read them back."""

    def __init__(self, levels: bool, cut_channels: list[int]):
        self.levels, self.cut_channels = levels, cut_channels

    def fields(self) -> dict[str, type]:
        """Field name -> dtype of the held rows (a :class:`.blocks.RowBuffer`'s fields)."""
        held = {"p_building": np.uint8 if self.levels else np.float32, "valid": bool}
        if self.cut_channels and self.levels:
            held.update((f"cut{i}", np.uint8) for i in range(len(self.cut_channels)))
        elif self.cut_channels:
            held["seed_cut"] = np.float32
        return held

    def strip(self, probs: np.ndarray, valid: np.ndarray) -> dict[str, np.ndarray]:
        """A strip ``(C, n, w)`` and its validity ``(n, w)`` as held."""
        if self.levels != (probs.dtype == np.uint8):
            raise ValueError(f"strip of {probs.dtype}: the vectoriser takes {'uint8 levels' if self.levels else 'probabilities'}")
        valid = valid.astype(bool, copy=False)
        if self.levels:
            return {"p_building": probs[0], "valid": valid,
                    **{f"cut{i}": probs[k] for i, k in enumerate(self.cut_channels)}}
        strip = {"p_building": probs[0].astype(np.float32, copy=False), "valid": valid}
        if self.cut_channels:
            strip["seed_cut"] = seed_cut(probs, self.cut_channels)
        return strip

    def p_building(self, held: np.ndarray) -> np.ndarray:
        """Building probabilities as the stages use them: float32."""
        return dequantize(held) if self.levels else held

    def seed_cut(self, rows: dict[str, np.ndarray]) -> np.ndarray | None:
        """The seeds' cut factor of held ``rows``; None without cut channels."""
        if not self.cut_channels:
            return None
        if not self.levels:
            return rows["seed_cut"]
        cut = np.stack([dequantize(rows[f"cut{i}"]) for i in range(len(self.cut_channels))])
        return seed_cut(cut, list(range(len(cut))))

    def seed_pixels(self, rows: dict[str, np.ndarray], threshold: float, erode_px: int) -> np.ndarray:
        """:func:`.stages.seed_pixels` of held ``rows`` (with their ``mask``).

        With cut channels and no erosion the seed test is pixel by pixel, so it runs on
        :data:`SEED_CHUNK_ROWS` rows at a time: the same pixels, bit for bit, without float32
        copies of the whole context (a wide column band's seed context made them the largest
        arrays at predict's memory peak: 90 MB at 4,758 px). Erosion needs the rows around
        each pixel and takes them all at once.
        """
        if erode_px or not self.cut_channels:
            return seed_pixels(rows["mask"], self.p_building(rows["p_building"]), self.seed_cut(rows), threshold,
                               erode_px)
        out = np.empty(rows["mask"].shape, dtype=bool)
        for r in range(0, len(out), SEED_CHUNK_ROWS):
            part = {k: v[r : r + SEED_CHUNK_ROWS] for k, v in rows.items()}
            out[r : r + SEED_CHUNK_ROWS] = seed_pixels(part["mask"], self.p_building(part["p_building"]),
                                                      self.seed_cut(part), threshold, 0)
        return out
