"""Training inputs beyond one raster: image chips with one vector file, mixed chips and rasters,
places balanced in the split and the sampler, and a pixel-size range (multi-scale training)."""

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from shapely.geometry import box

import geounet
from geounet.cli import cli
from geounet.config import Preprocessing
from geounet.errors import ConfigError
from geounet.train.config import TrainConfig
from geounet.train.dataset import WindowDataset
from geounet.train.samples import build_samples, place_weights
from geounet.train.sources import chip_sources, raster_sources
from geounet.predict import target_pixel_size

from conftest import make_scene, synthetic_scene, write_raster

SMALL = ["--width", "4", "--depth", "2", "--tile-size", "64", "--batch-size", "4", "--workers", "0", "--epoch-windows", "1"]


def make_chips(tmp_path, size=96, res=0.2):
    """Two side-by-side chips (UTM) and one GeoJSON (EPSG:4326) with a building across their shared edge."""
    folder = tmp_path / "chips"
    folder.mkdir()
    x0, y0 = 500000.0, 4000000.0
    for i in range(2):
        img, _ = synthetic_scene(size, n=3, seed=i)
        write_raster(folder / f"c{i}.tif", img, origin=(x0 + i * size * res, y0), res=res)
    edge = x0 + size * res
    across = box(edge - 3, y0 - 10, edge + 3, y0 - 4)  # 6 m wide, half on each chip
    lone = box(x0 + 2, y0 - 18, x0 + 6, y0 - 14)  # only on chip 0
    labels = tmp_path / "chips.geojson"
    gpd.GeoDataFrame(geometry=[across, lone], crs="EPSG:32633").to_crs("EPSG:4326").to_file(labels)
    return folder, labels


def test_chips_with_one_vector_file_label_both_chips(tmp_path):
    folder, labels = make_chips(tmp_path)
    sources = chip_sources(str(folder), labels=str(labels))
    assert [len(s.labels) for s in sources] == [2, 1]
    for s in sources:
        with rasterio.open(s.image) as src:
            inst = s.labels.rasterize_instances(src.transform, (src.height, src.width))
        # the building across the edge burns pixels on both chips, at the shared column
        col = 0 if s.image.endswith("c1.tif") else src.width - 1
        assert (inst[:, col] > 0).sum() > 10


def test_chips_without_any_overlapping_label_refused(tmp_path):
    folder, _ = make_chips(tmp_path)
    far = tmp_path / "far.geojson"
    gpd.GeoDataFrame(geometry=[box(10, 10, 11, 11)], crs="EPSG:4326").to_file(far)
    res = CliRunner().invoke(cli, ["train", "--images", str(folder), "--labels", str(far), "--out",
                                   str(tmp_path / "run"), *SMALL])
    assert res.exit_code == 1
    assert "no label polygon overlaps any image tile" in res.output and "far.geojson" in res.output
    assert not (tmp_path / "run").exists()


def test_train_on_chips_with_labels_and_a_raster(tmp_path):
    folder, labels = make_chips(tmp_path)
    tif, tif_labels = make_scene(tmp_path, "scene", size=192)
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, [
        "train", "--images", str(folder), "--raster", str(tif), "--labels", str(tif_labels), "--labels",
        str(labels), "--out", str(out), "--epochs", "1", "--pixel-size-range", "0.15", "0.3", *SMALL,
    ])
    assert res.exit_code == 0, res.output
    _, info = geounet.load_model(out / "best.pt")
    assert info.preprocessing.pixel_size_range_m == (0.15, 0.3)
    assert info.preprocessing.pixel_size_m == pytest.approx((0.15 * 0.3) ** 0.5)


def test_images_without_masks_or_labels_refused(tmp_path):
    folder, _ = make_chips(tmp_path)
    tif, tif_labels = make_scene(tmp_path, "scene", size=128)
    res = CliRunner().invoke(cli, ["train", "--images", str(folder), "--raster", str(tif), "--labels",
                                   str(tif_labels), "--out", str(tmp_path / "run"), *SMALL])
    assert res.exit_code == 1 and "--images needs --masks DIR or a --labels file" in res.output


def test_each_place_holds_out_its_own_share(tmp_path):
    a = make_scene(tmp_path, "a", size=512, seed=1)
    b = make_scene(tmp_path, "b", size=512, seed=2)
    sources = raster_sources([str(a[0]), str(b[0])], [str(a[1]), str(b[1])])
    s = build_samples(sources, [], tile=64, block=128, val_fraction=0.25, seed=0)
    for i in range(2):
        tr = sum(x.source == i for x in s.train)
        va = sum(x.source == i for x in s.val)
        assert va > 0 and tr > 0 and 0.1 < va / (tr + va) < 0.45
    assert place_weights(s) is not None and len(place_weights(s)) == len(s.train)


def test_place_weights_give_each_place_sqrt_share(tmp_path):
    a = make_scene(tmp_path, "a", size=512, seed=1)
    b = make_scene(tmp_path, "b", size=192, seed=2)
    sources = raster_sources([str(a[0]), str(b[0])], [str(a[1]), str(b[1])])
    s = build_samples(sources, [], tile=64, block=128, val_fraction=0.0, seed=0)
    w = np.asarray(place_weights(s))
    n = np.asarray([sum(x.source == i for x in s.train) for i in range(2)])
    share = np.asarray([w[[x.source == i for x in s.train]].sum() for i in range(2)])
    assert share[0] / share[1] == pytest.approx(np.sqrt(n[0] / n[1]))
    assert n[0] > 2 * n[1]  # so that "equal" below differs from "sqrt"
    w = np.asarray(place_weights(s, "equal"))
    share = np.asarray([w[[x.source == i for x in s.train]].sum() for i in range(2)])
    assert share[0] == pytest.approx(share[1])


def test_place_balance_is_checked_in_one_line(tmp_path):
    tif, labels = make_scene(tmp_path, "s", size=128)
    res = CliRunner().invoke(cli, ["train", "--raster", str(tif), "--labels", str(labels), "--out",
                                   str(tmp_path / "run"), "--place-balance", "even"])
    assert res.exit_code == 2 and "--place-balance" in res.output and "Traceback" not in res.output
    with pytest.raises(ConfigError, match="--place-balance"):
        TrainConfig(out_dir=str(tmp_path / "run"), rasters=[str(tif)], labels=[str(labels)],
                    place_balance="even").validate()


def test_pixel_size_range_reads_windows_at_varying_scales(tmp_path):
    tif, labels = make_scene(tmp_path, "s", size=512)  # 0.2 m pixels
    sources = raster_sources([str(tif)], [str(labels)])
    prep = Preprocessing(pixel_size_m=0.4, pixel_size_range_m=(0.2, 0.8), tile_size=64)
    for s in sources:
        s.factor = 0.4 / s.pixel_size_m
    samples = build_samples(sources, [], tile=64, block=128, val_fraction=0.0, seed=0)
    ds = WindowDataset(sources, samples.train, prep, train=True)
    factors = [ds._pixel_size(sources[0])[0] for _ in range(200)]
    assert min(factors) >= 0.99 and max(factors) <= 4.01
    assert min(factors) < 1.3 and max(factors) > 3.0  # spans the range
    x, y = ds[0]
    assert x.shape == (3, 64, 64) and y.shape[-2:] == (64, 64)
    val = WindowDataset(sources, samples.train, prep, train=False)
    assert val._pixel_size(sources[0]) == (pytest.approx(2.0, rel=0.01), 0.4)
    # the draw is the dataset's own, seeded: the same seed gives the same windows, whatever else ran
    again = WindowDataset(sources, samples.train, prep, train=True, seed=0)
    np.random.seed(123)
    first = [again._pixel_size(sources[0])[0] for _ in range(5)]
    again.reseed(0)
    assert [again._pixel_size(sources[0])[0] for _ in range(5)] == first


@pytest.mark.parametrize(
    "native, expected",
    [(0.05, 0.2), (0.195, None), (0.185, 0.2), (0.2, None), (0.35, None), (0.5, None), (0.52, None), (0.6, 0.5), (2.0, 0.5)],
)
def test_auto_pixel_size_with_a_range(native, expected):
    assert target_pixel_size("auto", native, 0.316, (0.2, 0.5)) == expected
    assert target_pixel_size("native", native, 0.316, (0.2, 0.5)) is None


def test_auto_pixel_size_without_a_range_unchanged():
    assert target_pixel_size("auto", 0.6, 0.14) == 0.14
    assert target_pixel_size("auto", 0.15, 0.14) is None


def test_validation_windows_are_one_tile_at_any_middle_pixel_size(tmp_path):
    # a validation window is the sample's window in source pixels, resampled to the range's middle pixel
    # size: rounding made some 65 px (257 at 256), which the U-Net refuses (sides must be multiples of 2**depth)
    tif, labels = make_scene(tmp_path, "s", size=384)  # 0.2 m pixels
    grid = np.linspace(0.05, 0.6, 551)  # source pixels per model pixel 0.25-3
    overshoot = [m for m in grid if round(round(64 * m / 0.2) / (m / 0.2)) != 64]  # where rounding went wrong
    assert len(overshoot) >= 3
    shapes = set()
    for middle in [*overshoot[:6], 0.1, 0.2, 0.3, 0.45]:
        sources = raster_sources([str(tif)], [str(labels)])
        for s in sources:
            s.factor = middle / s.pixel_size_m
        prep = Preprocessing(pixel_size_m=float(middle), pixel_size_range_m=(0.04, 0.9), tile_size=64)
        samples = build_samples(sources, [], tile=64, block=128, val_fraction=0.5, seed=0)
        val = WindowDataset(sources, samples.val, prep, train=False)
        for i in range(len(val)):
            x, y = val[i]
            shapes.add((tuple(x.shape), tuple(y.shape[-2:])))
    assert shapes == {((3, 64, 64), (64, 64))}
