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
           "--tile", "64", "--model-iters", "2", "--no-bundled", "--ranks", "2", "--ranks-size", "200",
           "--ranks-copies", "3"]
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
    (ranks,) = report["ranks"]["runs"]  # two processes, three rasters: every one written once
    assert ranks["ranks"] == 2 and ranks["status"] == "ok" and ranks["outputs"] == 3 and ranks["mpx_per_s"] > 0
    md = (out / "gpu_bench.md").read_text()
    assert "## Model alone" in md and "| 8 | 1 | 64 |" in md
    assert "on a 300 x 300 px raster" in md and "| random w8 (no buildings) | ok |" in md
    assert "## Many rasters: 3 rasters of 200 x 200 px" in md and "| 2 | ok |" in md
    assert md in res.stdout  # printed last, for the device tool's output tail


def test_gpu_data_packs_a_raster_at_the_finest_training_pixel_keeping_no_data(tmp_path):
    """scripts/gpu_data.py: a 0.1 m raster becomes 0.2 m JPEG, same CRS and bounds, no-data still no-data;
    a raster already coarser keeps its pixels."""
    import numpy as np
    import rasterio

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from gpu_data import pack_raster
    finally:
        sys.path.pop(0)
    from conftest import synthetic_scene, write_raster

    img, _ = synthetic_scene(256, n=12, seed=3)
    valid = np.ones((256, 256), bool)
    valid[:, :64] = False  # the west quarter is no-data
    src = write_raster(tmp_path / "fine.tif", img, res=0.1, valid=valid)
    line = pack_raster(src, tmp_path / "packed.tif", 0.2, 85)
    assert "256x256 -> 128x128" in line
    with rasterio.open(src) as a, rasterio.open(tmp_path / "packed.tif") as b:
        assert b.crs == a.crs and b.bounds == a.bounds and b.res == (0.2, 0.2)
        assert b.compression.name == "jpeg" and b.count == 3
        mask = b.dataset_mask()
        assert (mask[:, :32] == 0).all() and (mask[:, 32:] == 255).all()
        # the pixels are the source's, resampled: a block mean within a few levels (JPEG, bilinear)
        got = b.read(out_dtype="float32")[:, :, 40:].mean()
        want = a.read(out_dtype="float32")[:, :, 80:].mean()
        assert abs(got - want) < 3
    coarse = write_raster(tmp_path / "coarse.tif", img, res=0.5)
    assert "256x256 -> 256x256" in pack_raster(coarse, tmp_path / "coarse_packed.tif", 0.2, 85)
