"""How label polygons overlap each other, and how many `geounet train` drops as contained copies.

Usage: python benchmarks/label_overlaps.py LABELS.geojson [LABELS ...]

For every pair of intersecting polygons, the share of the smaller polygon's area that the pair's
intersection covers, as a histogram: real neighbours overlap by slivers, clipped copies of one
building by almost all of the smaller one (docs/training.md, "Labels that repeat buildings").
"""

from __future__ import annotations

import argparse

import geopandas as gpd
import numpy as np

from geounet.labels import CONTAINED, drop_contained

BINS = [0, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95, 1.0001]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("labels", nargs="+")
    a = ap.parse_args()
    print("| labels | polygons | intersecting pairs | " + " | ".join(
        f"cover {lo:g}-{min(hi, 1):g}" for lo, hi in zip(BINS[:-1], BINS[1:])) + f" | dropped (cover >= {CONTAINED}) | kept |")
    print("|---" * (len(BINS) + 4) + "|")
    for path in a.labels:
        g = gpd.read_file(path)
        g = g.to_crs(g.estimate_utm_crs()).geometry.make_valid().reset_index(drop=True)
        i, j = g.sindex.query(g.values, predicate="intersects")
        i, j = i[i < j], j[i < j]
        inter = g.values[i].intersection(g.values[j])
        area = g.area.to_numpy()
        cover = np.asarray([x.area for x in inter]) / np.maximum(np.minimum(area[i], area[j]), 1e-12)
        hist = np.histogram(cover, bins=BINS)[0]
        kept, dropped = drop_contained(g)
        print(f"| {path} | {len(g)} | {len(i)} | " + " | ".join(str(h) for h in hist) + f" | {dropped} | {len(kept)} |")


if __name__ == "__main__":
    main()
