"""Compare seed floods on real probabilities: the bounded breadth-first growth geounet uses
(exact when streamed) against an unbounded one and against priority-flood watersheds
(Meyer's algorithm) on two reliefs, all on the whole raster at once.

Usage:
    python benchmarks/separation_flood_compare.py PROBS.tif TRUTH.geojson --raster RASTER.tif

PROBS.tif: three bands (building, border, contact) from ``geounet predict --separate --probs``.
Everything but the flood (threshold, sieve, seeds, polygons, simplify, min-area) is geounet's
own code; prints a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import heapq
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio

from geounet.evaluate import evaluate
from geounet.io.raster import read_valid_mask
from geounet.io.vector import VectorWriter
from geounet.predict import RunOptions, vectorize_options
from geounet.vectorize import StripVectorizer, grow_seeds, seed_score


def meyer_flood(mask: np.ndarray, seeds: np.ndarray, relief: np.ndarray) -> np.ndarray:
    """Marker-based watershed restricted to ``mask``: pixels flood from seeds in order of relief (FIFO on ties)."""
    H, W = mask.shape
    lab = np.where(mask, seeds, 0)
    heap: list = []
    seq = 0
    rr, cc = np.nonzero(lab)
    for r, c in zip(rr.tolist(), cc.tolist()):
        heap.append((int(relief[r, c]), seq, r, c))
        seq += 1
    heapq.heapify(heap)
    m, rel = mask.tolist(), relief.tolist()
    L = lab.tolist()
    while heap:
        level, _, r, c = heapq.heappop(heap)
        v = L[r][c]
        for dr, dc in ((-1, 0), (0, -1), (0, 1), (1, 0)):
            y, x = r + dr, c + dc
            if 0 <= y < H and 0 <= x < W and m[y][x] and L[y][x] == 0:
                L[y][x] = v
                heapq.heappush(heap, (max(level, rel[y][x]), seq, y, x))
                seq += 1
    return np.asarray(L, dtype=np.int64)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("probs", type=Path)
    ap.add_argument("truth", type=Path)
    ap.add_argument("--raster", type=Path, required=True)
    a = ap.parse_args()
    with rasterio.open(a.probs) as src:
        names = tuple(d.split(" ")[0] for d in src.descriptions)
        probs = src.read().astype(np.float32) / 255.0
        valid = read_valid_mask(src)
        vopt = vectorize_options(src, RunOptions(tile=512, overlap=128, batch_size=1, separate=True), names, True)
        crs, transform, H, W = src.crs, src.transform, src.height, src.width
    score_relief = np.rint((1.0 - seed_score(probs, names)) * 255).astype(np.int64)
    building_relief = np.rint((1.0 - probs[0]) * 255).astype(np.int64)
    floods = {
        f"breadth-first, reach {vopt.reach_px} px (geounet)": lambda M, N: grow_seeds(M, N, vopt.reach_px),
        "breadth-first, unbounded": lambda M, N: grow_seeds(M, N, H + W),
        "watershed on 1 - p_building": lambda M, N: meyer_flood(M, N, building_relief),
        "watershed on 1 - seed score": lambda M, N: meyer_flood(M, N, score_relief),
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, (name, flood) in enumerate(floods.items()):
            out = Path(tmp) / f"f{k}.gpkg"
            writer = VectorWriter(out, crs)
            vec = StripVectorizer(H, W, transform, crs, vopt, writer.write)

            def whole(mask, seeds, core, flood=flood):  # one core: mask and seeds are the whole raster
                return flood(mask, seeds)[core]

            vec._grow_core = whole
            t0 = time.perf_counter()
            vec.add_rows(0, probs, valid)
            vec.finish()
            writer.commit()
            secs = time.perf_counter() - t0
            res, _ = evaluate([(out, a.truth)], [a.raster], 0.5)
            r = res[0]
            rows.append((name, r.tp, r.fp, r.fn, r.precision, r.recall, r.f1, r.pixel["iou"], secs))
            print(rows[-1], file=sys.stderr)
    print("| flood | TP | FP | FN | precision | recall | object F1 | pixel IoU | s (whole raster) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]:.3f} | {r[5]:.3f} | {r[6]:.3f} | {r[7]:.3f} | {r[8]:.0f} |")


if __name__ == "__main__":
    main()
