"""Steps 1-6 of vectorising (see :mod:`geounet.vectorize.stream`) as pure functions on arrays.

Each function works on one *core* (a block of strip rows) with context rows and columns
around it, and says how much context makes its result on the core **identical to the
whole-raster computation**; the driver (:class:`~geounet.vectorize.stream.StripVectorizer`)
provides that much. Stage 1: :func:`building_mask` (steps 1-2, pass 1a, ``m1a`` =
``VectorizeOptions.mask_margin`` context rows of probabilities), :func:`seed_pixels` and
:func:`drop_small_components` (step 3, pass 1b, ``m1b`` = ``seed_reach`` context rows of mask and
probabilities). Stage 2 (``m2`` = ``instance_margin`` context rows of stage-1 output):
:func:`grow_seeds` (step 4), :func:`label_instances` (step 5), :func:`label_polygons` and
:func:`label_sums` (step 6).

scipy is imported inside the functions, not at import: it costs 0.2 s of start-up.
"""

from __future__ import annotations

from itertools import chain

import numpy as np
import shapely
from affine import Affine
from rasterio.features import shapes, sieve

CUT_CHANNELS = ("border", "contact")  # channels whose probability cuts seeds
_CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)  # 4-connectivity


def building_mask(p_building: np.ndarray, valid: np.ndarray, threshold: float, sieve_px: int) -> np.ndarray:
    """Steps 1-2, the building mask ``M`` (bool).

    1. **Threshold**: ``(p_building >= threshold) & valid``.
    2. **Sieve** (``rasterio.features.sieve``, 4-connectivity): specks and pin-holes smaller
       than ``sieve_px`` pixels are removed. On a core plus at least ``sieve_px`` rows (and
       columns) of context the sieve is exact: a region smaller than ``sieve_px`` pixels that
       touches the core fits entirely in the context, and a region that leaves the context
       has more than ``sieve_px`` pixels inside it. Validity is re-applied after the sieve,
       so a filled hole never covers no-data.
    """
    binary = ((p_building >= threshold) & valid).astype(np.uint8)
    # GDAL sieves nothing as large as the image itself: a raster of fewer pixels than a speck (tiny, or
    # resampled to a few pixels) keeps its regions of all but its own size
    size = min(int(sieve_px), binary.size - 1)
    if size >= 2 and binary.any():
        binary = sieve(binary, size=size, connectivity=4)
        binary &= valid
    return binary.astype(bool)


def seed_cut(probs: np.ndarray, cut_channels: list[int]) -> np.ndarray:
    """``prod(1 - p_c)`` over the channels ``cut_channels`` of ``probs`` (C, n, w): float32 (n, w).

    The factor by which the border and contact probabilities cut the seed score; the
    vectoriser keeps it instead of those channels, so stage 1 holds two channels whatever
    the model gives.
    """
    cut = np.ones(probs.shape[1:], dtype=np.float32)
    for k in cut_channels:
        cut *= 1.0 - probs[k]
    return cut


def seed_score(probs: np.ndarray, channels: tuple[str, ...]) -> np.ndarray:
    """``p_building * prod(1 - p_c)`` over the border/contact channels present: high in building interiors.

    The score seeds are cut on (step 3), of a whole raster at once (for benchmarks); the
    vectoriser multiplies ``p_building`` by :func:`seed_cut` instead, the same product
    grouped otherwise (float32 rounding may differ in the last bit).
    """
    score = probs[0].astype(np.float32, copy=True)
    for k, name in enumerate(channels):
        if name in CUT_CHANNELS:
            score *= 1.0 - probs[k]
    return score


def seed_pixels(mask: np.ndarray, p_building: np.ndarray, cut: np.ndarray | None, seed_threshold: float,
                erode_px: int) -> np.ndarray:
    """Step 3, seed pixels ``S``: confident building interiors (before :func:`drop_small_components`).

    With the cut factor (:func:`seed_cut`), ``S = M & (p_building * (1 - p_border) *
    (1 - p_contact) >= seed_threshold)``, pixel by pixel: exact without context. With a
    building-only model (``cut`` None), ``M & (p_building >= seed_threshold)``, and with
    ``erode_px`` that eroded by ``erode_px`` pixels (4-connectivity): exact given that many
    rows (and columns) of context. Outside the array counts as seed, so raster edges do not
    erode (a core's own context edges are far enough from it).
    """
    from scipy import ndimage

    if erode_px:
        seed = mask & (p_building >= seed_threshold)
        return ndimage.binary_erosion(seed, _CROSS, iterations=int(erode_px), border_value=1)
    return mask & ((p_building * cut if cut is not None else p_building) >= seed_threshold)


def drop_small_components(pixels: np.ndarray, min_px: int) -> np.ndarray:
    """Step 3, seed-size filter: ``pixels`` minus its 4-connected components smaller than ``min_px``.

    Exact on a core given ``min_px`` more rows (and columns) of context, for the same reason
    as the sieve: a component smaller than ``min_px`` pixels that touches the core lies
    entirely in the context, and one that leaves the context has more than ``min_px`` pixels
    inside it.
    """
    from scipy import ndimage

    if min_px < 2 or not pixels.any():
        return pixels
    lab, n = ndimage.label(pixels)
    # counted over the component pixels alone: bincount copies its input to int64, and the background
    # (most of a wide seed context) would make that copy the vectoriser's largest array
    big = np.bincount(lab[pixels], minlength=n + 1) >= min_px
    big[0] = False
    return big[lab]


def grow_seeds(mask: np.ndarray, seeds: np.ndarray, reach: int) -> np.ndarray:
    """Step 4: flood ``seeds`` (int labels, 0 = none, inside ``mask``) through ``mask`` for up to ``reach`` steps.

    Breadth first, 4-connected: a pixel first reached in step ``d`` takes the label of its
    first neighbour (in the order above, left, right, below) reached in step ``d - 1``, so
    every pixel of ``mask`` takes the seed of the nearest seed pixel by geodesic distance
    inside ``mask``. Pixels of ``mask`` further than ``reach`` steps from every seed keep 0.
    This is a marker-based watershed on a flat relief (the SKIZ of the seeds): where two
    buildings touch, their seeds are cut back by the predicted border and contact bands, and
    the split falls midway between them, on the contact line.

    The label of a pixel depends only on ``mask`` and ``seeds`` within ``reach`` pixels of
    it (its chain of first neighbours back to a seed is at most that long, and the tie-break
    looks at geometry, never at label values), so ``reach`` rows of context give exactly the
    whole-raster labels. (A priority-flood watershed on the probabilities would not: a
    pixel's label there can depend on a flood path of any length, so no finite context
    makes it exact.) The flood never leaves ``mask``, so it runs on the bounding box of
    ``mask`` only: faster, and the same result.
    """
    lab = np.where(mask, seeds, 0)
    mask_rows, mask_cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if mask_rows.size:
        box = slice(mask_rows[0], mask_rows[-1] + 1), slice(mask_cols[0], mask_cols[-1] + 1)
        lab[box] = _flood(mask[box], lab[box], reach)
    return lab


def _flood(mask: np.ndarray, lab: np.ndarray, reach: int) -> np.ndarray:
    """:func:`grow_seeds` on ``lab`` (seed labels already inside ``mask``), layer by layer.

    Only the front moves: each step looks at the 4 neighbours of the pixels reached in the
    step before (flat indices), so a step costs the front's length, not the array's area.
    Within a step a free pixel reached from several front pixels takes the label of the
    first in the order above, left, right, below: candidates are listed in that order and
    the first occurrence of each pixel is kept (``np.unique(..., return_index=True)``).
    """
    h, w = mask.shape
    lab = lab.copy()
    flat_lab = lab.reshape(-1)
    free = (mask & (lab == 0)).reshape(-1)
    front = np.flatnonzero(lab)
    ys, xs = np.divmod(front, w)
    # (offset from the source to the pixel it reaches, may the source reach it), in the tie-break order:
    # the neighbour above reaches down (+w), the one on the left reaches right (+1), and so on
    steps = [(w, lambda y, x: y < h - 1), (1, lambda y, x: x < w - 1), (-1, lambda y, x: x > 0),
             (-w, lambda y, x: y > 0)]
    for _ in range(int(reach)):
        if front.size == 0 or not free.any():
            break
        dst, src = [], []
        for off, ok in steps:
            s = front[ok(ys, xs)]
            d = s + off
            keep = free[d]
            dst.append(d[keep])
            src.append(s[keep])
        dst, src = np.concatenate(dst), np.concatenate(src)
        dst, first = np.unique(dst, return_index=True)  # sorted; first occurrence wins the tie-break
        flat_lab[dst] = flat_lab[src[first]]
        free[dst] = False
        front = dst
        ys, xs = np.divmod(front, w)
    return lab


def label_instances(core_mask: np.ndarray, grown: np.ndarray | None) -> tuple[np.ndarray, int, np.ndarray]:
    """Step 5, instances: ``(labels, n_unreached, seeds)`` for a core.

    A grown region (all pixels whose chain ends in one seed) is one building; pixels of the
    mask that no seed reaches (components of ``M`` without a seed, and parts further than
    ``reach_px`` from every seed) form buildings of their own, one per 4-connected
    component. Without separation (``grown`` None) every component of ``M`` is one building.
    In ``labels`` (int32, 0 = none) the unreached components are ``1..n_unreached`` and the
    grown regions follow, ``n_unreached + 1 + k`` for the region of seed ``seeds[k]``
    (``seeds``: the distinct labels of ``grown``, ascending).
    """
    from scipy import ndimage

    unreached = core_mask & (grown == 0) if grown is not None else core_mask
    labels, n_unreached = ndimage.label(unreached)
    seeds = np.zeros(0, dtype=np.int64)
    if grown is not None:
        sel = grown > 0
        if sel.any():
            # the distinct seed labels, ascending, and each one's rank: a lookup table, not a sort of the pixels
            values = grown[sel]
            present = np.bincount(values, minlength=int(values.max()) + 1) > 0
            present[0] = False
            seeds = np.flatnonzero(present).astype(np.int64)
            rank = np.cumsum(present) - 1
            labels[sel] = (n_unreached + 1 + rank[values]).astype(labels.dtype)
    return labels, n_unreached, seeds


def label_sums(labels: np.ndarray, p_building: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per label ``1..n`` (index 0: zero): the sum of ``p_building`` over its pixels and its pixel count.

    Over the labelled pixels alone: bincount copies its input to int64 and its weights to float64, and
    the unlabelled pixels would only add to label 0. Each label's pixels are added in the same order
    either way, so its sum is the same to the bit.
    """
    on = labels > 0
    flat = labels[on]
    totals = np.bincount(flat, weights=p_building[on], minlength=n + 1)
    counts = np.bincount(flat, minlength=n + 1)
    return totals, counts


def label_polygons(labels: np.ndarray, row0: int, col0: int) -> list[tuple[int, object]]:
    """Step 6: ``(label, polygon)`` for every polygon of ``labels`` (0 = none), 4-connectivity.

    In *pixel* coordinates of the raster, ``labels`` starting at row ``row0`` and column
    ``col0`` (x = column, y = row). Pixel coordinates are integers, exact in floating point,
    so pieces from two cores share their border vertices bit for bit.
    """
    t = Affine.translation(col0, row0)
    # GDAL traces the outlines; shapely builds them from one array of every ring's coordinates (4x faster
    # than a shapely.geometry.shape per GeoJSON dict, the same polygons vertex for vertex)
    values, rings, n_rings = [], [], []
    for geom, value in shapes(labels, mask=labels > 0, connectivity=4, transform=t):
        values.append(int(value))
        rings.extend(geom["coordinates"])  # exterior, then holes
        n_rings.append(len(geom["coordinates"]))
    if not values:
        return []
    n_coords = np.fromiter(map(len, rings), np.int64, len(rings))
    xy = np.fromiter(chain.from_iterable(chain.from_iterable(rings)), np.float64, 2 * int(n_coords.sum()))
    linear_rings = shapely.linearrings(xy.reshape(-1, 2), indices=np.repeat(np.arange(len(rings)), n_coords))
    polygons = shapely.polygons(linear_rings, indices=np.repeat(np.arange(len(values)), n_rings))
    return list(zip(values, polygons))
