"""Writing building polygons to .geojson, .gpkg, .fgb, .parquet or .osm, atomically and without holding them all.

:class:`VectorWriter` appends each batch of buildings to a temporary GeoPackage beside the
output (so memory does not grow with the number of buildings), and on :meth:`commit`
streams it into the requested format (``pyogrio.raw.open_arrow`` into
``pyogrio.raw.write_arrow``, GDAL to GDAL, no pyarrow needed) under another temporary name,
then renames that onto the output. Until then the output path is untouched, so a failure
or Ctrl-C leaves no partial file and an existing file is replaced only by a complete one.
GeoParquet is streamed alike, Arrow batch by batch into pyarrow's Parquet writer
(:mod:`geounet.io.geoparquet`; pyogrio's GDAL has no Parquet driver), and needs pyarrow
(checked before any work starts);
``.osm`` (OpenStreetMap XML for JOSM, always WGS84) is written from the spill by
:func:`geounet.io.osm.write_osm`.
Temporary names and the writability check are :mod:`geounet.io.files` (shared with the
probabilities writer).

CRS: features keep the raster's CRS. GDAL's GeoJSON writer adds the (pre-RFC 7946) ``crs``
member when that CRS is not WGS84; ``wgs84=True`` reprojects to EPSG:4326. WGS84 output
(``wgs84=True`` or a raster in EPSG:4326) is written as RFC 7946 GeoJSON: longitude,
latitude; counter-clockwise exteriors; 7 decimals (about 1 cm); no ``crs`` member.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import shapely
from pyproj import CRS, Transformer

from ..errors import ConfigError
from .files import temp_path

__all__ = ["FORMATS", "vector_driver", "check_vector_format", "VectorWriter", "reproject"]

# extension -> GDAL driver ("parquet": written with pyarrow, geounet.io.geoparquet)
FORMATS = {".geojson": "GeoJSON", ".gpkg": "GPKG", ".fgb": "FlatGeobuf", ".parquet": "parquet", ".osm": "OSM"}
LAYER = "buildings"
FIELDS = ["area_m2", "score"]
STATUS = "status"  # with existing buildings to compare with: "new" or "mapped"


def vector_driver(path: str | os.PathLike) -> str:
    """The driver for ``path``'s extension, or ConfigError naming the supported ones."""
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise ConfigError(
            f"unsupported output format '{ext or '(no extension)'}'; use one of {', '.join(FORMATS)}", path
        )
    return FORMATS[ext]


def check_vector_format(path: str | os.PathLike) -> str:
    """Like :func:`vector_driver`, also checking that the format's writer is installed."""
    driver = vector_driver(path)
    if driver == "parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ConfigError("writing GeoParquet needs pyarrow: pip install 'geounet[parquet]'", path) from None
        if not hasattr(pq.ParquetWriter, "add_key_value_metadata"):  # the streamed writer's footer metadata
            raise ConfigError("writing GeoParquet needs pyarrow >= 17: pip install 'geounet[parquet]'", path)
    return driver


def reproject(geoms: np.ndarray, transformer: Transformer) -> np.ndarray:
    """Geometries with every coordinate moved by ``transformer`` (an ``always_xy`` pyproj Transformer)."""

    def f(xy: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, f)


def _remove(path: Path) -> None:
    for p in (path, Path(f"{path}-journal"), Path(f"{path}-wal"), Path(f"{path}-shm")):
        if p.is_dir():  # a driver that wrote a folder
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


class VectorWriter:
    """Collects building batches in a temporary GeoPackage and writes ``path`` on :meth:`commit`."""

    def __init__(self, path: str | os.PathLike, crs, *, wgs84: bool = False, status: bool = False):
        self.path = Path(path)
        self.driver = check_vector_format(self.path)
        src_crs = CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
        self.wgs84 = bool(wgs84) or self.driver == "OSM"
        self.fields = FIELDS + ([STATUS] if status else [])
        self._to_wgs84 = None
        if self.wgs84:
            target = CRS.from_epsg(4326)
            if not src_crs.equals(target, ignore_axis_order=True):
                self._to_wgs84 = Transformer.from_crs(src_crs, target, always_xy=True)
            self.crs = target
        else:
            self.crs = src_crs
        self._crs_str = self._crs_string(self.crs)
        # WGS84 output (a raster in EPSG:4326, or --wgs84) is written as RFC 7946 GeoJSON
        self.rfc7946 = self.crs.equals(CRS.from_epsg(4326), ignore_axis_order=True)
        self._spill = temp_path(self.path, "spill", ".gpkg")
        self._tmp = temp_path(self.path, "tmp")
        self._written = 0
        self._closed = False

    @staticmethod
    def _crs_string(crs: CRS) -> str:
        auth = crs.to_authority()
        return f"{auth[0]}:{auth[1]}" if auth else crs.to_wkt()

    @property
    def count(self) -> int:
        return self._written

    def write(self, geoms: np.ndarray, area_m2: np.ndarray, score: np.ndarray, status: np.ndarray | None = None) -> None:
        """Append polygons (in the raster CRS) with their ground area and mean probability (and status)."""
        if len(geoms) == 0:
            return
        geoms = np.asarray(geoms, dtype=object)
        if self._to_wgs84 is not None:
            geoms = shapely.orient_polygons(reproject(geoms, self._to_wgs84), exterior_cw=False)
        values = [np.round(np.asarray(area_m2, np.float64), 3), np.round(np.asarray(score, np.float64), 4)]
        if STATUS in self.fields:
            values.append(np.asarray(status, dtype=object))
        self._append(geoms, values)

    def _append(self, geoms, values) -> None:
        # imported here: pyogrio pulls in geopandas and pandas (0.4 s), paid in the writer thread
        from pyogrio.raw import write

        wkb = shapely.to_wkb(geoms, output_dimension=2)
        write(
            self._spill, wkb, values, self.fields, driver="GPKG", crs=self._crs_str,
            geometry_type="Polygon", layer=LAYER, append=self._written > 0,
            # the spill is the output itself for .gpkg (keep its R-tree); otherwise it is only read back
            layer_options=None if self.driver == "GPKG" else {"SPATIAL_INDEX": "NO"},
        )
        self._written += len(geoms)

    def finish(self) -> Path:
        """Write the complete output under its temporary name and return that name (the output is not touched).

        Rename it onto :attr:`path` (:func:`geounet.io.files.replace_together`, with the other files of
        the same input), then :meth:`abort` to remove what is left.
        """
        if self._closed:
            raise RuntimeError("writer already closed")
        if self._written == 0:
            empty = [np.zeros(0), np.zeros(0)] + ([np.array([], dtype=object)] if STATUS in self.fields else [])
            self._append(np.array([], dtype=object), empty)
            self._written = 0
        if self.driver == "GPKG":
            return self._spill
        if self.driver == "OSM":
            from .. import __version__
            from .osm import write_osm

            write_osm(self._spill, LAYER, self._tmp, f"geounet {__version__}")
        elif self.driver == "parquet":
            self._write_parquet()
        else:
            self._convert()
        return self._tmp

    def commit(self) -> Path:
        """Write the output file from the spilled batches and move it into place."""
        try:
            os.replace(self.finish(), self.path)
        finally:
            self.abort()
        return self.path

    def _convert(self) -> None:
        from pyogrio.raw import open_arrow, write_arrow

        layer_options = {}
        if self.driver == "GeoJSON" and self.rfc7946:
            layer_options["RFC7946"] = "YES"
        if self.driver == "FlatGeobuf":
            layer_options["SPATIAL_INDEX"] = "YES"
        with open_arrow(self._spill, layer=LAYER, use_pyarrow=False) as (meta, reader):
            write_arrow(
                reader, self._tmp, driver=self.driver, layer=LAYER, geometry_name=meta["geometry_name"] or "geom",
                geometry_type="Polygon", crs=meta["crs"] or self._crs_str, layer_options=layer_options or None,
            )

    def _write_parquet(self) -> None:
        from .. import __version__
        from .geoparquet import write_geoparquet

        write_geoparquet(self._spill, LAYER, self._tmp, fields=self.fields, crs=self.crs, creator=__version__)

    def abort(self) -> None:
        """Remove the temporary files (the output path is never touched here)."""
        self._closed = True
        _remove(self._spill)
        _remove(self._tmp)
