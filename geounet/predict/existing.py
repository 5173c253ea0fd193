"""Buildings already mapped (``--existing``): is a footprint ``new`` or ``mapped``?

:class:`ExistingBuildings` reads the file once for all the rasters of a run (any vector
format; of an OpenStreetMap file, its buildings, see :func:`geounet.labels.read_vector`),
only the buildings within the rasters' bounds, and keeps them in the file's CRS with a
spatial index. :meth:`ExistingBuildings.for_raster` gives a :class:`BuildingMatcher` for one
raster: the buildings over it, reprojected to its CRS, in an STRtree. The footprints come in
batches while the raster is streamed; :meth:`BuildingMatcher.mapped` queries the tree per batch.

A footprint is *mapped* when it matches an existing building: IoU at least ``match_iou``
(0.5, as a SpaceNet match), or at least ``match_cover`` of its area inside one existing
building (a footprint drawn smaller than the mapped building, or one part of a building
mapped as one outline). Ratios of areas in the raster's CRS: right in degrees too, at a
building's size.
"""

from __future__ import annotations

import os

import numpy as np
import shapely
from rasterio.warp import transform_bounds
from shapely.geometry import box

from ..errors import InputError
from ..io.mosaic import open_input
from ..log import logger

__all__ = ["ExistingBuildings", "BuildingMatcher"]

# geopandas (and pandas, through geounet.labels) are imported where existing buildings are read, not at
# import: every predict run imports this module, and they cost about 0.3 s of its start-up


class BuildingMatcher:
    """The existing buildings over one raster, in its CRS, and the matching rule."""

    def __init__(self, geoms: np.ndarray, match_iou: float, match_cover: float):
        self.geoms = geoms
        self.areas = shapely.area(geoms)
        self.tree = shapely.STRtree(geoms)
        self.match_iou, self.match_cover = match_iou, match_cover

    def __len__(self) -> int:
        return len(self.geoms)

    def mapped(self, footprints: np.ndarray) -> np.ndarray:
        """Per footprint (same CRS): whether an existing building matches it."""
        out = np.zeros(len(footprints), dtype=bool)
        if not len(footprints) or not len(self.geoms):
            return out
        fi, ei = self.tree.query(footprints, predicate="intersects")
        if not len(fi):
            return out
        inter = shapely.area(shapely.intersection(footprints[fi], self.geoms[ei]))
        own = shapely.area(footprints)[fi]
        union = own + self.areas[ei] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        cover = np.divide(inter, own, out=np.zeros_like(inter), where=own > 0)
        hit = (iou >= self.match_iou) | (cover >= self.match_cover)
        out[fi[hit]] = True
        return out


class ExistingBuildings:
    """The buildings of ``path`` within the bounds of ``areas`` (``(crs, (left, bottom, right, top))`` each)."""

    def __init__(self, path: str | os.PathLike, areas: list[tuple[object, tuple[float, float, float, float]]],
                 match_iou: float = 0.5, match_cover: float = 0.5):
        import geopandas as gpd

        from ..labels import read_vector, require_polygons, vector_crs

        self.path = os.fspath(path)
        self.match_iou, self.match_cover = match_iou, match_cover
        self.crs = vector_crs(self.path)
        if self.crs is None:
            raise InputError("existing buildings have no CRS (set one, e.g. ogr2ogr -a_srs)", self.path)
        boxes = np.array([transform_bounds(crs, self.crs, *bounds, densify_pts=21) for crs, bounds in areas])
        bbox = (*boxes[:, :2].min(axis=0), *boxes[:, 2:].max(axis=0)) if len(boxes) else None
        gdf = read_vector(self.path, bbox=bbox)
        geoms = gdf.geometry[gdf.geometry.notna() & ~gdf.geometry.is_empty]
        require_polygons(geoms, "existing buildings", self.path)
        self.geoms = gpd.GeoSeries(geoms.values, crs=self.crs)
        logger.info("%s: %d existing building(s) within the raster bounds", self.path, len(self.geoms))

    @classmethod
    def over_rasters(cls, path: str | os.PathLike, rasters: list, match_iou: float = 0.5,
                     match_cover: float = 0.5) -> "ExistingBuildings":
        """The buildings of ``path`` within the bounds of the ``rasters`` (paths)."""
        areas = []
        for raster in rasters:
            with open_input(raster) as src:
                areas.append((src.crs, tuple(src.bounds)))
        return cls(path, areas, match_iou, match_cover)

    def for_raster(self, crs, bounds: tuple[float, float, float, float]) -> BuildingMatcher:
        """The existing buildings reaching into a raster's ``bounds``, in its ``crs``."""
        from ..labels import POLYGONAL

        frame = box(*transform_bounds(crs, self.crs, *bounds, densify_pts=21))
        near = self.geoms.iloc[self.geoms.sindex.query(frame)] if len(self.geoms) else self.geoms
        near = near.to_crs(crs).make_valid()
        near = near[near.geom_type.isin(POLYGONAL)]
        return BuildingMatcher(np.asarray(near.values, dtype=object), self.match_iou, self.match_cover)
