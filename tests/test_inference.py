"""The model as predict runs it (geounet.model.inference): BatchNorm folded into the convolutions, on a copy,
after --adapt, with masks equal to the fp32 model's on real imagery."""

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner
from rasterio.windows import Window
from torch import nn

from geounet.cli import cli
from geounet.config import CheckpointInfo, ModelConfig
from geounet.device import autocast
from geounet.model import build_model, load_model
from geounet.model.inference import fold_batchnorm, inference_model
from geounet.model.tta import DihedralTTA
from geounet.predict import RunOptions, predict_raster
from geounet.predict.adapt import adapted, batchnorm_layers
from geounet.predict.pipeline import Normaliser

from helpers_predict import SHARED_DATA, prep, random_scene, save_unet, write_raster


def trained_like(seed=0, outputs=("building", "border", "contact")):
    """A small U-Net with random weights and non-trivial BatchNorm statistics and affine parameters."""
    torch.manual_seed(seed)
    model = build_model(ModelConfig(in_channels=3, out_channels=len(outputs), width=4, depth=2, outputs=outputs))
    for bn in batchnorm_layers(model):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        nn.init.uniform_(bn.weight, 0.5, 1.5)
        nn.init.uniform_(bn.bias, -0.5, 0.5)
    return model.eval()


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("wrap", [False, True])
def test_folded_model_equals_the_unfolded_one_and_leaves_it_alone(wrap):
    model = trained_like()
    net = DihedralTTA(model) if wrap else model
    before = state(net)
    folded = inference_model(net)
    assert folded is not net and not batchnorm_layers(folded)
    assert len(batchnorm_layers(net)) == 10  # the caller's module keeps its BatchNorm layers and weights
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        ref, out = net(x), folded(x.contiguous(memory_format=torch.channels_last))
    assert ref.abs().max() > 0.1 and torch.allclose(out, ref, atol=1e-4, rtol=1e-4)


def test_only_fixed_batchnorm_is_folded():
    model = trained_like().train()  # in training mode BatchNorm normalises with the batch's statistics
    assert fold_batchnorm(model) is model
    seq = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4)).eval()  # not directly after the conv
    assert fold_batchnorm(seq) is seq
    plain = nn.Conv2d(3, 4, 3).eval()
    assert inference_model(plain) is plain


def test_predict_adapts_before_folding(tmp_path):
    """--adapt gives what the adapted model gives: folding first would leave adapt no BatchNorm to adapt."""
    img, _ = random_scene((256, 256), seed=6)
    tif = write_raster(tmp_path / "a.tif", img)
    model = trained_like(outputs=("building",))
    ckpt = save_unet(tmp_path / "m.pt", model, prep(tile=64))
    opts = RunOptions(tile=64, overlap=16, batch_size=1, adapt=True)
    with rasterio.open(tif) as src:
        by_hand = adapted(model, src, load_model(ckpt)[1], opts, torch.device("cpu"))
    save_unet(tmp_path / "adapted.pt", by_hand, prep(tile=64))
    probs = {}
    for name, model_path, flags in (("plain", ckpt, []), ("adapt", ckpt, ["--adapt"]),
                                    ("by_hand", tmp_path / "adapted.pt", [])):
        res = CliRunner().invoke(cli, ["predict", str(tif), "-o", str(tmp_path / f"{name}.geojson"), "--model",
                                       str(model_path), "--probs", str(tmp_path / f"{name}.tif"), "--tile-size", "64",
                                       "--overlap", "16", "--no-amp", *flags])
        assert res.exit_code == 0, res.output
        with rasterio.open(tmp_path / f"{name}.tif") as src:
            probs[name] = src.read(1).astype(int)
    assert np.abs(probs["adapt"] - probs["by_hand"]).max() <= 1  # one of 256 levels: float rounding
    assert np.abs(probs["adapt"] - probs["plain"]).max() > 10


def _crop(name, path, row, col, size, prep_):
    with rasterio.open(SHARED_DATA / path) as src:
        raw = src.read(list(prep_.bands), window=Window(col, row, size, size))
    return torch.from_numpy(Normaliser(prep_)(raw))[None].contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("name, path, row, col", [("banepa", "banepa/banepa.tif", 1536, 1024),
                                                  ("zanzibar", "zanzibar/zanzibar.tif", 0, 0)])
def test_folded_bf16_masks_equal_fp32_masks_on_real_imagery(name, path, row, col):
    """The path predict runs (folded, bf16 autocast, channels-last) against the fp32 model as trained."""
    model, info = load_model()
    x = _crop(name, path, row, col, 512, info.preprocessing)
    net = inference_model(model)
    with torch.inference_mode():
        ref = torch.sigmoid(model(x)[0, 0]).numpy() >= 0.5
        with autocast("cpu"):
            fast = torch.sigmoid(net(x)[0, 0].float()).numpy() >= 0.5
    assert ref.mean() > 0.02  # buildings in the crop: the comparison means something
    iou = np.logical_and(ref, fast).sum() / np.logical_or(ref, fast).sum()
    assert iou >= 0.99, iou


def test_predict_runs_a_folded_copy_and_leaves_the_given_model_alone(tmp_path, monkeypatch):
    import geounet.predict.driver as driver

    ran = []
    monkeypatch.setattr(driver, "inference_model", lambda m: ran.append(inference_model(m)) or ran[-1])
    img, _ = random_scene((128, 128), seed=7)
    tif = write_raster(tmp_path / "a.tif", img)
    model = trained_like(outputs=("building",))
    before = state(model)
    opts = RunOptions(tile=64, overlap=16, batch_size=1)
    info = CheckpointInfo(model=model.config, preprocessing=prep(tile=64))
    res = predict_raster(model, info, tif, tmp_path / "b.geojson", opts, probs=tmp_path / "p.tif")
    assert res.windows_run == res.windows > 0
    assert len(ran) == 1 and ran[0] is not model and not batchnorm_layers(ran[0])  # the model predict ran
    assert len(batchnorm_layers(model)) == 10 and not model.training
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
