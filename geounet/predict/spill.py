"""Final rows handed from one column band to the next through a temporary file.

A column band's vectoriser needs ``margin`` context columns on each side of its own columns
(:func:`geounet.grid.column_bands_with_context`). The left ones are columns the band before
has already stitched: their final rows (uint8 levels, as ``--probs`` stores them, and validity)
are written here while that band runs and read back, window-row by window-row, when the next
band reaches the same rows. So no window is run again for them (:func:`geounet.grid.stitched_columns`),
and, the file being on disk, memory does not grow with the raster's height.

Exactness: a stitched pixel's value is the whole raster's (the stitcher sums every window over it,
in window order, and normalises by the whole raster's weights), whichever band stitched it, so the
rows read back are the rows the next band would have stitched itself, bit for bit, and so are its
vectoriser's input and its polygons.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence

import numpy as np

from ..grid import ColumnBand


class RowSpill:
    """Chunks of rows ``(levels (C, n, w) uint8, valid (n, w) bool)`` over ``width`` columns, written in
    order and read back in the same order; an anonymous temporary file (removed when closed, or when
    the process ends)."""

    def __init__(self, channels: int, width: int):
        self.channels, self.width = int(channels), int(width)
        self._file = tempfile.TemporaryFile(prefix="geounet-spill-")
        self._chunks: list[int] = []  # rows per chunk
        self._next = 0  # next chunk to read
        self._reading = False

    def write(self, levels: np.ndarray, valid: np.ndarray) -> None:
        if self._reading:
            raise RuntimeError("write after the spill was read")
        n = valid.shape[0]
        if levels.shape != (self.channels, n, self.width) or valid.shape != (n, self.width):
            raise ValueError(f"rows of shape {levels.shape} / {valid.shape} do not fit the spill's "
                             f"{self.channels} x {self.width}")
        self._file.write(np.ascontiguousarray(levels, dtype=np.uint8).tobytes())
        self._file.write(np.ascontiguousarray(valid, dtype=np.bool_).tobytes())
        self._chunks.append(n)

    def read(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The next chunk, which must hold ``n`` rows."""
        if not self._reading:
            self._file.flush()
            self._file.seek(0)
            self._reading = True
        if self._next >= len(self._chunks) or self._chunks[self._next] != n:
            got = self._chunks[self._next] if self._next < len(self._chunks) else None
            raise RuntimeError(f"spilled chunk {self._next} has {got} rows, expected {n}")
        self._next += 1
        size = self.channels * n * self.width
        levels = np.frombuffer(self._file.read(size), np.uint8).reshape(self.channels, n, self.width)
        valid = np.frombuffer(self._file.read(n * self.width), np.bool_).reshape(n, self.width)
        return levels, valid

    def close(self) -> None:
        self._file.close()


class BandHandover:
    """The spills between column bands, as the main thread stitches them left to right: :meth:`begin`
    at each band, :meth:`rows` for each window-row's final rows it stitched.

    ``stitched[k] = (s0, s1)``: the columns band ``k`` stitches itself (:func:`geounet.grid.stitched_columns`);
    its rows span ``[cx0, cx1)``, and ``[cx0, s0)`` come from the band before.
    """

    def __init__(self, bands: Sequence[ColumnBand], stitched: Sequence[tuple[int, int]], channels: int):
        self.bands, self.stitched, self.channels = list(bands), list(stitched), int(channels)
        self._in: RowSpill | None = None  # from the band before
        self._out: RowSpill | None = None  # to the next band
        self._out_cols = (0, 0)  # the next band's share, as columns of this band's rows

    def begin(self, k: int) -> None:
        if self._in is not None:
            self._in.close()
        self._in, self._out = self._out, None
        band, (s0, _) = self.bands[k], self.stitched[k]
        if (s0 > band.cx0) != (self._in is not None):
            raise RuntimeError(f"column band {k} stitches from column {s0}, its rows start at {band.cx0}")
        if k + 1 < len(self.bands):
            nxt, (n0, _) = self.bands[k + 1], self.stitched[k + 1]
            if n0 > nxt.cx0:  # columns [nxt.cx0, n0) of the next band's rows are this band's
                self._out = RowSpill(self.channels, n0 - nxt.cx0)
                self._out_cols = (nxt.cx0 - band.cx0, n0 - band.cx0)

    def rows(self, levels: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A window-row's final rows over the stitched columns -> over all the band's columns ``[cx0, cx1)``
        (the left ones read from the band before's spill), the next band's share spilled. ``levels``:
        ``(n, w)`` for one channel, ``(C, n, w)`` for several."""
        one = levels.ndim == 2
        if self._in is not None:
            left, left_valid = self._in.read(valid.shape[0])
            levels = np.concatenate([left[0] if one else left, levels], axis=-1)
            valid = np.concatenate([left_valid, valid], axis=-1)
        if self._out is not None:
            a, b = self._out_cols
            part = levels[..., a:b]
            self._out.write(part[None] if one else part, valid[:, a:b])
        return levels, valid

    def close(self) -> None:
        for spill in (self._in, self._out):
            if spill is not None:
                spill.close()
