"""Peak and trajectory of a command's resident memory: where in a run the memory goes up.

    python benchmarks/rss_trace.py python benchmarks/bench_predict.py _geounet /tmp/geounet-bench/r20000.tif --out /tmp/x.gpkg

Runs the command, samples its VmRSS (``/proc/PID/status``, Linux) every ``RSS_TRACE_S`` seconds
(default 0.5), and prints the command's last stdout line, about a dozen points of the trajectory
(``seconds:MB``) and the highest sample. ``ru_maxrss`` (which ``bench_predict.py`` reports) is the
true peak; the samples show whether memory climbs through the run (state growing with the raster's
height) or sits at a level set early (the width of the strips).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time


def status_mb(key: str, pid: int | str = "self") -> float | None:
    """Field ``key`` of ``/proc/PID/status`` in MB (``VmRSS``: resident now; ``VmHWM``: the peak of this
    process image, which unlike ``ru_maxrss`` does not carry a parent's peak over ``execve``); None once
    the process has ended."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:  # ended between the caller's check and the read
        pass
    return None


def vm_rss_mb(pid: int | str = "self") -> float | None:
    """Resident memory of process ``pid`` in MB (VmRSS of ``/proc/PID/status``); None once it has ended."""
    return status_mb("VmRSS", pid)


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    every = float(os.environ.get("RSS_TRACE_S", "0.5"))
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    samples: list[tuple[float, float]] = []
    t0 = time.perf_counter()
    while proc.poll() is None:
        rss = vm_rss_mb(proc.pid)
        if rss is not None:
            samples.append((time.perf_counter() - t0, rss))
        time.sleep(every)
    out = proc.stdout.read().decode().strip().splitlines()
    print(out[-1] if out else "")
    if samples:
        step = max(1, len(samples) // 12)
        print("trajectory (s:MB):", " ".join(f"{t:.0f}:{r:.0f}" for t, r in samples[::step]))
        t, r = max(samples, key=lambda s: s[1])
        print(f"highest sample {r:.0f} MB at {t:.0f} s of {samples[-1][0]:.0f} s")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
