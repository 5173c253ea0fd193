"""geounet.predict.settings: every setting defined once, documented, used by the CLI and the library."""

import dataclasses

import click
import pytest

from geounet.cli import cli
from geounet.config import CheckpointInfo, ModelConfig, Preprocessing
from geounet.predict import PredictConfig, RunOptions, resolve_options
from geounet.predict import settings as S

CONCERNS = [S.WindowSettings, S.PolygonSettings, S.SeparationSettings, S.ReadSettings, S.OutputSettings,
            S.InferenceSettings]


def test_every_setting_has_a_default_and_a_doc_and_one_home():
    homes = {}
    for cls in CONCERNS:
        for f in dataclasses.fields(cls):
            assert f.default is not dataclasses.MISSING and f.metadata["doc"].strip(), (cls, f.name)
            assert f.name not in homes, (f.name, homes.get(f.name), cls)
            homes[f.name] = cls
    for cls in (PredictConfig, RunOptions):
        names = {f.name for f in dataclasses.fields(cls)}
        assert set(homes) <= names
        for f in dataclasses.fields(cls):
            assert f.metadata.get("doc"), (cls, f.name)


def test_cli_option_defaults_are_the_settings():
    command = cli.commands["predict"]
    checked = 0
    for p in command.params:
        if isinstance(p, click.Option) and p.name in {f.name for f in dataclasses.fields(PredictConfig)}:
            if p.required:  # -o/--output: no default, its help is the field's doc
                assert p.help == S.setting_doc(PredictConfig, p.name)
                continue
            assert p.default == getattr(PredictConfig, p.name), p.name
            assert p.help == S.setting_doc(PredictConfig, p.name), p.name
            checked += 1
    assert checked >= 16


def test_resolved_options_carry_every_setting():
    info = CheckpointInfo(model=ModelConfig(width=4, depth=2), preprocessing=Preprocessing())
    cfg = PredictConfig(inputs=["a.tif"], output="b.gpkg", reach_m=2.5, speck_m2=0.5, band_width=1024,
                        gdal_cache_mb=32, probs_block=512, progress=False)
    opts = resolve_options(cfg, info, __import__("torch").device("cpu"))
    assert (opts.reach_m, opts.speck_m2, opts.band_width, opts.gdal_cache_mb, opts.probs_block) == (2.5, 0.5, 1024, 32, 512)
    assert (opts.tile, opts.overlap, opts.batch_size) == (512, 128, 1)  # a quarter of the window, at most 128
    cfg = dataclasses.replace(cfg, min_tile=256, max_overlap=48)
    assert (resolve_options(cfg, info, __import__("torch").device("cpu")).tile,
            resolve_options(cfg, info, __import__("torch").device("cpu")).overlap) == (256, 48)
    assert opts.threshold == S.PolygonSettings.threshold and opts.min_area == S.PolygonSettings.min_area


def test_settings_are_values():
    opts = RunOptions(tile=64, overlap=16, batch_size=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.reach_m = 1.0
    assert dataclasses.replace(opts, reach_m=1.0).reach_m == 1.0 and opts.reach_m == S.SeparationSettings.reach_m


def test_vectorize_options_convert_the_settings_of_the_run():
    from types import SimpleNamespace

    from affine import Affine
    from rasterio.crs import CRS

    from geounet.io.raster import pixel_size_m
    from geounet.predict import vectorize_options

    src = SimpleNamespace(crs=CRS.from_epsg(32633), transform=Affine(0.2, 0, 400000.0, 0, -0.2, 4000000.0),
                          width=100, height=100, name="x.tif")
    px = pixel_size_m(src)
    sep = ("building", "border", "contact")
    base = RunOptions(tile=64, overlap=16, batch_size=1)
    for opts in (base, dataclasses.replace(base, reach_m=1.0, seed_min_m2=1.0, speck_m2=2.0, regularize=True)):
        v = vectorize_options(src, opts, sep, True)
        assert v.reach_px == min(opts.max_reach_px, max(1, -(-opts.reach_m // px)))
        assert v.seed_min_px == min(opts.seed_min_max_px, round(opts.seed_min_m2 / (px * px)))
        assert v.sieve_px == round(opts.speck_m2 / (px * px))
        assert v.seed_threshold == opts.score_seed_threshold and v.seed_erode_px == 0
        assert v.regularize_m == (opts.regularize_m if opts.regularize else 0.0)
    plain = vectorize_options(src, dataclasses.replace(base, plain_erode_m=0.8), ("building",), True)
    assert plain.seed_threshold == base.plain_seed_threshold and plain.seed_erode_px == round(0.8 / px)
