"""The reader's buffer of raster rows: validity everywhere, pixels only where a window will run.

A window that is entirely no-data is never run, so its pixels need not be read. For a raster
with a validity mask (COGs of drone imagery are mostly no-data around the flight), the reader
reads the mask of a strip first (a mask band is a small fraction of the file), decides which
windows have data, and then reads only the GeoTIFF blocks under those windows; over HTTP the
other blocks are never fetched (docs/benchmarks.md, "Rasters over HTTP").

Floating-point rasters are the exception: a NaN or infinite pixel is no-data whether declared or
not, so their pixels are read with the validity (every block, once) to know which windows have data.

Each block is read once: rows are added in whole block-rows, and the blocks of a column chunk
(one GeoTIFF block column) are read for every buffered row not read yet, down to the end of the
buffer, so a block is decoded whole the first time any window needs it. Pixels no run window
covers are left zero: they are never used (a run window's pixels are all read), so results are
those of reading everything.
"""

from __future__ import annotations

import math

import numpy as np
import rasterio
from rasterio.windows import Window

from ..io.raster import MAX_BLOCK_ROWS, has_validity_mask, read_valid_mask

__all__ = ["StripBuffer", "MAX_BLOCK_ROWS"]


class StripBuffer:
    """Raster rows ``[row0, end)`` over the columns ``[c0, c1)`` of ``src``: :attr:`valid` for every pixel,
    :attr:`raw` (the ``bands``, native type) for the blocks :meth:`read_pixels` was asked for."""

    def __init__(self, src: rasterio.io.DatasetReader, bands: list[int], c0: int, c1: int):
        self.src, self.bands, self.c0, self.c1 = src, list(bands), c0, c1
        self.has_mask = has_validity_mask(src)
        bh, bw = src.block_shapes[0] if src.block_shapes else (1, src.width)
        self.block_rows = 1 if bh > MAX_BLOCK_ROWS else bh
        # column chunks: the GeoTIFF block columns inside [c0, c1), as buffer columns
        cuts = [c0, *range((c0 // bw + 1) * bw, c1, bw), c1]
        self.edges = np.asarray(cuts, dtype=np.int64) - c0
        width = c1 - c0
        self.raw = np.zeros((len(self.bands), 0, width), dtype=src.dtypes[self.bands[0] - 1])
        self.valid = np.zeros((0, width), dtype=bool)
        self.filled = np.zeros((0, len(cuts) - 1), dtype=bool)  # (row, chunk): pixels read
        self.row0 = 0

    @property
    def end(self) -> int:
        """The raster row below the last buffered row."""
        return self.row0 + self.valid.shape[0]

    def advance(self, r0: int, r1: int) -> None:
        """Drop the rows above ``r0``; add (validity only) the rows down to the end of the block-row holding ``r1 - 1``."""
        if r0 > self.row0:
            k = min(r0 - self.row0, self.valid.shape[0])
            self.raw, self.valid, self.filled = self.raw[:, k:], self.valid[k:], self.filled[k:]
            self.row0 += k
            if self.row0 < r0:  # nothing was buffered down to r0 (a window-row past the buffer)
                self.row0 = r0
        end = self.end
        if end >= r1:
            return
        stop = min(self.src.height, max(r1, math.ceil(r1 / self.block_rows) * self.block_rows))
        n, width = stop - end, self.c1 - self.c0
        win = Window(self.c0, end, width, n)
        newv = read_valid_mask(self.src, win) if self.has_mask else np.ones((n, width), dtype=bool)
        if self.raw.dtype.kind == "f":  # NaN or infinite pixels are no-data, declared or not: read them all
            new = self.src.read(self.bands, window=win)
            newv &= np.isfinite(new).all(axis=0)
            filled = np.ones((n, self.filled.shape[1]), dtype=bool)
        else:
            new = np.zeros((self.raw.shape[0], n, width), self.raw.dtype)
            filled = np.zeros((n, self.filled.shape[1]), dtype=bool)
        self.valid = np.concatenate([self.valid, newv], axis=0)
        self.raw = np.concatenate([self.raw, new], axis=1)
        self.filled = np.concatenate([self.filled, filled], axis=0)

    def read_pixels(self, spans: list[tuple[int, int]]) -> np.ndarray:
        """Read the blocks under raster columns ``spans`` (``[a, b)`` pairs) for every buffered row not read yet;
        returns :attr:`raw`."""
        need = np.zeros(self.filled.shape[1], dtype=bool)
        for a, b in spans:
            q0 = int(np.searchsorted(self.edges, a - self.c0, side="right")) - 1
            q1 = int(np.searchsorted(self.edges, b - self.c0, side="left"))
            need[max(q0, 0) : q1] = True
        # unread rows of each needed chunk: [first unread, last unread] (rows are read to the end, so
        # the read rows of a chunk are a prefix); chunks with the same rows are read together
        runs: dict[tuple[int, int], list[int]] = {}
        for q in np.flatnonzero(need):
            unread = np.flatnonzero(~self.filled[:, q])
            if unread.size:
                runs.setdefault((int(unread[0]), int(unread[-1]) + 1), []).append(int(q))
        for (y0, y1), chunks in runs.items():
            for qa, qb in _consecutive(chunks):
                x0, x1 = int(self.edges[qa]), int(self.edges[qb + 1])
                win = Window(self.c0 + x0, self.row0 + y0, x1 - x0, y1 - y0)
                self.raw[:, y0:y1, x0:x1] = self.src.read(self.bands, window=win)
                self.filled[y0:y1, qa : qb + 1] = True
        return self.raw


def _consecutive(ids: list[int]) -> list[tuple[int, int]]:
    """Sorted ids as ``(first, last)`` runs of consecutive numbers: [1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    out: list[tuple[int, int]] = []
    for q in sorted(ids):
        if out and q == out[-1][1] + 1:
            out[-1] = (out[-1][0], q)
        else:
            out.append((q, q))
    return out
