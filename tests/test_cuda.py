"""The CUDA path on a real GPU: device choice, autocast, predict (pinned batches, non-blocking copies, cuDNN
autotuning) against the CPU, the CLI and a short training.

Marked ``cuda``: deselected by default (pyproject's addopts; CI has no GPU) and run by
``pytest -m cuda`` (benchmarks/gpu.sh), where each test fails, not skips, if torch sees no GPU (conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import torch
from click.testing import CliRunner

from geounet.cli import cli
from geounet.device import autocast, autocast_dtype, cudnn_autotune, resolve_device
from geounet.errors import ConfigError
from geounet.predict import PredictConfig, predict

pytestmark = pytest.mark.cuda

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "banepa_train.tif"  # 1024 px, real imagery


def test_cuda_device_and_autocast():
    dev = resolve_device("cuda")
    assert dev.type == "cuda" and resolve_device("auto").type == "cuda"
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")
    a = torch.randn(64, 64, device=dev)
    with autocast(dev):
        assert torch.mm(a, a).dtype == autocast_dtype(dev)
    assert autocast_dtype(dev) == (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    with autocast(dev, enabled=False):
        assert torch.mm(a, a).dtype == torch.float32


def test_cudnn_autotune_is_restored():
    before = torch.backends.cudnn.benchmark
    with cudnn_autotune("cuda"):
        assert torch.backends.cudnn.benchmark
    assert torch.backends.cudnn.benchmark == before


def _predict(folder: Path, device: str, amp: bool):
    out = folder / f"{device}-{amp}.gpkg"
    probs = folder / f"{device}-{amp}.tif"
    cfg = PredictConfig(inputs=[SAMPLE], output=out, probs=probs, device=device, amp=amp, progress=False)
    result = predict(cfg).rasters[0]
    assert result.error is None
    with rasterio.open(probs) as src:
        p = src.read(1).astype(np.float32) / 255.0
    return result, p


@pytest.mark.parametrize("amp", [True, False])
def test_predict_on_cuda_matches_cpu(tmp_path, amp):
    """The bundled model on real imagery: the CUDA masks equal the CPU's at IoU >= 0.99 (bf16 or fp16
    autocast on both, or float32 with TF32 convolutions on the GPU), and the footprints agree."""
    cpu, p_cpu = _predict(tmp_path, "cpu", amp)
    gpu, p_gpu = _predict(tmp_path, "cuda", amp)
    assert gpu.windows == cpu.windows and gpu.windows_run == cpu.windows_run
    m_cpu, m_gpu = p_cpu >= 0.5, p_gpu >= 0.5
    assert m_cpu.sum() > 1000  # buildings were found: the comparison means something
    iou = (m_cpu & m_gpu).sum() / (m_cpu | m_gpu).sum()
    assert iou >= 0.99, iou
    assert np.abs(p_cpu - p_gpu).mean() < (0.01 if amp else 0.002)
    assert abs(gpu.n_polygons - cpu.n_polygons) <= max(2, 0.05 * cpu.n_polygons)
    assert torch.cuda.max_memory_allocated() > 0


def test_predict_cli_on_cuda(tmp_path):
    out = tmp_path / "b.geojson"
    res = CliRunner().invoke(cli, ["predict", str(SAMPLE), "-o", str(out), "--device", "cuda", "--batch-size", "4"])
    assert res.exit_code == 0, res.output
    gdf = pyogrio.read_dataframe(out)
    with rasterio.open(SAMPLE) as src:
        assert gdf.crs == src.crs
    assert len(gdf) > 10 and (gdf["score"] >= 0.5).all()


def test_training_steps_on_cuda(scene, tmp_path):
    tif, labels = scene
    out = tmp_path / "run"
    args = ["train", "--raster", tif, "--labels", labels, "--out", out, "--width", "4", "--depth", "2",
            "--tile-size", "64", "--batch-size", "4", "--workers", "0", "--epoch-windows", "1", "--epochs", "2",
            "--device", "cuda"]
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    assert {"best.pt", "last.pt", "metrics.csv"} <= {p.name for p in out.iterdir()}
    ckpt = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
    weights = [v for v in ckpt["state_dict"].values() if torch.is_tensor(v) and v.is_floating_point()]
    assert weights and all(torch.isfinite(w).all() for w in weights)
