"""predict --input-range: imagery of another data type than the model's (16-bit satellite scenes, float
reflectances for an 8-bit model) is stretched per band to the model's range (geounet/io/stretch.py);
predict --bands: which raster bands feed the model's channels (a blue-green-red file); and training
(train --init) an 8-bit model on 16-bit imagery, stretched as predict stretches it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
import torch
from click.testing import CliRunner
from rasterio.enums import ColorInterp

from geounet.cli import cli
from geounet.config import CheckpointInfo, ModelConfig
from geounet.errors import ConfigError, InputError
from geounet.io.stretch import InputStretch, input_stretch, parse_input_range
from geounet.predict import PredictConfig, predict
from geounet.predict.pipeline import Normaliser
from geounet.train.dataset import WindowDataset
from geounet.train.init import stretch_sources
from geounet.train.samples import Sample
from geounet.train.sources import Source

from helpers_predict import BrightModel, Recording, constant_checkpoint, constant_unet, prep, scene, toy_info, write_raster

RECTS = ((40, 40, 90, 100), (150, 120, 200, 230))
CFG = dict(tile_size=64, overlap=16, min_area=0.0, simplify=0.0, progress=False)


def footprints(path) -> list:
    return sorted(pyogrio.read_dataframe(path).geometry, key=lambda g: (g.bounds[0], g.bounds[1]))


def test_the_setting_is_auto_none_or_two_increasing_numbers():
    assert parse_input_range("auto") == "auto" and parse_input_range(" None ") == "none"
    assert parse_input_range("0,2047") == (0.0, 2047.0) and parse_input_range((1, 2.5)) == (1.0, 2.5)
    for bad in ("5,3", "1,1", "x", "1,2,3", "nan,4"):
        with pytest.raises(ConfigError, match="--input-range"):
            parse_input_range(bad)


def test_a_linear_16_bit_copy_with_its_range_given_predicts_the_8_bit_buildings(tmp_path):
    img8 = scene((256, 256), RECTS)
    u8 = write_raster(tmp_path / "u8.tif", img8)
    u16 = write_raster(tmp_path / "u16.tif", img8.astype(np.uint16) * 8 + 37, dtype="uint16")  # 37 .. 2077
    model = (BrightModel(), toy_info())
    predict(PredictConfig(inputs=[u8], output=tmp_path / "a.gpkg", **CFG), model=model)
    predict(PredictConfig(inputs=[u16], output=tmp_path / "b.gpkg", input_range="37,2077", **CFG), model=model)
    a, b = footprints(tmp_path / "a.gpkg"), footprints(tmp_path / "b.gpkg")
    assert len(a) == 2 and [g.wkb for g in a] == [g.wkb for g in b]
    # auto: stretched between the sampled 0.1th and 99.9th percentiles: the same two buildings, nearly the same shape
    predict(PredictConfig(inputs=[u16], output=tmp_path / "c.gpkg", **CFG), model=model)
    c = footprints(tmp_path / "c.gpkg")
    assert len(c) == 2
    for g, h in zip(a, c):
        assert g.intersection(h).area / g.union(h).area > 0.9


def test_auto_measures_valid_pixels_only_and_is_the_same_every_time(tmp_path):
    img = scene((256, 256), RECTS).astype(np.uint16) * 8 + 37
    valid = np.ones((256, 256), bool)
    valid[:, 160:] = False
    img[:, ~valid] = 65535  # fill under the mask: must not become the bright end of the stretch
    tif = write_raster(tmp_path / "m.tif", img, valid=valid, dtype="uint16")
    with rasterio.open(tif) as src:
        s = input_stretch(src, prep(), "auto", str(tif))
        assert s == input_stretch(src, prep(), "auto", str(tif))
        assert input_stretch(src, prep(dtype="uint16", scale=4000.0), "auto", str(tif)) is None  # the model's type
        assert input_stretch(src, prep(), "0,4095", str(tif)) == InputStretch((0.0,) * 3, (4095.0,) * 3)
    mine = img[:, valid]
    for b in range(3):
        assert mine[b].min() <= s.low[b] <= np.percentile(mine[b], 1)
        assert np.percentile(mine[b], 99) <= s.high[b] <= mine[b].max() < 65535


def test_a_raster_with_no_valid_pixel_is_refused_in_one_line(tmp_path):
    tif = write_raster(tmp_path / "empty.tif", np.zeros((3, 64, 64), np.uint16), valid=np.zeros((64, 64), bool),
                       dtype="uint16")
    with rasterio.open(tif) as src, pytest.raises(InputError, match="no valid pixels"):
        input_stretch(src, prep(), "auto", str(tif))


def test_the_normaliser_stretches_then_clips_as_in_training():
    p = prep()  # scale 255, mean 0.3, std 0.3
    n = Normaliser(p, InputStretch((100.0, 100.0, 100.0), (1100.0, 1100.0, 1100.0)))
    raw = np.array([0, 100, 600, 1100, 5000], np.float32).reshape(1, 1, 5).repeat(3, 0)
    x = n(raw.astype(np.uint16))
    expect = (np.array([0.0, 0.0, 0.5, 1.0, 1.0], np.float32) - 0.3) / 0.3
    assert np.allclose(x[0, 0], expect, atol=1e-6)


def test_cli_predicts_float_reflectances_with_an_8_bit_model_and_refuses_them_with_none(tmp_path):
    ckpt = constant_checkpoint(tmp_path / "m.pt", 3.0)
    tif = write_raster(tmp_path / "refl.tif", scene((64, 64)).astype(np.float32) / 255 * 0.4, dtype="float32")
    runner = CliRunner()
    res = runner.invoke(cli, ["-q", "predict", str(tif), "-o", str(tmp_path / "o.geojson"), "--model", str(ckpt)])
    assert res.exit_code == 0, res.output
    (feature,) = json.loads((tmp_path / "o.geojson").read_text())["features"]  # a constant model: one building
    assert shapely.geometry.shape(feature["geometry"]).area == pytest.approx(64 * 64 * 0.04)
    res = runner.invoke(cli, ["-q", "predict", str(tif), "-o", str(tmp_path / "p.geojson"), "--model", str(ckpt),
                              "--input-range", "none"])
    assert res.exit_code == 1 and not (tmp_path / "p.geojson").exists()
    assert "refl.tif: raster is float32 but the model was trained on uint8 imagery" in res.output
    res = runner.invoke(cli, ["-q", "predict", str(tif), "-o", str(tmp_path / "q.geojson"), "--model", str(ckpt),
                              "--input-range", "3,1"])
    assert res.exit_code != 0 and "HIGH must be a number above LOW" in res.output
    assert not (tmp_path / "q.geojson").exists()


# ---------------------------------------------------------------- --bands: which raster bands feed the model


class RedModel(torch.nn.Module):
    """Buildings where the model's first channel (red, for the bundled models) is bright: channel order matters."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 12.0 * ((x[:, :1] * 0.3 + 0.3) - 0.5)  # undo the helpers' normalisation (mean 0.3, std 0.3)


def bgr_raster(path) -> Path:
    """Red roofs on grey ground, stored blue, green, red and labelled so."""
    img = np.full((3, 128, 128), 60, np.uint8)
    img[2, 20:60, 30:90] = 220  # the red band is the third
    tif = write_raster(path, img)
    with rasterio.open(tif, "r+") as dst:
        dst.colorinterp = [ColorInterp.blue, ColorInterp.green, ColorInterp.red]
    return tif


def test_bands_picks_the_raster_bands_of_the_models_channels_and_a_blue_green_red_file_is_warned_of(tmp_path, caplog):
    tif = bgr_raster(tmp_path / "bgr.tif")
    model = (RedModel(), toy_info())
    with caplog.at_level("WARNING", logger="geounet"):
        predict(PredictConfig(inputs=[tif], output=tmp_path / "a.gpkg", **CFG), model=model)
    assert len(pyogrio.read_dataframe(tmp_path / "a.gpkg")) == 0  # read as red, green, blue: no red roof
    assert caplog.text.count("which this raster labels blue, green, red; give --bands 3,2,1") == 1  # once a raster
    caplog.clear()
    with caplog.at_level("WARNING", logger="geounet"):
        predict(PredictConfig(inputs=[tif], output=tmp_path / "b.gpkg", bands="3,2,1", **CFG), model=model)
    (roof,) = pyogrio.read_dataframe(tmp_path / "b.gpkg").geometry
    assert roof.area == pytest.approx(40 * 60 * 0.04, rel=0.05) and "give --bands" not in caplog.text


def test_bands_of_the_wrong_count_or_beyond_the_raster_are_refused_in_one_line(tmp_path):
    ckpt = constant_checkpoint(tmp_path / "m.pt", 3.0)
    tif = bgr_raster(tmp_path / "bgr.tif")
    runner = CliRunner()
    for bands, message in (("3,2", "--bands '3,2': the model takes 3 channel(s)"), ("a,b,c", "expected band numbers"),
                           ("4,2,1", "bgr.tif: raster has 3 band(s) but the model reads band(s) [4, 2, 1]")):
        res = runner.invoke(cli, ["-q", "predict", str(tif), "-o", str(tmp_path / "o.geojson"), "--model", str(ckpt),
                                  "--bands", bands])
        assert res.exit_code == 1 and message in res.output, res.output
        assert not (tmp_path / "o.geojson").exists()


# ---------------------------------------------------------------- fine-tuning an 8-bit model on 16-bit imagery


def test_training_windows_of_16_bit_imagery_are_stretched_as_predict_stretches_them(tmp_path):
    img = scene((64, 64), ((10, 10, 40, 50),)).astype(np.uint16) * 8 + 37
    img[:, 0, 0] = 4000  # one hot pixel: beyond the 99.9th percentile, clipped by both
    tif = write_raster(tmp_path / "u16.tif", img, dtype="uint16")
    mask = write_raster(tmp_path / "m.tif", np.zeros((1, 64, 64), np.uint8))
    p = prep(tile=64)  # a uint8 model
    rec = Recording(constant_unet(0.0))
    predict(PredictConfig(inputs=[tif], output=tmp_path / "o.geojson", device="cpu", tile_size=64, overlap=0,
                          progress=False), model=(rec, CheckpointInfo(ModelConfig(width=4, depth=2), p)))
    seen = rec.inputs[0][0]
    source = Source(image=str(tif), mask=str(mask), height=64, width=64, count=3, dtype="uint16", pixel_size_m=0.2)
    stretch_sources([source], p)
    with rasterio.open(tif) as src:
        assert source.stretch == input_stretch(src, p, "auto", str(tif))
    ds = WindowDataset([source], [Sample(0, (0, 0, 64, 64), (0, 0, 64, 64))], p, train=False)
    image, _ = ds[0]
    assert torch.allclose(image, seen, atol=1e-5)
    assert image.max().item() == pytest.approx((1.0 - 0.3) / 0.3)  # the roof reaches the top of the range
    plain = Source(image=str(tif), mask=str(mask), height=64, width=64, count=3, dtype="uint8", pixel_size_m=0.2)
    stretch_sources([plain], p)
    assert plain.stretch is None  # the model's own type: read as it is


def test_the_bundled_model_finds_the_same_buildings_in_a_16_bit_copy_of_the_sample(tmp_path):
    """Real imagery: a 1024 px crop of sample_data/, and an 11-bit copy of it (8 v + 37, uint16)."""
    sample = Path(__file__).resolve().parents[1] / "sample_data" / "banepa_unlabelled.tif"
    with rasterio.open(sample) as src:
        win = rasterio.windows.Window(512, 512, 1024, 1024)
        img, profile = src.read(window=win), src.profile
        profile.update(width=1024, height=1024, transform=src.window_transform(win), compress="deflate")
    for key in ("photometric", "jpeg_quality"):
        profile.pop(key, None)
    found = {}
    for name, data in (("u8", img), ("u16", img.astype(np.uint16) * 8 + 37)):
        path = tmp_path / f"{name}.tif"
        with rasterio.open(path, "w", **(profile | {"dtype": data.dtype.name})) as dst:
            dst.write(data)
        predict(PredictConfig(inputs=[path], output=tmp_path / f"{name}.gpkg", progress=False))
        found[name] = pyogrio.read_dataframe(tmp_path / f"{name}.gpkg").geometry.values
    a, b = shapely.union_all(found["u8"]), shapely.union_all(found["u16"])
    assert len(found["u8"]) > 50 and abs(len(found["u16"]) - len(found["u8"])) <= 0.1 * len(found["u8"])
    assert a.intersection(b).area / a.union(b).area > 0.9
