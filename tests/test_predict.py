"""geounet.predict: streaming inference invariants on small generated rasters (and one real one)."""

import json

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from rasterio.features import shapes
from shapely.geometry import shape

from geounet.config import ModelConfig
from geounet.predict import PredictConfig, RunOptions, predict, predict_raster

from helpers_predict import (
    CRS_CASES,
    SHARED_DATA,
    BrightModel,
    Counting,
    constant_unet,
    crs_raster,
    files_in,
    random_scene,
    scene,
    toy_info,
    write_raster,
)

INFO = toy_info()  # 3 bands uint8, width-4 depth-2 model: windows are multiples of 4


def opts(tile=64, overlap=16, batch=2, **kw):
    kw.setdefault("min_area", 0.0)
    kw.setdefault("simplify", 0.0)
    return RunOptions(tile=tile, overlap=overlap, batch_size=batch, **kw)


def read_probs(path):
    with rasterio.open(path) as src:
        return src.read(1).astype(np.float32) / 255.0, src.dataset_mask() > 0, src.profile, src.crs, src.transform


def mask_of(gdf_geoms, transform, shape_hw):
    from rasterio.features import rasterize

    return rasterize([(g, 1) for g in gdf_geoms], out_shape=shape_hw, transform=transform, dtype="uint8") > 0


def test_constant_model_stitches_to_a_constant_map(tmp_path):
    img = scene((200, 300))
    tif = write_raster(tmp_path / "r.tif", img)
    res = predict_raster(constant_unet(0.8, width=4, depth=2), INFO, tif, tmp_path / "b.geojson", opts(),
                         probs=tmp_path / "p.tif")
    p, valid, profile, *_ = read_probs(tmp_path / "p.tif")
    assert valid.all()
    expected = 1 / (1 + np.exp(-0.8))
    assert np.abs(p - expected).max() <= 1 / 255
    assert res.windows == res.windows_run > 6  # several overlapping windows in both directions
    # the whole raster is one building
    gdf = pyogrio.read_dataframe(tmp_path / "b.geojson")
    assert len(gdf) == 1
    assert gdf.geometry[0].area == pytest.approx(200 * 300 * 0.04)
    assert gdf["score"][0] == pytest.approx(expected, abs=1e-2)


def test_probs_geotiff_keeps_the_source_grid(tmp_path):
    tif = crs_raster(tmp_path / "r.tif", scene((130, 170)), "EPSG:2263")
    predict_raster(BrightModel(), INFO, tif, tmp_path / "b.gpkg", opts(), probs=tmp_path / "p.tif")
    with rasterio.open(tif) as src, rasterio.open(tmp_path / "p.tif") as out:
        assert out.crs == src.crs and out.transform == src.transform
        assert (out.width, out.height, out.count, out.dtypes[0]) == (170, 130, 1, "uint8")
        assert out.profile["tiled"] and out.profile["compress"] == "deflate"
        assert out.scales == (pytest.approx(1 / 255),)


def test_no_data_gets_no_buildings_and_empty_windows_are_not_run(tmp_path):
    h, w = 256, 320
    img = np.full((3, h, w), 230, np.uint8)  # bright everywhere: a building wherever there is data
    valid = np.zeros((h, w), bool)
    valid[20:120, 30:150] = True
    valid[150:240, 200:310] = True
    valid[60:80, 60:90] = False  # a hole inside the first area
    tif = write_raster(tmp_path / "r.tif", img, valid=valid)
    model = Counting(BrightModel())
    res = predict_raster(model, INFO, tif, tmp_path / "b.geojson", opts(simplify=0.6), probs=tmp_path / "p.tif")
    # expected windows: the ones with any valid pixel
    from geounet.grid import window_origin
    from geounet.predict.stitch import StripStitcher

    with rasterio.open(tif) as src:
        st = StripStitcher(h, w, 64, 16, first=window_origin(src.transform), multiple=INFO.model.multiple)
    expected = sum(valid[r : r + 64, c : c + 64].any() for _, _, r, c in st.windows())
    assert model.windows == res.windows_run == expected < res.windows
    p, pvalid, *_ , transform = read_probs(tmp_path / "p.tif")
    assert (pvalid == valid).all()
    assert p[~valid].max() == 0.0
    gdf = pyogrio.read_dataframe(tmp_path / "b.geojson")
    nodata = shapely.union_all([shape(g) for g, _ in shapes((~valid).astype(np.uint8), mask=~valid, transform=transform)])
    assert len(gdf) == 2
    assert sum(g.intersection(nodata).area for g in gdf.geometry) < 1e-6 * sum(gdf.geometry.area)
    assert gdf.geometry.area.sum() == pytest.approx(valid.sum() * 0.04, rel=0.02)


def iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())


@pytest.mark.parametrize("dy,dx", [(3, 5), (17, 2)])
def test_windows_shifted_by_a_few_pixels_agree(tmp_path, dy, dx):
    img, _ = random_scene((384, 384), n=40, seed=3)
    a = write_raster(tmp_path / "a.tif", img)
    b = write_raster(tmp_path / "b.tif", img[:, dy:, dx:])
    o = opts(tile=96, overlap=32)
    predict_raster(BrightModel(), INFO, a, tmp_path / "a.geojson", o, probs=tmp_path / "pa.tif")
    predict_raster(BrightModel(), INFO, b, tmp_path / "b.geojson", o, probs=tmp_path / "pb.tif")
    # compare away from the cut raster borders, where b lacks the context a has (12 px: the toy's reach)
    pa = read_probs(tmp_path / "pa.tif")[0][dy + 12 : -12, dx + 12 : -12]
    pb = read_probs(tmp_path / "pb.tif")[0][12:-12, 12:-12]
    assert iou(pa >= 0.5, pb >= 0.5) >= 0.99
    assert np.abs(pa - pb).max() < 0.05  # no seam: the probabilities themselves agree
    # without overlap the same model shows its window edges
    predict_raster(BrightModel(), INFO, b, tmp_path / "c.geojson", opts(tile=96, overlap=0), probs=tmp_path / "pc.tif")
    pc = read_probs(tmp_path / "pc.tif")[0][12:-12, 12:-12]
    assert np.abs(pa - pc).max() > 0.2


@pytest.mark.skipif(not (SHARED_DATA / "banepa" / "banepa.tif").exists(), reason="needs shared/data")
@pytest.mark.parametrize("dy,dx", [(37, 53)])
def test_real_model_on_real_imagery_is_shift_invariant(tmp_path, dy, dx):
    """A bundled model on 700 x 700 px of Banepa, and the same raster cut (dy, dx) px further in.

    (37, 53) moves the pooling phase and every window of a grid that starts at the raster's
    corner; on the lattice anchored at the CRS origin the windows more than one window from
    either raster's edges are the same windows on the same pixels, so the probabilities there
    are identical (before the anchoring: IoU 0.969, probabilities up to 0.32 apart). The model is the
    one trained at this imagery's pixel size (``fine-0.14m``), read natively so the two rasters share
    the lattice's pixels; the default model, trained at 0.2-0.5 m, is off its pixel sizes here and less
    steady near cut edges (IoU 0.988 within 48 px; the interior is identical for it too).
    """
    from rasterio.windows import Window, transform as wtransform

    from geounet.model.checkpoint import load_model

    net, info = load_model("fine-0.14m")
    with rasterio.open(SHARED_DATA / "banepa" / "banepa.tif") as src:
        win = Window(1024, 1024, 700, 700)
        img = src.read(window=win)
        t = wtransform(win, src.transform)
        crs = src.crs
    a = write_raster(tmp_path / "a.tif", img, crs=crs, transform=t, block=256)
    b = write_raster(tmp_path / "b.tif", img[:, dy:, dx:], crs=crs, transform=t @ t.translation(dx, dy), block=256)
    tile = 256  # windows smaller than the default, so that a 700 px raster has an interior
    o = RunOptions(tile=tile, overlap=64, batch_size=1, pixel_size="native")  # the lattice, not resampling
    predict_raster(net, info, a, tmp_path / "a.geojson", o, probs=tmp_path / "pa.tif")
    predict_raster(net, info, b, tmp_path / "b.geojson", o, probs=tmp_path / "pb.tif")
    pa, pb = read_probs(tmp_path / "pa.tif")[0][dy:, dx:], read_probs(tmp_path / "pb.tif")[0]
    inner = (slice(tile, -tile), slice(tile, -tile))  # more than one window from b's edges (and a's)
    assert (pa[inner] >= 0.5).mean() > 0.1  # there are buildings to compare
    assert np.array_equal(pa[inner], pb[inner])
    m = 48  # nearer b's cut edges it lacks the context a has
    assert iou(pa[m:-m, m:-m] >= 0.5, pb[m:-m, m:-m] >= 0.5) >= 0.99


def test_building_across_strip_borders_is_one_polygon(tmp_path):
    # a tall building crossing several window rows (stride 48) and the strips they release
    img = scene((300, 120), rects=((10, 30, 280, 80),))
    tif = write_raster(tmp_path / "r.tif", img)
    predict_raster(BrightModel(), INFO, tif, tmp_path / "b.geojson", opts(tile=64, overlap=16))
    gdf = pyogrio.read_dataframe(tmp_path / "b.geojson")
    assert len(gdf) == 1
    minx, miny, maxx, maxy = gdf.total_bounds
    assert (maxy - miny) / 0.2 == pytest.approx(270, abs=6)


@pytest.mark.parametrize("crs_key", list(CRS_CASES))
def test_output_keeps_the_raster_crs(tmp_path, crs_key):
    tif = crs_raster(tmp_path / "r.tif", scene((256, 256)), crs_key)
    predict_raster(BrightModel(), INFO, tif, tmp_path / "b.geojson", opts(min_area=1.0))
    predict_raster(BrightModel(), INFO, tif, tmp_path / "b.gpkg", opts(min_area=1.0))
    with rasterio.open(tif) as src:
        bounds = shapely.box(*src.bounds)
        src_crs = src.crs
    gj = json.loads((tmp_path / "b.geojson").read_text())
    if crs_key == "EPSG:4326":
        assert "crs" not in gj  # RFC 7946: WGS84 needs no crs member
    else:
        assert gj["crs"]["properties"]["name"].endswith(crs_key.split(":")[1])
    for name in ("b.geojson", "b.gpkg"):
        gdf = pyogrio.read_dataframe(tmp_path / name)
        assert gdf.crs.equals(src_crs.to_wkt()) or gdf.crs.to_epsg() == src_crs.to_epsg()
        assert len(gdf) == 2
        assert all(bounds.contains(g) for g in gdf.geometry)  # coordinates are in the raster's CRS
        # the two rectangles: 50 x 60 px and 50 x 110 px of about 0.2-0.3 m on the ground
        assert sorted(gdf["area_m2"] / gdf["area_m2"].min()) == [1.0, pytest.approx(110 / 60, rel=0.05)]


def test_wgs84_flag_writes_rfc7946(tmp_path):
    tif = crs_raster(tmp_path / "r.tif", scene((160, 160)), "EPSG:2263")
    predict_raster(BrightModel(), INFO, tif, tmp_path / "b.geojson", opts(wgs84=True))
    predict_raster(BrightModel(), INFO, tif, tmp_path / "native.geojson", opts())
    gj = json.loads((tmp_path / "b.geojson").read_text())
    assert "crs" not in gj
    ring = gj["features"][0]["geometry"]["coordinates"][0]
    lon, lat = ring[0]
    assert -75 < lon < -72 and 40 < lat < 42  # New York, longitude first
    assert shapely.Polygon(ring).exterior.is_ccw  # RFC 7946 winding
    native = pyogrio.read_dataframe(tmp_path / "native.geojson")
    wgs = pyogrio.read_dataframe(tmp_path / "b.geojson")
    assert np.allclose(sorted(native["area_m2"]), sorted(wgs["area_m2"]))


@pytest.mark.parametrize("ext", [".geojson", ".gpkg", ".fgb", ".parquet"])
def test_every_format_holds_the_same_buildings(tmp_path, ext):
    img, _ = random_scene((200, 200), n=12, seed=1)
    tif = write_raster(tmp_path / "r.tif", img)
    out = tmp_path / f"b{ext}"
    predict_raster(BrightModel(), INFO, tif, out, opts())
    if ext == ".parquet":
        import geopandas as gpd

        gdf = gpd.read_parquet(out)
    else:
        gdf = pyogrio.read_dataframe(out)
    assert gdf.crs.to_epsg() == 32633
    assert len(gdf) >= 5
    assert set(gdf.columns) >= {"area_m2", "score", "geometry"}
    assert (gdf["score"] >= 0.5).all() and (gdf["score"] <= 1).all()
    assert (gdf.geom_type == "Polygon").all()
    assert files_in(tmp_path) == {"r.tif", f"b{ext}"}  # no temporary file left behind


def test_no_buildings_gives_an_empty_but_valid_file(tmp_path):
    tif = write_raster(tmp_path / "r.tif", np.full((3, 100, 100), 10, np.uint8))
    for ext in (".geojson", ".fgb", ".gpkg"):
        predict_raster(BrightModel(), INFO, tif, tmp_path / f"b{ext}", opts())
        assert len(pyogrio.read_dataframe(tmp_path / f"b{ext}")) == 0


def test_raster_smaller_than_a_window_and_odd_sizes(tmp_path):
    img = scene((37, 53), rects=((5, 5, 30, 40),))
    tif = write_raster(tmp_path / "r.tif", img)
    res = predict_raster(BrightModel(), INFO, tif, tmp_path / "b.geojson", opts(tile=64, overlap=16), probs=tmp_path / "p.tif")
    assert res.windows == 1
    assert len(pyogrio.read_dataframe(tmp_path / "b.geojson")) == 1
    assert read_probs(tmp_path / "p.tif")[0].shape == (37, 53)


def test_sixteen_bit_model_and_band_selection(tmp_path):
    img = (scene((120, 120)).astype(np.uint16) * 200)[[2, 1, 0]]
    extra = np.zeros((1, 120, 120), np.uint16)
    tif = write_raster(tmp_path / "r.tif", np.concatenate([extra, img]), dtype="uint16")
    info = toy_info(bands=(4, 3, 2), dtype="uint16", scale=51000.0)
    predict_raster(BrightModel(), info, tif, tmp_path / "b.geojson", opts())
    gdf = pyogrio.read_dataframe(tmp_path / "b.geojson")  # band 1 (all zero) would give nothing
    assert len(gdf) == 1 and gdf["area_m2"][0] == pytest.approx(50 * 60 * 0.04, rel=0.05)


def test_predict_library_entry_with_a_given_model(tmp_path):
    tif = write_raster(tmp_path / "r.tif", scene((256, 256)))
    cfg = PredictConfig(inputs=[tif], output=tmp_path / "b.geojson", tile_size=64, overlap=16, min_area=0, progress=False)
    res = predict(cfg, model=(BrightModel(), toy_info(ModelConfig(width=4, depth=2))))
    assert res.written == [tmp_path / "b.geojson"] and res.rasters[0].n_polygons == 2


@pytest.mark.parametrize("kind", ["alpha", "nodata"])
def test_alpha_band_and_nodata_value_are_no_data(tmp_path, kind):
    img = np.full((3, 128, 160), 230, np.uint8)
    valid = np.ones((128, 160), bool)
    valid[:, :70] = False
    if kind == "alpha":
        data = np.concatenate([img, (valid * 255).astype(np.uint8)[None]])
        tif = write_raster(tmp_path / "r.tif", data)
        with rasterio.open(tif, "r+") as dst:
            dst.colorinterp = [rasterio.enums.ColorInterp.red, rasterio.enums.ColorInterp.green,
                               rasterio.enums.ColorInterp.blue, rasterio.enums.ColorInterp.alpha]
    else:
        img[:, ~valid] = 0
        tif = write_raster(tmp_path / "r.tif", img, nodata=0)
    predict_raster(BrightModel(), INFO, tif, tmp_path / "b.geojson", opts(), probs=tmp_path / "p.tif")
    p, pvalid, *_ = read_probs(tmp_path / "p.tif")
    assert (pvalid == valid).all() and p[~valid].max() == 0
    gdf = pyogrio.read_dataframe(tmp_path / "b.geojson")
    assert len(gdf) == 1
    assert gdf.total_bounds[0] >= 500000.0 + 70 * 0.2 - 1e-6  # nothing left of the no-data edge


def test_finer_raster_is_resampled_to_the_models_pixel_size(tmp_path):
    # the toy model was "trained" at 0.2 m; this raster has 0.1 m pixels
    from affine import Affine

    img = scene((256, 256), rects=((40, 40, 140, 160),))
    tif = write_raster(tmp_path / "r.tif", img, transform=Affine(0.1, 0, 500000.0, 0, -0.1, 4000000.0))
    res = predict_raster(BrightModel(), INFO, tif, tmp_path / "a.gpkg", opts(), probs=tmp_path / "pa.tif")
    p, _, profile, crs, transform = read_probs(tmp_path / "pa.tif")
    assert p.shape == (128, 128) and transform.a == pytest.approx(0.2) and crs.to_epsg() == 32633
    assert res.pixels == 128 * 128
    native = predict_raster(BrightModel(), INFO, tif, tmp_path / "b.gpkg", opts(pixel_size="native"), probs=tmp_path / "pb.tif")
    assert read_probs(tmp_path / "pb.tif")[0].shape == (256, 256) and native.pixels == 256 * 256
    a = pyogrio.read_dataframe(tmp_path / "a.gpkg")
    b = pyogrio.read_dataframe(tmp_path / "b.gpkg")
    assert len(a) == len(b) == 1
    assert a["area_m2"][0] == pytest.approx(100 * 120 * 0.01, rel=0.05)
    assert b["area_m2"][0] == pytest.approx(100 * 120 * 0.01, rel=0.1)


def test_resampling_keeps_no_data(tmp_path):
    from affine import Affine

    img = np.full((3, 200, 200), 230, np.uint8)
    valid = np.ones((200, 200), bool)
    valid[:, :80] = False
    tif = write_raster(tmp_path / "r.tif", img, valid=valid, transform=Affine(0.1, 0, 500000.0, 0, -0.1, 4000000.0))
    predict_raster(BrightModel(), INFO, tif, tmp_path / "a.geojson", opts(), probs=tmp_path / "p.tif")
    p, pvalid, *_ = read_probs(tmp_path / "p.tif")
    assert p.shape == (100, 100) and not pvalid[:, :39].any() and pvalid[:, 41:].all()
    gdf = pyogrio.read_dataframe(tmp_path / "a.geojson")
    assert gdf.total_bounds[0] >= 500000.0 + 80 * 0.1 - 0.2


def test_column_bands_give_the_same_result_as_one_band(tmp_path):
    img, _ = random_scene((200, 700), n=50, seed=5)
    valid = np.ones((200, 700), bool)
    valid[60:140, 240:300] = False  # no-data across a band border (bands at 256 and 512)
    tif = write_raster(tmp_path / "r.tif", img, valid=valid)
    one = predict_raster(BrightModel(), INFO, tif, tmp_path / "one.gpkg", opts(simplify=0.4), probs=tmp_path / "p1.tif")
    three = predict_raster(BrightModel(), INFO, tif, tmp_path / "three.gpkg",
                           RunOptions(tile=64, overlap=16, batch_size=2, min_area=0.0, simplify=0.4, band_width=64),
                           probs=tmp_path / "p3.tif")
    assert three.windows == one.windows == three.windows_run  # each window runs once: bands hand them over
    p1, v1, *_ = read_probs(tmp_path / "p1.tif")
    p3, v3, *_ = read_probs(tmp_path / "p3.tif")
    assert (v1 == v3).all()
    assert np.array_equal(p1, p3)  # bit for bit
    a = pyogrio.read_dataframe(tmp_path / "one.gpkg").sort_values("area_m2").reset_index(drop=True)
    b = pyogrio.read_dataframe(tmp_path / "three.gpkg").sort_values("area_m2").reset_index(drop=True)
    assert len(a) == len(b) > 20
    np.testing.assert_allclose(a["area_m2"], b["area_m2"], rtol=1e-6)
    np.testing.assert_allclose(a["score"], b["score"], atol=1e-3)
    assert all(x.symmetric_difference(y).area < 1e-6 for x, y in zip(a.geometry, b.geometry))


def test_scaled_raster_reads_the_same_pixels_in_pieces_as_whole(tmp_path):
    """``--pixel-size`` reads through :class:`~geounet.io.raster.ScaledRaster` (GDAL's RasterIO resampling
    with floating-point source windows): strips and windows read in pieces must give the pixels of one
    whole read, or the streamed pipeline would draw seams at strip borders; and the pixels are those of
    the bilinear ``WarpedVRT`` predict used before, within 1 of 255 levels."""
    from affine import Affine
    from rasterio.vrt import WarpedVRT
    from rasterio.windows import Window

    from geounet.io.raster import ScaledRaster

    with rasterio.open(SHARED_DATA / "banepa" / "banepa.tif") as src:  # real imagery, 0.132 m
        img = src.read(window=Window(1024, 1024, 700, 640))
    valid = np.ones(img.shape[1:], bool)
    valid[:, :90] = False  # an edge of no-data
    valid[500:, 300:] = False
    tif = write_raster(tmp_path / "r.tif", img, transform=Affine(0.132, 0, 500000.0, 0, -0.132, 4000000.0),
                       valid=valid, block=256)
    with rasterio.open(tif) as src:
        scaled = ScaledRaster(src, 462, 422)  # 0.2 m
        assert scaled.transform.a == pytest.approx(0.132 * 700 / 462) and scaled.crs == src.crs
        whole, mask = scaled.read([1, 2, 3]), scaled.dataset_mask()
        rows, cols = [0, 37, 129, 256, 300, 422], [0, 55, 200, 333, 462]
        for r0, r1 in zip(rows, rows[1:]):
            for c0, c1 in zip(cols, cols[1:]):
                w = Window(c0, r0, c1 - c0, r1 - r0)
                assert np.array_equal(scaled.read([1, 2, 3], window=w), whole[:, r0:r1, c0:c1]), (r0, c0)
                assert np.array_equal(scaled.dataset_mask(window=w), mask[r0:r1, c0:c1]), (r0, c0)
        assert 0.3 < (mask > 0).mean() < 0.9  # the no-data came along
        with WarpedVRT(src, crs=src.crs, transform=scaled.transform, width=462, height=422,
                       resampling=rasterio.enums.Resampling.bilinear) as vrt:
            warped = vrt.read([1, 2, 3])
    inner = (mask > 0)
    inner[:, :1 + int(np.argmax(inner.any(axis=0)))] = False  # the column at the no-data edge blends differently
    diff = np.abs(warped.astype(int) - whole.astype(int))[:, inner]
    assert (diff <= 1).mean() > 0.999
    with pytest.raises(AttributeError):
        scaled.index  # a grid-dependent attribute it does not know is not passed through to the source


def test_an_unwritable_temporary_folder_is_one_clear_error(tmp_path, monkeypatch):
    """Column bands hand rows and windows over through temporary files: no room for them is a one-line
    GeounetError naming the folder, and no output is left behind."""
    import tempfile

    from geounet.errors import GeounetError

    img, _ = random_scene((120, 700), n=30, seed=2)
    tif = write_raster(tmp_path / "r.tif", img)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    with pytest.raises(GeounetError, match="temporary files") as err:
        predict_raster(BrightModel(), INFO, tif, tmp_path / "out.gpkg",
                       RunOptions(tile=64, overlap=16, batch_size=2, min_area=0.0, band_width=64), probs=tmp_path / "p.tif")
    assert "missing" in str(err.value) and "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.tif"]


def test_bundled_model_on_real_imagery_in_column_bands_equals_one_band(tmp_path):
    """The bundled default model on real Banepa imagery (read at its 0.2 m, touching roofs separated),
    predicted in many narrow column bands and in one: every window runs once either way, and the
    probabilities and footprints are identical, bit for bit (the hand-over between bands, spill.py)."""
    from rasterio.windows import Window, transform as wtransform

    from geounet.model.checkpoint import load_model

    net, info = load_model("default")
    with rasterio.open(SHARED_DATA / "banepa" / "banepa.tif") as src:
        win = Window(900, 1100, 1400, 700)
        tif = write_raster(tmp_path / "r.tif", src.read(window=win), crs=src.crs,
                           transform=wtransform(win, src.transform), block=256)
    o = dict(tile=256, overlap=64, batch_size=2)
    one = predict_raster(net, info, tif, tmp_path / "one.gpkg", RunOptions(**o), probs=tmp_path / "p1.tif")
    many = predict_raster(net, info, tif, tmp_path / "many.gpkg", RunOptions(**o, band_width=700, probs_block=64),
                          probs=tmp_path / "p2.tif")
    assert many.windows_run == one.windows_run
    with rasterio.open(tmp_path / "p1.tif") as a, rasterio.open(tmp_path / "p2.tif") as b:
        assert a.width > 700 and a.count == 3  # several bands, building, border and contact
        np.testing.assert_array_equal(a.read(), b.read())
    x, y = pyogrio.read_dataframe(tmp_path / "one.gpkg"), pyogrio.read_dataframe(tmp_path / "many.gpkg")
    assert len(x) > 30
    key = lambda df: sorted(zip(df.geometry.normalize().to_wkb(), df["area_m2"], df["score"]))  # noqa: E731
    assert key(x) == key(y)


def test_block_cache_holds_three_source_block_rows_under_a_resampled_strip(tmp_path):
    """GDAL's cache for a resampled read: three block-rows of the source under the strip, every band and the
    mask counted; a native read, or a small strip, keeps the floor."""
    from conftest import write_raster

    from geounet.io.raster import MAX_BLOCK_CACHE_MB, block_cache_mb, resampled

    img = np.zeros((3, 2000, 6000), np.uint8)
    plain = write_raster(tmp_path / "plain.tif", img, res=0.1)  # 64 px blocks
    masked = write_raster(tmp_path / "masked.tif", img, res=0.1, valid=np.ones((2000, 6000), bool))
    with rasterio.open(plain) as s, resampled(s, 0.2) as src:
        assert src.fx == pytest.approx(2.0, rel=1e-3)
        # 3000 grid columns = 6000 source columns = 94 blocks of 64 (93.75), + 2 partial ones
        assert block_cache_mb(src, 3000, 1) == -(-3 * 96 * 64 * 64 * 3 // 2**20) == 4
        assert block_cache_mb(src, 3000, 32) == 32
        assert block_cache_mb(s, 6000, 7) == 7  # native: StripBuffer reads whole block-rows
    with rasterio.open(masked) as s, resampled(s, 0.2) as src:
        assert block_cache_mb(src, 3000, 1) == -(-3 * 96 * 64 * 64 * 4 // 2**20) == 5  # + the mask's byte
    uint16 = write_raster(tmp_path / "u16.tif", np.zeros((4, 200, 20000), np.uint16), res=0.1)
    with rasterio.open(uint16) as s, resampled(s, 0.3) as src:
        need = 3 * (-(-6666 * src.fx // 64) + 2) * 64 * 64 * 4 * 2
        assert block_cache_mb(src, 6666, 1) == -(-need // 2**20)
        assert block_cache_mb(src, 66660, 1) == MAX_BLOCK_CACHE_MB  # capped
        assert block_cache_mb(src, 66660, 200) == 200  # the floor wins
    profile = dict(driver="GTiff", height=600, width=500, count=3, dtype="uint8", crs="EPSG:32633", tiled=True,
                   blockxsize=4096, blockysize=4096, compress="deflate",
                   transform=rasterio.Affine(0.1, 0, 500000, 0, -0.1, 4000000))  # blocks taller than MAX_BLOCK_ROWS
    with rasterio.open(tmp_path / "tall.tif", "w", **profile) as dst:
        dst.write(np.zeros((3, 600, 500), np.uint8))
    with rasterio.open(tmp_path / "tall.tif") as s, resampled(s, 0.2) as src:
        assert s.block_shapes[0] == (4096, 4096) and block_cache_mb(src, 250, 9) == 9
