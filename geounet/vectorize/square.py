"""Squaring building outlines (``--regularize``): what a mapper's "square" gives (JOSM's Q, ESRI's
Regularize Building Footprint, right angles): every corner a right angle, the outline within about
the tolerance of the original.

:func:`regularize`, for each ring of a polygon (coordinates in ground units, the same along x and y):

1. Simplify the outline (Douglas-Peucker, ``tolerance``) so pixel stair-steps vanish.
2. Candidate axes: the dominant orientation (:func:`dominant_angle`: the length-weighted circular
   mean of the edge directions modulo 90 degrees, angles times 4 averaged as unit vectors and
   divided by 4, so parallel and perpendicular edges all vote for one axis), the minimum rotated
   rectangle's and the longest edge's. Each is tried (steps 3-5) and the squared outline that
   differs from the original by the smallest area wins; a building with a slanted wall or an
   irregular outline is often squared well only on one of them. Rotate the ring to the axis.
3. Diagonal edges (more than ``DIAGONAL_DEG`` off both axes) longer than ``2 * tolerance`` across
   become a Z-step through their midpoint (along, across, along), so squaring a cut corner or a
   slanted wall neither adds nor removes its triangle.
4. Every edge becomes horizontal or vertical (whichever it is closer to), at the position of its
   midpoint (y for a horizontal edge, x for a vertical one). Consecutive edges of one direction
   merge into one line at their length-weighted mean position as long as each stays within
   ``tolerance`` of that mean; an edge further off starts a new line of the same direction, joined
   to the previous one by a perpendicular step through their shared vertex (the step of an L,
   which a plain merge would flatten). Lines then alternate, and consecutive lines meet at
   right-angled corners.
5. Rotate back. A squared ring that crosses itself is made valid and its largest piece kept. A
   candidate counts only if it is valid and changes the area by at most ``max_area_change``; the
   first of these that has one wins: within ``2 * tolerance`` of the original outline at the
   tolerance, then at half of it (small buildings, where 0.5 m is much of a wall), then the same
   within ``MAX_SHIFT * tolerance`` (a wall 15 degrees off the axis moves its ends, as JOSM's and
   ESRI's squaring do; the bound keeps that to walls of a few metres); then the minimum rotated
   rectangle when its area is close enough; else the outline is left as it was: squaring must
   never invent or drop a building.

Holes are squared the same way in the polygon's frame (and dropped if they vanish).
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from shapely import affinity
from shapely.geometry import MultiPolygon, Polygon

__all__ = ["DIAGONAL_DEG", "MAX_SHIFT", "dominant_angle", "regularize", "square_ring"]

DIAGONAL_DEG = 25.0  # an edge this far (degrees) from both axes is a diagonal, squared as a Z-step
MAX_SHIFT = 3.0  # a squared outline stays within this many tolerances of the outline (1.5 m at 0.5 m)


def dominant_angle(ring: np.ndarray) -> float:
    """Dominant edge direction of a closed ring (N+1, 2), in radians within [0, pi/2)."""
    d = np.diff(ring, axis=0)
    lengths = np.hypot(d[:, 0], d[:, 1])
    ang = np.arctan2(d[:, 1], d[:, 0])
    c = np.sum(lengths * np.cos(4 * ang))
    s = np.sum(lengths * np.sin(4 * ang))
    return (math.atan2(s, c) / 4) % (math.pi / 2)


def _z_steps(pts: np.ndarray, tolerance: float) -> np.ndarray:
    """Vertices (N, 2) of an open ring with each long diagonal edge replaced by a Z-step (step 3)."""
    out = []
    tan = math.tan(math.radians(DIAGONAL_DEG))
    for p, q in zip(pts, np.roll(pts, -1, axis=0)):
        out.append(p)
        dx, dy = abs(q[0] - p[0]), abs(q[1] - p[1])
        if min(dx, dy) <= max(dx, dy) * tan or min(dx, dy) <= 2 * tolerance:
            continue
        m = (p + q) / 2
        out += [(m[0], p[1]), (m[0], q[1])] if dx >= dy else [(p[0], m[1]), (q[0], m[1])]
    return np.asarray(out, dtype=float)


def _lines(pts: np.ndarray, tolerance: float) -> list[tuple[bool, float]]:
    """Alternating axis-parallel lines ``(is_horizontal, position)`` of an open ring (step 4), or []."""
    nxt = np.roll(pts, -1, axis=0)
    d = nxt - pts
    n = len(pts)
    horizontal = np.abs(d[:, 0]) >= np.abs(d[:, 1])
    start = next((i for i in range(n) if horizontal[i] != horizontal[i - 1]), None)
    if start is None:
        return []
    lines: list[tuple[bool, float]] = []
    w_sum = p_sum = 0.0
    for k in range(n):
        i = (start + k) % n
        h = bool(horizontal[i])
        pos = (pts[i][1] + nxt[i][1]) / 2 if h else (pts[i][0] + nxt[i][0]) / 2
        w = max(float(np.hypot(*d[i])), 1e-9)
        if w_sum and lines[-1][0] == h and abs(pos - p_sum / w_sum) > tolerance:
            # same direction but off the current line: a perpendicular step at the shared vertex
            lines.append((not h, float(pts[i][0] if h else pts[i][1])))
            w_sum = 0.0
        if not w_sum or lines[-1][0] != h:
            lines.append((h, pos))
            w_sum, p_sum = 0.0, 0.0
        w_sum += w
        p_sum += w * pos
        lines[-1] = (h, p_sum / w_sum)
    return lines if len(lines) >= 4 and len(lines) % 2 == 0 else []


def square_ring(ring: np.ndarray, tolerance: float) -> np.ndarray | None:
    """Right-angled version (closed, (M+1, 2)) of a closed ring already rotated to its dominant axis, or None."""
    pts = np.asarray(ring, dtype=float)[:-1]
    if len(pts) < 4:
        return None
    lines = _lines(_z_steps(pts, tolerance), tolerance)
    if not lines:
        return None
    corners = []
    for k in range(len(lines)):
        (h1, p1), (_, p2) = lines[k], lines[(k + 1) % len(lines)]
        corners.append((p2, p1) if h1 else (p1, p2))
    corners.append(corners[0])
    return np.asarray(corners, dtype=float)


def _largest(geom) -> Polygon | None:
    """The largest polygon of ``geom`` made valid (None when it has none)."""
    parts = [p for p in shapely.get_parts(shapely.make_valid(geom)) if isinstance(p, Polygon) and p.area > 0]
    return max(parts, key=lambda p: p.area) if parts else None


def _squared(simple: Polygon, tolerance: float, theta: float) -> Polygon | None:
    """``simple`` squared in the frame rotated by ``theta`` and rotated back (steps 3-5), or None."""
    origin = simple.centroid
    rotated = affinity.rotate(simple, -theta, origin=origin, use_radians=True)
    shell = square_ring(np.asarray(rotated.exterior.coords), tolerance)
    if shell is None:
        return None
    holes = [h for h in (square_ring(np.asarray(i.coords), tolerance) for i in rotated.interiors)
             if h is not None and Polygon(h).area > 0]
    candidate = Polygon(shell, holes)
    if not candidate.is_valid:
        candidate = Polygon(shell)
        if not candidate.is_valid:
            candidate = _largest(candidate)
            if candidate is None:
                return None
    return affinity.rotate(candidate, theta, origin=origin, use_radians=True)


def _orientations(simple: Polygon, poly: Polygon) -> list[float]:
    """Candidate axes (radians in [0, pi/2)): the dominant angle, the minimum rotated rectangle's, the longest edge's."""
    ring = np.asarray(simple.exterior.coords)
    d = np.diff(ring, axis=0)
    longest = d[np.argmax(np.hypot(d[:, 0], d[:, 1]))]
    rect = np.asarray(poly.minimum_rotated_rectangle.exterior.coords) if poly.area > 0 else ring
    r = rect[1] - rect[0] if len(rect) > 2 else longest
    out: list[float] = []
    for a in (dominant_angle(ring), math.atan2(r[1], r[0]), math.atan2(longest[1], longest[0])):
        a %= math.pi / 2
        if all(min(abs(a - b), math.pi / 2 - abs(a - b)) > math.radians(1) for b in out):
            out.append(a)
    return out


def _best(poly: Polygon, tol: float, reach, max_area_change: float) -> Polygon | None:
    """The squared ``poly`` at ``tol`` that differs from it by the smallest area among the candidate axes,
    keeping the area within ``max_area_change`` and inside ``reach``; None if no axis gives one."""
    simple = poly.simplify(tol, preserve_topology=True)
    if not isinstance(simple, Polygon) or simple.is_empty:
        return None
    best, best_err = None, math.inf
    for theta in _orientations(simple, poly):
        c = _squared(simple, tol, theta)
        if c is None or not c.is_valid or abs(c.area - poly.area) > max_area_change * poly.area:
            continue
        if not c.covered_by(reach):
            continue
        err = c.symmetric_difference(poly).area
        if err < best_err:
            best, best_err = c, err
    return best


def _regularize_polygon(poly: Polygon, tolerance: float, max_area_change: float) -> Polygon:
    """Squared ``poly`` (see the module docstring): within ``2 * tolerance`` of it at the tolerance or half
    of it, else within ``MAX_SHIFT * tolerance``; else its minimum rotated rectangle; else ``poly``."""
    if poly.is_empty or poly.area <= 0:
        return poly
    for shift in (2.0, MAX_SHIFT):
        reach = poly.buffer(shift * tolerance, quad_segs=2)
        for tol in (tolerance, tolerance / 2):
            best = _best(poly, tol, reach, max_area_change)
            if best is not None:
                return best
    rect = poly.minimum_rotated_rectangle
    if isinstance(rect, Polygon) and abs(rect.area - poly.area) <= max_area_change * poly.area:
        return rect
    return poly


def regularize(geom, tolerance: float = 1.0, max_area_change: float = 0.1):
    """Square a Polygon or MultiPolygon (see the module docstring); ``tolerance`` in coordinate units."""
    if isinstance(geom, MultiPolygon):
        parts = [_regularize_polygon(p, tolerance, max_area_change) for p in geom.geoms]
        out = shapely.union_all(parts)
        return out if out.is_valid else geom
    if isinstance(geom, Polygon):
        return _regularize_polygon(geom, tolerance, max_area_change)
    return geom
