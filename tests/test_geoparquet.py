"""GeoParquet output (geounet.io.geoparquet): streamed from the spill batch by batch, equal to what geopandas writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyarrow.parquet as pq
import pytest
import shapely
from pyproj import CRS

from geounet.io import geoparquet
from geounet.io.vector import VectorWriter

ROOT = Path(__file__).resolve().parents[1]


def footprints(n: int, seed: int = 0, x0: float = 500000.0, y0: float = 4000000.0):
    """``n`` polygons (every third with a hole) of about 40 vertices, and their attributes."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 2000, (n, 2)) + (x0, y0)
    geoms = shapely.buffer(shapely.points(xy), rng.uniform(4, 9, n), quad_segs=10)
    holes = shapely.buffer(shapely.points(xy[::3]), 1.5, quad_segs=4)
    geoms[::3] = shapely.difference(geoms[::3], holes)
    area = np.round(rng.uniform(10, 200, n), 3)
    score = np.round(rng.uniform(0.5, 1.0, n), 4)
    status = np.where(rng.random(n) < 0.5, "new", "mapped").astype(object)
    return geoms, area, score, status


def write(path: Path, crs, n: int, chunk: int, status: bool) -> tuple:
    geoms, area, score, st = footprints(n)
    w = VectorWriter(path, crs, status=status)
    for k in range(0, n, chunk):
        s = slice(k, k + chunk)
        w.write(geoms[s], area[s], score[s], st[s] if status else None)
    w.commit()
    return geoms, area, score, st


@pytest.mark.parametrize("status", [False, True])
def test_streamed_geoparquet_is_what_geopandas_writes(tmp_path, monkeypatch, status):
    monkeypatch.setattr(geoparquet, "BATCH_ROWS", 64)  # several batches and row groups
    out = tmp_path / "b.parquet"
    geoms, area, score, st = write(out, "EPSG:32633", 300, 70, status)
    cols = {"area_m2": area, "score": score} | ({"status": st} if status else {})
    ref = gpd.GeoDataFrame(cols, geometry=geoms, crs="EPSG:32633")
    ref.to_parquet(tmp_path / "ref.parquet", index=False)

    ours, theirs = gpd.read_parquet(out), gpd.read_parquet(tmp_path / "ref.parquet")
    assert pq.ParquetFile(out).metadata.num_row_groups == 5  # streamed: one row group per batch
    assert list(ours.columns) == list(theirs.columns)
    assert ours.crs == theirs.crs == CRS.from_epsg(32633)
    assert (ours.dtypes == theirs.dtypes).all()
    assert ours.drop(columns="geometry").equals(theirs.drop(columns="geometry"))
    assert shapely.equals_exact(ours.geometry.values, theirs.geometry.values, tolerance=0).all()

    geo = json.loads(pq.ParquetFile(out).schema_arrow.metadata[b"geo"])
    ref_geo = json.loads(pq.ParquetFile(tmp_path / "ref.parquet").schema_arrow.metadata[b"geo"])
    assert geo["version"] == ref_geo["version"] and geo["primary_column"] == "geometry"
    ours_col, ref_col = geo["columns"]["geometry"], ref_geo["columns"]["geometry"]
    assert ours_col["encoding"] == "WKB" and ours_col["geometry_types"] == ["Polygon"] == ref_col["geometry_types"]
    assert ours_col["crs"] == ref_col["crs"]  # PROJJSON, as geopandas writes it
    assert ours_col["bbox"] == pytest.approx(ref_col["bbox"], abs=0)


def test_empty_and_wgs84_geoparquet(tmp_path):
    out = tmp_path / "e.parquet"
    VectorWriter(out, "EPSG:32633", wgs84=True).commit()
    gdf = gpd.read_parquet(out)
    assert len(gdf) == 0 and list(gdf.columns) == ["area_m2", "score", "geometry"]
    assert gdf.crs.equals(CRS.from_epsg(4326))
    col = json.loads(pq.ParquetFile(out).schema_arrow.metadata[b"geo"])["columns"]["geometry"]
    assert col["geometry_types"] == [] and "bbox" not in col


def test_failed_parquet_write_keeps_the_old_file_and_leaves_nothing(tmp_path, monkeypatch):
    out = tmp_path / "b.parquet"
    out.write_bytes(b"the user's file")
    monkeypatch.setattr(geoparquet, "BATCH_ROWS", 50)
    calls = []

    def fail_second(self, batch, *a, **k):
        calls.append(batch.num_rows)
        if len(calls) == 2:
            raise OSError("disk full")
        return original(self, batch, *a, **k)

    original = pq.ParquetWriter.write_batch
    monkeypatch.setattr(pq.ParquetWriter, "write_batch", fail_second)
    with pytest.raises(OSError, match="disk full"):
        write(out, "EPSG:32633", 200, 200, False)
    assert out.read_bytes() == b"the user's file"
    assert {p.name for p in tmp_path.iterdir()} == {"b.parquet"}


MEMORY_CHILD = r"""
import json, sys, tracemalloc
from pathlib import Path
import numpy as np, pyarrow as pa
sys.path.insert(0, sys.argv[1])
from geounet.io import geoparquet
from geounet.io.vector import VectorWriter
from tests.test_geoparquet import footprints

geoparquet.BATCH_ROWS = 500
folder = Path(sys.argv[2])
peaks = []
for n in (2000, 20000):
    geoms, area, score, _ = footprints(n)
    w = VectorWriter(folder / f"b{n}.parquet", "EPSG:32633")
    for k in range(0, n, 5000):
        w.write(geoms[k:k + 5000], area[k:k + 5000], score[k:k + 5000])
    del geoms
    tracemalloc.start()
    w.commit()
    py_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    peaks.append({"rows": n, "python_peak": py_peak, "arrow_peak": pa.default_memory_pool().max_memory(),
                  "bytes": (folder / f"b{n}.parquet").stat().st_size})
print(json.dumps(peaks))
"""


def test_geoparquet_memory_does_not_grow_with_the_buildings(tmp_path):
    """Ten times the buildings, the same peak: Python objects (tracemalloc) and Arrow's buffers (the
    default pool's high-water mark, in a fresh process so no earlier test has raised it). Collecting
    the layer (geopandas, or one Arrow table written at once) grows both about ten times."""
    res = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(ROOT), str(tmp_path)], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    small, large = json.loads(res.stdout.strip().splitlines()[-1])
    assert large["bytes"] > 8 * small["bytes"]  # the data itself is ten times larger
    assert large["python_peak"] < 2 * small["python_peak"], (small, large)
    assert large["arrow_peak"] < 2 * small["arrow_peak"], (small, large)
    assert small["python_peak"] < large["bytes"] and small["arrow_peak"] < large["bytes"]


def test_old_pyarrow_is_refused_before_any_work(tmp_path, monkeypatch):
    from geounet.errors import ConfigError

    monkeypatch.delattr(pq.ParquetWriter, "add_key_value_metadata")
    with pytest.raises(ConfigError, match="pyarrow >= 17"):
        VectorWriter(tmp_path / "b.parquet", "EPSG:32633")
    assert not any(tmp_path.iterdir())
