"""Time the U-Net weight map (`geounet.train.targets.weight_map`) on real label windows, as the data loader
computes it for `geounet train --weight-map`.

Usage: python benchmarks/weight_map_speed.py RASTER LABELS [--size 320] [--n 50]
Prints milliseconds per window (median and max) and buildings per window.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import rasterio
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from geounet.labels import read_labels
from geounet.io.raster import pixel_size_m
from geounet.train.targets import weight_map


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("raster")
    ap.add_argument("labels")
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--n", type=int, default=50)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    with rasterio.open(a.raster) as src:
        labels = read_labels(a.labels, src.crs, src.bounds)
        px = pixel_size_m(src)
        times, counts = [], []
        for _ in range(a.n):
            c, r = rng.integers(0, src.width - a.size), rng.integers(0, src.height - a.size)
            inst = labels.rasterize_instances(window_transform(Window(c, r, a.size, a.size), src.transform),
                                              (a.size, a.size))
            t0 = time.perf_counter()
            weight_map(inst, px)
            times.append(time.perf_counter() - t0)
            counts.append(len(np.unique(inst)) - 1)
    ms = np.asarray(times) * 1000
    print(f"{a.n} windows of {a.size} px at {px:.3f} m: weight map median {np.median(ms):.1f} ms, "
          f"max {ms.max():.1f} ms; buildings per window median {int(np.median(counts))}, max {max(counts)}")


if __name__ == "__main__":
    main()
