"""Make a large synthetic RGB GeoTIFF for benchmarks by tiling real imagery.

    python benchmarks/make_raster.py --size 20000 -o /tmp/geounet-bench/r20000.tif

The source (default: the Banepa orthophoto of shared/data, EPSG:4326, about 0.13 m) is
repeated, every other copy mirrored so buildings do not end in straight seams, on a grid
with the source's CRS and pixel size; written as a tiled (512 px), JPEG/YCbCr-compressed
GeoTIFF like the source, one block-row at a time (memory stays small for any size).
Put it in /tmp, not in the repository.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

DEFAULT_SOURCE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "banepa" / "banepa.tif"


def mirrored_index(n: int, period: int, start: int = 0) -> np.ndarray:
    """Indexes 0..period-1, period-1..0, 0.. (a reflection-tiled axis)."""
    i = np.arange(start, start + n) % (2 * period)
    return np.where(i < period, i, 2 * period - 1 - i)


def make(size: int, out: Path, source: Path = DEFAULT_SOURCE, block: int = 512, height: int | None = None) -> Path:
    height = height or size
    with rasterio.open(source) as src:
        img = src.read([1, 2, 3])  # ~37 MB for Banepa
        profile = dict(
            driver="GTiff", width=size, height=height, count=3, dtype="uint8", crs=src.crs,
            transform=src.transform, tiled=True, blockxsize=block, blockysize=block,
            compress="jpeg", photometric="ycbcr", jpeg_quality=90, BIGTIFF="IF_SAFER",
            NUM_THREADS="ALL_CPUS",  # compress blocks on every core (same bytes)
        )
    _, sh, sw = img.shape
    cols = mirrored_index(size, sw)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with rasterio.open(tmp, "w", **profile) as dst:
        for r in range(0, height, block):
            n = min(block, height - r)
            rows = mirrored_index(n, sh, r)
            dst.write(img[:, rows][:, :, cols], window=Window(0, r, size, n))
    os.replace(tmp, out)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, required=True, help="side in pixels")
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    args = ap.parse_args(argv)
    if args.output.exists():
        print(f"{args.output} exists", file=sys.stderr)
        return 0
    make(args.size, args.output, args.source)
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
