"""What a column band hands to the next one, through temporary files, so that no window runs twice.

A column band's vectoriser needs ``margin`` context columns on each side of its own columns
(:func:`geounet.grid.column_bands_with_context`). The left ones are columns the band before has
already stitched: their final rows (uint8 levels, as ``--probs`` stores them, and validity) are
written to an :class:`ArraySpill` while that band runs and read back, window-row by window-row, when
the next band reaches the same rows; the next band stitches only the columns after them
(:func:`geounet.grid.stitched_columns`). The windows straddling that border, which both bands'
stitchers need, are run by the band before, and the part of each that the next band stitches goes
to another; the next band's reader leaves them alone. The files are on disk and read
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


class ArraySpill:
    """Records of arrays (each may be None), written in order and read back in the same order, each
    with a ``tag``; an anonymous temporary file (unlinked when made: removed when closed, or when the
    process ends, whatever happens). Only the arrays' bytes go to the file; their shapes and types stay
    in memory, a few numbers per record."""

    def __init__(self):
        self._file = tempfile.TemporaryFile(prefix="geounet-spill-")
        self._records: list[tuple[object, list[tuple[np.dtype, tuple[int, ...]] | None]]] = []
        self._next = 0  # next record to read
        self._reading = False

    def write(self, tag, *arrays: np.ndarray | None) -> None:
        if self._reading:
            raise RuntimeError("write after the spill was read")
        layout = []
        for a in arrays:
            if a is not None:
                a = np.ascontiguousarray(a)
                self._file.write(a.tobytes())
            layout.append(None if a is None else (a.dtype, a.shape))
        self._records.append((tag, layout))

    def read(self) -> tuple[object, list[np.ndarray | None]]:
        """The next record: its tag and its arrays (read-only)."""
        if not self._reading:
            self._file.flush()
            self._file.seek(0)
            self._reading = True
        if self._next >= len(self._records):
            raise RuntimeError("read past the last spilled record")
        tag, layout = self._records[self._next]
        self._next += 1
        arrays = [None if spec is None else
                  np.frombuffer(self._file.read(spec[0].itemsize * int(np.prod(spec[1]))), spec[0]).reshape(spec[1])
                  for spec in layout]
        return tag, arrays

    def close(self) -> None:
        self._file.close()


class BandHandover:
    """What column band ``k`` hands to band ``k + 1``, as the main thread stitches them left to right.

    * Final rows of the next band's left context columns ``[cx0', s0')`` (uint8 levels and validity,
      one :class:`ArraySpill`), so that no window runs again for them: :meth:`rows`.
    * The outputs of the windows both bands touch (those straddling the border ``s0'``, ``shared``), so
      that they run once: band ``k`` writes the part of each that band ``k + 1`` stitches (float32, to
      another :class:`ArraySpill`; :meth:`window_done`), and band ``k + 1``, whose reader leaves them alone (``handed``), adds them to
      its stitcher before its own windows of the same window-row (:meth:`windows_for_row`), the order in
      which one band over the whole raster would add them: the sums, and so every pixel, are bit for bit
      those of one band.

    ``stitchers[k]``: band ``k``'s stitcher, over the columns ``[s0, s1)`` it stitches itself
    (:func:`geounet.grid.stitched_columns`); its rows span ``[cx0, cx1)``.
    """

    def __init__(self, bands: Sequence[ColumnBand], stitchers: Sequence):
        self.bands, self.stitchers = list(bands), list(stitchers)
        # shared[k]: window-columns band k runs (or received from band k - 1) and hands to band k + 1
        self.shared = [sorted(set(a.col_ids) & set(b.col_ids)) for a, b in zip(self.stitchers, self.stitchers[1:])]
        self.handed = [frozenset()] + [frozenset(js) for js in self.shared]
        self._in: ArraySpill | None = None  # final rows from the band before
        self._out: ArraySpill | None = None  # to the next band
        self._out_cols = (0, 0)  # the next band's share, as columns of this band's rows
        self._win_in: ArraySpill | None = None  # straddling windows from the band before
        self._win_out: ArraySpill | None = None  # to the next band
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
                self._out = ArraySpill()
                self._out_cols = (nxt.cx0 - band.cx0, nst.x0 - band.cx0)
            if self.shared[k]:
                self._win_out = ArraySpill()
                self._win_lo = {j: max(0, nst.x0 - st.cols.offsets[j]) for j in self.shared[k]}

    def window_done(self, j: int, probs: np.ndarray | None) -> None:
        """Band ``k`` ran window-column ``j`` of the current window-row (``probs``: ``(C, h, w)`` or ``(h, w)``),
        or skipped it (``None``); window-rows in order (within one, skipped windows may come first)."""
        if self._win_out is not None and j in self._win_lo:
            self._win_out.write(j, None if probs is None else probs[..., self._win_lo[j]:])

    def windows_for_row(self) -> list[tuple[int, np.ndarray | None]]:
        """``(j, probs or None)`` of the next window-row's windows handed to this band, in window order (as
        one band adds them); ``probs`` padded back to the whole window (the columns left of this band's are
        zeros, which it never reads)."""
        if self._win_in is None:
            return []
        size = self.stitchers[self._k].cols.size
        parts = {j: part for j, (part,) in (self._win_in.read() for _ in self.shared[self._k - 1])}
        out = []
        for j in self.shared[self._k - 1]:
            part = parts[j]
            if part is not None:
                whole = np.zeros(part.shape[:-1] + (size,), np.float32)
                whole[..., size - part.shape[-1]:] = part
                part = whole
            out.append((j, part))
        return out

    def rows(self, levels: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A window-row's final rows over the stitched columns -> over all the band's columns ``[cx0, cx1)``
        (the left ones read from the band before's spill), the next band's share spilled. ``levels``:
        ``(n, w)`` for one channel, ``(C, n, w)`` for several."""
        if self._in is not None:
            _, (left, left_valid) = self._in.read()
            if left_valid.shape[0] != valid.shape[0]:
                raise RuntimeError(f"spilled chunk of {left_valid.shape[0]} rows, expected {valid.shape[0]}")
            levels = np.concatenate([left, levels], axis=-1)
            valid = np.concatenate([left_valid, valid], axis=-1)
        if self._out is not None:
            a, b = self._out_cols
            self._out.write(None, levels[..., a:b], valid[:, a:b])
        return levels, valid

    def close(self) -> None:
        for spill in (self._in, self._out, self._win_in, self._win_out):
            if spill is not None:
                spill.close()
