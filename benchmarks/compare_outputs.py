"""Check that two runs of ``geounet predict`` wrote the same result, exactly.

    python benchmarks/compare_outputs.py A.gpkg B.gpkg [A_probs.tif B_probs.tif ...]

Pairs of files are compared by content, not by bytes of the container (a GeoPackage stores
its own write time): vector files must hold the same features in the same order with
byte-identical geometries (WKB) and identical attributes and CRS; rasters must have the same
CRS, transform, dtype, nodata, band count and bit-identical pixels (and masks). Prints one
line per pair and exits 1 if any pair differs. Used to show that a refactoring changed
nothing (docs/architecture.md).
"""

from __future__ import annotations

import sys

import numpy as np
import pyogrio
import rasterio


def same_vector(a: str, b: str) -> str | None:
    ga, gb = pyogrio.read_dataframe(a), pyogrio.read_dataframe(b)
    if len(ga) != len(gb):
        return f"{len(ga)} vs {len(gb)} features"
    if ga.crs != gb.crs:
        return f"CRS {ga.crs} vs {gb.crs}"
    if list(ga.columns) != list(gb.columns):
        return f"columns {list(ga.columns)} vs {list(gb.columns)}"
    wa, wb = ga.geometry.to_wkb(), gb.geometry.to_wkb()
    bad = [i for i, (x, y) in enumerate(zip(wa, wb)) if x != y]
    if bad:
        return f"{len(bad)} geometries differ (first: feature {bad[0]})"
    for col in ga.columns:
        if col == ga.geometry.name:
            continue
        if not ga[col].equals(gb[col]):
            return f"column {col} differs"
    return None


def same_raster(a: str, b: str) -> str | None:
    with rasterio.open(a) as ra, rasterio.open(b) as rb:
        for key in ("crs", "transform", "dtypes", "nodata", "count", "width", "height"):
            if getattr(ra, key) != getattr(rb, key):
                return f"{key} {getattr(ra, key)} vs {getattr(rb, key)}"
        if not np.array_equal(ra.read(), rb.read(), equal_nan=True):
            return "pixels differ"
        if not np.array_equal(ra.dataset_mask(), rb.dataset_mask()):
            return "masks differ"
    return None


def main(argv: list[str]) -> int:
    if len(argv) < 2 or len(argv) % 2:
        print(__doc__, file=sys.stderr)
        return 2
    failed = 0
    for a, b in zip(argv[0::2], argv[1::2]):
        raster = a.lower().endswith((".tif", ".tiff"))
        why = same_raster(a, b) if raster else same_vector(a, b)
        print(f"{'DIFFERENT' if why else 'identical'}: {a} {b}{': ' + why if why else ''}")
        failed |= why is not None
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
