"""Vector building labels: read, validate, reproject to a raster's CRS, rasterize per window.

Any vector format geopandas reads, and OpenStreetMap extracts (``.osm`` XML, ``.osm.pbf``):
from those, the building polygons (:func:`read_osm_buildings`).
"""

from __future__ import annotations

import logging
import os

import geopandas as gpd
import numpy as np
import shapely
from affine import Affine
from rasterio.features import rasterize
from shapely.geometry import box

from .errors import InputError, first_line
from .paths import is_local, remote_reason, vsi_path

log = logging.getLogger(__name__)

POLYGONAL = frozenset({"Polygon", "MultiPolygon"})
OSM_SUFFIXES = (".osm", ".pbf")
OSM_BUILDINGS = "building IS NOT NULL AND building <> 'no'"  # OGR SQL on the OSM driver's multipolygons layer
CONTAINED = 0.9


def drop_contained(geoms: gpd.GeoSeries, cover: float = CONTAINED) -> tuple[gpd.GeoSeries, int]:
    """Drop polygons that lie (``cover`` of their area or more) inside another, larger polygon.

    Label files made by joining per-chip exports repeat a building once per chip that saw it,
    clipped at each chip's edge: a whole footprint plus fragments inside it. Kept, each
    fragment is a "building" no prediction can match, and it draws a false contact zone
    (two buildings meeting) across a real building. Footprints of different buildings
    overlap by slivers, never by most of one (shared data: every overlapping pair covers
    either under 5% or over 95% of the smaller polygon), so a 0.9 cover separates the two
    cases. Among equal copies the first is kept. Zero-area polygons are dropped too
    (they burn no pixel). Returns the kept polygons (original index) and how many were dropped.
    """
    if len(geoms) == 0:
        return geoms, 0
    # Ratios of areas in the same CRS: degrees are fine here, so shapely (no geographic warning).
    area = shapely.area(geoms.values)
    keep = area > 0
    a, b = geoms.sindex.query(geoms.values, predicate="intersects")
    sel = (a != b) & keep[a] & keep[b]
    a, b = a[sel], b[sel]
    # Only pairs where b outranks a (larger, or as large and first) can drop a.
    outranks = (area[b] > area[a]) | ((area[b] == area[a]) & (b < a))
    a, b = a[outranks], b[outranks]
    if len(a):
        inter = geoms.values[a].intersection(geoms.values[b])
        inside = np.asarray([g.area for g in inter]) >= cover * area[a]
        keep[a[inside]] = False
    return geoms[keep], int((~keep).sum())


class Labels:
    """Building polygons in a raster's CRS, with a spatial index for per-window rasterizing.

    Only the polygons are held in memory (vectors are small next to rasters); the raster
    itself is never loaded, so labels for a 50,000 x 50,000 px raster work.
    """

    def __init__(self, geoms: gpd.GeoSeries, path: str):
        self.geoms = geoms.reset_index(drop=True)
        self.path = path
        self._sindex = None

    def __len__(self) -> int:
        return len(self.geoms)

    def __getstate__(self):
        # The spatial index is rebuilt lazily in each DataLoader worker.
        state = self.__dict__.copy()
        state["_sindex"] = None
        return state

    def rasterize_instances(self, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
        """Burn the polygons intersecting a window with one id each (int32, 0 = background).

        Ids are 1 + the polygon's index, so the same building has the same id in every window.
        """
        h, w = shape
        if self._sindex is None:
            self._sindex = self.geoms.sindex
        # All four corners: on a rotated (not north-up) grid two opposite corners do not span the window.
        xs, ys = zip(*(transform @ corner for corner in ((0, 0), (w, 0), (0, h), (w, h))))
        hits = self._sindex.query(box(min(xs), min(ys), max(xs), max(ys)))
        out = np.zeros((h, w), dtype=np.int32)
        if len(hits):
            # Smaller polygons last, so a small building drawn over a large one keeps its pixels.
            hits = sorted(hits, key=lambda i: -self.geoms.iloc[i].area)
            rasterize(
                ((self.geoms.iloc[i], int(i) + 1) for i in hits),
                out_shape=(h, w),
                transform=transform,
                out=out,
                all_touched=False,
            )
        return out


def is_osm(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an OpenStreetMap file (``.osm`` XML or ``.pbf``), read by GDAL's OSM driver."""
    return os.fspath(path).lower().endswith(OSM_SUFFIXES)


def read_osm_buildings(path: str, bbox: tuple[float, float, float, float] | None = None) -> gpd.GeoDataFrame:
    """The buildings of an OpenStreetMap file: closed ways and multipolygon relations tagged ``building=*``
    (not ``building=no``), as (multi)polygons in WGS84, with their ``osm_id`` (relations) or ``osm_way_id``.

    GDAL's OSM driver gives closed ways with area tags (``building`` among them) and
    multipolygon relations in its ``multipolygons`` layer; nodes, lines (a ``highway``, an
    unclosed ``building`` way) are in other layers and never read. Its fast node index needs
    positive ids: a file with negative ids (JOSM's new objects, geounet's own ``.osm`` output)
    is read again with ``USE_CUSTOM_INDEXING=NO``. ``bbox`` (lon/lat) keeps the buildings that
    reach into it. The driver parses the whole file: fine for extracts of a few hundred MB.
    """
    kw = dict(layer="multipolygons", where=OSM_BUILDINGS, columns=["osm_id", "osm_way_id", "building"], bbox=bbox)
    try:
        return gpd.read_file(path, **kw)
    except Exception as exc:  # noqa: BLE001 - pyogrio raises FeatureError, DataSourceError, ...
        if "USE_CUSTOM_INDEXING" not in str(exc):
            raise
    return gpd.read_file(path, USE_CUSTOM_INDEXING="NO", **kw)


def read_vector(path: str | os.PathLike, bbox: tuple[float, float, float, float] | None = None) -> gpd.GeoDataFrame:
    """Read any vector file geopandas reads (of an OSM file: its buildings), raising :class:`InputError`
    if missing or unreadable. ``bbox``, in the file's CRS, keeps the features reaching into it.

    ``path`` is a local file, a URL or a GDAL virtual path (:mod:`geounet.paths`); a URL is read by
    GDAL (``/vsicurl/``), so an unreachable one fails in a few words (not found, connection refused).
    """
    p = os.fspath(path)
    if is_local(p) and not os.path.exists(p):
        raise InputError("file not found", p)
    try:
        if is_osm(p):
            return read_osm_buildings(vsi_path(p), bbox)
        return gpd.read_file(vsi_path(p), bbox=bbox)
    except Exception as exc:  # pyogrio raises DataSourceError, ValueError, ...
        raise InputError(_unreadable_vector(p, exc), p) from None


def _unreadable_vector(path: str, exc: BaseException) -> str:
    """Why GDAL could not read ``path`` as a vector file, in our words where its own are long."""
    reason = first_line(exc)
    remote = None if is_local(path) else remote_reason(reason)
    if remote:
        return f"cannot fetch ({remote})"
    if "not recognized as" in reason or "not recognised as" in reason:
        if os.path.isfile(path) and os.path.getsize(path) == 0:
            return "empty file, not a readable vector file"
        return f"not a readable vector file ({'a folder' if os.path.isdir(path) else 'a file'} of no format GDAL knows)"
    return f"not a readable vector file ({reason[:160]})"


def vector_crs(path: str | os.PathLike):
    """The CRS of a vector file (an OSM file's is WGS84), None if it has none; InputError if unreadable."""
    p = os.fspath(path)
    if is_local(p) and not os.path.exists(p):
        raise InputError("file not found", p)
    if is_osm(p):
        return "EPSG:4326"
    import pyogrio

    try:
        return pyogrio.read_info(vsi_path(p))["crs"]
    except Exception as exc:  # noqa: BLE001 - pyogrio raises DataSourceError, ValueError, ...
        raise InputError(_unreadable_vector(p, exc), p) from None


def read_label_polygons(path: str | os.PathLike) -> gpd.GeoSeries:
    """Read and check building polygons (any format geopandas reads), in the file's own CRS.

    Raises :class:`InputError` for a missing or unreadable file, labels without a CRS or
    with non-polygon geometries.
    """
    p = os.fspath(path)
    gdf = read_vector(p)
    geoms = gdf.geometry[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    if geoms.empty:
        raise InputError("no building (building=*) in the OSM file" if is_osm(p) else "no geometries in the labels file", p)
    if gdf.crs is None:
        raise InputError("labels have no CRS (set one, e.g. ogr2ogr -a_srs)", p)
    require_polygons(geoms, "labels", p)
    return geoms


def require_polygons(geoms: gpd.GeoSeries, what: str, path: str) -> None:
    """Raise :class:`InputError` naming the other geometry types unless every geometry is a polygon."""
    other = sorted(set(geoms.geom_type) - POLYGONAL)
    if other:
        raise InputError(f"{what} must be polygons, found {', '.join(other)}", path)


def labels_for_raster(
    geoms: gpd.GeoSeries, path: str, raster_crs, raster_bounds, raster_path: str | None = None, *,
    required: bool = True,
) -> Labels:
    """The polygons of ``geoms`` that overlap a raster, reprojected to its CRS and de-duplicated.

    ``required``: raise :class:`InputError` when none overlaps (a chip of a folder may hold no
    building: then it is all background and ``required`` is False).
    """
    geoms = geoms.to_crs(raster_crs)
    # Invalid rings (self-intersections from hand digitising) would burn wrong pixels.
    geoms = geoms.make_valid()
    geoms = geoms[geoms.geom_type.isin(POLYGONAL | {"GeometryCollection"})]
    frame = box(*raster_bounds)
    geoms = geoms[geoms.intersects(frame)]
    geoms, dropped = drop_contained(geoms)
    if dropped:
        log.info("%s: %d label polygon(s) inside a larger one dropped (duplicates or clipped copies)", path, dropped)
    if geoms.empty and required:
        where = f" {raster_path}" if raster_path else " the raster"
        raise InputError(f"no label polygon overlaps{where}", path)
    return Labels(geoms, path)


def read_labels(path: str | os.PathLike, raster_crs, raster_bounds, raster_path: str | None = None) -> Labels:
    """Read building polygons from any vector format geopandas reads and reproject them to ``raster_crs``.

    Raises :class:`InputError` for a missing or unreadable file, labels without a CRS,
    non-polygon geometries, or labels that do not overlap the raster.
    """
    p = os.fspath(path)
    return labels_for_raster(read_label_polygons(p), p, raster_crs, raster_bounds, raster_path)
