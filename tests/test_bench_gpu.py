"""benchmarks/gpu.sh, the GPU benchmark, in its dry run on the CPU: a tiny raster, every table written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_benchmark_dry_run_on_cpu(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, OUT=str(out), PYTHON=sys.executable)
    cmd = ["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--device", "cpu", "--size", "300", "--widths", "8",
           "--tile", "64", "--model-iters", "2", "--no-bundled"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert {p.name for p in out.iterdir()} == {"gpu_bench.json", "gpu_bench.md", "gpu_bench.log"}
    report = json.loads((out / "gpu_bench.json").read_text())
    assert report["machine"]["device"] == "cpu" and report["machine"]["torch"]
    assert report["tests"]["status"].startswith("not run")
    (alone,) = report["model_alone"]
    assert alone["width"] == 8 and alone["tile"] == 64 and alone["mpx_per_s"] > 0
    (run,) = report["predict"]
    assert run["status"] == "ok" and run["raster_pixels"] == 300 * 300 and run["windows_run"] >= 1
    assert 0 < run["model_share"] <= 1 and run["mpx_per_s"] > 0 and run["peak_rss_mb"] > 0
    md = (out / "gpu_bench.md").read_text()
    assert "## Model alone" in md and "| 8 | 1 | 64 |" in md
    assert "on a 300 x 300 px raster" in md and "| random w8 (no buildings) | ok |" in md
    assert md in res.stdout  # printed last, for the device tool's output tail
