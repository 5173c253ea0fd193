"""``geounet predict --mosaic``: adjacent rasters predicted as one (geounet.io.mosaic)."""

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from affine import Affine
from click.testing import CliRunner

from geounet.cli import cli
from geounet.io.mosaic import Mosaic, mosaic_vrt, open_input
from geounet.predict import PredictConfig, predict

from helpers_predict import SHARED_DATA, BrightModel, constant_checkpoint, files_in, scene, toy_info, write_raster

T0 = Affine(0.2, 0, 500000.0, 0, -0.2, 4000000.0)


def tile_of(path, img, row, col, **kw):
    """Write ``img`` (C, h, w) as the tile whose first pixel is (row, col) of the grid ``T0``."""
    return write_raster(path, img, transform=T0 @ Affine.translation(col, row), **kw)


def invoke(*args):
    return CliRunner().invoke(cli, ["-q", "predict", *map(str, args)], catch_exceptions=False)


def polygons(path) -> list[bytes]:
    return sorted(shapely.to_wkb(pyogrio.read_dataframe(path).geometry.values))


def test_tiles_with_a_gap_read_as_one_raster_whose_gaps_are_no_data(tmp_path):
    # a 2 x 2 grid of 100 x 120 px tiles with the bottom-right one missing; one building across the
    # top tiles' border, one across the left tiles' border; the top-right tile masks a corner
    img = scene((200, 240), rects=((30, 80, 70, 170), (60, 20, 150, 60)), seed=4)
    valid_tr = np.ones((100, 120), bool)
    valid_tr[:20, 100:] = False
    tiles = [tile_of(tmp_path / "tl.tif", img[:, :100, :120], 0, 0),
             tile_of(tmp_path / "tr.tif", img[:, :100, 120:], 0, 120, valid=valid_tr),
             tile_of(tmp_path / "bl.tif", img[:, 100:, :120], 100, 0)]
    with open_input(Mosaic(tuple(tiles))) as src:
        assert (src.height, src.width) == (200, 240) and src.transform == T0
        assert (src.read() == np.where(np.arange(200)[:, None] < 100, img, np.where(np.arange(240) < 120, img, 0))).all()
        valid = src.dataset_mask() > 0
    expected = np.ones((200, 240), bool)
    expected[100:, 120:] = False
    expected[:20, 220:] = False
    assert (valid == expected).all()
    model = (BrightModel(), toy_info())
    cfg = dict(tile_size=64, overlap=16, min_area=0.0, simplify=0.0, progress=False)
    res = predict(PredictConfig(inputs=tiles, output=tmp_path / "m.gpkg", probs=tmp_path / "m.tif", mosaic=True,
                                **cfg), model=model)
    assert res.written == [tmp_path / "m.gpkg"] and len(res.rasters) == 1
    with rasterio.open(tmp_path / "m.tif") as p:
        assert (p.dataset_mask() > 0).tolist() == expected.tolist() and p.read(1)[~expected].max() == 0
    gdf = pyogrio.read_dataframe(tmp_path / "m.gpkg")
    assert len(gdf) == 2  # each building across a tile border is one polygon
    assert sorted(gdf.area_m2.round(1)) == pytest.approx(sorted([40 * 90 * 0.04, 90 * 40 * 0.04]), rel=0.03)
    # the same mosaic written as a VRT file and given as one input: the same buildings
    (tmp_path / "m.vrt").write_text(mosaic_vrt(tiles))
    predict(PredictConfig(inputs=[tmp_path / "m.vrt"], output=tmp_path / "v.gpkg", **cfg), model=model)
    assert polygons(tmp_path / "v.gpkg") == polygons(tmp_path / "m.gpkg")


@pytest.mark.parametrize("what,make,message", [
    ("crs", dict(crs="EPSG:32634"), "its CRS EPSG:32634 differs from EPSG:32633"),
    ("pixel", dict(transform=Affine(0.25, 0, 500024.0, 0, -0.25, 4000000.0)), "its pixel size 0.25 x 0.25 differs"),
    ("grid", dict(transform=T0 @ Affine.translation(120.5, 0)), "its x origin is 0.500 px off the pixel grid"),
    ("bands", dict(img=np.zeros((4, 100, 120), np.uint8)), "it has 4 band(s) where"),
    ("dtype", dict(img=np.zeros((3, 100, 120), np.uint16)), "its bands are uint16/uint16/uint16 where"),
])
def test_tiles_of_another_grid_are_refused_naming_the_file(tmp_path, what, make, message):
    ckpt = constant_checkpoint(tmp_path / "m.pt")
    first = tile_of(tmp_path / "a.tif", scene((100, 120)), 0, 0)
    img = make.pop("img", scene((100, 120)))
    make.setdefault("transform", T0 @ Affine.translation(120, 0))
    other = write_raster(tmp_path / "b.tif", img, **make)
    res = invoke(first, other, "--mosaic", "-o", tmp_path / "out.gpkg", "--model", ckpt)
    assert res.exit_code == 1
    assert res.stderr.strip().splitlines() == [res.stderr.strip()]  # one line
    assert res.stderr.startswith(f"Error: {other}: cannot join the mosaic: {message}")
    assert "out.gpkg" not in files_in(tmp_path)


def test_mosaic_needs_one_output_file(tmp_path):
    a = tile_of(tmp_path / "a.tif", scene((100, 120)), 0, 0)
    res = invoke(a, "--mosaic", "-o", tmp_path / "folder", "--model", constant_checkpoint(tmp_path / "m.pt"))
    assert res.exit_code == 1 and "with --mosaic, -o/--output must name one file" in res.stderr


@pytest.mark.skipif(not (SHARED_DATA / "banepa" / "banepa.tif").exists(), reason="needs shared/data")
def test_real_building_across_two_tiles_is_one_polygon_and_the_mosaic_is_the_whole_raster(tmp_path):
    """Bundled model on 512 x 384 px of Banepa cut in two through a building: ``--mosaic`` gives the whole
    raster's polygons exactly, where predicting the tiles apart gives that building in two pieces."""
    from rasterio.windows import Window, transform as wtransform

    with rasterio.open(SHARED_DATA / "banepa" / "banepa.tif") as src:
        win = Window(1024, 1024, 512, 384)
        img, t, crs = src.read(window=win), wtransform(win, src.transform), src.crs
    whole = write_raster(tmp_path / "whole.tif", img, crs=crs, transform=t, block=128)
    opts = ["--tile-size", "256", "--overlap", "64"]
    assert invoke(whole, "-o", tmp_path / "whole.gpkg", *opts).exit_code == 0
    buildings = pyogrio.read_dataframe(tmp_path / "whole.gpkg").geometry.values
    # the widest building in the middle third: cut the raster through its centre
    cols = [((b.bounds[0] - t.c) / t.a, (b.bounds[2] - t.c) / t.a) for b in buildings]
    k = max((i for i, (c0, c1) in enumerate(cols) if 170 < (c0 + c1) / 2 < 340), key=lambda i: cols[i][1] - cols[i][0])
    cut = round(sum(cols[k]) / 2)
    left = write_raster(tmp_path / "left.tif", img[:, :, :cut], crs=crs, transform=t, block=128)
    right = write_raster(tmp_path / "right.tif", img[:, :, cut:], crs=crs, transform=t @ Affine.translation(cut, 0),
                         block=128)
    res = invoke(left, right, "--mosaic", "-o", tmp_path / "mosaic.gpkg", *opts)
    assert res.exit_code == 0, res.output
    assert res.stdout.split() == [str(tmp_path / "mosaic.gpkg")]
    assert polygons(tmp_path / "mosaic.gpkg") == polygons(tmp_path / "whole.gpkg")
    assert invoke(left, right, "-o", tmp_path / "apart", *opts).exit_code == 0
    pieces = [g for f in ("left", "right") for g in pyogrio.read_dataframe(tmp_path / "apart" / f"{f}.geojson").geometry
              if g.intersects(buildings[k])]
    assert len(pieces) >= 2  # without --mosaic: two halves (at least)


def test_a_hundred_and_fifty_tiles_give_the_whole_raster(tmp_path):
    """150 tiles of 16 x 16 px (GDAL keeps at most a pool of them open) predict exactly as the raster they tile."""
    img = scene((160, 240), rects=((10, 10, 70, 100), (90, 130, 150, 230), (30, 150, 60, 200)), seed=2)
    whole = tile_of(tmp_path / "whole.tif", img, 0, 0)
    (tmp_path / "t").mkdir()
    tiles = [tile_of(tmp_path / "t" / f"{r}_{c}.tif", img[:, r : r + 16, c : c + 16], r, c, block=16)
             for r in range(0, 160, 16) for c in range(0, 240, 16)]
    model = (BrightModel(), toy_info())
    cfg = dict(tile_size=64, overlap=16, min_area=0.0, simplify=0.0, progress=False)
    predict(PredictConfig(inputs=[whole], output=tmp_path / "w.gpkg", probs=tmp_path / "w.tif", **cfg), model=model)
    predict(PredictConfig(inputs=tiles[::-1], output=tmp_path / "m.gpkg", probs=tmp_path / "m.tif", mosaic=True, **cfg),
            model=model)
    assert len(polygons(tmp_path / "w.gpkg")) == 3
    assert polygons(tmp_path / "m.gpkg") == polygons(tmp_path / "w.gpkg")
    with rasterio.open(tmp_path / "w.tif") as w, rasterio.open(tmp_path / "m.tif") as m:
        assert m.transform == w.transform and (m.read() == w.read()).all()
