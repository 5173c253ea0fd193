"""Probability strips to building polygons, block by block, without ever holding the whole mask.

Rows arrive top to bottom in strips (the blocks). Each block is handled once enough rows
below it have arrived to give it context:

1. **Threshold**: ``mask = (probability >= threshold) & valid``.
2. **Sieve** (``rasterio.features.sieve``, 4-connectivity): specks and pin-holes smaller
   than ``sieve_px`` pixels are removed. The sieve runs on the block plus ``margin >=
   sieve_px`` rows above and below, which makes it exact: a region smaller than
   ``sieve_px`` pixels that touches the block fits entirely in the context, and a region
   that leaves the context has more than ``margin`` pixels inside it. Validity is
   re-applied after the sieve, so a filled hole never covers no-data.
3. **Label and polygonise**: connected regions of the block (4-connectivity,
   ``scipy.ndimage.label``) are polygonised with ``rasterio.features.shapes`` on the
   label image, in *pixel* coordinates (x = column, y = row), so each polygon is matched
   to its label and to its probability sum and pixel count. Pixel coordinates are
   integers, exact in floating point, so pieces from two blocks share their border
   vertices bit for bit.
4. **Merge across blocks**: a region touching the block's bottom row stays open; the
   labels of that row and of the next block's top row say which regions are 4-connected
   across the border (union-find). A group is finished once none of its members touches
   the bottom row of the latest block; its pieces are unioned into one polygon and its
   sums and counts added, so the ``score`` (mean probability over the building's pixels)
   is exact for merged buildings too.
5. **Finish a building**: simplify (pixel units: ``--simplify`` metres divided by the
   ground pixel size), subtract nearby no-data (simplification may move an edge by up to
   the tolerance, so a building within that distance of no-data is clipped against the
   no-data polygons around it), apply the affine transform to the raster CRS, compute
   the ground area in m^2 on the ellipsoid of the CRS (:class:`GroundArea`, right for
   degrees, web-mercator and feet alike) and drop buildings under ``min_area_m2``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import shapely
from affine import Affine
from pyproj import CRS, Transformer
from rasterio.features import shapes, sieve
from shapely.geometry import shape

__all__ = ["VectorizeOptions", "GroundArea", "StripVectorizer", "to_crs_coords"]

Emit = Callable[[np.ndarray, np.ndarray, np.ndarray], None]


@dataclass(frozen=True)
class VectorizeOptions:
    """``sieve_px`` and ``simplify_px`` are in pixels; ``min_area_m2`` in square metres on the ground."""

    threshold: float = 0.5
    sieve_px: int = 0
    simplify_px: float = 0.0
    min_area_m2: float = 0.0

    @property
    def margin(self) -> int:
        """Context rows above and below a block (see the module docstring)."""
        return max(1, int(self.sieve_px), math.ceil(self.simplify_px) + 2)

    @property
    def nodata_reach(self) -> int:
        """How far (pixels) no-data can be and still meet a simplified building."""
        return math.ceil(self.simplify_px) + 1 if self.simplify_px > 0 else 0


class GroundArea:
    """Area in square metres of polygons given in ``crs``, on the ellipsoid of that CRS.

    Coordinates are moved to the CRS's own geographic CRS (longitude, latitude) and
    measured with ``pyproj.Geod.geometry_area_perimeter`` after orienting rings
    (exterior counter-clockwise, holes clockwise), so holes are subtracted. This is the
    true ground area in any CRS: degrees, web-mercator (whose map square metres are
    1/cos^2(lat) ground square metres), UTM, or State Plane in US feet.
    """

    def __init__(self, crs):
        self.crs = CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
        self.geod = self.crs.get_geod()
        if self.geod is None:  # pragma: no cover - every CRS with a datum has an ellipsoid
            from pyproj import Geod

            self.geod = Geod(ellps="WGS84")
        self._to_ll = None
        if not self.crs.is_geographic:
            self._to_ll = Transformer.from_crs(self.crs, self.crs.geodetic_crs, always_xy=True)

    def lonlat(self, geoms: np.ndarray) -> np.ndarray:
        if self._to_ll is None:
            return geoms
        t = self._to_ll

        def f(xy: np.ndarray) -> np.ndarray:
            x, y = t.transform(xy[:, 0], xy[:, 1])
            return np.column_stack([x, y])

        return shapely.transform(geoms, f)

    def __call__(self, geoms: np.ndarray) -> np.ndarray:
        geoms = np.asarray(geoms, dtype=object)
        if geoms.size == 0:
            return np.zeros(0, dtype=np.float64)
        ll = shapely.orient_polygons(self.lonlat(geoms), exterior_cw=False)
        return np.array([abs(self.geod.geometry_area_perimeter(g)[0]) for g in ll], dtype=np.float64)


def to_crs_coords(geoms: np.ndarray, transform: Affine) -> np.ndarray:
    """Pixel-coordinate geometries (x = column, y = row) to CRS coordinates with ``transform``."""
    a, b, c, d, e, f = transform.a, transform.b, transform.c, transform.d, transform.e, transform.f

    def fn(xy: np.ndarray) -> np.ndarray:
        x, y = xy[:, 0], xy[:, 1]
        return np.column_stack([a * x + b * y + c, d * x + e * y + f])

    return shapely.transform(geoms, fn)


def _polygon_parts(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Explode (multi)polygons and collections to single non-empty polygons, with the index of their source."""
    idx = np.arange(len(geoms))
    for _ in range(3):  # collections may hold multipolygons
        multi = shapely.get_type_id(geoms) != 3
        if not multi.any():
            break
        parts, pidx = shapely.get_parts(geoms, return_index=True)
        geoms, idx = parts, idx[pidx]
    keep = (shapely.get_type_id(geoms) == 3) & ~shapely.is_empty(geoms)
    return geoms[keep], idx[keep]


class _Comp:
    __slots__ = ("geom", "total", "count", "nodata", "band", "rmax")

    def __init__(self, geom, total: float, count: int, nodata=None, band: int = 0):
        self.geom, self.total, self.count, self.nodata = geom, total, count, nodata
        self.band = band
        self.rmax = -1  # last raster row where it touches its band's right edge (-1: never)


class StripVectorizer:
    """Turn consecutive probability strips into building polygons in the raster CRS.

    Call :meth:`add_rows` with strips that cover rows ``0..height`` in order, then
    :meth:`finish`. Finished buildings go to ``emit(geoms, area_m2, score)`` in batches
    (shapely Polygons in the raster CRS, float64 areas, float64 scores).

    Column bands: :meth:`begin_band` ``(x0, x1, cx0, cx1, last)`` vectorises the columns
    ``[x0, x1)`` from strips that span ``[cx0, cx1)`` (context on both sides for the
    sieve), band after band from left to right, each top to bottom. Regions touching a
    band's right edge stay open until the next band has reached their rows, and are
    merged with the regions they touch there, like regions across strip borders.
    """

    def __init__(self, height: int, width: int, transform: Affine, crs, options: VectorizeOptions, emit: Emit):
        self.height, self.width = int(height), int(width)
        self.transform = transform
        self.options = options
        self.area = GroundArea(crs)
        self._emit = emit
        self._m = options.margin
        self._comps: dict[int, _Comp] = {}
        self._parent: dict[int, int] = {}
        self._open: set[int] = set()  # ids of every member of groups still open
        self._next_id = 1
        self.n_polygons = 0
        self._k = -1  # current band
        self._right: np.ndarray | None = None
        self._in_band = False

    def begin_band(self, x0: int, x1: int, cx0: int | None = None, cx1: int | None = None, last: bool = True) -> None:
        if self._in_band:
            self.end_band()
        cx0 = x0 if cx0 is None else cx0
        cx1 = x1 if cx1 is None else cx1
        if not (0 <= cx0 <= x0 < x1 <= cx1 <= self.width):
            raise ValueError(f"bad band columns {(x0, x1, cx0, cx1)} for width {self.width}")
        self._k += 1
        self.x0, self.x1, self.cx0, self.cx1, self._last = x0, x1, cx0, cx1, last
        self._left = self._right if x0 > 0 else None
        self._right = None if last else np.zeros(self.height, dtype=np.int64)
        w = cx1 - cx0
        self._probs = np.zeros((0, w), dtype=np.float32)
        self._valid = np.zeros((0, w), dtype=bool)
        self._buf0 = 0  # raster row of buffer row 0
        self._rows = 0  # rows received so far
        self._cores: list[tuple[int, int]] = []
        self._prev_bottom: np.ndarray | None = None  # global ids on the last row of the previous block
        self._in_band = True

    def end_band(self) -> None:
        if self._rows != self.height:
            raise ValueError(f"vectoriser got {self._rows} of {self.height} rows")
        self._run(final=True)
        self._in_band = False

    # -- input -------------------------------------------------------------------------
    def add_rows(self, row0: int, probs: np.ndarray, valid: np.ndarray) -> None:
        if not self._in_band:
            if self._k >= 0:
                raise ValueError("add_rows after the band ended; call begin_band")
            self.begin_band(0, self.width)
        if row0 != self._rows:
            raise ValueError(f"strip starts at row {row0}, expected {self._rows}")
        n = probs.shape[0]
        if n == 0:
            return
        if probs.shape != (n, self.cx1 - self.cx0) or valid.shape != probs.shape:
            raise ValueError("strip shape does not match the raster (or band) width")
        self._probs = np.concatenate([self._probs, probs.astype(np.float32, copy=False)])
        self._valid = np.concatenate([self._valid, valid.astype(bool, copy=False)])
        self._cores.append((row0, row0 + n))
        self._rows += n
        self._run(final=False)

    def finish(self) -> None:
        if self._in_band or self._k < 0:
            if self._k < 0:
                self.begin_band(0, self.width)
            self.end_band()
        if self._open:
            self._finalize([sorted(self._open)])
            self._open = set()

    # -- blocks ------------------------------------------------------------------------
    def _run(self, final: bool) -> None:
        while self._cores and (final or self._cores[0][1] + self._m <= self._rows or self._rows == self.height):
            a, b = self._cores.pop(0)
            self._block(a, b)
            keep_from = (self._cores[0][0] if self._cores else self._rows) - self._m
            drop = max(0, keep_from - self._buf0)
            if drop:
                self._probs = self._probs[drop:]
                self._valid = self._valid[drop:]
                self._buf0 += drop

    def _block(self, a: int, b: int) -> None:
        from scipy import ndimage  # here, not at import: it costs 0.2 s of start-up

        opt = self.options
        m = self._m
        c0, c1 = max(0, a - m), min(self.height, b + m)
        assert c0 >= self._buf0 and c1 <= self._rows
        P = self._probs[c0 - self._buf0 : c1 - self._buf0]
        V = self._valid[c0 - self._buf0 : c1 - self._buf0]
        binary = ((P >= opt.threshold) & V).astype(np.uint8)
        if opt.sieve_px >= 2 and binary.any():
            binary = sieve(binary, size=int(opt.sieve_px), connectivity=4)
            binary &= V
        xs, xe = self.x0 - self.cx0, self.x1 - self.cx0
        core = binary[a - c0 : b - c0, xs:xe]
        labels, n = ndimage.label(core)
        base = self._next_id - 1
        self._next_id += n
        new_ids: list[int] = []
        if n:
            probs_core = P[a - c0 : b - c0, xs:xe]
            flat = labels.ravel()
            totals = np.bincount(flat, weights=probs_core.ravel(), minlength=n + 1)
            counts = np.bincount(flat, minlength=n + 1)
            nodata = (
                self._nodata_pieces(labels, ~V, a - c0, xs, c0) if (opt.nodata_reach and not V.all()) else {}
            )
            t = Affine.translation(self.x0, a)
            for geom, value in shapes(labels, mask=core.astype(bool), connectivity=4, transform=t):
                lab = int(value)
                gid = base + lab
                self._comps[gid] = _Comp(shape(geom), float(totals[lab]), int(counts[lab]), nodata.get(lab), self._k)
                self._parent[gid] = gid
                new_ids.append(gid)
            if self._left is not None:  # regions continuing from the band on the left
                left, cur = self._left[a:b], labels[:, 0]
                both = (left > 0) & (cur > 0)
                if both.any():
                    for p, q in np.unique(np.stack([left[both], base + cur[both]], axis=1), axis=0):
                        self._union(int(p), int(q))
            if self._right is not None:  # regions the band on the right must see
                col = labels[:, -1]
                self._right[a:b] = np.where(col > 0, col.astype(np.int64) + base, 0)
                for lab in np.unique(col[col > 0]):
                    self._comps[base + int(lab)].rmax = a + int(np.flatnonzero(col == lab)[-1])
        # merge with regions open on the previous block's bottom row
        top = labels[0]
        if self._prev_bottom is not None and n:
            both = (self._prev_bottom > 0) & (top > 0)
            if both.any():
                pairs = np.unique(np.stack([self._prev_bottom[both], base + top[both]], axis=1), axis=0)
                for p, q in pairs:
                    self._union(int(p), int(q))
        bottom = labels[-1]
        touching = set() if b >= self.height else {base + int(v) for v in np.unique(bottom[bottom > 0])}

        def member_open(gid: int) -> bool:
            c = self._comps[gid]
            if c.band == self._k:
                return gid in touching or (c.rmax >= 0 and not self._last)
            if c.band == self._k - 1:  # waits for this band to reach the rows it touches
                return c.rmax >= b
            return False

        groups: dict[int, list[int]] = {}
        for gid in list(self._open) + new_ids:
            groups.setdefault(self._find(gid), []).append(gid)
        still_open: set[int] = set()
        done = []
        for members in groups.values():
            if any(member_open(g) for g in members):
                still_open.update(members)
            else:
                done.append(members)
        self._open = still_open
        self._prev_bottom = np.where(bottom > 0, bottom.astype(np.int64) + base, 0) if b < self.height else None
        if done:
            self._finalize(done)

    def _nodata_pieces(self, labels: np.ndarray, invalid: np.ndarray, row_off: int, col_off: int,
                       ctx_row0: int) -> dict[int, object]:
        """No-data polygons (pixel coordinates) within reach of each region that has any nearby.

        ``invalid`` is the context (rows from ``ctx_row0``, columns from ``cx0``); the block's
        labels start ``row_off`` rows and ``col_off`` columns into it.
        """
        from scipy import ndimage

        reach = self.options.nodata_reach
        out = {}
        H, W = invalid.shape
        for lab, sl in enumerate(ndimage.find_objects(labels), start=1):
            if sl is None:
                continue
            r0, r1 = max(0, sl[0].start + row_off - reach), min(H, sl[0].stop + row_off + reach)
            q0, q1 = max(0, sl[1].start + col_off - reach), min(W, sl[1].stop + col_off + reach)
            sub = invalid[r0:r1, q0:q1]
            if not sub.any():
                continue
            t = Affine.translation(self.cx0 + q0, ctx_row0 + r0)
            polys = [shape(g) for g, _ in shapes(sub.astype(np.uint8), mask=sub, connectivity=4, transform=t)]
            out[lab] = shapely.union_all(polys)
        return out

    # -- union-find ----------------------------------------------------------------------
    def _find(self, x: int) -> int:
        root = x
        while self._parent[root] != root:
            root = self._parent[root]
        while self._parent[x] != root:
            self._parent[x], x = root, self._parent[x]
        return root

    def _union(self, p: int, q: int) -> None:
        rp, rq = self._find(p), self._find(q)
        if rp != rq:
            self._parent[max(rp, rq)] = min(rp, rq)

    # -- output --------------------------------------------------------------------------
    def _finalize(self, groups: list[list[int]]) -> None:
        geoms, scores, nodata = [], [], []
        for members in groups:
            comps = [self._comps.pop(g) for g in members]
            for g in members:
                del self._parent[g]
            if len(comps) == 1:
                geom = comps[0].geom
            else:
                geom = shapely.union_all([c.geom for c in comps])
            total = sum(c.total for c in comps)
            count = sum(c.count for c in comps)
            pieces = [c.nodata for c in comps if c.nodata is not None]
            geoms.append(geom)
            scores.append(total / max(count, 1))
            nodata.append(shapely.union_all(pieces) if pieces else None)
        self._finish_buildings(np.array(geoms, dtype=object), np.array(scores, dtype=np.float64), nodata)

    def _finish_buildings(self, geoms: np.ndarray, scores: np.ndarray, nodata: list) -> None:
        opt = self.options
        bad = ~shapely.is_valid(geoms)
        if bad.any():
            geoms[bad] = shapely.make_valid(geoms[bad])
        # canonical outline: no collinear vertices (unions leave some on block borders), fixed start
        # and orientation, so simplifying a building gives the same result however it was pieced
        geoms = shapely.normalize(shapely.simplify(geoms, 0.0, preserve_topology=True))
        if opt.simplify_px > 0:
            geoms = shapely.simplify(geoms, opt.simplify_px, preserve_topology=True)
        for k, piece in enumerate(nodata):
            if piece is not None:
                geoms[k] = shapely.difference(geoms[k], piece)
        parts, idx = _polygon_parts(geoms)
        if parts.size == 0:
            return
        crs_geoms = shapely.orient_polygons(to_crs_coords(parts, self.transform), exterior_cw=False)
        area = self.area(crs_geoms)
        keep = (area >= opt.min_area_m2) & (area > 0)
        if keep.any():
            self.n_polygons += int(keep.sum())
            self._emit(crs_geoms[keep], area[keep], scores[idx[keep]])
