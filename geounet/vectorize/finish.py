"""Squaring building outlines: a dominant orientation, right-angled corners.

The method (close to the "right angles" method of ESRI's Regularize Building Footprint):

1. Simplify the outline (Douglas-Peucker, ``tolerance``) so pixel stair-steps vanish.
2. Dominant orientation: the length-weighted circular mean of the edge directions taken
   modulo 90 degrees (angles are multiplied by 4, averaged as unit vectors, divided by 4),
   so edges that are parallel or perpendicular all vote for the same axis.
3. In a frame rotated to that axis, every edge becomes horizontal or vertical (whichever
   it is closer to); runs of edges with the same direction merge into one line at their
   length-weighted mean position; consecutive lines meet at right-angled corners.
4. Rotate back. An outline whose squared version is invalid, or changes the area by more
   than ``max_area_change``, falls back to its minimum rotated rectangle if that is close
   enough, else is left as it was: regularizing must never invent or drop a building.

Coordinates must be isotropic (the same ground distance per unit along x and y); the
caller scales pixel coordinates by the ground pixel size first.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from shapely import affinity
from shapely.geometry import MultiPolygon, Polygon

__all__ = ["dominant_angle", "regularize"]


def dominant_angle(ring: np.ndarray) -> float:
    """Dominant edge direction of a closed ring (N+1, 2), in radians within [0, pi/2)."""
    d = np.diff(ring, axis=0)
    lengths = np.hypot(d[:, 0], d[:, 1])
    ang = np.arctan2(d[:, 1], d[:, 0])
    c = np.sum(lengths * np.cos(4 * ang))
    s = np.sum(lengths * np.sin(4 * ang))
    return (math.atan2(s, c) / 4) % (math.pi / 2)


def _square_ring(ring: np.ndarray) -> np.ndarray | None:
    """Orthogonal version of a ring already rotated to its dominant axis, or None if degenerate."""
    pts = ring[:-1]
    n = len(pts)
    if n < 4:
        return None
    nxt = np.roll(pts, -1, axis=0)
    d = nxt - pts
    lengths = np.hypot(d[:, 0], d[:, 1])
    horizontal = np.abs(d[:, 0]) >= np.abs(d[:, 1])
    # Merge runs of same-direction edges (cyclically) into lines: position = weighted mean.
    start = next((i for i in range(n) if horizontal[i] != horizontal[i - 1]), None)
    if start is None:
        return None
    lines = []  # (is_horizontal, position)
    i = start
    while True:
        h = horizontal[i]
        w_sum, p_sum = 0.0, 0.0
        j = i
        while True:
            mid = (pts[j] + nxt[j]) / 2
            w = max(lengths[j], 1e-9)
            w_sum += w
            p_sum += w * (mid[1] if h else mid[0])
            j = (j + 1) % n
            if horizontal[j] != h or j == start:
                break
        lines.append((bool(h), p_sum / w_sum))
        i = j
        if i == start:
            break
    if len(lines) < 4 or len(lines) % 2:
        return None
    corners = []
    for k in range(len(lines)):
        (h1, p1), (_, p2) = lines[k], lines[(k + 1) % len(lines)]
        corners.append((p2, p1) if h1 else (p1, p2))
    corners.append(corners[0])
    return np.asarray(corners, dtype=float)


def _regularize_polygon(poly: Polygon, tolerance: float, max_area_change: float) -> Polygon:
    if poly.is_empty or poly.area <= 0:
        return poly
    simple = poly.simplify(tolerance, preserve_topology=True)
    if not isinstance(simple, Polygon) or simple.is_empty:
        return poly
    theta = dominant_angle(np.asarray(simple.exterior.coords))
    origin = simple.centroid
    rotated = affinity.rotate(simple, -theta, origin=origin, use_radians=True)
    rings = [_square_ring(np.asarray(rotated.exterior.coords))]
    holes = []
    for interior in rotated.interiors:
        sq = _square_ring(np.asarray(interior.coords))
        if sq is not None and Polygon(sq).area > 0:
            holes.append(sq)
    if rings[0] is not None:
        candidate = Polygon(rings[0], holes)
        if not candidate.is_valid:
            candidate = Polygon(rings[0])
        candidate = affinity.rotate(candidate, theta, origin=origin, use_radians=True)
        if candidate.is_valid and abs(candidate.area - poly.area) <= max_area_change * poly.area:
            return candidate
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
