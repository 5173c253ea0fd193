"""Defects of issue 10 met through predict (each test failed before its fix): normalisation of
non-uint8 imagery as in training, the pipeline's teardown, process-wide settings."""

import numpy as np
import torch
from torch import nn

from geounet.config import CheckpointInfo, ModelConfig
from geounet.predict import PredictConfig, predict
from geounet.train.dataset import WindowDataset
from geounet.train.samples import Sample
from geounet.train.sources import Source

from helpers_predict import constant_unet, prep, write_raster


class Recording(nn.Module):
    """Wraps a model and keeps a copy of every batch it is given."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner, self.inputs = inner, []

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        return self.inner(x)


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
    # and augmented training windows stay in the same range
    ds = WindowDataset([source], [Sample(0, (0, 0, 64, 64), (0, 0, 64, 64))], p, train=True, seed=1)
    for _ in range(8):
        image, _ = ds[0]
        assert image.max().item() <= hi + 1e-4 and image.min().item() >= lo - 1e-4
