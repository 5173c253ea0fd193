"""GeoParquet written from the GeoPackage spill of :class:`geounet.io.vector.VectorWriter`, one batch at a time.

pyogrio's bundled GDAL has no (Geo)Parquet driver, so the spill is read as Arrow record batches
(``pyogrio.raw.open_arrow``, :data:`BATCH_ROWS` features each) and every batch is written as one
row group by ``pyarrow.parquet.ParquetWriter``: memory holds one batch, whatever the number of
buildings. The file is GeoParquet 1.1.0 as geopandas writes it: the attribute columns, then
``geometry`` (WKB), and the ``geo`` metadata (``primary_column``, ``encoding`` WKB,
``geometry_types``, the CRS as PROJJSON and the ``bbox`` of all features, gathered while
streaming and written with the footer).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import shapely
from pyproj import CRS

__all__ = ["BATCH_ROWS", "write_geoparquet", "geo_metadata"]

# Features per Arrow batch and Parquet row group. The conversion's memory rises with the batch, not with
# the number of features: +40 MB at 2,048 rows whether the file holds 3,000 or 200,000 footprints, where
# 65,536-row batches rose by +33 MB for 3,291 footprints, +99 MB for 51,700 and +154 MB for 200,000
# (benchmarks/geoparquet_memory.py, docs/benchmarks.md). Row groups of 2,048 footprints (about 0.5 MB)
# cost readers nothing measurable and let them skip by bbox more finely.
BATCH_ROWS = 2048
GEOMETRY = "geometry"


def _projjson(crs: CRS) -> dict:
    """``crs`` as PROJJSON, without the ids of datum-ensemble members (as geopandas writes it: PROJ < 9.x
    cannot read them back)."""
    doc = crs.to_json_dict()

    def strip(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "members" and isinstance(value, list):
                    for member in value:
                        if isinstance(member, dict):
                            member.pop("id", None)
                else:
                    strip(value)
        elif isinstance(node, list):
            for item in node:
                strip(item)

    strip(doc)
    return doc


def geo_metadata(crs: CRS, geometry_types: list[str], bbox: list[float] | None, creator: str) -> dict:
    """The GeoParquet 1.1.0 ``geo`` metadata of one WKB ``geometry`` column."""
    column = {"encoding": "WKB", "crs": _projjson(crs), "geometry_types": geometry_types}
    if bbox is not None:
        column["bbox"] = bbox
    return {"primary_column": GEOMETRY, "columns": {GEOMETRY: column}, "version": "1.1.0",
            "creator": {"library": "geounet", "version": creator}}


def _schema(fields: list[str]):
    import pyarrow as pa

    types = {"status": pa.string()}
    return pa.schema([pa.field(f, types.get(f, pa.float64())) for f in fields] + [pa.field(GEOMETRY, pa.binary())])


def write_geoparquet(spill: Path, layer: str, path: Path, *, fields: list[str], crs: CRS, creator: str,
                     batch_rows: int | None = None) -> int:
    """Write ``layer`` of the GeoPackage ``spill`` (polygons with ``fields``) to ``path`` as GeoParquet;
    returns the number of features. Memory holds one batch of ``batch_rows`` features."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyogrio.raw import open_arrow

    schema = _schema(fields)
    lo, hi = np.full(2, np.inf), np.full(2, -np.inf)
    rows = 0
    with open_arrow(spill, layer=layer, use_pyarrow=True, batch_size=batch_rows or BATCH_ROWS) as (meta, reader):
        geom_name = meta["geometry_name"] or "geom"
        # no ARROW:schema (its types are Parquet's own here): readers then take the ``geo`` metadata
        # added with the footer, after the bbox is known, as the schema's metadata
        with pq.ParquetWriter(path, schema, compression="snappy", store_schema=False) as writer:
            for batch in reader:
                if batch.num_rows == 0:
                    continue
                wkb = batch.column(geom_name).cast(pa.binary())
                arrays = [batch.column(f).cast(schema.field(f).type) for f in fields] + [wkb]
                writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
                bounds = shapely.bounds(shapely.from_wkb(np.asarray(wkb.to_numpy(zero_copy_only=False))))
                lo = np.minimum(lo, np.nanmin(bounds[:, :2], axis=0))
                hi = np.maximum(hi, np.nanmax(bounds[:, 2:], axis=0))
                rows += batch.num_rows
            bbox = [*map(float, lo), *map(float, hi)] if rows and np.isfinite([*lo, *hi]).all() else None
            geo = geo_metadata(crs, ["Polygon"] if rows else [], bbox, creator)
            writer.add_key_value_metadata({"geo": json.dumps(geo)})
    return rows
