"""Rasters and labels that are not local files: a Cloud-Optimised GeoTIFF served over HTTP on 127.0.0.1
by a server that answers Range requests and counts the bytes it sends (tests/range_server.py).

Predicting a COG fetches each needed byte once (no more than the file for a whole raster, also
through on-the-fly resampling), and only the blocks under windows with data when most of the raster
is no-data; unreachable URLs fail in one line; batch outputs are named after the URL's file name.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.shutil import copy as rio_copy
from rasterio.windows import Window

from geounet.cli import cli
from geounet.errors import InputError
from geounet.labels import read_label_polygons
from geounet.paths import is_local, source_name, source_stem, vsi_path
from geounet.train.sources import raster_sources
from helpers_predict import SHARED_DATA, constant_checkpoint
from range_server import RangeServer

BANEPA = SHARED_DATA / "banepa" / "banepa.tif"
BANEPA_LABELS = SHARED_DATA / "banepa" / "banepa_buildings.geojson"
SIDE = 1536  # a 1536 px crop of real imagery: 3 x 3 GeoTIFF blocks of 512


def _crop(path: Path, valid: np.ndarray | None = None, cog: bool = True) -> Path:
    """A crop of the Banepa raster as a JPEG COG (512 px blocks, overviews, internal mask) or, with
    ``cog=False``, as a tiled JPEG GeoTIFF whose internal mask is stored after the imagery."""
    with rasterio.open(BANEPA) as src:
        img = src.read(window=Window(0, 0, SIDE, SIDE))
        profile = dict(driver="GTiff", width=SIDE, height=SIDE, count=3, dtype="uint8", crs=src.crs,
                       transform=src.window_transform(Window(0, 0, SIDE, SIDE)), tiled=True,
                       blockxsize=512, blockysize=512)
    if not cog:
        profile.update(compress="JPEG", photometric="YCbCr")
    plain = path if not cog else path.with_suffix(".plain.tif")
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(plain, "w", **profile) as dst:
            dst.write(img)
            dst.write_mask(np.full((SIDE, SIDE), 255, np.uint8) if valid is None else valid.astype(np.uint8) * 255)
        if cog:
            rio_copy(plain, path, driver="COG", compress="JPEG", blocksize=512)
            plain.unlink()
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The server, its folder (full.tif: a COG, all data; corner.tif: a tiled GeoTIFF with data in a 300 px
    corner; notes.txt; labels.geojson) and a model."""
    root = tmp_path_factory.mktemp("served")
    _crop(root / "full.tif")
    corner = np.zeros((SIDE, SIDE), bool)
    corner[:300, :300] = True
    _crop(root / "corner.tif", corner, cog=False)
    (root / "notes.txt").write_text("not a raster\n")
    (root / "labels.geojson").write_bytes(BANEPA_LABELS.read_bytes())
    model = constant_checkpoint(tmp_path_factory.mktemp("model") / "m.pt", 3.0)
    with RangeServer(root) as server:
        yield server, root, model


def _predict(args: list[str]):
    return CliRunner().invoke(cli, ["-q", "predict", *args])


def _features(path: Path) -> list:
    return [(f["geometry"], f["properties"]) for f in json.loads(path.read_text())["features"]]


def test_full_cog_fetches_each_byte_once_and_matches_local(served, tmp_path):
    server, root, model = served
    server.reset()
    res = _predict([server.url("full.tif"), "-o", str(tmp_path / "url.geojson"), "--model", str(model),
                    "--pixel-size", "native"])
    assert res.exit_code == 0, res.output
    fetched, size = server.bytes_served, (root / "full.tif").stat().st_size
    assert 0.5 * size < fetched <= size, (fetched, size)
    local = _predict([str(root / "full.tif"), "-o", str(tmp_path / "local.geojson"), "--model", str(model),
                      "--pixel-size", "native"])
    assert local.exit_code == 0, local.output
    assert _features(tmp_path / "url.geojson") == _features(tmp_path / "local.geojson")
    assert len(_features(tmp_path / "url.geojson")) >= 1


def test_resampled_cog_fetches_each_byte_once(served, tmp_path):
    """Resampled (the model's 0.2 m from 0.13 m pixels; a WarpedVRT then, GDAL's RasterIO resampling now):
    GDAL's parallel multi-range reads bypassed /vsicurl/'s cache and fetched 12.7x the file; serial ones
    through the cache fetch it once."""
    server, root, model = served
    server.reset()
    res = _predict([server.url("full.tif"), "-o", str(tmp_path / "o.geojson"), "--model", str(model)])
    assert res.exit_code == 0, res.output
    assert server.bytes_served <= (root / "full.tif").stat().st_size


def test_partial_raster_fetches_only_blocks_with_data(served, tmp_path):
    """The validity of a strip is read first and only the blocks under windows with data after it. (A COG
    made by GDAL stores each mask tile next to its image tile: reading the mask then reads through the
    imagery, and the whole file is fetched, once; see docs/benchmarks.md.)"""
    server, root, model = served
    server.reset()
    res = _predict([server.url("corner.tif"), "-o", str(tmp_path / "o.geojson"), "--model", str(model),
                    "--pixel-size", "native", "--tile-size", "512", "--overlap", "128"])
    assert res.exit_code == 0, res.output
    fetched, size = server.bytes_served, (root / "corner.tif").stat().st_size
    with rasterio.open(root / "corner.tif") as src:
        transform = src.transform
    # the GeoTIFF blocks (3 x 3 of 512 px) under the windows that reach into the 300 px corner of data
    from geounet.grid import lattice_offsets, window_origin

    first = window_origin(transform)
    blocks = set()
    for ro in lattice_offsets(SIDE, 512, 384, first[0], 4):
        for co in lattice_offsets(SIDE, 512, 384, first[1], 4):
            if ro < 300 and co < 300:
                blocks |= {(r // 512, c // 512) for r in (max(ro, 0), min(ro + 511, SIDE - 1))
                           for c in (max(co, 0), min(co + 511, SIDE - 1))}
    assert len(blocks) < 9
    # those blocks plus the mask (stored after the imagery) and headers; the whole file before
    assert fetched < (len(blocks) + 1.5) / 9 * size, (fetched, size, len(blocks))
    (feat,) = _features(tmp_path / "o.geojson")  # the constant model: the valid corner is one building
    xs = [transform.c + 300 * transform.a, transform.c]
    coords = np.asarray(feat[0]["coordinates"][0])
    assert coords[:, 0].min() == pytest.approx(min(xs)) and coords[:, 0].max() == pytest.approx(max(xs))


def _one_line_error(res, *words: str) -> str:
    assert res.exit_code == 1, res.output
    msg = res.stderr.strip()
    assert "\n" not in msg and "Traceback" not in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


def test_unreachable_url_fails_fast_in_one_line(served, tmp_path):
    _, _, model = served
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/image.tif"
    t0 = time.perf_counter()
    res = _predict([url, "-o", str(tmp_path / "o.geojson"), "--model", str(model)])
    assert time.perf_counter() - t0 < 20
    _one_line_error(res, url, "connection refused")
    assert not (tmp_path / "o.geojson").exists()


def test_missing_url_and_not_a_raster_fail_in_one_line(served, tmp_path):
    server, _, model = served
    url = server.url("missing.tif")
    _one_line_error(_predict([url, "-o", str(tmp_path / "o.geojson"), "--model", str(model)]), url, "HTTP 404: not found")
    url = server.url("notes.txt")
    _one_line_error(_predict([url, "-o", str(tmp_path / "o.geojson"), "--model", str(model)]), url,
                    "not a raster GDAL can read")
    assert list(tmp_path.iterdir()) == []


def test_batch_of_urls_names_outputs_after_the_file_name(served, tmp_path):
    server, _, model = served
    urls = [server.url("full.tif?sig=abc&t=1"), f"/vsicurl/{server.url('corner.tif?token=x')}"]
    res = _predict([*urls, "-o", str(tmp_path / "out"), "--model", str(model), "--pixel-size", "native"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["corner.geojson", "full.geojson"]
    assert res.stdout.split() == [str(tmp_path / "out" / "full.geojson"), str(tmp_path / "out" / "corner.geojson")]


def test_labels_and_evaluate_rasters_over_http(served, tmp_path):
    server, root, _ = served
    geoms = read_label_polygons(server.url("labels.geojson"))
    assert len(geoms) == len(read_label_polygons(root / "labels.geojson"))
    with pytest.raises(InputError, match=r"cannot fetch \(HTTP 404: not found\)"):
        read_label_polygons(server.url("gone.geojson"))
    res = CliRunner().invoke(cli, ["evaluate", server.url("labels.geojson"), str(root / "labels.geojson"),
                                   "--raster", server.url("full.tif"), "--json"])
    assert res.exit_code == 0, res.output


def test_training_sources_over_http(served):
    server, _, _ = served
    (source,) = raster_sources([server.url("full.tif")], [server.url("labels.geojson")])
    assert (source.height, source.width, source.count) == (SIDE, SIDE, 3)
    assert source.labels is not None and len(source.labels.geoms) > 0


def test_paths():
    assert is_local("a/b.tif") and is_local(Path("/x/y.tif"))
    assert not is_local("https://h/a.tif") and not is_local("/vsizip/a.zip/b.tif") and not is_local("s3://b/k.tif")
    assert vsi_path("https://h/a.tif?x=1") == "/vsicurl/https://h/a.tif?x=1"
    assert vsi_path("s3://bucket/key.tif") == "/vsis3/bucket/key.tif"
    assert vsi_path("/vsizip/a.zip/b.tif") == "/vsizip/a.zip/b.tif" and vsi_path("a.tif") == "a.tif"
    assert source_name("https://h/dir/img%201.tif?sig=a/b#f") == "img 1.tif"
    assert source_stem("/vsicurl/https://h/img.tif?x=y") == "img"
    assert source_stem("/vsizip/archive.zip/dir/scene.tif") == "scene"
    assert source_stem("https://h/") == ""
