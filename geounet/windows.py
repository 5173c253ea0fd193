"""Pure window math: sliding-window grids, block grids and the spatial train/validation split.

Nothing here touches files; every function takes sizes and returns
``rasterio.windows.Window`` objects (or offsets), so the arithmetic can be tested alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
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


def sliding_windows(height: int, width: int, size: int, overlap: int) -> list[Window]:
    """Overlapping ``size`` x ``size`` windows covering a ``height`` x ``width`` raster.

    Windows step by ``size - overlap`` (see :func:`axis_offsets`), row-major order. On
    rasters smaller than ``size`` a window is clipped to the raster.
    """
    if not 0 <= overlap < size:
        raise ValueError(f"overlap must be in [0, {size}), got {overlap}")
    stride = size - overlap
    rows = axis_offsets(height, size, stride)
    cols = axis_offsets(width, size, stride)
    return [Window(c, r, min(size, width - c), min(size, height - r)) for r in rows for c in cols]


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


def lattice_phase(origin: float, pixel: float, multiple: int) -> int:
    """How many pixels before the raster's first pixel the window lattice starts, in ``[0, multiple)``.

    ``origin / pixel`` is the raster's first pixel counted on a grid anchored at coordinate 0
    of its CRS, so two rasters cut from the same pixel grid (crops, tiles, shifted
    extents) get lattices that coincide on the ground. Used so every window starts on the
    same ``multiple`` (``2**depth``) lattice of ground pixels: a U-Net's max-pool grid then
    falls on the same pixels whatever the extent, and its predictions do not change when
    the raster is cropped a few pixels differently.
    """
    if multiple <= 1 or pixel == 0:
        return 0
    first = math.floor(origin / pixel + 0.5)
    return int(first % multiple)


def lattice_offsets(length: int, size: int, stride: int, phase: int = 0, multiple: int = 1) -> list[int]:
    """Window offsets along an axis on a lattice: ``-phase + k * stride``, covering ``[0, length)``.

    Like :func:`axis_offsets` with the first window starting ``phase`` pixels before the
    raster and every offset on the ``multiple`` lattice (``stride`` must be a multiple of
    ``multiple``). The last window is the first lattice position at or after
    ``length - size``: flush with the far edge when it falls on the lattice, else
    reaching at most ``multiple - 1`` pixels past it (those are padded, never output).
    With ``phase=0, multiple=1`` this is exactly :func:`axis_offsets`.
    """
    if size < 1 or stride < 1 or multiple < 1:
        raise ValueError("size, stride and multiple must be >= 1")
    if stride > size:
        raise ValueError("stride larger than size would leave gaps")
    if stride % multiple or size % multiple:
        raise ValueError("size and stride must be multiples of the lattice")
    if not 0 <= phase < multiple:
        raise ValueError("phase must be in [0, multiple)")
    start = -phase
    if length + phase <= size:
        return [start]
    last = start + math.ceil((length - size - start) / multiple) * multiple
    offsets = []
    o = start
    while o < last:
        offsets.append(o)
        o += stride
    offsets.append(last)
    return offsets
