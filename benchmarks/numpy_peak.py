"""Where numpy's memory is at the peak of one geounet command: tracemalloc snapshots by call site.

    python benchmarks/numpy_peak.py -q predict /tmp/geounet-bench/w20000x5000.tif -o x.parquet --probs p.tif

Runs the command in this process under ``tracemalloc`` (8 frames), takes a snapshot every 0.5 s while the
traced memory is at a new high (2% above the last), and prints the traced peak and the largest call
sites of the highest snapshot (the last five frames of each). numpy reports its arrays to tracemalloc;
torch's tensors and GDAL's caches are not in it, so the traced peak is a part of the peak RSS
(``benchmarks/rss_trace.py``). The run is several times slower than without tracing.
"""

from __future__ import annotations

import linecache
import sys
import threading
import time
import tracemalloc


def main(argv: list[str]) -> None:
    tracemalloc.start(8)
    best: list = [0, None]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            current = tracemalloc.get_traced_memory()[0]
            if current > best[0] * 1.02:
                best[0], best[1] = current, tracemalloc.take_snapshot()

    threading.Thread(target=sample, daemon=True).start()
    from geounet.cli import cli

    t0 = time.perf_counter()
    try:
        cli.main(argv, standalone_mode=False)
    finally:
        stop.set()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    print(f"wall {time.perf_counter() - t0:.1f} s, traced peak {peak:.0f} MB, highest snapshot {best[0] / 2**20:.0f} MB")
    if best[1] is None:
        return
    snap = best[1].filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    for stat in snap.statistics("traceback")[:14]:
        print(f"{stat.size / 2**20:8.1f} MB  {stat.count} blocks")
        for fr in list(stat.traceback)[-5:]:
            where = fr.filename.split("site-packages/")[-1]
            print(f"      {where}:{fr.lineno}  {linecache.getline(fr.filename, fr.lineno).strip()[:90]}")


if __name__ == "__main__":
    main(sys.argv[1:])
