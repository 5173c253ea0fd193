"""``predict --nodata VALUE``: undeclared no-data (a black collar) masked like declared no-data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.windows import Window

from geounet.cli import cli
from geounet.io.nodata import ValueMasked, with_nodata_value
from geounet.io.raster import ScaledRaster, has_validity_mask, read_valid_mask

from helpers_predict import constant_checkpoint, scene, write_raster


def _collared(tmp_path, *, mask=True):
    """A 150 x 200 scene whose last 50 columns are 0 in every band (an undeclared collar); with ``mask``, an
    internal mask declares the top-left corner no-data; one pixel inside the data is 0 in two bands of three."""
    img = scene((150, 200))
    img[:, :, 150:] = 0
    img[:2, 70, 70] = 0  # a dark pixel of real imagery: 0 in two bands, not in the third
    img[2, 70, 70] = 9
    valid = None
    if mask:
        valid = np.ones((150, 200), bool)
        valid[:30, :40] = False
    return write_raster(tmp_path / "collar.tif", img, valid=valid), valid


@pytest.mark.parametrize("mask", [True, False])
def test_pixels_zero_in_every_band_are_no_data_on_top_of_the_raster_mask(tmp_path, mask):
    tif, valid = _collared(tmp_path, mask=mask)
    with rasterio.open(tif) as src:
        assert with_nodata_value(src, None) is src
        masked = ValueMasked(src, 0)
        assert has_validity_mask(masked) and masked.crs == src.crs and masked.width == 200
        got = read_valid_mask(masked)
    expected = np.ones((150, 200), bool) if valid is None else valid.copy()
    expected[:, 150:] = False
    assert np.array_equal(got, expected)
    assert got[70, 70]  # 0 in some bands only: still data


def test_validity_read_in_pieces_is_that_of_one_whole_read(tmp_path):
    """The streamed pipeline reads validity strip by strip and window by window, natively and resampled."""
    tif, _ = _collared(tmp_path)
    with rasterio.open(tif) as src:
        for grid in (ValueMasked(src, 0), ScaledRaster(ValueMasked(src, 0), 131, 98)):
            whole = grid.dataset_mask()
            assert 0.5 < (whole > 0).mean() < 0.9
            rows, cols = [0, 17, 64, grid.height], [0, 45, 99, grid.width]
            for r0, r1 in zip(rows, rows[1:]):
                for c0, c1 in zip(cols, cols[1:]):
                    w = Window(c0, r0, c1 - c0, r1 - r0)
                    assert np.array_equal(grid.dataset_mask(window=w), whole[r0:r1, c0:c1]), (r0, c0)


def test_a_value_the_raster_cannot_hold_masks_nothing(tmp_path):
    tif, valid = _collared(tmp_path)
    with rasterio.open(tif) as src:
        assert np.array_equal(read_valid_mask(ValueMasked(src, -1)), valid)
        assert np.array_equal(read_valid_mask(ValueMasked(src, 0.5)), valid)


def test_predict_draws_no_building_into_the_collar(tmp_path):
    """A constant model (every valid pixel building): without --nodata the collar is a building; with
    --nodata 0 the building stops at the collar, in the polygons and in the probabilities."""
    tif, _ = _collared(tmp_path, mask=False)
    ckpt = constant_checkpoint(tmp_path / "m.pt", 3.0)
    runner = CliRunner()
    areas = {}
    for name, extra in (("plain", []), ("nodata", ["--nodata", "0"])):
        out = tmp_path / f"{name}.geojson"
        res = runner.invoke(cli, ["-q", "predict", str(tif), "-o", str(out), "--model", str(ckpt), "--tile-size", "64",
                                  "--probs", str(tmp_path / f"{name}.tif"), *extra], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        assert res.stdout.strip().splitlines() == [str(out)]
        features = json.loads(out.read_text())["features"]
        assert len(features) == 1
        areas[name] = features[0]["properties"]["area_m2"]
    assert areas["plain"] == pytest.approx(150 * 200 * 0.04, rel=0.01)
    assert areas["nodata"] == pytest.approx(150 * 150 * 0.04, rel=0.01)
    with rasterio.open(tmp_path / "nodata.tif") as p:
        probs, pvalid = p.read(1), p.dataset_mask() > 0
    assert not pvalid[:, 150:].any() and pvalid[:, :150].all()
    assert (probs[:, :150] > 200).all()


def test_a_nodata_that_is_not_a_number_is_refused_in_one_line(tmp_path):
    tif, _ = _collared(tmp_path, mask=False)
    res = CliRunner().invoke(cli, ["predict", str(tif), "-o", str(tmp_path / "o.geojson"), "--nodata", "black"])
    assert res.exit_code == 2 and "--nodata" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o.geojson").exists()


def test_the_auto_stretch_of_a_16_bit_scene_leaves_an_undeclared_fill_out(tmp_path):
    """A uint16 scene whose left third is undeclared 0 fill: the 0.1th percentile is 0 unless --nodata 0."""
    from geounet.io.stretch import input_stretch

    from helpers_predict import prep

    rng = np.random.default_rng(0)
    img = rng.integers(300, 2000, size=(3, 300, 300)).astype(np.uint16)
    img[:, :, :100] = 0
    tif = write_raster(tmp_path / "s16.tif", img)
    with rasterio.open(tif) as src:
        plain = input_stretch(src, prep(), "auto", "s16.tif")
        masked = input_stretch(ValueMasked(src, 0), prep(), "auto", "s16.tif")
    assert plain.low == (0.0, 0.0, 0.0)
    assert all(300 <= lo < 310 for lo in masked.low) and all(1990 <= hi <= 2000 for hi in masked.high)
