"""Defects of issue 10 met through predict (each test failed before its fix): normalisation of
non-uint8 imagery as in training, the pipeline's teardown, process-wide settings."""

import numpy as np
import pytest
import torch
from torch import nn

from geounet.config import CheckpointInfo, ModelConfig
from geounet.predict import PredictConfig, predict
from geounet.train.dataset import WindowDataset
from geounet.train.samples import Sample
from geounet.train.sources import Source

from helpers_predict import Recording, constant_unet, prep, write_raster


def test_values_beyond_the_scale_reach_the_model_as_in_training(tmp_path):
    """Defect 4: albumentations clips float images to [0, 1] in training, predict did not clip a
    float/uint16 raster's values above its 99.9th-percentile scale (nor negative reflectances)."""
    img = np.full((3, 64, 64), 500, np.float32)
    img[:, :16, :16] = 3000.0  # a roof brighter than the scale (1000)
    img[:, 40:, 40:] = -200.0  # negative reflectance, as atmospheric correction leaves
    tif = write_raster(tmp_path / "f.tif", img, dtype="float32")
    mask = write_raster(tmp_path / "m.tif", np.zeros((1, 64, 64), np.uint8))
    p = prep(tile=64, dtype="float32", scale=1000.0)
    rec = Recording(constant_unet(0.0))
    predict(PredictConfig(inputs=[tif], output=tmp_path / "o.geojson", device="cpu", tile_size=64, overlap=0,
                          progress=False), model=(rec, CheckpointInfo(ModelConfig(width=4, depth=2), p)))
    seen = rec.inputs[0][0]
    lo, hi = (0.0 - 0.3) / 0.3, (1.0 - 0.3) / 0.3  # prep(): mean 0.3, std 0.3
    assert abs(seen[:, 0, 0].max().item() - hi) < 1e-5 and abs(seen[:, 63, 63].min().item() - lo) < 1e-5
    # the validation windows of training normalise the same pixels to the same values
    source = Source(image=str(tif), mask=str(mask), height=64, width=64, count=3, dtype="float32", pixel_size_m=0.2)
    ds = WindowDataset([source], [Sample(0, (0, 0, 64, 64), (0, 0, 64, 64))], p, train=False)
    image, _ = ds[0]
    assert torch.allclose(image, seen, atol=1e-5)
    # so do the windows --adapt re-estimates BatchNorm statistics on
    rec.inputs.clear()
    predict(PredictConfig(inputs=[tif], output=tmp_path / "o2.geojson", device="cpu", tile_size=64, overlap=0,
                          progress=False, adapt=True), model=(rec, CheckpointInfo(ModelConfig(width=4, depth=2), p)))
    assert len(rec.inputs) == 2  # one adapting batch, one predicted
    assert all(x.max().item() <= hi + 1e-5 and x.min().item() >= lo - 1e-5 for x in rec.inputs)
    # and augmented training windows stay in the same range
    ds = WindowDataset([source], [Sample(0, (0, 0, 64, 64), (0, 0, 64, 64))], p, train=True, seed=1)
    for _ in range(8):
        image, _ = ds[0]
        assert image.max().item() <= hi + 1e-4 and image.min().item() >= lo - 1e-4


def test_outputs_are_aborted_only_after_the_writer_thread_ended(tmp_path, monkeypatch):
    """Defect 8: after join(timeout=30) the writers were aborted even when the writer thread was still
    alive: a GDAL dataset closed under another thread. Here the writer is slow to stop (a long strip
    write) and the 30 s wait is shortened, as if it had passed."""
    import threading
    import time

    from geounet.io.vector import VectorWriter
    from geounet.predict import pipeline
    from geounet.vectorize import StripVectorizer

    entered = threading.Event()
    real_add = StripVectorizer.add_rows

    def slow_add(self, *a, **kw):
        entered.set()
        time.sleep(1.0)
        return real_add(self, *a, **kw)

    def short_join(self, timeout=None):
        threading.Thread.join(self, None if timeout is None else min(timeout, 0.1))

    aborts = []
    real_abort = VectorWriter.abort

    def abort(self):
        aborts.append([t.name for t in threading.enumerate() if t.name.startswith("geounet-")])
        return real_abort(self)

    class Failing(nn.Module):
        """The model fails once the writer is busy with the first rows."""

        def __init__(self):
            super().__init__()
            self.inner, self.calls = constant_unet(3.0), 0

        def forward(self, x):
            self.calls += 1
            if self.calls > 1:
                assert entered.wait(10)
                raise RuntimeError("model failed")
            return self.inner(x)

    monkeypatch.setattr(StripVectorizer, "add_rows", slow_add)
    monkeypatch.setattr(pipeline.Writer, "join", short_join)
    monkeypatch.setattr(pipeline.Reader, "join", short_join)
    monkeypatch.setattr(VectorWriter, "abort", abort)
    tif = write_raster(tmp_path / "a.tif", np.full((3, 256, 64), 200, np.uint8))
    out = tmp_path / "o.geojson"
    with pytest.raises(RuntimeError, match="model failed"):
        predict(PredictConfig(inputs=[tif], output=out, device="cpu", tile_size=64, overlap=0, batch_size=1,
                              progress=False), model=(Failing(), CheckpointInfo(ModelConfig(width=4, depth=2), prep())))
    assert aborts == [[]]  # aborted once, with no pipeline thread left running
    assert not out.exists() and {p.name for p in tmp_path.iterdir()} == {"a.tif"}


def process_state() -> dict:
    """What a Python caller of geounet may have set for itself, and geounet must leave as it was."""
    import logging
    import os
    import random
    import warnings

    from rasterio.env import get_gdal_config

    np_state = np.random.get_state()
    log = logging.getLogger("geounet")
    return {
        "torch rng": bytes(torch.random.get_rng_state().numpy()),
        "numpy rng": (np_state[0], np_state[1].tobytes(), *np_state[2:]),
        "random": random.getstate(),
        "cudnn": (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, torch.backends.cudnn.enabled),
        "threads": (torch.get_num_threads(), torch.get_num_interop_threads()),
        "matmul precision": torch.get_float32_matmul_precision(),
        "grad": (torch.is_grad_enabled(), torch.is_inference_mode_enabled(), torch.get_default_dtype()),
        "gdal": {k: get_gdal_config(k) for k in ("GDAL_CACHEMAX", "GDAL_TIFF_INTERNAL_MASK", "GDAL_NUM_THREADS")},
        "environment": dict(os.environ),
        "logger": (log.level, list(log.handlers), log.propagate),
        "warnings": list(warnings.filters),
    }


def test_predict_leaves_the_callers_settings_alone(tmp_path):
    """Defect 14: predict turned cuDNN's autotuner on for the whole process and drew the new model's
    initial weights from the caller's random generator."""
    import rasterio

    from helpers_predict import constant_checkpoint

    tif = write_raster(tmp_path / "a.tif", np.full((3, 64, 64), 200, np.uint8))
    model = constant_checkpoint(tmp_path / "m.pt")
    torch.manual_seed(1234)
    with rasterio.Env(GDAL_CACHEMAX=77):  # the caller's own GDAL settings
        before = process_state()
        predict(PredictConfig(inputs=[tif], output=tmp_path / "o.geojson", model_path=model, device="auto",
                              probs=tmp_path / "p.tif", progress=False))
        after = process_state()
    assert {k: v for k, v in after.items() if before[k] != v} == {}
