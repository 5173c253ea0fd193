"""Probability strips to building polygons, block by block, without ever holding the whole mask.

This module is the streaming driver, :class:`StripVectorizer`; the steps it runs are pure
functions in :mod:`.stages` (steps 1-6), the joining of pieces in :mod:`.merge` (step 7),
and the finishing of buildings in :mod:`.finish` (step 8). Each step's argument for why the
streamed result is exact stands with its code; this docstring puts them together.

Rows arrive top to bottom in strips (the blocks, or *cores*). Every core goes through two
stages, each run once enough rows below it have arrived to give it context; the result is
**identical to running both stages on the whole raster at once**, so a block border can
neither split nor merge a building. Stage 2 runs right behind stage 1, on the rows stage 1
finished ``m2`` rows ago, so only about one strip of stage-1 output is ever held.

Stage 1, building mask and seeds (context ``m1`` = ``VectorizeOptions.seed_margin`` rows
above and below the core), in two passes so that no row is sieved more than once: pass 1a
makes the core's mask from ``m1a`` = ``mask_margin`` (the sieve's reach) rows of
probabilities around it, pass 1b its seeds from the mask rows that pass 1a has made, ``m1b``
= ``seed_reach`` rows around it (so pass 1b runs ``m1b`` rows behind pass 1a). Each pass's
output on its core is exact, so the seeds see exactly the whole raster's mask; one pass with
``m1`` rows of probabilities gave the same, but sieved every row about ``1 + 2 m1 / core``
times (2.6 with 384-row cores and seeds of 256 px).

1. **Threshold**: ``mask = (p_building >= threshold) & valid``.
2. **Sieve**: specks and pin-holes smaller than ``sieve_px`` pixels are removed; exact given
   ``sieve_px`` rows of context (:func:`.stages.building_mask`). The result is ``M`` (pass 1a).
3. **Seeds** (only with ``separate``; pass 1b): confident building interiors,
   ``S = M & (p_building * (1 - p_border) * (1 - p_contact) >= seed_threshold)`` (with a
   building-only model: ``M & (p_building >= seed_threshold)`` eroded by ``seed_erode_px``
   pixels), minus its 4-connected components smaller than ``seed_min_px`` pixels
   (:func:`.stages.seed_pixels`, :func:`.stages.drop_small_components`; each exact given
   its own reach of context). ``m1`` is the sum of the three reaches. A *seed* is a
   4-connected component of ``S``; the seed pixels of each core are labelled and every
   label gets a union-find node (:meth:`StripVectorizer._label_seeds`).

Stage 2, instances (context ``m2`` = ``instance_margin`` >= ``reach_px`` rows of stage-1
output):

4. **Grow** (only with ``separate``): every pixel of ``M`` takes the seed of the nearest
   seed pixel, by geodesic distance inside ``M``, up to ``reach_px`` steps: a marker-based
   watershed on a flat relief, whose labels depend only on ``M`` and ``S`` within
   ``reach_px`` pixels, so ``m2 >= reach_px`` rows of context give exactly the whole-raster
   labels (:func:`.stages.grow_seeds`).
5. **Instances**: a grown region is one building; pixels of ``M`` that no seed reaches form
   buildings of their own, one per 4-connected component (:func:`.stages.label_instances`).
6. **Label and polygonise** each core, in pixel coordinates, each polygon with its label's
   probability sum and pixel count (:func:`.stages.label_polygons`, :func:`.stages.label_sums`).
7. **Merge across cores** (and column bands): union-find over pieces and seed nodes, joined
   at :class:`.merge.Seam` s; a class is finished once nothing below or to the right can
   join it (:meth:`StripVectorizer._still_open`), and its pieces are unioned (:mod:`.merge`).
8. **Finish a building**: simplify or square, subtract nearby no-data, to the raster CRS,
   ground area, min-area (:func:`.finish.finish_buildings`).

Column bands (rasters wider than a few thousand pixels) work the same way sideways: each
column band is streamed top to bottom from strips with ``m1 + m2`` context columns on each
side, its stage 1 labels seeds over its columns widened by ``m2``, and the pieces and seeds
of neighbouring column bands are joined at seams (:mod:`.merge` has the argument).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from affine import Affine

from .blocks import ColumnBand, RowBuffer
from .finish import GroundArea, finish_buildings, nodata_near
from .merge import CoreSeams, OpenPieces, Piece, assemble
from .options import VectorizeOptions
from .rows import HeldRows
from .stages import (
    CUT_CHANNELS,
    building_mask,
    drop_small_components,
    grow_seeds,
    label_instances,
    label_polygons,
    label_sums,
)

__all__ = ["StripVectorizer"]

Emit = Callable[[np.ndarray, np.ndarray, np.ndarray], None]


class StripVectorizer:
    """Turn consecutive probability strips into building polygons in the raster CRS.

    Call :meth:`add_rows` with strips that cover rows ``0..height`` in order, then
    :meth:`finish`. Strips are ``(n, width)`` building probabilities, or ``(C, n, width)``
    with the channels of ``options.channels``. Finished buildings go to
    ``emit(geoms, area_m2, score)`` in batches (shapely Polygons in the raster CRS, float64
    areas, float64 scores).

    Column bands: :meth:`begin_band` ``(x0, x1, cx0, cx1, last)`` vectorises the columns
    ``[x0, x1)`` from strips that span ``[cx0, cx1)`` (at least ``options.margin`` context
    columns on both sides, where the raster has them), column band after column band from
    left to right, each top to bottom. Buildings reaching a column band's right side stay
    open until the next column band has reached their rows (see :mod:`.merge`).

    ``levels``: strips are uint8 levels as ``--probs`` stores them, held as such (:mod:`.rows`:
    a quarter of the memory, the same polygons as float32 strips of the dequantised levels).
    """

    def __init__(self, height: int, width: int, transform: Affine, crs, options: VectorizeOptions, emit: Emit,
                 *, levels: bool = False):
        self.height, self.width = int(height), int(width)
        self.transform = transform
        self.options = options
        self.area = GroundArea(crs)
        self._emit = emit
        self.n_polygons = 0
        self._mask_context = options.mask_margin  # m1a: context rows of probabilities for the mask
        self._seed_context = options.seed_reach  # m1b: context rows of mask for the seeds (m1a + m1b = m1)
        self._stage2_context = options.instance_margin  # m2: context rows (and columns) of stage-1 output
        self._n_channels = len(options.channels)
        # stage 1 keeps building and, when separating, the product of (1 - p) over the cut
        # channels: all the seed score needs, in two channels whatever the model gives
        self._cut_channels = [k for k, c in enumerate(options.channels) if c in CUT_CHANNELS] if options.separate else []
        self._held = HeldRows(levels, self._cut_channels)
        self._pieces = OpenPieces()
        self._col_band: ColumnBand | None = None  # the current one, or the last one
        self._in_col_band = False
        # unreached pieces meet across column-band borders, seed nodes on the columns both label
        self._piece_seams = CoreSeams((0, 1))
        self._seed_seams = CoreSeams((0, 0))

    # -- input -------------------------------------------------------------------------
    def begin_band(self, x0: int, x1: int, cx0: int | None = None, cx1: int | None = None, last: bool = True) -> None:
        """Start the column band ``[x0, x1)``, fed with strips of the columns ``[cx0, cx1)`` (default ``[x0, x1)``)."""
        if self._in_col_band:
            self.end_band()
        cx0 = x0 if cx0 is None else cx0
        cx1 = x1 if cx1 is None else cx1
        if not (0 <= cx0 <= x0 < x1 <= cx1 <= self.width):
            raise ValueError(f"bad band columns {(x0, x1, cx0, cx1)} for width {self.width}")
        m = self.options.margin
        if cx0 > max(0, x0 - m) or cx1 < min(self.width, x1 + m):
            raise ValueError(f"band {(x0, x1)} needs {m} context columns on each side, got {(cx0, cx1)}")
        m2, prev = self._stage2_context, self._col_band
        # a middle column band (neither first nor last) must keep its two neighbours' widened columns apart
        if self.options.separate and prev is not None and prev.index >= 1 and prev.x1 - prev.x0 < 2 * m2:
            raise ValueError(f"band {(prev.x0, prev.x1)} is narrower than {2 * m2} px (2 * instance margin)")
        band = ColumnBand(0 if prev is None else prev.index + 1, x0, x1, cx0, cx1,
                          max(0, x0 - m2), min(self.width, x1 + m2), last)
        self._col_band = band
        self._piece_seams = self._piece_seams.next_col_band(joins_left=x0 > 0)
        self._seed_seams = self._seed_seams.next_col_band(joins_left=x0 > 0)
        # stage-1 input, the strips' rows as held (.rows): building probability, validity, the seeds' cut
        held = self._held.fields()
        self._stage1_input = RowBuffer(cx1 - cx0, **held)
        # pass 1a's output: the mask of the same rows and columns (pass 1b reads both buffers)
        self._masks = RowBuffer(cx1 - cx0, mask=bool)
        # stage-1 output over the widened columns (rows [0, its end_row) are through stage 1);
        # seed nodes as int32 offsets from the column band's first id
        seeds = {"seeds": np.int32} if self.options.separate else {}
        self._stage2_input = RowBuffer(band.wx1 - band.wx0, mask=bool, p_building=held["p_building"], valid=bool,
                                       **seeds)
        self._seed_id_base = self._pieces.next_id - 1
        self._stage2_end = 0  # rows [0, _stage2_end) are through stage 2
        self._cores_waiting: list[tuple[int, int]] = []  # strips received, not yet through pass 1a
        self._cores_masked: list[tuple[int, int]] = []  # through pass 1a, not yet through pass 1b
        self._in_col_band = True

    def end_band(self) -> None:
        """Finish the current column band; it must have been given all its rows."""
        received = self._stage1_input.end_row
        if received != self.height:
            raise ValueError(f"vectoriser got {received} of {self.height} rows")
        self._run()
        assert not self._cores_waiting and not self._cores_masked and self._stage2_end == self.height
        self._in_col_band = False

    def add_rows(self, row0: int, probs: np.ndarray, valid: np.ndarray) -> None:
        """Rows ``[row0, row0 + n)``: ``probs`` ``(n, w)`` (building) or ``(C, n, w)``, uint8 levels with
        ``levels``; ``valid`` ``(n, w)``."""
        if not self._in_col_band:
            if self._col_band is not None:
                raise ValueError("add_rows after the band ended; call begin_band")
            self.begin_band(0, self.width)
        if row0 != self._stage1_input.end_row:
            raise ValueError(f"strip starts at row {row0}, expected {self._stage1_input.end_row}")
        if probs.ndim == 2:
            probs = probs[None]
        n = probs.shape[1]
        if n == 0:
            return
        band = self._col_band
        if probs.shape != (self._n_channels, n, band.cx1 - band.cx0) or valid.shape != probs.shape[1:]:
            raise ValueError(
                f"strip of shape {probs.shape} does not match {self._n_channels} channel(s) of the raster (or band) width"
            )
        self._stage1_input.append(**self._held.strip(probs, valid))
        self._cores_waiting.append((row0, row0 + n))
        self._run()

    def finish(self) -> None:
        """End the last column band (the whole raster as one, if none was begun) and emit what is left."""
        if self._in_col_band or self._col_band is None:
            if self._col_band is None:
                self.begin_band(0, self.width)
            self.end_band()
        # nothing is left open after a last column band; after one begun with last=False, what
        # is left (pieces on its right side) is finished here as one group
        leftover = self._pieces.take_all()
        if leftover:
            self._finish([leftover])

    # -- scheduling ----------------------------------------------------------------------
    def _run(self) -> None:
        """Run stage 1's two passes on every core with their context, and stage 2 right behind them.

        Pass 1b runs on a core once pass 1a has masked ``m1b`` rows below it; stage 2 works on
        the rows stage 1 has finished up to ``m2`` rows ago (the core shifted up by ``m2``),
        so it never waits for the next strip and the stage-1 output held is about one strip.
        Rows that no later core's context reaches are released.
        """
        H, m1a = self.height, self._mask_context
        while self._cores_waiting and self._stage1_input.end_row >= min(H, self._cores_waiting[0][1] + m1a):
            a, b = self._cores_waiting.pop(0)
            self._stage1_mask(a, b)
            self._cores_masked.append((a, b))
            self._run_seeds()

    def _run_seeds(self) -> None:
        """Pass 1b on every masked core with ``m1b`` mask rows below it, each followed by stage 2."""
        H, m1a, m1b, m2 = self.height, self._mask_context, self._seed_context, self._stage2_context
        while self._cores_masked and self._masks.end_row >= min(H, self._cores_masked[0][1] + m1b):
            a, b = self._cores_masked.pop(0)
            self._stage1_seeds(a, b)
            # the next cores of pass 1a and 1b (the one pass 1a makes next starts where the masks end)
            next_mask = self._cores_waiting[0][0] if self._cores_waiting else self._stage1_input.end_row
            next_seeds = self._cores_masked[0][0] if self._cores_masked else self._masks.end_row
            self._masks.release_before(next_seeds - m1b)
            self._stage1_input.release_before(min(next_mask - m1a, next_seeds - m1b))
            stage1_end = self._stage2_input.end_row
            end = H if stage1_end == H else stage1_end - m2
            if end > self._stage2_end:
                self._stage2(self._stage2_end, end)
                self._stage2_end = end
                self._stage2_input.release_before(end - m2)

    def _with_context(self, held: RowBuffer, a: int, b: int, context_rows: int) -> tuple[int, dict[str, np.ndarray]]:
        """The core rows ``[a, b)`` of ``held`` with ``context_rows`` above and below (within the raster),
        and the raster row they start at."""
        ctx_row0 = max(0, a - context_rows)
        return ctx_row0, held.rows(ctx_row0, min(self.height, b + context_rows))

    # -- stage 1: mask (pass 1a) and seeds (pass 1b) ---------------------------------------
    def _stage1_mask(self, a: int, b: int) -> None:
        """Steps 1-2 on the core rows ``[a, b)`` (all the strips' columns): its mask, for pass 1b."""
        opt = self.options
        ctx_row0, ctx = self._with_context(self._stage1_input, a, b, self._mask_context)
        mask = building_mask(self._held.p_building(ctx["p_building"]), ctx["valid"], opt.threshold, opt.sieve_px)
        self._masks.append(mask=mask[a - ctx_row0 : b - ctx_row0])

    def _stage1_seeds(self, a: int, b: int) -> None:
        """Step 3 on the core rows ``[a, b)``: its mask and seed nodes over the widened columns, for stage 2."""
        opt, band = self.options, self._col_band
        ctx_row0, ctx = self._with_context(self._stage1_input, a, b, self._seed_context)
        ctx["mask"] = self._masks.rows(ctx_row0, ctx_row0 + len(ctx["valid"]))["mask"]
        core_widened = slice(a - ctx_row0, b - ctx_row0), slice(band.wx0 - band.cx0, band.wx1 - band.cx0)
        out = dict(mask=ctx["mask"][core_widened], p_building=ctx["p_building"][core_widened],
                   valid=ctx["valid"][core_widened])
        if opt.separate:
            seeds = self._held.seed_pixels(ctx, opt.seed_threshold, opt.seed_erode_px)
            out["seeds"] = self._label_seeds(drop_small_components(seeds, opt.seed_min_px)[core_widened], a, b)
        self._stage2_input.append(**out)

    def _label_seeds(self, seeds: np.ndarray, a: int, b: int) -> np.ndarray:
        """Seed nodes of the core rows ``[a, b)`` over the widened columns: a node per 4-connected component.

        Returns them as int32 offsets from the column band's first id (0 = none), after
        joining them to the nodes of the same seeds above and in the column band on the left
        (and recording them for the next core and column band).
        """
        from scipy import ndimage

        lab, n = ndimage.label(seeds)
        base = self._pieces.new_ids(n)
        if self._pieces.next_id - self._seed_id_base >= 2**31:
            raise ValueError("more than 2**31 seeds and pieces in one column band")
        nodes = np.where(lab > 0, lab + (base - self._seed_id_base), 0).astype(np.int32)
        if n:
            self._add_seed_nodes(lab, n, base, a)
        band = self._col_band
        right_from = None if band.last else max(band.wx0, band.x1 - self._stage2_context)
        self._seed_seams.join(self._pieces.classes, nodes, a, band.wx0, self._seed_ids, right_from)
        return nodes

    def _seed_ids(self, offsets: np.ndarray) -> np.ndarray:
        """Stored seed nodes (offsets from the column band's first id) as global ids, 0 staying 0."""
        return np.where(offsets > 0, offsets.astype(np.int64) + self._seed_id_base, 0)

    def _add_seed_nodes(self, lab: np.ndarray, n: int, base: int, a: int) -> None:
        """A :class:`Piece` without polygons for each seed label ``1..n`` of the core starting at row ``a``."""
        from scipy import ndimage

        band = self._col_band
        # last row of each seed in reach of the next column band, which labels the columns from
        # x1 - m2 on again (and joins its nodes there); counted from one column before, which can
        # only keep a class open longer
        last_shared = np.full(n + 1, -1, dtype=np.int64)
        if not band.last:
            near_right = lab[:, max(0, band.x1 - self._stage2_context - 1 - band.wx0) :]
            r, _ = np.nonzero(near_right)
            np.maximum.at(last_shared, near_right[near_right > 0], r + a)
        for k, sl in enumerate(ndimage.find_objects(lab), start=1):
            node = Piece(None, 0.0, 0, None, band.index, a + sl[0].stop - 1, int(last_shared[k]))
            self._pieces.add(base + k, node)

    # -- stage 2: instances and polygons -----------------------------------------------------
    def _stage2(self, a: int, b: int) -> None:
        """Steps 4-7 on the core rows ``[a, b)``, then finish the buildings nothing can join any more."""
        opt, band = self.options, self._col_band
        ctx_row0, ctx = self._with_context(self._stage2_input, a, b, self._stage2_context)
        core = slice(a - ctx_row0, b - ctx_row0), slice(band.x0 - band.wx0, band.x1 - band.wx0)
        core_mask = ctx["mask"][core]
        grown = None
        if opt.separate and core_mask.any():
            grown = self._grow_core(ctx["mask"], ctx["seeds"], core)
        labels, n_unreached, seed_offsets = label_instances(core_mask, grown)
        n = n_unreached + len(seed_offsets)
        base = self._pieces.new_ids(n)
        if n:
            self._add_pieces(labels, n, base, ctx, core, ctx_row0)
            for k, offset in enumerate(seed_offsets):  # grown pieces belong to their seed
                self._pieces.classes.union(base + n_unreached + 1 + k, int(offset) + self._seed_id_base)

        def unreached_ids(lab: np.ndarray) -> np.ndarray:  # grown pieces join through their seeds instead
            return np.where((lab > 0) & (lab <= n_unreached), lab.astype(np.int64) + base, 0)

        right_from = None if band.last else band.x1 - 1
        self._piece_seams.join(self._pieces.classes, labels, a, band.x0, unreached_ids, right_from)
        self._close(b)

    def _grow_core(self, mask: np.ndarray, seeds: np.ndarray, core: tuple[slice, slice]) -> np.ndarray:
        """Seed labels grown over the context's ``mask`` (step 4), for the ``core`` only."""
        return grow_seeds(mask, seeds, self.options.reach_px)[core]

    def _add_pieces(self, labels: np.ndarray, n: int, base: int, ctx: dict[str, np.ndarray],
                    core: tuple[slice, slice], ctx_row0: int) -> None:
        """A :class:`Piece` for each label ``1..n`` of the core: polygons, sums, the no-data near it."""
        from scipy import ndimage

        opt, band = self.options, self._col_band
        a = ctx_row0 + core[0].start
        totals, counts = label_sums(labels, self._held.p_building(ctx["p_building"][core]), n)
        valid = ctx["valid"]
        nodata = {}
        if opt.nodata_reach and not valid.all():
            nodata = nodata_near(labels, ~valid, (core[0].start, core[1].start), (ctx_row0, band.wx0),
                                 opt.nodata_reach)
        for lab, sl in enumerate(ndimage.find_objects(labels), start=1):
            piece = Piece([], float(totals[lab]), int(counts[lab]), nodata.get(lab), band.index, a + sl[0].stop - 1)
            self._pieces.add(base + lab, piece)
        for lab, polygon in label_polygons(labels, a, band.x0):
            self._pieces.pieces[base + lab].polygons.append(polygon)
        if not band.last:  # the last row where a piece reaches the column band's last column
            right = labels[:, -1]
            for lab in np.unique(right[right > 0]):
                self._pieces.pieces[base + int(lab)].last_shared_row = a + int(np.flatnonzero(right == lab)[-1])

    # -- closing -----------------------------------------------------------------------------
    def _close(self, b: int) -> None:
        """Finish every building that nothing below row ``b`` (or in the next column band) can join any more."""
        finished = self._pieces.close(lambda piece: self._still_open(piece, b))
        if finished:
            self._finish(finished)

    def _still_open(self, piece: Piece, b: int) -> bool:
        """Whether rows or columns not through stage 2 yet may join ``piece``, once rows ``[.., b)`` are.

        A piece (or seed node) of this column band: the next core may, if it touches the
        core's last row (seed nodes are ahead of the pieces: a seed not yet fully joined keeps
        its class open), and the next column band may, if it reaches the columns they share.
        One of the column band on the left that reaches the columns it shares with this one:
        this column band may, until it has passed that row.
        """
        band = self._col_band
        if piece.col_band == band.index:
            return (b < self.height and piece.last_row >= b - 1) or (piece.last_shared_row >= 0 and not band.last)
        if piece.col_band == band.index - 1:
            return piece.last_shared_row >= b
        return False

    def _finish(self, groups: list[list[Piece]]) -> None:
        """Assemble each group of pieces into a building, finish them and emit what is kept."""
        geoms, scores, nodata = assemble(groups)
        if not len(geoms):
            return
        crs_geoms, area, score = finish_buildings(geoms, scores, nodata, self.options, self.transform, self.area)
        if len(crs_geoms):
            self.n_polygons += len(crs_geoms)
            self._emit(crs_geoms, area, score)
