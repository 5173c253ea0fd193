"""Pure grid math: window lattices, column bands, block grids, metres to pixels, the spatial split.

Nothing here touches files; every function takes sizes (or an affine transform) and returns
numbers, offsets or ``rasterio.windows.Window`` objects, so the arithmetic can be tested alone.

Words, used the same way everywhere in geounet:

* a **window** is the square the model sees at once (``--tile-size`` pixels a side, for
  historical reasons); windows overlap by ``--overlap`` pixels and lie on a lattice;
* a **window-row** is one row of windows (all windows with the same row offset);
* a **column band** is a range of raster columns that predict streams on its own, so memory
  does not grow with the raster's width (not a *raster band*, which is a channel of the file);
* a **block** is a GeoTIFF's internal block (or a training block of the spatial split);
* a **tile** is an image file (``geounet train --images``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from affine import Affine
from rasterio.windows import Window


def axis_offsets(length: int, size: int, stride: int) -> list[int]:
    """Start offsets of windows of ``size`` along an axis of ``length``, ``stride`` apart.

    Formula: ``n = ceil((length - size) / stride) + 1`` windows at ``i * stride`` for
    ``i < n - 1``, and the last one at ``length - size``, flush with the far edge.
    Why: every pixel is covered and no window hangs off the raster, so the right and
    bottom edges are predicted from real pixels, not padding. When ``length <= size``
    there is a single window at 0 (the caller pads it). Consecutive offsets are at
    most ``stride`` apart, so the overlap is never smaller than ``size - stride``.
    """
    if size < 1 or stride < 1:
        raise ValueError("size and stride must be >= 1")
    if stride > size:
        raise ValueError("stride larger than size would leave gaps")
    if length <= size:
        return [0]
    n = math.ceil((length - size) / stride) + 1
    offsets = [i * stride for i in range(n - 1)]
    offsets.append(length - size)
    return offsets


def block_grid(height: int, width: int, block: int) -> list[Window]:
    """Non-overlapping ``block`` x ``block`` windows tiling the raster (edge blocks are clipped)."""
    return [
        Window(c, r, min(block, width - c), min(block, height - r))
        for r in range(0, height, block)
        for c in range(0, width, block)
    ]


def valid_fraction(coarse: np.ndarray, fy: float, fx: float, window: Window) -> float:
    """Fraction of ``window`` that is valid, estimated on a coarse mask where a cell is ``fy`` x ``fx`` pixels."""
    r0 = int(window.row_off // fy)
    c0 = int(window.col_off // fx)
    r1 = max(r0 + 1, math.ceil((window.row_off + window.height) / fy))
    c1 = max(c0 + 1, math.ceil((window.col_off + window.width) / fx))
    cells = coarse[r0:r1, c0:c1]
    return float(cells.mean()) if cells.size else 0.0


def training_windows(
    height: int,
    width: int,
    size: int,
    coarse: np.ndarray,
    fy: float,
    fx: float,
    *,
    min_valid: float = 0.1,
    within: Window | None = None,
) -> list[Window]:
    """Non-overlapping ``size`` windows (a tiling with stride ``size``) that are at least ``min_valid`` valid.

    Windows in no-data are skipped. With ``within``, only windows inside that block
    are produced, flush with its far edges, so a training window never reaches into
    another block (which may be a validation block).
    """
    area = within or Window(0, 0, width, height)
    r0, c0 = int(area.row_off), int(area.col_off)
    h, w = int(area.height), int(area.width)
    out = []
    for r in axis_offsets(h, min(size, h), min(size, h)):
        for c in axis_offsets(w, min(size, w), min(size, w)):
            win = Window(c0 + c, r0 + r, min(size, w), min(size, h))
            if valid_fraction(coarse, fy, fx, win) >= min_valid:
                out.append(win)
    return out


def spatial_split(weights: Sequence[float], val_fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """Split block indexes into (train, validation) so validation holds about ``val_fraction`` of the weight.

    Blocks are shuffled with ``seed`` and taken for validation until their summed weight
    (for example the number of usable windows) reaches ``val_fraction`` of the total;
    blocks of zero weight are dropped. Whole blocks go to one side, so validation pixels
    are never neighbours-in-the-same-window of training pixels. At least one block goes
    to each side when there are two or more.
    """
    idx = [i for i, w in enumerate(weights) if w > 0]
    if not idx:
        return [], []
    if val_fraction <= 0 or len(idx) == 1:
        return idx, []
    order = list(np.random.default_rng(seed).permutation(idx))
    total = float(sum(weights[i] for i in idx))
    val, acc = [], 0.0
    for i in order:
        if acc >= val_fraction * total or len(val) == len(idx) - 1:
            break
        val.append(int(i))
        acc += weights[i]
    val_set = set(val)
    return sorted(int(i) for i in idx if i not in val_set), sorted(val)


def grid_index(origin: float, pixel: float) -> int:
    """Index of the pixel that starts at ``origin`` on a grid of ``pixel`` steps anchored at CRS coordinate 0.

    Formula: ``floor(origin / pixel + 0.5)`` (rounded: the origin of a crop or a tile of the
    same grid is a whole number of pixels away up to floating-point error). Two rasters cut
    from one pixel grid (crops, tiles of a mosaic, shifted extents) number the same ground
    pixel alike, so lattices built on this index coincide on the ground. ``0`` when
    ``pixel`` is 0 (no grid).
    """
    if pixel == 0:
        return 0
    return int(math.floor(origin / pixel + 0.5))


def lattice_phase(origin: float, pixel: float, multiple: int) -> int:
    """How many pixels before the raster's first pixel the ``multiple`` lattice starts, in ``[0, multiple)``.

    Formula: ``grid_index(origin, pixel) % multiple`` (``0`` when ``multiple <= 1``): the
    raster's first pixel counted on the grid anchored at coordinate 0 of its CRS, modulo
    the lattice step. With ``multiple = 2**depth`` a U-Net's max-pool grid falls on the same
    ground pixels whatever the extent.
    """
    if multiple <= 1:
        return 0
    return grid_index(origin, pixel) % multiple


def lattice_offsets(length: int, size: int, stride: int, first: int = 0, multiple: int = 1) -> list[int]:
    """Window offsets along an axis whose first pixel has index ``first`` on the CRS-anchored grid.

    With ``phase = first % multiple``:

    * the first window starts at ``a = -phase`` (on the ``multiple`` lattice, at most
      ``multiple - 1`` pixels before the raster);
    * the last window starts at ``z = a + ceil((length - size - a) / multiple) * multiple``,
      the first ``multiple`` lattice position at or after ``length - size`` (flush with the far
      edge, or reaching at most ``multiple - 1`` pixels past it);
    * every window between starts at an offset ``o`` with ``a < o < z`` and
      ``(first + o) % stride == 0``: on the *stride* lattice anchored at the CRS origin.

    So two rasters cut from one grid (a crop, a neighbouring tile) put their inner windows on
    the same ground pixels and see the same pixels in them; only the windows within one
    window of an edge differ. Consecutive offsets are at most ``stride`` apart (never less
    overlap than ``size - stride``). One window at ``a`` when ``length + phase <= size``.
    ``stride`` and ``size`` must be multiples of ``multiple``; with ``first=0, multiple=1``
    this is exactly :func:`axis_offsets`.
    """
    if size < 1 or stride < 1 or multiple < 1:
        raise ValueError("size, stride and multiple must be >= 1")
    if stride > size:
        raise ValueError("stride larger than size would leave gaps")
    if stride % multiple or size % multiple:
        raise ValueError("size and stride must be multiples of the lattice")
    start = -(first % multiple)
    if length - start <= size:
        return [start]
    last = start + math.ceil((length - size - start) / multiple) * multiple
    inner = start + 1 + (-(first + start + 1)) % stride  # first stride-lattice offset after start
    return [start] + list(range(inner, last, stride)) + [last]


def window_origin(transform: Affine) -> tuple[int, int]:
    """``(row index, column index)`` of a raster's first pixel on the grid anchored at its CRS origin.

    Formula: ``(grid_index(f, e), grid_index(c, a))`` for a north-up grid (``b == d == 0``):
    rows count from the origin's y (``f``) in steps of ``e``, columns from its x (``c``) in
    steps of ``a``. A rotated grid has no CRS-anchored lattice: ``(0, 0)``, the lattice
    starts at the raster's corner.
    """
    if transform.b == 0 and transform.d == 0:
        return grid_index(transform.f, transform.e), grid_index(transform.c, transform.a)
    return 0, 0


class ColumnBand(NamedTuple):
    """Raster columns ``[x0, x1)`` that a column band outputs, and ``[cx0, cx1)`` that it reads for context."""

    x0: int
    x1: int
    cx0: int
    cx1: int


def column_bands(width: int, max_width: int, align: int = 256) -> list[tuple[int, int]]:
    """Split ``[0, width)`` into bands no wider than about ``max_width``, borders on multiples of ``align``.

    Formula: ``n = ceil(width / max_width)`` bands of ``step = ceil(width / n / align) * align``
    columns (the last one takes the rest); one band ``(0, width)`` when ``width <= max_width``.
    """
    if width <= max_width:
        return [(0, width)]
    n = math.ceil(width / max_width)
    step = math.ceil(width / n / align) * align
    edges = list(range(0, width, step)) + [width]
    return [(a, b) for a, b in zip(edges, edges[1:]) if b > a]


def column_bands_with_context(width: int, max_width: int, align: int, context: int) -> list[ColumnBand]:
    """Column bands whose columns, ``context`` included, are at most ``max_width`` wide (at least one
    ``align`` step plus context where ``2 * context`` leaves less).

    Formula: one band when ``width <= max_width``; otherwise :func:`column_bands` of at most
    ``core = max(align, floor((max_width - 2 * context) / align) * align)`` columns (a multiple of
    ``align``, so its rounding never widens a band past it), each widened to
    ``cx0 = max(0, x0 - context)``, ``cx1 = min(width, x1 + context)``: the columns a band's
    vectoriser needs around its own so that its result is exactly the whole raster's. Counting
    the context in keeps every raster's strips (and so predict's memory) within ``max_width``
    columns, however wide the raster: with bands of ``max_width`` plus context, a 20,000 px
    raster's strips were 13% wider than a 5,000 px raster's, and a 40,000 px raster's 31%.
    """
    core = max_width if width <= max_width else max(align, (max_width - 2 * context) // align * align)
    return [ColumnBand(x0, x1, max(0, x0 - context), min(width, x1 + context))
            for x0, x1 in column_bands(width, core, align)]


def stitched_columns(bands: Sequence[ColumnBand]) -> list[tuple[int, int]]:
    """Columns ``[s0, s1)`` each column band stitches; the rest of its strips, ``[cx0, s0)``, are final
    rows the band before stitched (handed over by :mod:`geounet.predict.spill`), so their windows are
    not run twice.

    Formula: ``s1 = cx1``; ``s0 = cx0`` for the first band and ``s0 = min(cx1', cx1 - 1)`` for the
    others, ``cx1'`` being the band before's ``cx1`` (every column it stitched or received; the
    ``cx1 - 1`` keeps at least one column to stitch when a narrow last band lies wholly inside
    its neighbour's context). The band before holds every column of ``[cx0, s0)``: ``cx0 >= cx0'``
    because ``x0 > x0'``, and ``s0 <= cx1'``.
    """
    out: list[tuple[int, int]] = []
    for k, b in enumerate(bands):
        s0 = b.cx0 if k == 0 else min(bands[k - 1].cx1, b.cx1 - 1)
        out.append((s0, b.cx1))
    return out


def area_px(area_m2: float, pixel_m: float, *, least: int, most: int | None = None) -> int:
    """Pixels of ``pixel_m`` x ``pixel_m`` metres in ``area_m2`` square metres, rounded, kept in ``[least, most]``.

    Formula: ``min(most, max(least, round(area_m2 / (pixel_m * pixel_m))))``.
    """
    n = max(least, round(area_m2 / (pixel_m * pixel_m)))
    return int(n if most is None else min(most, n))


def length_px(length_m: float, pixel_m: float, *, least: int, most: int | None = None, up: bool = False) -> int:
    """Pixels of ``pixel_m`` metres in ``length_m`` metres, rounded (or rounded up), kept in ``[least, most]``.

    Formula: ``min(most, max(least, round(length_m / pixel_m)))``, with ``ceil`` for ``round`` when ``up``.
    """
    n = max(least, math.ceil(length_m / pixel_m) if up else round(length_m / pixel_m))
    return int(n if most is None else min(most, n))


def spread_windows(height: int, width: int, tile: int, per_side: int) -> list[tuple[int, int]]:
    """Top-left corners ``(row, col)`` of up to ``per_side ** 2`` windows of ``tile`` pixels spread
    evenly over a ``height`` x ``width`` raster, every window inside it (a sample of the raster).

    Formula: ``k = min(per_side, floor(2 * (side - tile) / tile) + 1)`` positions per side (windows
    overlap by at most half), at
    ``round(i * (side - tile) / (k - 1))`` for ``i = 0 .. k - 1`` (the one position ``0`` when
    ``k = 1``); no windows when a side is shorter than ``tile``. Returned coarse to fine (ordered by
    the Morton code of the bit-reversed row and column indexes), so any prefix is itself spread out.
    """
    if height < tile or width < tile or per_side < 1:
        return []

    def positions(side: int) -> list[int]:
        k = min(per_side, 2 * (side - tile) // tile + 1)
        return [0] if k == 1 else [round(i * (side - tile) / (k - 1)) for i in range(k)]

    rows, cols = positions(height), positions(width)
    bits = max(1, (max(len(rows), len(cols)) - 1).bit_length())

    def coarse_to_fine(i: int, j: int) -> int:  # Morton code of the bit-reversed row and column indexes
        ri, rj = int(format(i, f"0{bits}b")[::-1], 2), int(format(j, f"0{bits}b")[::-1], 2)
        return sum(((ri >> b & 1) << (2 * b + 1)) | ((rj >> b & 1) << (2 * b)) for b in range(bits))

    order = sorted(((i, j) for i in range(len(rows)) for j in range(len(cols))), key=lambda ij: coarse_to_fine(*ij))
    return [(rows[i], cols[j]) for i, j in order]
