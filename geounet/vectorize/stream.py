"""Probability strips to building polygons, block by block, without ever holding the whole mask.

Rows arrive top to bottom in strips (the blocks, or *cores*). Every core goes through two
stages, each run once enough rows below it have arrived to give it context; the result is
**identical to running both stages on the whole raster at once** (the arguments are given
with each step), so a block border can neither split nor merge a building. Stage 2 runs
right behind stage 1, on the rows stage 1 finished ``m2`` rows ago, so only about one
strip of stage-1 output is ever held.

Stage 1, building mask and seeds (context ``m1`` rows above and below the core):

1. **Threshold**: ``mask = (p_building >= threshold) & valid``.
2. **Sieve** (``rasterio.features.sieve``, 4-connectivity): specks and pin-holes smaller
   than ``sieve_px`` pixels are removed. The sieve runs on the core plus at least
   ``sieve_px`` rows of context, which makes it exact: a region smaller than ``sieve_px``
   pixels that touches the core fits entirely in the context, and a region that leaves
   the context has more than ``sieve_px`` pixels inside it. Validity is re-applied after
   the sieve, so a filled hole never covers no-data. The result is ``M``.
3. **Seeds** (only with ``separate``): confident building interiors,
   ``S = M & (p_building * (1 - p_border) * (1 - p_contact) >= seed_threshold)`` (with a
   building-only model: ``M & (p_building >= seed_threshold)`` eroded by ``seed_erode_px``
   pixels, 4-connectivity: exact given that many more context rows), minus its
   4-connected components smaller than ``seed_min_px`` pixels (exact for the same reason
   as the sieve, given ``seed_min_px`` more rows of context). ``m1`` is the sum of the
   three reaches. A *seed* is a 4-connected component of ``S``; the seed pixels of each
   core are labelled and every label gets a union-find node. Nodes are joined where seed
   pixels of two consecutive cores touch across their border, so each union-find class
   of seed nodes is (once the rows below have been seen) one seed of the whole raster.

Stage 2, instances (context ``m2 >= reach_px`` rows of stage-1 output):

4. **Grow** (only with ``separate``): every pixel of ``M`` takes the seed of the nearest
   seed pixel, by geodesic distance inside ``M`` (4-connected steps), up to ``reach_px``
   steps: a breadth-first flood from all seeds at once, layer by layer; a pixel reached
   in layer ``d`` takes the label of its first neighbour (above, left, right, below)
   reached in layer ``d - 1``. This is a marker-based watershed on a flat relief (the
   SKIZ of the seeds): where two buildings touch, their seeds are cut back by the
   predicted border and contact bands, and the split falls midway between them, on the
   contact line. The label of a pixel depends only on ``M`` and ``S`` within ``reach_px``
   pixels of it (its chain of first neighbours back to a seed is at most that long and
   the tie-break looks at geometry, never at label values), so ``m2 >= reach_px`` rows of
   context give exactly the whole-raster labels. (A priority-flood watershed on the
   probabilities would not: a pixel's label there can depend on a flood path of any
   length, so no finite context makes it exact.)
5. **Instances**: a grown region (all pixels whose chain ends in one seed) is one
   building; pixels of ``M`` that no seed reaches (components of ``M`` without a seed,
   and parts further than ``reach_px`` from every seed) form buildings of their own, one
   per 4-connected component. Without ``separate`` every component of ``M`` is one
   building, as before.
6. **Label and polygonise** each core: ``rasterio.features.shapes`` on the core's
   instance-label image, in *pixel* coordinates (x = column, y = row), so each polygon is
   matched to its label and to its probability sum and pixel count. Pixel coordinates
   are integers, exact in floating point, so pieces from two cores share their border
   vertices bit for bit.
7. **Merge across cores**: a grown piece is joined (union-find) to the seed node its
   pixels were grown from, so all pieces of one seed meet in one class, whichever core
   they lie in, and pieces of two different seeds never do, even where they touch. An
   unreached piece is joined to the unreached pieces it touches across the core border
   (the labels of the core's bottom row against the next core's top row), as regions
   always were. A class is finished once nothing below or to the right can join it
   (below: none of its members touches the last row of the latest core; seeds are ahead
   of the pieces, so a seed not yet fully joined keeps its class open); its pieces are
   unioned into one polygon and their sums and counts added, so the ``score`` (mean
   building probability over the building's pixels) is exact too. Each building is
   4-connected (a grown region is its seed plus 4-connected chains into it), so the
   union is one polygon.

Column bands (rasters wider than a few thousand pixels) work the same way sideways: a
band's stage 1 labels seeds over its columns widened by ``m2`` on both sides (needing
``m1`` more context columns), the seed nodes of two neighbouring bands are joined on every
pixel their widened columns share, and stage 2 only ever looks at its own band's seeds.
Every seed pixel is thus labelled by each band whose widened columns contain it, and
any two 4-adjacent seed pixels lie together in one band's widened columns, so the nodes of
one seed are all joined. Bands other than the first and the last must be at least
``2 * m2`` wide, so that only neighbouring bands share columns.

8. **Finish a building**: simplify (pixel units: ``--simplify`` metres divided by the
   ground pixel size), or with ``regularize_m`` square the outline
   (:func:`geounet.regularize.regularize`, in pixel coordinates scaled to ground metres so
   that right angles are right angles on the ground; an outline that would move further
   than the no-data reach keeps its simplified shape instead); subtract nearby no-data
   (simplifying or squaring moves an edge by a bounded distance, so a building within that
   distance of no-data is clipped against the no-data polygons around it: no building
   overlaps no-data); apply the affine transform to the raster CRS, compute the ground area
   in m^2 on the ellipsoid of the CRS (:class:`GroundArea`, right for degrees,
   web-mercator and feet alike) and drop buildings under ``min_area_m2``. Touching
   buildings are simplified (or squared) each on its own, so their outlines may overlap
   by up to that tolerance.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import shapely
from affine import Affine

from .finish import GroundArea, finish_buildings, nodata_near
from .options import VectorizeOptions
from .stages import (
    CUT_CHANNELS,
    building_mask,
    drop_small_components,
    grow_seeds,
    label_instances,
    label_polygons,
    label_sums,
    seed_cut,
    seed_pixels,
)

__all__ = ["StripVectorizer"]

Emit = Callable[[np.ndarray, np.ndarray, np.ndarray], None]


class _Comp:
    """A union-find member: a polygon piece of one core (``geoms``), or a seed node (``geoms`` None)."""

    __slots__ = ("geoms", "total", "count", "nodata", "band", "last", "rmax")

    def __init__(self, geoms, total: float, count: int, nodata=None, band: int = 0, last: int = -1):
        self.geoms, self.total, self.count, self.nodata = geoms, total, count, nodata
        self.band = band
        self.last = last  # last raster row it covers
        self.rmax = -1  # last raster row where it reaches the band's right side (-1: never)




class StripVectorizer:
    """Turn consecutive probability strips into building polygons in the raster CRS.

    Call :meth:`add_rows` with strips that cover rows ``0..height`` in order, then
    :meth:`finish`. Strips are ``(n, width)`` building probabilities, or ``(C, n, width)``
    with the channels of ``options.channels``. Finished buildings go to
    ``emit(geoms, area_m2, score)`` in batches (shapely Polygons in the raster CRS, float64
    areas, float64 scores).

    Column bands: :meth:`begin_band` ``(x0, x1, cx0, cx1, last)`` vectorises the columns
    ``[x0, x1)`` from strips that span ``[cx0, cx1)`` (at least ``options.margin`` context
    columns on both sides, where the raster has them), band after band from left to right,
    each top to bottom. Buildings reaching a band's right side stay open until the next
    band has reached their rows (see the module docstring).
    """

    def __init__(self, height: int, width: int, transform: Affine, crs, options: VectorizeOptions, emit: Emit):
        self.height, self.width = int(height), int(width)
        self.transform = transform
        self.options = options
        self.area = GroundArea(crs)
        self._emit = emit
        self._m1, self._m2 = options.seed_margin, options.instance_margin
        self._nch = len(options.channels)
        # stage 1 keeps building and, when separating, the product of (1 - p) over the cut
        # channels: all the seed score needs, in two channels whatever the model gives
        self._cuts = [k for k, n in enumerate(options.channels) if n in CUT_CHANNELS] if options.separate else []
        self._nin = 2 if self._cuts else 1
        self._comps: dict[int, _Comp] = {}
        self._parent: dict[int, int] = {}
        self._open: set[int] = set()  # ids of every member of groups still open
        self._next_id = 1
        self.n_polygons = 0
        self._k = -1  # current band
        self._right: np.ndarray | None = None  # unreached-piece ids on the band's last column, per row
        self._seed_right: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (rows, cols, nodes) for the next band
        self._prev_band: tuple[int, int] | None = None
        self._in_band = False

    def begin_band(self, x0: int, x1: int, cx0: int | None = None, cx1: int | None = None, last: bool = True) -> None:
        if self._in_band:
            self.end_band()
        cx0 = x0 if cx0 is None else cx0
        cx1 = x1 if cx1 is None else cx1
        if not (0 <= cx0 <= x0 < x1 <= cx1 <= self.width):
            raise ValueError(f"bad band columns {(x0, x1, cx0, cx1)} for width {self.width}")
        m = self.options.margin
        if cx0 > max(0, x0 - m) or cx1 < min(self.width, x1 + m):
            raise ValueError(f"band {(x0, x1)} needs {m} context columns on each side, got {(cx0, cx1)}")
        # a middle band (neither first nor last) must keep its two neighbours' widened columns apart
        if self.options.separate and self._k >= 1 and self._prev_band[1] - self._prev_band[0] < 2 * self._m2:
            raise ValueError(f"band {self._prev_band} is narrower than {2 * self._m2} px (2 * instance margin)")
        self._k += 1
        self.x0, self.x1, self.cx0, self.cx1, self._last = x0, x1, cx0, cx1, last
        # stage 1 labels seeds over the band widened by m2; stage 2 reads them there
        self.wx0, self.wx1 = max(0, x0 - self._m2), min(self.width, x1 + self._m2)
        self._left = self._right if x0 > 0 else None
        self._right = None if last else np.zeros(self.height, dtype=np.int64)
        self._seed_left = self._joined(self._seed_right) if x0 > 0 else None
        self._seed_right = []
        self._prev_band = (x0, x1)
        cw, ww = cx1 - cx0, self.wx1 - self.wx0
        # stage-1 input: building probability (and the seeds' cut factor) and validity, from raster row _buf0
        self._probs = np.zeros((self._nin, 0, cw), dtype=np.float32)
        self._valid = np.zeros((0, cw), dtype=bool)
        self._buf0 = 0
        self._rows = 0  # rows received so far
        # stage-1 output over the widened columns, from raster row _s2buf0; seed nodes are stored
        # as int32 offsets from the band's first id
        self._nbase = self._next_id - 1
        self._M = np.zeros((0, ww), dtype=bool)
        self._N = np.zeros((0, ww), dtype=np.int32) if self.options.separate else None
        self._P = np.zeros((0, ww), dtype=np.float32)
        self._V = np.zeros((0, ww), dtype=bool)
        self._s2buf0 = 0
        self._s1done = 0  # rows [0, _s1done) are through stage 1
        self._s2done = 0  # and [0, _s2done) through stage 2
        self._cores1: list[tuple[int, int]] = []
        self._prev_seed_bottom: np.ndarray | None = None  # seed nodes on the last row of the previous core
        self._prev_bottom: np.ndarray | None = None  # unreached-piece ids on the last row of the previous core
        self._in_band = True

    @staticmethod
    def _joined(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not parts:
            z = np.zeros(0, dtype=np.int64)
            return z, z, z
        return tuple(np.concatenate(x) for x in zip(*parts))  # rows ascending: cores come in order

    def end_band(self) -> None:
        if self._rows != self.height:
            raise ValueError(f"vectoriser got {self._rows} of {self.height} rows")
        self._run()
        assert not self._cores1 and self._s2done == self.height
        self._in_band = False

    # -- input -------------------------------------------------------------------------
    def add_rows(self, row0: int, probs: np.ndarray, valid: np.ndarray) -> None:
        """Rows ``[row0, row0 + n)``: ``probs`` ``(n, w)`` (building) or ``(C, n, w)``; ``valid`` ``(n, w)``."""
        if not self._in_band:
            if self._k >= 0:
                raise ValueError("add_rows after the band ended; call begin_band")
            self.begin_band(0, self.width)
        if row0 != self._rows:
            raise ValueError(f"strip starts at row {row0}, expected {self._rows}")
        if probs.ndim == 2:
            probs = probs[None]
        n = probs.shape[1]
        if n == 0:
            return
        if probs.shape != (self._nch, n, self.cx1 - self.cx0) or valid.shape != probs.shape[1:]:
            raise ValueError(
                f"strip of shape {probs.shape} does not match {self._nch} channel(s) of the raster (or band) width"
            )
        keep = probs[:1].astype(np.float32, copy=False)
        if self._cuts:
            keep = np.concatenate([keep, seed_cut(probs, self._cuts)[None]])
        self._probs = np.concatenate([self._probs, keep], axis=1)
        self._valid = np.concatenate([self._valid, valid.astype(bool, copy=False)])
        self._cores1.append((row0, row0 + n))
        self._rows += n
        self._run()

    def finish(self) -> None:
        if self._in_band or self._k < 0:
            if self._k < 0:
                self.begin_band(0, self.width)
            self.end_band()
        if self._open:
            self._finalize([sorted(self._open)])
            self._open = set()

    # -- scheduling ----------------------------------------------------------------------
    def _run(self) -> None:
        """Run stage 1 on every core with its context, and stage 2 right behind it.

        Stage 2 works on the rows stage 1 has finished up to ``m2`` rows ago (the core
        shifted up by ``m2``), so it never waits for the next strip and the stage-1 output
        held is about one strip.
        """
        H = self.height
        while self._cores1 and self._rows >= min(H, self._cores1[0][1] + self._m1):
            a, b = self._cores1.pop(0)
            self._stage1(a, b)
            drop = max(0, (self._cores1[0][0] if self._cores1 else self._rows) - self._m1 - self._buf0)
            if drop:
                self._probs, self._valid = self._probs[:, drop:], self._valid[drop:]
                self._buf0 += drop
            end = H if self._s1done == H else self._s1done - self._m2
            if end > self._s2done:
                self._stage2(self._s2done, end)
                self._s2done = end
                drop = max(0, end - self._m2 - self._s2buf0)
                if drop:
                    self._M, self._P, self._V = self._M[drop:], self._P[drop:], self._V[drop:]
                    if self._N is not None:
                        self._N = self._N[drop:]
                    self._s2buf0 += drop

    # -- stage 1: mask and seeds -----------------------------------------------------------
    def _stage1(self, a: int, b: int) -> None:
        opt = self.options
        c0, c1 = max(0, a - self._m1), min(self.height, b + self._m1)
        assert c0 >= self._buf0 and c1 <= self._rows
        P = self._probs[:, c0 - self._buf0 : c1 - self._buf0]
        V = self._valid[c0 - self._buf0 : c1 - self._buf0]
        binary = building_mask(P[0], V, opt.threshold, opt.sieve_px)
        rows = slice(a - c0, b - c0)
        cols = slice(self.wx0 - self.cx0, self.wx1 - self.cx0)
        M = binary[rows, cols]
        if opt.separate:
            self._N = np.concatenate([self._N, self._seeds(binary, P, a, b, rows, cols)])
        self._M = np.concatenate([self._M, M])
        self._P = np.concatenate([self._P, P[0, rows, cols]])
        self._V = np.concatenate([self._V, V[rows, cols]])
        self._s1done = b

    def _seeds(self, binary: np.ndarray, P: np.ndarray, a: int, b: int, rows: slice, cols: slice) -> np.ndarray:
        """Seed nodes of the core's rows over the widened columns (int32, 0 = none; id - band base); step 3."""
        from scipy import ndimage  # here, not at import: it costs 0.2 s of start-up

        opt = self.options
        seed = seed_pixels(binary, P[0], P[1] if self._cuts else None, opt.seed_threshold, opt.seed_erode_px)
        seed = drop_small_components(seed, opt.seed_min_px)
        lab, n = ndimage.label(seed[rows, cols])
        base = self._next_id - 1
        self._next_id += n
        if self._next_id - self._nbase >= 2**31:
            raise ValueError("more than 2**31 seeds and pieces in one column band")
        N = np.where(lab > 0, lab + (base - self._nbase), 0).astype(np.int32)
        if not n:
            self._prev_seed_bottom = None if b >= self.height else np.zeros(N.shape[1], dtype=np.int64)
            return N
        # members: last row, and last row within reach of the band's right side
        zone = max(0, self.x1 - self._m2 - 1 - self.wx0)  # from here on, the next band shares the seeds
        rmax = np.full(n + 1, -1, dtype=np.int64)
        if not self._last:
            sub = lab[:, zone:]
            r, _ = np.nonzero(sub)
            np.maximum.at(rmax, sub[sub > 0], r + a)
        for k, sl in enumerate(ndimage.find_objects(lab), start=1):
            comp = _Comp(None, 0.0, 0, None, self._k, a + sl[0].stop - 1)
            comp.rmax = int(rmax[k])
            self._comps[base + k] = comp
            self._parent[base + k] = base + k
            self._open.add(base + k)
        # one seed across the border with the previous core
        if self._prev_seed_bottom is not None:
            self._union_pairs(self._prev_seed_bottom, self._glob(N[0]))
        self._prev_seed_bottom = self._glob(N[-1]) if b < self.height else None
        # the same seed pixels, labelled by the band on the left
        if self._seed_left is not None:
            lr, lc, ln = self._seed_left
            i, j = np.searchsorted(lr, a), np.searchsorted(lr, b)
            if j > i:
                here = self._glob(N[lr[i:j] - a, lc[i:j] - self.wx0])
                ok = here > 0  # always: both bands see the exact seeds there
                self._union_pairs(ln[i:j][ok], here[ok])
        # and the pixels the band on the right will label again
        if not self._last:
            q0, q1 = max(self.wx0, self.x1 - self._m2), self.wx1
            r, c = np.nonzero(N[:, q0 - self.wx0 : q1 - self.wx0])
            if r.size:
                self._seed_right.append((r + a, c + q0, self._glob(N[r, c + q0 - self.wx0])))
        return N

    def _glob(self, n: np.ndarray) -> np.ndarray:
        """Stored seed nodes (offsets from the band's first id) as global ids, 0 staying 0."""
        return np.where(n > 0, n.astype(np.int64) + self._nbase, 0)

    def _union_pairs(self, p: np.ndarray, q: np.ndarray) -> None:
        """Union ``p[i]`` with ``q[i]`` wherever both are non-zero."""
        both = (p > 0) & (q > 0)
        if both.any():
            for u, v in np.unique(np.stack([p[both], q[both]], axis=1), axis=0):
                self._union(int(u), int(v))

    # -- stage 2: instances and polygons -----------------------------------------------------
    def _stage2(self, a: int, b: int) -> None:
        from scipy import ndimage

        opt = self.options
        c0, c1 = max(0, a - self._m2), min(self.height, b + self._m2)
        assert c0 >= self._s2buf0 and c1 <= self._s1done
        o0, o1 = c0 - self._s2buf0, c1 - self._s2buf0
        M = self._M[o0:o1]
        rows = slice(a - c0, b - c0)
        xs, xe = self.x0 - self.wx0, self.x1 - self.wx0
        core = M[rows, xs:xe]
        grown = None
        if opt.separate and core.any():
            grown = self._grow(M, self._N[o0:o1], rows, xs, xe)
        labels, nu, nodes = label_instances(core, grown)
        nodes = nodes.astype(np.int64) + self._nbase
        n = nu + len(nodes)
        base = self._next_id - 1
        self._next_id += n
        new_ids = []
        if n:
            totals, counts = label_sums(labels, self._P[o0:o1][rows, xs:xe], n)
            V = self._V[o0:o1]
            nodata = (
                nodata_near(labels, ~V, (a - c0, xs), (c0, self.wx0), opt.nodata_reach)
                if (opt.nodata_reach and not V.all()) else {}
            )
            for lab, sl in enumerate(ndimage.find_objects(labels), start=1):
                gid = base + lab
                self._comps[gid] = _Comp([], float(totals[lab]), int(counts[lab]), nodata.get(lab), self._k,
                                         a + sl[0].stop - 1)
                self._parent[gid] = gid
                new_ids.append(gid)
            for value, polygon in label_polygons(labels, a, self.x0):
                self._comps[base + value].geoms.append(polygon)
            for k, node in enumerate(nodes):  # grown pieces belong to their seed
                self._union(base + nu + 1 + k, int(node))

            def unreached_ids(lab: np.ndarray) -> np.ndarray:  # a row or column of the core
                return np.where((lab > 0) & (lab <= nu), lab.astype(np.int64) + base, 0)

            if self._left is not None:  # unreached regions continuing from the band on the left
                self._union_pairs(self._left[a:b], unreached_ids(labels[:, 0]))
            if self._right is not None:  # what the band on the right must see
                self._right[a:b] = unreached_ids(labels[:, -1])
                col = labels[:, -1]
                for lab in np.unique(col[col > 0]):
                    self._comps[base + int(lab)].rmax = a + int(np.flatnonzero(col == lab)[-1])
            if self._prev_bottom is not None:  # unreached regions continuing from the core above
                self._union_pairs(self._prev_bottom, unreached_ids(labels[0]))
            bottom = unreached_ids(labels[-1])
        else:
            bottom = np.zeros(xe - xs, dtype=np.int64)
        self._prev_bottom = bottom if b < self.height else None
        self._open.update(new_ids)
        self._close(b)

    def _grow(self, M: np.ndarray, N: np.ndarray, rows: slice, xs: int, xe: int) -> np.ndarray:
        """Seed labels grown over ``M`` (step 4), for the core only; crops to where ``M`` is, for speed."""
        return grow_seeds(M, N, self.options.reach_px)[rows, xs:xe]

    def _close(self, b: int) -> None:
        """Finish every group that nothing below ``b`` (or in the next band) can join any more."""
        below = b < self.height

        def member_open(gid: int) -> bool:
            c = self._comps[gid]
            if c.band == self._k:
                return (below and c.last >= b - 1) or (c.rmax >= 0 and not self._last)
            if c.band == self._k - 1:  # waits for this band to reach the rows it shares
                return c.rmax >= b
            return False

        groups: dict[int, list[int]] = {}
        for gid in self._open:
            groups.setdefault(self._find(gid), []).append(gid)
        still_open: set[int] = set()
        done = []
        for members in groups.values():
            if any(member_open(g) for g in members):
                still_open.update(members)
            else:
                done.append(members)
        self._open = still_open
        if done:
            self._finalize(done)

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
            parts = [p for c in comps if c.geoms for p in c.geoms]
            if not parts:  # seeds only: their pixels went out with their pieces' group
                continue
            geom = parts[0] if len(parts) == 1 else shapely.union_all(parts)
            total = sum(c.total for c in comps)
            count = sum(c.count for c in comps)
            pieces = [c.nodata for c in comps if c.nodata is not None]
            geoms.append(geom)
            scores.append(total / max(count, 1))
            nodata.append(shapely.union_all(pieces) if pieces else None)
        if geoms:
            crs_geoms, area, score = finish_buildings(np.array(geoms, dtype=object), np.array(scores, dtype=np.float64),
                                                      nodata, self.options, self.transform, self.area)
            if len(crs_geoms):
                self.n_polygons += len(crs_geoms)
                self._emit(crs_geoms, area, score)
