"""Step 7 of :mod:`geounet.vectorize.stream`: joining the pieces of a building across cores and column bands.

**Members.** Every polygon piece of a core (one label of :func:`.stages.label_instances`)
and every seed node (one 4-connected component of a core's seed pixels, labelled over its
column band's widened columns) is a :class:`Piece` with an integer id in a union-find
(:class:`UnionFind`). Ids only grow, and a class's root is always its smallest id.

**Joins.** A grown piece is joined to the seed node its pixels were grown from, so all
pieces of one seed meet in one class, whichever core they lie in, and pieces of two
different seeds never do, even where they touch. The nodes of one seed are joined where
its pixels touch across a core border, so each class of seed nodes is (once the rows below
have been seen) one seed of the whole raster. An unreached piece is joined to the
unreached pieces it touches across a core border or a column-band border, as regions
always were. All of these are :class:`Seam` joins.

**Column bands.** A column band's stage 1 labels seeds over its columns widened by ``m2``
(``instance_margin``) on both sides, the seed nodes of two neighbouring column bands are
joined on every pixel their widened columns share, and stage 2 only ever looks at its own
column band's seeds. Every seed pixel is thus labelled by each column band whose widened
columns contain it, and any two 4-adjacent seed pixels lie together in one column band's
widened columns, so the nodes of one seed are all joined. Column bands other than the
first and the last must be at least ``2 * m2`` wide, so that only neighbouring column
bands share columns.

**Closing.** A class is finished once nothing below or to the right can join it (the
driver's rule: below, none of its members touches the last row of the latest core; seeds
are ahead of the pieces, so a seed not yet fully joined keeps its class open; to the
right, none reaches columns the next column band shares, or that column band has passed
their rows); :meth:`OpenPieces.close` hands it over and :func:`assemble` unions its pieces
into one polygon and adds their sums and counts, so the ``score`` (mean building
probability over the building's pixels) is exact too. Each building is 4-connected (a
grown region is its seed plus 4-connected chains into it), so the union is one polygon.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import shapely

ToIds = Callable[[np.ndarray], np.ndarray]  # labels of a block to global ids (int64, 0: none)


@dataclass(slots=True)
class Piece:
    """A union-find member: a polygon piece of one core, or a seed node (``polygons`` None).

    ``last_row`` is the last raster row it covers; ``last_shared_row`` the last raster row
    where it lies in columns the next column band can join it on (-1: none).
    """

    polygons: list | None
    prob_sum: float
    pixel_count: int
    nodata: object | None
    col_band: int
    last_row: int
    last_shared_row: int = -1


class UnionFind:
    """Disjoint classes of integer ids; the root of a class is its smallest id, whatever the order of unions."""

    def __init__(self) -> None:
        self._parent: dict[int, int] = {}

    def add(self, x: int) -> None:
        self._parent[x] = x

    def remove(self, members: list[int]) -> None:
        """Forget ``members``: a whole class, so that no other id points to them."""
        for x in members:
            del self._parent[x]

    def find(self, x: int) -> int:
        root = x
        while self._parent[root] != root:
            root = self._parent[root]
        while self._parent[x] != root:
            self._parent[x], x = root, self._parent[x]
        return root

    def union(self, p: int, q: int) -> None:
        rp, rq = self.find(p), self.find(q)
        if rp != rq:
            self._parent[max(rp, rq)] = min(rp, rq)

    def union_pairs(self, p: np.ndarray, q: np.ndarray) -> None:
        """Union ``p[i]`` with ``q[i]`` wherever both are non-zero."""
        both = (p > 0) & (q > 0)
        if both.any():
            for u, v in np.unique(np.stack([p[both], q[both]], axis=1), axis=0):
                self.union(int(u), int(v))


class Seam:
    """Where two labelled blocks meet: ids the earlier block leaves, joined later to the later block's.

    The earlier block :meth:`record` s its non-zero ids with their raster pixels; the later
    block, labelled afterwards, :meth:`join` s its own ids to them at the pixels ``step`` =
    (rows, columns) away:

    - ``(1, 0)``, a row seam: a core's last row against the next core's first row;
    - ``(0, 1)``, a column-band seam: a column band's last column against the next column
      band's first column (unreached pieces);
    - ``(0, 0)``, a column-band overlap: the seed pixels in the widened columns two
      neighbouring column bands share, labelled by both (seed nodes).

    Blocks are label arrays; ``to_ids`` maps their labels to global ids (0: none, or not
    joined at this seam). Only non-zero ids are kept, so a seam holds little more than the
    pixels it joins. Both blocks go top to bottom, so the recorded ids are in row order: the
    later block finds those facing its rows by bisection, and forgets the rows it has passed.
    """

    def __init__(self, step: tuple[int, int]):
        self.step = step
        self._recorded: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (rows, cols, ids), rows ascending

    def record(self, block: np.ndarray, row0: int, col0: int, to_ids: ToIds) -> None:
        """Keep the ids of ``block``, a 2-D label array whose first pixel is raster (``row0``, ``col0``)."""
        ids = to_ids(block)
        r, c = np.nonzero(ids)
        if r.size:
            self._recorded.append((r + row0, c + col0, ids[r, c]))

    def join(self, union_find: UnionFind, block: np.ndarray, row0: int, col0: int, to_ids: ToIds) -> None:
        """Union the ids recorded across from ``block`` (as in :meth:`record`) with its own ids there."""
        dr, dc = self.step
        rows, cols, ids = self._take(row0 - dr, row0 + len(block) - dr)
        if rows.size:
            union_find.union_pairs(ids, to_ids(block[rows + dr - row0, cols + dc - col0]))

    def _take(self, row0: int, row1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The recorded entries of rows ``[row0, row1)``; entries above ``row1`` are forgotten."""
        if not self._recorded:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        if len(self._recorded) > 1:
            self._recorded = [tuple(np.concatenate(x) for x in zip(*self._recorded))]
        rows, cols, ids = self._recorded[0]
        i, j = np.searchsorted(rows, row0), np.searchsorted(rows, row1)
        self._recorded = [(rows[j:], cols[j:], ids[j:])]
        return rows[i:j], cols[i:j], ids[i:j]


class CoreSeams:
    """The seams around the cores of a column band, for one kind of ids (seed nodes, or unreached pieces).

    Written once for both kinds and for rows and columns alike: ``above``, the row seam with
    the previous core; ``left``, the seam with the column band on the left (what it
    recorded as its ``right``); ``right``, what this column band records for the next one.
    ``side_step`` is the step of the column-band seams: ``(0, 1)`` for pieces, which meet
    across the border, ``(0, 0)`` for seed nodes, which overlap.
    """

    def __init__(self, side_step: tuple[int, int], left: Seam | None = None):
        self.above = Seam((1, 0))
        self.left = Seam(side_step) if left is None else left
        self.right = Seam(side_step)

    def next_col_band(self, joins_left: bool) -> CoreSeams:
        """The seams of the next column band; ``joins_left``: it has this one on its left."""
        return CoreSeams(self.right.step, self.right if joins_left else None)

    def join(self, union_find: UnionFind, block: np.ndarray, row0: int, col0: int, to_ids: ToIds,
             right_from: int | None) -> None:
        """Join the ids of a core's ``block`` (first pixel raster (``row0``, ``col0``)) to those above and
        on the left; record its last row for the next core, and its columns from ``right_from`` on
        for the next column band (None: no column band follows)."""
        self.above.join(union_find, block, row0, col0, to_ids)
        self.above.record(block[-1:], row0 + len(block) - 1, col0, to_ids)
        self.left.join(union_find, block, row0, col0, to_ids)
        if right_from is not None:
            self.right.record(block[:, right_from - col0 :], row0, right_from, to_ids)


class OpenPieces:
    """The pieces and seed nodes of buildings not finished yet, by id, with their union-find classes."""

    def __init__(self) -> None:
        self.pieces: dict[int, Piece] = {}
        self.classes = UnionFind()
        self._open: set[int] = set()  # ids of every member of classes still open
        self._next_id = 1

    def new_ids(self, n: int) -> int:
        """Reserve ``n`` ids, ``base + 1 .. base + n``; returns ``base``."""
        base = self._next_id - 1
        self._next_id += n
        return base

    @property
    def next_id(self) -> int:
        return self._next_id

    def add(self, gid: int, piece: Piece) -> None:
        self.pieces[gid] = piece
        self.classes.add(gid)
        self._open.add(gid)

    def close(self, still_open: Callable[[Piece], bool]) -> list[list[Piece]]:
        """Take out every class none of whose members is ``still_open``; returns their members."""
        classes: dict[int, list[int]] = {}
        for gid in self._open:
            classes.setdefault(self.classes.find(gid), []).append(gid)
        open_members: set[int] = set()
        finished = []
        for members in classes.values():
            if any(still_open(self.pieces[g]) for g in members):
                open_members.update(members)
            else:
                finished.append(members)
        self._open = open_members
        return [self._take(members) for members in finished]

    def take_all(self) -> list[Piece]:
        """Take out every member still open, as one group."""
        members = self._take(sorted(self._open))
        self._open = set()
        return members

    def _take(self, members: list[int]) -> list[Piece]:
        pieces = [self.pieces.pop(g) for g in members]
        self.classes.remove(members)
        return pieces


def assemble(groups: list[list[Piece]]) -> tuple[np.ndarray, np.ndarray, list]:
    """One building a group of pieces: ``(outlines, scores, nodata)``, pixel coordinates.

    The pieces' polygons are unioned, their probability sums and pixel counts added
    (``score`` = sum / count), their no-data unioned (None: none near). A group of seed
    nodes only gives nothing: their pixels went out with their pieces' group.
    """
    geoms, scores, nodata = [], [], []
    for pieces in groups:
        parts = [p for c in pieces if c.polygons for p in c.polygons]
        if not parts:
            continue
        geom = parts[0] if len(parts) == 1 else shapely.union_all(parts)
        total = sum(c.prob_sum for c in pieces)
        count = sum(c.pixel_count for c in pieces)
        near = [c.nodata for c in pieces if c.nodata is not None]
        geoms.append(geom)
        scores.append(total / max(count, 1))
        nodata.append(shapely.union_all(near) if near else None)
    return np.array(geoms, dtype=object), np.array(scores, dtype=np.float64), nodata
