"""Peak memory of the GeoParquet conversion (`geounet.io.geoparquet.write_geoparquet`) per batch size.

    python benchmarks/geoparquet_memory.py SPILL.gpkg [--batches 512 2048 4096 8192 16384 65536]

SPILL is a GeoPackage with predict's layer and fields (``geounet.io.vector.LAYER`` and ``FIELDS``),
for example the ``-o x.gpkg`` of a large predict. Without one (``--make N``) it writes N random
14-vertex polygons of about 28 m² to /tmp/geoparquet-spill-N.gpkg first. Each batch size is converted
in a fresh child process, after pyarrow and pyogrio are imported, and the line printed is that
process's resident memory before the conversion, its peak (``VmHWM``, not ``ru_maxrss``, which Linux
carries over ``execve`` from a parent) and the rise: what predict's commit adds to the run's memory when
the output is ``.parquet``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from rss_trace import status_mb  # this folder

from geounet.io.vector import FIELDS, LAYER  # predict's spill: what write_geoparquet is given


def make_spill(n: int) -> Path:
    import geopandas as gpd
    import numpy as np
    import shapely

    path = Path(f"/tmp/geoparquet-spill-{n}.gpkg")
    if not path.exists():
        rng = np.random.default_rng(0)
        centres = rng.uniform(0, 2600, (n, 2))
        angles = np.sort(rng.uniform(0, 2 * np.pi, (n, 14)), axis=1)
        rings = centres[:, None, :] + 3 * np.stack([np.cos(angles), np.sin(angles)], axis=-1)
        polygons = shapely.polygons(np.concatenate([rings, rings[:, :1]], axis=1))
        values = {"area_m2": shapely.area(polygons), "score": rng.random(n)}
        gpd.GeoDataFrame({f: values[f] for f in FIELDS}, geometry=polygons, crs=32645).to_file(
            path, layer=LAYER, engine="pyogrio")
    return path


def convert(spill: Path, batch_rows: int) -> None:
    """In this (child) process: convert ``spill`` and print the memory figures."""
    import pyarrow.parquet  # noqa: F401  (imported before the baseline, as predict has by its commit)
    import pyogrio.raw  # noqa: F401
    from pyproj import CRS

    from geounet.io.geoparquet import write_geoparquet

    before = status_mb("VmRSS")
    t0 = time.perf_counter()
    rows = write_geoparquet(spill, LAYER, Path(f"/tmp/geoparquet-memory-{batch_rows}.parquet"),
                            fields=FIELDS, crs=CRS(32645), creator="benchmark", batch_rows=batch_rows)
    peak = status_mb("VmHWM")
    print(f"| {batch_rows} | {rows} | {before:.0f} | {peak:.0f} | **+{peak - before:.0f}** | "
          f"{time.perf_counter() - t0:.2f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("spill", nargs="?")
    ap.add_argument("--make", type=int, default=51700, help="random polygons when no SPILL is given")
    ap.add_argument("--batches", type=int, nargs="+", default=[512, 2048, 4096, 8192, 16384, 65536])
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    spill = Path(a.spill) if a.spill else make_spill(a.make)
    if a.child:
        convert(spill, a.child)
        return
    print("| batch rows | features | RSS before MB | peak MB | rise MB | seconds |")
    print("|---|---|---|---|---|---|")
    for b in a.batches:
        subprocess.run([sys.executable, __file__, str(spill), "--child", str(b)], check=True)


if __name__ == "__main__":
    main()
