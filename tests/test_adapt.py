"""predict --adapt: BatchNorm statistics re-estimated on the raster, deterministic, from windows only."""

import dataclasses

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner

from geounet.cli import cli
from geounet.config import CheckpointInfo, ModelConfig
from geounet.grid import spread_windows
from geounet.model import build_model
from geounet.predict import RunOptions
from geounet.predict.adapt import adapted, batchnorm_layers

from helpers_predict import prep, random_scene, save_unet, write_raster


def trained_like_unet(seed=0):
    """A small U-Net with random weights and non-trivial stored BatchNorm statistics."""
    torch.manual_seed(seed)
    model = build_model(ModelConfig(in_channels=3, out_channels=1, width=4, depth=2))
    for bn in batchnorm_layers(model):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    return model.eval()


def info_for(model):
    return CheckpointInfo(model=model.config, preprocessing=prep())


@pytest.mark.parametrize("h, w, tile, per_side", [(1000, 700, 256, 4), (256, 256, 256, 3), (300, 5000, 64, 5)])
def test_spread_windows_lie_inside_and_spread(h, w, tile, per_side):
    corners = spread_windows(h, w, tile, per_side)
    assert corners and len(set(corners)) == len(corners) <= per_side**2
    assert all(0 <= r <= h - tile and 0 <= c <= w - tile for r, c in corners)
    rows, cols = {r for r, _ in corners}, {c for _, c in corners}
    assert min(rows) == 0 and max(rows) == h - tile and min(cols) == 0 and max(cols) == w - tile
    if len(corners) >= 4:  # a prefix is spread too: the first four do not share one row and one column
        first = corners[:4]
        assert len({r for r, _ in first}) > 1 and len({c for _, c in first}) > 1
    assert spread_windows(h, w, max(h, w) + 1, per_side) == []


def test_adapt_changes_statistics_and_leaves_the_model_alone(tmp_path):
    img, _ = random_scene((320, 320), seed=2)
    tif = write_raster(tmp_path / "a.tif", img)
    model = trained_like_unet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opts = RunOptions(tile=64, overlap=16, batch_size=1, adapt=True, adapt_windows=8)
    with rasterio.open(tif) as src:
        net = adapted(model, src, info_for(model), opts, torch.device("cpu"))
        again = adapted(model, src, info_for(model), opts, torch.device("cpu"))
    assert net is not model and not net.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # the given model is untouched
    new = net.state_dict()
    stats = [k for k in new if k.endswith(("running_mean", "running_var"))]
    assert all(not torch.equal(new[k], before[k]) for k in stats)
    assert all(torch.equal(new[k], before[k]) for k in new if k not in stats and not k.endswith("num_batches_tracked"))
    assert all(torch.equal(new[k], again.state_dict()[k]) for k in new)  # same raster, same statistics
    # the first layer's mean is the mean of its (bias-free) convolution over the sampled pixels
    x = torch.from_numpy(((img.astype(np.float32) / 255 - 0.3) / 0.3))[None]
    conv = model.downs[0].conv[0]
    whole = conv(x).mean(dim=(0, 2, 3))
    assert torch.allclose(new["downs.0.conv.1.running_mean"], whole, atol=0.15)


def test_adapt_reads_only_fully_valid_windows(tmp_path, monkeypatch):
    img, _ = random_scene((320, 320), seed=3)
    valid = np.ones((320, 320), bool)
    valid[:, 200:] = False  # the right part has no data
    img[:, ~valid] = 0
    tif = write_raster(tmp_path / "a.tif", img, valid=valid)
    model = trained_like_unet()
    opts = RunOptions(tile=64, overlap=16, batch_size=1, adapt=True, adapt_windows=6)
    reads = []
    with rasterio.open(tif) as src:
        real_read = type(src).read

        def spy(self, *a, window=None, **kw):
            reads.append(window)
            return real_read(self, *a, window=window, **kw)

        monkeypatch.setattr(type(src), "read", spy)
        adapted(model, src, info_for(model), opts, torch.device("cpu"))
    assert len(reads) == 6
    for win in reads:  # windows of the tile size, never the raster, never into the no-data part
        assert win is not None and (win.width, win.height) == (64, 64) and win.col_off + 64 <= 200


def test_adapt_without_valid_windows_keeps_the_model(tmp_path):
    img, _ = random_scene((128, 128), seed=1)
    valid = np.zeros((128, 128), bool)
    valid[::2] = True  # no window is whole
    tif = write_raster(tmp_path / "a.tif", img, valid=valid)
    model = trained_like_unet()
    opts = RunOptions(tile=64, overlap=16, batch_size=1, adapt=True)
    with rasterio.open(tif) as src:
        assert adapted(model, src, info_for(model), opts, torch.device("cpu")) is model


def test_predict_adapt_is_deterministic_and_changes_probabilities(tmp_path):
    img, _ = random_scene((384, 384), seed=4)
    tif = write_raster(tmp_path / "a.tif", img)
    ckpt = save_unet(tmp_path / "m.pt", trained_like_unet(), prep(tile=64))
    probs = {}
    for name, flags in (("plain", []), ("a1", ["--adapt"]), ("a2", ["--adapt"])):
        res = CliRunner().invoke(cli, ["predict", str(tif), "-o", str(tmp_path / f"{name}.geojson"), "--model",
                                       str(ckpt), "--probs", str(tmp_path / f"{name}.tif"), "--tile-size", "64",
                                       "--overlap", "16", *flags])
        assert res.exit_code == 0, res.output
        with rasterio.open(tmp_path / f"{name}.tif") as src:
            probs[name] = src.read()
    assert np.array_equal(probs["a1"], probs["a2"])
    assert not np.array_equal(probs["plain"], probs["a1"])
    a = gpd.read_file(tmp_path / "a1.geojson")
    b = gpd.read_file(tmp_path / "a2.geojson")
    assert len(a) == len(b) and all(x.equals_exact(y, 0) for x, y in zip(a.geometry, b.geometry))


def test_adapt_setting_is_off_by_default_and_documented():
    field = next(f for f in dataclasses.fields(RunOptions) if f.name == "adapt")
    assert field.default is False and "BatchNorm" in field.metadata["doc"]


def test_adapt_takes_smaller_windows_inside_a_ragged_edge(tmp_path):
    """An orthophoto's irregular outline leaves no whole 256 px window: half-size windows are taken."""
    img, _ = random_scene((384, 384), seed=5)
    yy, xx = np.mgrid[:384, :384]
    valid = (yy - 192) ** 2 + (xx - 192) ** 2 < 180**2  # a disc: no 256 px square fits inside
    tif = write_raster(tmp_path / "a.tif", img, valid=valid)
    model = trained_like_unet()
    opts = RunOptions(tile=256, overlap=64, batch_size=1, adapt=True, adapt_windows=4)
    from geounet.predict.adapt import sample_size

    with rasterio.open(tif) as src:
        tile, wins = sample_size(src, 256, 4, 4)
        assert tile == 128 and wins
        for w in wins:
            assert valid[w.row_off:w.row_off + 128, w.col_off:w.col_off + 128].all()
        assert adapted(model, src, info_for(model), opts, torch.device("cpu")) is not model
