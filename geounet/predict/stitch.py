"""Blending overlapping window predictions into one seamless probability map, a strip at a time.

Weights
-------
Along each axis a window of ``n`` pixels gets a 1-D weight profile; the 2-D weight of a
window is the outer product of its row and column profiles. On a side of the window that
lies *inside* the raster the profile rises with a raised-cosine (Hann) ramp over the
``overlap`` pixels nearest that side::

    w(d) = sin^2( pi/2 * (d + 0.5) / overlap )   for d < overlap   (d: pixels from that side)
    w(d) = 1                                      otherwise

and on a side that lies on the raster border it stays at 1 (a border pixel is seen by one
window only, so down-weighting it would only divide noise by a small number). Both ramps
multiply when a window is short enough for them to meet.

Why this shape:

* Predictions near a window edge are the worst (the U-Net sees zero padding instead of
  context), and the ramp gives them almost no weight (``w(0) ~ (pi/4/overlap)^2``),
  so a seam cannot show: every pixel is dominated by the window that sees it deepest.
* For neighbours exactly ``stride = size - overlap`` apart the two ramps are
  ``cos^2`` and ``sin^2`` of the same angle, so they sum to 1: a cross-fade whose
  result is smooth (the ramp has zero slope at both ends) and, inside the overlap,
  never dominated by a window that sees the pixel from less than half the overlap.
* The result is still normalised by the summed weights, which matters where the last
  window is placed flush with the far edge and overlaps its neighbour by more.

Normalisation without a weight buffer
-------------------------------------
Windows form a full grid (row offsets x column offsets), so the summed weight at pixel
(y, x) is ``Sy[y] * Sx[x]`` with ``Sy``/``Sx`` the sums of the 1-D profiles: ``Sx`` over the
band's columns and ``Sy`` over the rows being released (:meth:`AxisPlan.weights`), instead of
a float map the size of the strip or a vector the raster's height. Windows that are skipped because they are
entirely no-data break the product only on pixels that are no-data themselves, which
the caller zeroes with the validity mask anyway.

Rolling strip
-------------
Windows arrive in row-major order. Once every window of window-row ``i`` has been added
(or skipped), rows ``[r_i, r_{i+1})`` can receive nothing more: they are final, leave the
accumulator and its buffer shifts up. The buffer holds ``min(size, height)`` rows of one
column band (:func:`geounet.grid.column_bands`; the whole width for rasters up to a few thousand
pixels wide), so memory depends on the band width and the window size, not on the raster: the
stitcher keeps no per-row state beyond the window offsets (one integer per window-row).
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..grid import lattice_offsets


def ramp(overlap: int) -> np.ndarray:
    """The rising half of the blend: ``sin^2(pi/2 * (d + 0.5) / overlap)`` for ``d`` in ``[0, overlap)``."""
    if overlap <= 0:
        return np.ones(0, dtype=np.float64)
    d = np.arange(overlap, dtype=np.float64)
    return np.sin(0.5 * np.pi * (d + 0.5) / overlap) ** 2


def profile(length: int, overlap: int, *, start_border: bool, end_border: bool) -> np.ndarray:
    """1-D weights of a window of ``length`` pixels; ramps on the sides that are not on a raster border."""
    w = np.ones(length, dtype=np.float64)
    r = ramp(min(overlap, length))
    if not start_border and r.size:
        w[: r.size] *= r
    if not end_border and r.size:
        w[length - r.size :] *= r[::-1]
    return w


@functools.lru_cache(maxsize=64)
def _window_profile(size: int, overlap: int, start_border: bool, end_border: bool) -> tuple[np.ndarray, np.ndarray]:
    """:func:`profile` of a whole window, float64 and float32 (read-only: shared by every window alike)."""
    p64 = profile(size, overlap, start_border=start_border, end_border=end_border)
    p32 = p64.astype(np.float32)
    p64.flags.writeable = p32.flags.writeable = False
    return p64, p32


@dataclass(frozen=True)
class AxisPlan:
    """Window offsets along one axis; each window's weight profile and the summed weight of any pixels, on demand.

    Offsets lie on a lattice anchored at the CRS origin (see :func:`geounet.grid.lattice_offsets`;
    ``first`` is the index of the axis's first pixel on that grid): the first window may start
    up to ``multiple - 1`` pixels before the raster and the last end up to that far after it;
    :meth:`clip` gives the part of a window inside the raster. A window's profile depends only
    on its size and on whether it touches a raster border, so the inner windows of two rasters
    cut from one grid carry the same weights on the same ground pixels.

    Nothing here has the axis's length: a profile is one of four shapes (:func:`_window_profile`), and
    :meth:`weights` sums the few windows over a range of pixels when a strip is released, so a
    stitcher's memory does not grow with the raster's height (or width).
    """

    length: int
    size: int  # window length on this axis
    overlap: int
    offsets: tuple[int, ...]

    @classmethod
    def build(cls, length: int, window: int, overlap: int, *, first: int = 0, multiple: int = 1) -> "AxisPlan":
        """The plan of windows of ``window`` pixels, ``overlap`` shared, on the lattice of ``first`` and ``multiple``."""
        if length < 1:
            raise ValueError("axis length must be >= 1")
        if not 0 <= overlap < window:
            raise ValueError(f"overlap must be in [0, {window}), got {overlap}")
        phase = first % multiple
        if length + phase <= window:  # one window: the axis plus the lattice phase, rounded up to the lattice
            size = math.ceil((length + phase) / multiple) * multiple
            offsets = [-phase]
        else:
            size = window
            offsets = lattice_offsets(length, window, window - overlap, first, multiple)
        return cls(length, size, overlap, tuple(offsets))

    def clip(self, k: int) -> tuple[int, int, int]:
        """``(start, stop, skip)``: window ``k`` covers raster pixels ``[start, stop)``, beginning ``skip`` pixels into it."""
        o = self.offsets[k]
        start, stop = max(o, 0), min(o + self.size, self.length)
        return start, stop, start - o

    def _profile(self, k: int, precision: int) -> np.ndarray:
        o = self.offsets[k]
        start, stop, skip = self.clip(k)
        whole = _window_profile(self.size, self.overlap, o <= 0, o + self.size >= self.length)[precision]
        return whole[skip : skip + stop - start]

    def profile(self, k: int) -> np.ndarray:
        """Weights (float32, read-only) of the in-raster part of window ``k``."""
        return self._profile(k, 1)

    def weights(self, a: int, b: int) -> np.ndarray:
        """Summed weight (float64, > 0) of pixels ``[a, b)``: the profiles of the windows over them, added in window
        order (so equal, bit for bit, to summing every window over the whole axis)."""
        total = np.zeros(b - a, dtype=np.float64)
        for k in range(bisect.bisect_right(self.offsets, a - self.size), bisect.bisect_left(self.offsets, b)):
            start, stop, _ = self.clip(k)
            lo, hi = max(start, a), min(stop, b)
            if hi > lo:
                total[lo - a : hi - a] += self._profile(k, 0)[lo - start : hi - start]
        return total

    @property
    def total(self) -> np.ndarray:
        """Summed weight of every pixel of the axis (computed on each call; the stitcher asks for ranges only)."""
        return self.weights(0, self.length)


class StripStitcher:
    """Accumulates weighted window probabilities and hands out rows as soon as they are final.

    ``add(i, j, probs)`` takes the ``(size_y, size_x)`` probabilities of window (row index
    ``i``, column index ``j``); ``skip(i, j)`` records a window that is not run. Windows
    must come row by row (all of window-row ``i`` before any of ``i + 1``), in any
    order within a row. :meth:`pop_final` yields ``(i, row0, probs)`` for every completed
    window-row, in order, where ``probs`` are the normalised rows ``[row0, row0 + n)``.

    ``cols=(x0, x1)`` restricts the stitcher to a band of columns: only the windows that
    touch it are expected (:attr:`col_ids`), and the rows it hands out are ``x1 - x0``
    wide. The weights and their normalisation are those of the whole raster, so a band's
    pixels are exactly the whole-raster result; bands bound the memory by their width.

    ``first=(row, col)`` is the index of the raster's first pixel on the grid anchored at its
    CRS origin (:func:`geounet.grid.window_origin`): windows then fall on the same ground pixels
    in every raster cut from that grid.

    ``channels=C`` blends C output channels at once (building, border, contact): windows
    are then ``(C, size_y, size_x)`` and rows come out as ``(C, n, width)``; each channel is
    blended with the same weights, so each is exactly what a one-channel stitcher gives.
    """

    def __init__(self, height: int, width: int, window: int, overlap: int, *, first: tuple[int, int] = (0, 0),
                 multiple: int = 1, cols: tuple[int, int] | None = None, channels: int | None = None):
        self.height, self.width = int(height), int(width)
        # the window lattice along each axis: window-rows (offsets, weights) and window-columns
        self.rows = AxisPlan.build(self.height, window, overlap, first=first[0], multiple=multiple)
        self.cols = AxisPlan.build(self.width, window, overlap, first=first[1], multiple=multiple)
        self.x0, self.x1 = (0, self.width) if cols is None else (int(cols[0]), int(cols[1]))
        if not 0 <= self.x0 < self.x1 <= self.width:
            raise ValueError(f"column band {cols} is not inside the raster width {self.width}")
        self.col_ids = tuple(
            j for j in range(len(self.cols.offsets))
            if self.cols.clip(j)[0] < self.x1 and self.cols.clip(j)[1] > self.x0
        )
        self._inv_x = (1.0 / self.cols.weights(self.x0, self.x1)).astype(np.float32)
        self.channels = channels
        # the accumulator (one window-row's rows), made on first use and freed once the last row is
        # out: a raster's stitchers are all made up front, one per column band, but only the band
        # being stitched holds one (four 5,000 px bands of three channels held 100 MB more otherwise)
        self._buf: np.ndarray | None = None
        self._base = 0  # raster row of buffer row 0
        self._next = 0  # next window-row to hand out: the only one that can receive windows
        self._done = 0  # windows of window-row ``_next`` added or skipped

    @property
    def n_windows(self) -> int:
        return len(self.rows.offsets) * len(self.col_ids)

    def read_span(self) -> tuple[int, int]:
        """Raster columns ``[c0, c1)`` that the band's windows read."""
        spans = [self.cols.clip(j) for j in self.col_ids]
        return min(s[0] for s in spans), max(s[1] for s in spans)

    def windows(self) -> Iterator[tuple[int, int, int, int]]:
        """``(i, j, row_off, col_off)`` of every window of the band in row-major order (offsets may be negative)."""
        for i, r in enumerate(self.rows.offsets):
            for j in self.col_ids:
                yield i, j, r, self.cols.offsets[j]

    def _check(self, i: int) -> None:
        if i != self._next:
            raise RuntimeError(f"window-row {i} arrived while row {self._next} is still open")

    def _buffer(self) -> np.ndarray:
        """The accumulator, made when first needed."""
        if self._buf is None:
            lead = () if self.channels is None else (int(self.channels),)
            # channels first: each channel's rows are contiguous, and a channel is a cheap view
            self._buf = np.zeros(lead + (min(self.rows.size, self.height), self.x1 - self.x0), dtype=np.float32)
        return self._buf

    def add(self, i: int, j: int, probs: np.ndarray) -> None:
        """Add window (i, j): ``probs`` covers the whole window, parts outside the raster or band are ignored."""
        self._check(i)
        sy, sx = self.rows.size, self.cols.size
        want = (sy, sx) if self.channels is None else (self.channels, sy, sx)
        if probs.shape != want:
            raise ValueError(f"window probabilities have shape {probs.shape}, expected {want}")
        r0, r1, ry = self.rows.clip(i)
        c0, c1, cx = self.cols.clip(j)
        w = self.rows.profile(i)[:, None] * self.cols.profile(j)[None, :]
        a, b = max(c0, self.x0), min(c1, self.x1)
        if b > a:
            inside = probs[..., ry : ry + r1 - r0, cx + a - c0 : cx + b - c0]
            buf = self._buffer()
            buf[..., r0 - self._base : r1 - self._base, a - self.x0 : b - self.x0] += inside * w[:, a - c0 : b - c0]
        self._done += 1

    def skip(self, i: int, j: int) -> None:
        self._check(i)
        self._done += 1

    def pop_final(self) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(i, row0, probs)`` for each completed window-row, in order; probs are normalised float32
        (``(n, width)``, or ``(C, n, width)`` with ``channels``)."""
        ncols = len(self.col_ids)
        offsets = self.rows.offsets
        while self._next < len(offsets) and self._done == ncols:
            i = self._next
            row0 = max(offsets[i], 0)
            row1 = offsets[i + 1] if i + 1 < len(offsets) else self.height
            n = row1 - row0
            buf = self._buffer()  # (a window-row of skipped windows adds nothing: its rows are zeros)
            out = buf[..., :n, :] * (1.0 / self.rows.weights(row0, row1)).astype(np.float32)[:, None]
            out *= self._inv_x[None, :]
            self._base = row1
            self._next += 1
            self._done = 0
            if self.finished:
                self._buf = None
            else:  # shift the buffer up by n rows; rows below the last window stay zero
                keep = buf.shape[-2] - n
                if keep > 0:
                    buf[..., :keep, :] = buf[..., n:, :]
                buf[..., keep:, :] = 0.0
            yield i, row0, out

    @property
    def finished(self) -> bool:
        return self._next == len(self.rows.offsets)

