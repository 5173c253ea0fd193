"""Simplifying building outlines: geounet's ``simplify`` (Douglas-Peucker, the topology-preserving
simplifier where that leaves no valid polygon) against the topology-preserving simplifier alone
(docs/benchmarks.md, "Cheaper outlines").

    python benchmarks/simplify_speed.py RASTER [--reps 5] [-- extra predict options]

Runs ``geounet predict`` on RASTER in this process (default settings, GeoPackage to a temporary folder)
and keeps the outlines its vectoriser hands to ``finish_buildings`` (merged, pixel coordinates), then
times the two simplifications that ``finish_buildings`` makes of them, both ways, on the same outlines:
the canonical outline (tolerance 0, then ``shapely.normalize``) and the simplified one (``--simplify``
in pixels). Prints the best of ``--reps`` for each, how many results differ, and whether every result
is a valid, non-empty polygon. Single-threaded (GEOS); run it with the machine alone.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import shapely

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def best_of(reps: int, fn):
    times, out = [], None
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("raster")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from geounet.cli import cli
    from geounet.vectorize import finish, stream

    caught: list[np.ndarray] = []
    tolerance: list[float] = []
    original = stream.finish_buildings

    def keep(geoms, scores, nodata, options, transform, area):
        caught.append(geoms.copy())
        tolerance[:] = [options.simplify_px]
        return original(geoms, scores, nodata, options, transform, area)

    stream.finish_buildings = keep
    with tempfile.TemporaryDirectory() as tmp:
        cli.main(["-q", "predict", args.raster, "-o", str(Path(tmp) / "b.gpkg"), *extra], standalone_mode=False)
    stream.finish_buildings = original
    geoms = np.concatenate(caught)
    bad = ~shapely.is_valid(geoms)
    geoms[bad] = shapely.make_valid(geoms[bad])
    tol = tolerance[0]
    print(f"{args.raster}: {len(geoms)} outlines, {int(shapely.get_num_coordinates(geoms).sum())} vertices, "
          f"--simplify = {tol:.2f} px")

    def topology_preserving(g, t):
        return shapely.simplify(g, t, preserve_topology=True)

    print("| step | topology-preserving s | geounet `simplify` s | speed-up | results that differ | all valid polygons |")
    print("| --- | --- | --- | --- | --- | --- |")
    canonical = None
    for step, t in (("canonical outline (tolerance 0)", 0.0), (f"simplified ({tol:.2f} px)", tol)):
        src = geoms if canonical is None else canonical
        t_old, old = best_of(args.reps, lambda: topology_preserving(src, t))
        t_new, new = best_of(args.reps, lambda: finish.simplify(src, t))
        old_n, new_n = shapely.normalize(old), shapely.normalize(new)
        differ = int((~shapely.equals_exact(old_n, new_n, 0)).sum())
        ok = bool((shapely.is_valid(new) & ~shapely.is_empty(new)).all())
        print(f"| {step} | {t_old:.3f} | {t_new:.3f} | {t_old / t_new:.1f} | {differ} of {len(src)} | {ok} |")
        if canonical is None:
            canonical = shapely.normalize(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
