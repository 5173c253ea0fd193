"""Finishing a building (step 8 of :mod:`geounet.vectorize.stream`), and squaring outlines.

**Finish a building**: simplify (pixel units: ``--simplify`` metres divided by the ground
pixel size), or with ``regularize_m`` square the outline (:func:`regularize`, in pixel
coordinates scaled to ground metres so that right angles are right angles on the ground;
an outline that would move further than the no-data reach keeps its simplified shape
instead); subtract nearby no-data (simplifying or squaring moves an edge by a bounded
distance, so a building within that distance of no-data is clipped against the no-data
polygons around it, gathered by :func:`nodata_near` while its pieces are labelled: no
building overlaps no-data); apply the affine transform to the raster CRS, compute the
ground area in m^2 on the ellipsoid of the CRS (:class:`GroundArea`, right for degrees,
web-mercator and feet alike) and drop buildings under ``min_area_m2`` or with a score
(mean building probability, exact however the building was pieced) under ``min_score``. Touching buildings
are simplified (or squared) each on its own, so their outlines may overlap by up to that
tolerance. All of it is :func:`finish_buildings`.

**Squaring** (:func:`regularize`) is :mod:`geounet.vectorize.square`.

Coordinates must be isotropic (the same ground distance per unit along x and y); the
caller scales pixel coordinates by the ground pixel size first.
"""

from __future__ import annotations

import numpy as np
import shapely
from affine import Affine
from pyproj import CRS, Transformer

from .options import VectorizeOptions
from .square import dominant_angle, regularize
from .stages import label_polygons

__all__ = ["GroundArea", "dominant_angle", "finish_buildings", "nodata_near", "regularize", "to_crs_coords"]


def finish_buildings(geoms: np.ndarray, scores: np.ndarray, nodata: list, options: VectorizeOptions,
                     transform: Affine, area: GroundArea) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Finished buildings ``(polygons in the raster CRS, area_m2, score)`` from merged pixel-coordinate outlines.

    ``nodata[k]`` is the no-data near ``geoms[k]`` (pixel coordinates, or None); a building
    that falls apart on it gives one polygon a part, each with the building's score.
    """
    opt = options
    bad = ~shapely.is_valid(geoms)
    if bad.any():
        geoms[bad] = shapely.make_valid(geoms[bad])
    # canonical outline: no collinear vertices (unions leave some on block borders), fixed start
    # and orientation, so simplifying a building gives the same result however it was pieced
    geoms = shapely.normalize(simplify(geoms, 0.0))
    out = simplify(geoms, opt.simplify_px) if opt.simplify_px > 0 else geoms
    if opt.regularize_m > 0:
        out = square_within_reach(geoms, out, opt)
    for k, piece in enumerate(nodata):
        if piece is not None:  # the no-data was gathered in pieces that depend on the strips: canonical again
            out[k] = shapely.normalize(simplify(np.array([shapely.difference(out[k], piece)], dtype=object), 0.0)[0])
    parts, idx = _polygon_parts(out)
    if parts.size == 0:
        return parts, np.zeros(0, dtype=np.float64), np.zeros(0, dtype=np.float64)
    crs_geoms = shapely.orient_polygons(to_crs_coords(parts, transform), exterior_cw=False)
    areas = area(crs_geoms)
    keep = (areas >= opt.min_area_m2) & (areas > 0) & (scores[idx] >= opt.min_score)
    return crs_geoms[keep], areas[keep], scores[idx[keep]]


def simplify(geoms: np.ndarray, tolerance: float) -> np.ndarray:
    """Outlines (valid polygons) simplified within ``tolerance``: Douglas-Peucker, and where its result
    is not a valid polygon with every ring of the original, the topology-preserving simplifier.

    The topology-preserving simplifier is Douglas-Peucker that also checks every simplified segment
    against the other rings, and costs eight times more on building outlines (0.34 against 0.04 s
    for 4,500 outlines of 86 vertices at 1 px, ``benchmarks/simplify_speed.py``); the two give the
    same outline for 97-98% of them, and for the others both are within ``tolerance`` of it. Where
    Douglas-Peucker leaves no valid polygon with all its rings (a ring that would cross another or
    collapse, a speck that would vanish), the topology-preserving result is taken, so every outline
    stays a valid, non-empty polygon with its courtyards; outlines of several parts (rare) take it
    too. At tolerance 0 both remove exactly the collinear vertices (ring start included), which
    leaves the same point set, so a valid outline stays valid. Deterministic for a given outline:
    once the outline is canonical, a building's result does not depend on how its pieces were joined
    (:func:`finish_buildings`).
    """
    out = shapely.simplify(geoms, tolerance, preserve_topology=False)
    if tolerance == 0:  # only vertices lying on the segment between their neighbours go: the same point set
        return out
    polygon = shapely.GeometryType.POLYGON
    redo = ((shapely.get_type_id(geoms) != polygon) | (shapely.get_type_id(out) != polygon)  # parts: rare
            | shapely.is_empty(out) | ~shapely.is_valid(out)
            | (shapely.get_num_interior_rings(out) != shapely.get_num_interior_rings(geoms)))
    if redo.any():
        out[redo] = shapely.simplify(geoms[redo], tolerance, preserve_topology=True)
    return out


def square_within_reach(exact: np.ndarray, simple: np.ndarray, options: VectorizeOptions) -> np.ndarray:
    """Square ``simple`` outlines in ground metres; keep one that would move beyond the no-data reach.

    ``exact`` are the pixel outlines ``simple`` was simplified from (pixel coordinates).
    """
    opt = options
    gx, gy = opt.pixel_m
    to_m = np.array([gx, gy])
    out = simple.copy()
    # buildings far under --min-area are dropped whatever their shape (squaring keeps the area
    # within 10%): not worth squaring
    skip = shapely.area(simple) * gx * gy < 0.5 * opt.min_area_m2
    for k, g in enumerate(simple):
        if skip[k]:
            continue
        g_m = shapely.transform(g, lambda xy: xy * to_m)
        r_m = regularize(g_m, tolerance=opt.regularize_m, max_area_change=0.1)
        if r_m is g_m or r_m.is_empty:
            continue
        r = shapely.transform(r_m, lambda xy: xy / to_m)
        # the no-data around a building was gathered within nodata_reach pixels of its pixels
        if r.is_valid and shapely.covered_by(r, shapely.buffer(exact[k], opt.nodata_reach, quad_segs=2)):
            out[k] = r
    return out


def nodata_near(labels: np.ndarray, invalid: np.ndarray, core_origin: tuple[int, int],
                context_origin: tuple[int, int], reach: int) -> dict[int, object]:
    """No-data polygons (pixel coordinates) within ``reach`` pixels of each label that has any nearby.

    ``invalid`` covers the context, whose first pixel is raster (row, column)
    ``context_origin``; the core's ``labels`` start ``core_origin`` (rows, columns) into it.
    """
    from scipy import ndimage

    row_off, col_off = core_origin
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
        polys = [p for _, p in label_polygons(sub.astype(np.uint8), context_origin[0] + r0, context_origin[1] + q0)]
        out[lab] = shapely.union_all(polys)
    return out


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
        # ring by ring, as Geod.geometry_area_perimeter sums them (signed: holes, clockwise, subtract), with
        # the coordinates taken out in one call instead of per ring: the same areas to the bit, 1.5x faster
        parts, geom_of_part = shapely.get_parts(ll, return_index=True)  # a multipolygon's parts add up
        rings, part_of_ring = shapely.get_rings(parts, return_index=True)
        coords, ring_of_coord = shapely.get_coordinates(rings, return_index=True)
        bounds = np.searchsorted(ring_of_coord, np.arange(len(rings) + 1))
        ring_area = self.geod.polygon_area_perimeter
        signed = [ring_area(coords[a:b, 0], coords[a:b, 1])[0] for a, b in zip(bounds[:-1], bounds[1:])]
        part_area = np.abs(np.bincount(part_of_ring, weights=signed, minlength=len(parts)))
        return np.bincount(geom_of_part, weights=part_area, minlength=len(ll))


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
