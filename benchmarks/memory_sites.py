"""Which Python and NumPy allocations are alive when a predict run's memory peaks (tracemalloc).

    python benchmarks/memory_sites.py /tmp/geounet-bench/r20000.tif [--top 8]

Runs ``geounet predict`` (the library, default settings, GeoPackage to a temporary folder) in this
process with ``tracemalloc`` on, samples VmRSS and the traced total every second, snapshots the
allocations whenever VmRSS reaches a new high after the first 30 s (start-up; ``--after``), and prints the
trajectory and the largest allocation sites of the last snapshot. tracemalloc sees NumPy's arrays
but not torch's or GDAL's memory, and it slows the run about 2x and raises the RSS itself (tracebacks
are stored per allocation): compare sites between rasters, not RSS with untraced runs. Linux only.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

from rss_trace import vm_rss_mb  # this folder

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("raster")
    ap.add_argument("--top", type=int, default=8, help="allocation sites to print")
    ap.add_argument("--after", type=float, default=30.0,
                    help="seconds of start-up before snapshots are taken (a few for a short run)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from geounet.predict import PredictConfig, predict

    tracemalloc.start(8)
    trajectory: list[tuple[float, float, float]] = []
    peak: dict = {"rss": 0.0, "snapshot": None}
    done = threading.Event()
    t0 = time.perf_counter()

    def sample() -> None:
        while not done.wait(1.0):
            t, r = time.perf_counter() - t0, vm_rss_mb()
            trajectory.append((t, r, tracemalloc.get_traced_memory()[0] / 2**20))
            if t > args.after and r > peak["rss"] + 5:
                peak.update(rss=r, t=t, snapshot=tracemalloc.take_snapshot())

    threading.Thread(target=sample, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        res = predict(PredictConfig(inputs=[args.raster], output=Path(tmp) / "b.gpkg", progress=False)).rasters[0]
    done.set()
    print(f"{res.n_polygons} buildings in {res.seconds:.1f} s (traced)")
    step = max(1, len(trajectory) // 25)
    print("trajectory (s:RSS MB/traced MB):", " ".join(f"{t:.0f}:{r:.0f}/{c:.0f}" for t, r, c in trajectory[::step]))
    if peak["snapshot"] is not None:
        print(f"allocations alive at {peak['t']:.0f} s (RSS {peak['rss']:.0f} MB):")
        for stat in peak["snapshot"].statistics("traceback")[: args.top]:
            print(f"{stat.size / 2**20:.1f} MB in {stat.count} blocks")
            print("   " + "\n   ".join(stat.traceback.format()[-6:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
