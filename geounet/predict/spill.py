"""What a column band hands to the next one, through temporary files, so that no window runs twice.

A column band's vectoriser needs ``margin`` context columns on each side of its own columns
(:func:`geounet.grid.column_bands_with_context`). The left ones are columns the band before has
already stitched: their final rows (uint8 levels, as ``--probs`` stores them, and validity) are
written to a :class:`RowSpill` while that band runs and read back, window-row by window-row, when
the next band reaches the same rows; the next band stitches only the columns after them
(:func:`geounet.grid.stitched_columns`). The windows straddling that border, which both bands'
stitchers need, are run by the band before, and the part of each that the next band stitches goes
to a :class:`WindowSpill`; the next band's reader leaves them alone. The files are on disk and read
in order, so memory does not grow with the raster's height.

Exactness: a stitched pixel's value is the whole raster's (the stitcher sums every window over it,
in window order, and normalises by the whole raster's weights), whichever band stitched it, so the
rows read back are the rows the next band would have stitched itself, bit for bit. A handed-over
window is added by the next band before its own windows of the same window-row, the order in which
one band over the whole raster adds them (window-rows in order, window-columns ascending), so its
sums are bit for bit the one band's too. The vectoriser gets the same input, and gives the same
polygons.
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


class WindowSpill:
    """Model outputs of windows, ``(j, (C, rows, cols) float32 or None)`` (``None``: skipped, entirely
    no-data), written in order and read back in the same order; an anonymous temporary file."""

    def __init__(self):
        self._file = tempfile.TemporaryFile(prefix="geounet-windows-")
        self._records: list[tuple[int, tuple[int, ...] | None]] = []
        self._next = 0
        self._reading = False

    def write(self, j: int, probs: np.ndarray | None) -> None:
        if self._reading:
            raise RuntimeError("write after the spill was read")
        if probs is not None:
            probs = np.ascontiguousarray(probs, dtype=np.float32)
            self._file.write(probs.tobytes())
        self._records.append((j, None if probs is None else probs.shape))

    def read(self) -> tuple[int, np.ndarray | None]:
        if not self._reading:
            self._file.flush()
            self._file.seek(0)
            self._reading = True
        if self._next >= len(self._records):
            raise RuntimeError("no more spilled windows")
        j, shape = self._records[self._next]
        self._next += 1
        if shape is None:
            return j, None
        return j, np.frombuffer(self._file.read(4 * int(np.prod(shape))), np.float32).reshape(shape)

    def close(self) -> None:
        self._file.close()


class BandHandover:
    """What column band ``k`` hands to band ``k + 1``, as the main thread stitches them left to right.

    * Final rows of the next band's left context columns ``[cx0', s0')`` (a :class:`RowSpill`), so
      that no window runs again for them: :meth:`rows`.
    * The outputs of the windows both bands touch (those straddling the border ``s0'``, ``shared``), so
      that they run once: band ``k`` writes the part of each that band ``k + 1`` stitches
      (:meth:`window_done`), and band ``k + 1``, whose reader leaves them alone (``handed``), adds them to
      its stitcher before its own windows of the same window-row (:meth:`windows_for_row`), the order in
      which one band over the whole raster would add them: the sums, and so every pixel, are bit for bit
      those of one band.

    ``stitchers[k]``: band ``k``'s stitcher, over the columns ``[s0, s1)`` it stitches itself
    (:func:`geounet.grid.stitched_columns`); its rows span ``[cx0, cx1)``.
    """

    def __init__(self, bands: Sequence[ColumnBand], stitchers: Sequence, channels: int):
        self.bands, self.stitchers, self.channels = list(bands), list(stitchers), int(channels)
        # shared[k]: window-columns band k runs (or received from band k - 1) and hands to band k + 1
        self.shared = [sorted(set(a.col_ids) & set(b.col_ids)) for a, b in zip(self.stitchers, self.stitchers[1:])]
        self.handed = [frozenset()] + [frozenset(js) for js in self.shared]
        self._in: RowSpill | None = None  # final rows from the band before
        self._out: RowSpill | None = None  # to the next band
        self._out_cols = (0, 0)  # the next band's share, as columns of this band's rows
        self._win_in: WindowSpill | None = None
        self._win_out: WindowSpill | None = None
        self._win_lo: dict[int, int] = {}  # window-column -> first window column the next band stitches
        self._k = -1

    def n_windows(self, k: int) -> int:
        """Windows band ``k`` runs or skips itself (its stitcher's, less those handed to it)."""
        st = self.stitchers[k]
        return st.n_windows - len(st.rows.offsets) * len(self.handed[k])

    def begin(self, k: int) -> None:
        for spill in (self._in, self._win_in):
            if spill is not None:
                spill.close()
        self._in, self._out, self._win_in, self._win_out = self._out, None, self._win_out, None
        self._k = k
        band, st = self.bands[k], self.stitchers[k]
        if (st.x0 > band.cx0) != (self._in is not None):
            raise RuntimeError(f"column band {k} stitches from column {st.x0}, its rows start at {band.cx0}")
        if k + 1 < len(self.bands):
            nxt, nst = self.bands[k + 1], self.stitchers[k + 1]
            if nst.x0 > nxt.cx0:  # columns [nxt.cx0, nst.x0) of the next band's rows are this band's
                self._out = RowSpill(self.channels, nst.x0 - nxt.cx0)
                self._out_cols = (nxt.cx0 - band.cx0, nst.x0 - band.cx0)
            if self.shared[k]:
                self._win_out = WindowSpill()
                self._win_lo = {j: max(0, nst.x0 - st.cols.offsets[j]) for j in self.shared[k]}

    def window_done(self, j: int, probs: np.ndarray | None) -> None:
        """Band ``k`` ran window-column ``j`` of the current window-row (``probs``: ``(C, h, w)`` or ``(h, w)``),
        or skipped it (``None``); window-rows in order (within one, skipped windows may come first)."""
        if self._win_out is not None and j in self._win_lo:
            self._win_out.write(j, None if probs is None else probs[..., self._win_lo[j]:])

    def windows_for_row(self, i: int):
        """``(j, probs or None)`` of the windows of window-row ``i`` handed to this band, in order; ``probs``
        padded back to the whole window (the columns left of this band's are zeros, which it never reads)."""
        if self._win_in is None:
            return
        st = self.stitchers[self._k]
        parts = dict(self._win_in.read() for _ in self.shared[self._k - 1])
        for j in self.shared[self._k - 1]:  # in window order, as one band adds them
            part = parts[j]
            if part is None:
                yield j, None
                continue
            whole = np.zeros(part.shape[:-1] + (st.cols.size,), np.float32)
            whole[..., st.cols.size - part.shape[-1]:] = part
            yield j, whole

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
        for spill in (self._in, self._out, self._win_in, self._win_out):
            if spill is not None:
                spill.close()
