"""Defects found by review and hostile inputs (each test failed before its fix)."""

import geopandas as gpd
import numpy as np
import rasterio
from affine import Affine
from click.testing import CliRunner
from rasterio.enums import ColorInterp
from shapely.geometry import Polygon

from geounet.cli import cli
from geounet.labels import Labels

from helpers_predict import constant_checkpoint, prep, scene, write_raster


def test_rgba_raster_resampled_by_pixel_size_auto(tmp_path):
    """A drone orthophoto (RGBA, 5 cm) resampled to the model's pixel size: GDAL's WarpedVRT
    refused a second alpha band ("The VRT already has an alpha band") and predict crashed."""
    rgb = scene((256, 256))
    alpha = np.full((1, 256, 256), 255, np.uint8)
    alpha[:, :, :40] = 0  # an edge of no-data, as orthophotos have
    tif = tmp_path / "rgba.tif"
    write_raster(tif, np.concatenate([rgb, alpha]), transform=Affine(0.05, 0, 500000.0, 0, -0.05, 4000000.0))
    with rasterio.open(tif, "r+") as dst:
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
    model = constant_checkpoint(tmp_path / "m.pt", 3.0, preprocessing=prep(tile=64).__class__(
        **{**prep(tile=64).to_dict(), "pixel_size_m": 0.2}))
    out = tmp_path / "b.geojson"
    res = CliRunner().invoke(cli, ["predict", str(tif), "-o", str(out), "--model", str(model), "--probs",
                                   str(tmp_path / "p.tif")])
    assert res.exit_code == 0, res.output
    with rasterio.open(tmp_path / "p.tif") as p:
        probs = p.read(1)
        assert probs.shape == (64, 64)  # --probs is written on the grid the model saw (0.2 m)
        assert probs[:, :8].max() == 0 and probs[:, 12:].min() > 0  # no-data kept as no-data
    assert len(gpd.read_file(out)) == 1


def test_labels_of_a_rotated_raster_window_are_found():
    """The label query box was built from two window corners: on a rotated grid it misses buildings."""
    # 45-degree rotated grid, 1 m pixels: pixel (col, row) -> (x, y)
    t = Affine.rotation(45) * Affine.scale(1, -1)
    t = Affine.translation(1000, 1000) * t
    # a building in the window's pixel square (20..30, 2..12): near corner (w, 0), off the 2-corner box
    corners = [t * (c, r) for c, r in ((20, 2), (30, 2), (30, 12), (20, 12))]
    labels = Labels(gpd.GeoSeries([Polygon(corners)]), "l.geojson")
    inst = labels.rasterize_instances(t, (32, 32))
    assert (inst > 0).sum() > 50


def test_same_seed_repeats_the_run_without_loader_workers(tmp_path):
    """With --workers 0 the augmentation pipeline was never seeded (only DataLoader workers seeded
    it), so two runs with the same --seed differed."""
    import torch

    from geounet.model.checkpoint import read_checkpoint

    from conftest import make_scene

    tif, labels = make_scene(tmp_path, "s", size=192)
    states = []
    for name in ("a", "b"):
        out = tmp_path / name
        res = CliRunner().invoke(cli, ["train", "--raster", str(tif), "--labels", str(labels), "--out", str(out),
                                       "--width", "4", "--depth", "2", "--tile-size", "64", "--batch-size", "4",
                                       "--workers", "0", "--epochs", "1", "--seed", "3"])
        assert res.exit_code == 0, res.output
        states.append(read_checkpoint(out / "last.pt")["state_dict"])
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_evaluate_pixels_on_a_rotated_raster(tmp_path):
    """evaluate's strip frames came from rasterio's window bounds, which on a rotated grid have no
    width: every footprint was missed and pixel IoU read 0."""
    from geounet.evaluate.pixels import pixel_counts

    t = Affine.translation(500000, 4000000) * Affine.rotation(30) * Affine.scale(0.5, -0.5)
    tif = write_raster(tmp_path / "rot.tif", np.full((3, 64, 64), 90, np.uint8), transform=t)
    square = Polygon([t * c for c in ((2, 2), (14, 2), (14, 14), (2, 14))])  # outside the two-corner box
    g = gpd.GeoSeries([square], crs="EPSG:32633")
    tp, fp, fn, tn = pixel_counts(g, g, str(tif))
    assert tp > 100 and fp == 0 and fn == 0
