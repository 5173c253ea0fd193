import csv
import os
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner
from shapely.geometry import Point, box

import geounet
from geounet.model.checkpoint import read_checkpoint
from geounet.cli import cli
from geounet.config import Preprocessing
from geounet.train.dataset import WindowDataset
from geounet.train.samples import build_samples
from geounet.train.sources import chip_sources, raster_sources
from geounet.train.targets import IGNORE
from geounet.io.raster import read_valid_mask

from conftest import SHARED_DATA, make_scene, make_tiles, synthetic_scene, write_raster

SMALL = ["--width", "4", "--depth", "2", "--tile-size", "64", "--batch-size", "4", "--workers", "0", "--epoch-windows", "1"]


def run(args, **kw):
    result = CliRunner().invoke(cli, [str(a) for a in args], **kw)
    return result


def rows(run_dir):
    with open(Path(run_dir) / "metrics.csv") as fh:
        return list(csv.DictReader(fh))


def train_args(tif, labels, out, *extra):
    return ["train", "--raster", tif, "--labels", labels, "--out", out, *SMALL, *extra]


def test_train_on_raster_with_vector_labels(scene, tmp_path):
    tif, labels = scene
    out = tmp_path / "run"
    res = run(train_args(tif, labels, out, "--epochs", "2"))
    assert res.exit_code == 0, res.output
    assert res.stdout == ""  # logs and progress go to stderr
    assert {p.name for p in out.iterdir()} == {"best.pt", "last.pt", "metrics.csv", "curves.png"}
    r = rows(out)
    assert [int(x["epoch"]) for x in r] == [1, 2]
    for x in r:
        assert 0 <= float(x["val_iou"]) <= 1 and float(x["train_loss"]) > 0
    model, info = geounet.load_model(out / "best.pt")
    assert not model.training
    p = info.preprocessing
    assert p.bands == (1, 2, 3) and p.tile_size == 64 and p.dtype == "uint8" and p.scale == 255.0
    assert p.pixel_size_m == pytest.approx(0.2, rel=0.01)
    assert 0.2 < p.mean[0] < 0.8 and all(s > 0.01 for s in p.std)
    assert info.model.width == 4 and info.model.depth == 2
    assert "val_iou" in info.metrics and info.geounet_version == geounet.__version__
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_training_learns_the_synthetic_buildings(tmp_path):
    tif, labels = make_scene(tmp_path, "big", size=384, seed=3)
    out = tmp_path / "run"
    res = run(train_args(tif, labels, out, "--epochs", "12", "--lr", "5e-3", "--width", "8"))
    assert res.exit_code == 0, res.output
    assert max(float(x["val_iou"]) for x in rows(out)) > 0.5


def test_train_on_paired_tiles(tmp_path):
    images, masks = make_tiles(tmp_path, n=5)
    out = tmp_path / "run"
    res = run(["train", "--images", images, "--masks", masks, "--out", out, *SMALL, "--epochs", "1"])
    assert res.exit_code == 0, res.output
    assert len(rows(out)) == 1
    # Split by whole files: no tile is used for both training and validation.
    sources = chip_sources(str(images), str(masks))
    s = build_samples(sources, [], tile=64, block=256, val_fraction=0.2, seed=0)
    assert s.val and s.train
    assert not {x.source for x in s.train} & {x.source for x in s.val}


def test_spatial_split_never_shares_pixels(tmp_path):
    tif, labels = make_scene(tmp_path, "s", size=512)
    sources = raster_sources([str(tif)], [str(labels)])
    s = build_samples(sources, [], tile=64, block=128, val_fraction=0.25, seed=0)
    prep = Preprocessing(tile_size=64)
    ds = WindowDataset(s.sources, s.train, prep, train=True)
    val = np.zeros((512, 512), bool)
    for x in s.val:
        c, r, w, h = x.window
        val[r : r + h, c : c + w] = True
    assert val.any()
    for x in s.train:
        win = ds._read_window(x)  # the widened read window used for random crops
        r, c = int(win.row_off), int(win.col_off)
        assert not val[r : r + int(win.height), c : c + int(win.width)].any()
    assert {x.block for x in s.train}.isdisjoint({x.block for x in s.val})


def test_nodata_windows_are_skipped_and_ignored_in_targets(tmp_path):
    valid = np.zeros((256, 256), bool)
    valid[:, 128:] = True
    tif, labels = make_scene(tmp_path, "nd", valid=valid)
    sources = raster_sources([str(tif)], [str(labels)])
    s = build_samples(sources, [], tile=64, block=256, val_fraction=0.0, seed=0)
    assert s.train and all(x.window[0] >= 128 for x in s.train)
    with rasterio.open(tif) as src:
        assert not read_valid_mask(src)[:, :128].any()
    # A window straddling the edge of the data: its no-data pixels are ignored by the loss.
    from geounet.train.samples import Sample

    ds = WindowDataset(s.sources, [Sample(0, (96, 0, 64, 64), (0, 0, 256, 256))], Preprocessing(tile_size=64), train=False)
    _, target = ds[0]
    assert (target[:, :, :32] == IGNORE).all() and (target[:, :, 32:] != IGNORE).all()


def test_pixel_size_resamples_and_plain_mask_option(scene, tmp_path):
    tif, labels = scene  # 0.2 m pixels
    out = tmp_path / "run"
    res = run(train_args(tif, labels, out, "--epochs", "1", "--pixel-size", "0.4", "--no-separation"))
    assert res.exit_code == 0, res.output
    _, info = geounet.load_model(out / "best.pt")
    assert info.preprocessing.pixel_size_m == 0.4
    assert info.model.outputs == ("building",) and info.model.out_channels == 1
    sources = raster_sources([str(tif)], [str(labels)])
    from geounet.train.sources import set_pixel_size

    set_pixel_size(sources, 0.4)
    s = build_samples(sources, [], tile=64, block=64, val_fraction=0.0, seed=0)
    assert all(x.window[2] == 128 for x in s.train)  # 64 model px = 128 source px
    ds = WindowDataset(s.sources, s.train, info.preprocessing, train=False)
    image, target = ds[0]
    assert image.shape == (3, 64, 64) and target.shape == (1, 64, 64)


def test_uint16_four_band_imagery(tmp_path):
    img, rects = synthetic_scene(256, n=12)
    img16 = np.concatenate([img, img[:1]]).astype(np.uint16) * 16  # 12-bit values, 4 bands
    tif = write_raster(tmp_path / "u16.tif", img16)
    with rasterio.open(tif) as src:
        from conftest import rect_polygons

        gdf = gpd.GeoDataFrame(geometry=rect_polygons(rects, src.transform), crs=src.crs)
    labels = tmp_path / "u16.gpkg"
    gdf.to_file(labels)
    out = tmp_path / "run"
    res = run(train_args(tif, labels, out, "--epochs", "1"))
    assert res.exit_code == 0, res.output
    _, info = geounet.load_model(out / "last.pt")
    assert info.model.in_channels == 4 and info.preprocessing.bands == (1, 2, 3, 4)
    assert info.preprocessing.dtype == "uint16" and info.preprocessing.scale > 255


def test_resume_continues_the_run(scene, tmp_path):
    tif, labels = scene
    out = tmp_path / "run"
    assert run(train_args(tif, labels, out, "--epochs", "1")).exit_code == 0
    step1 = read_checkpoint(out / "last.pt")["train_state"]["step"]
    res = run(["train", "--out", out, "--resume", "--epochs", "3"])
    assert res.exit_code == 0, res.output
    assert "resuming at epoch 2" in res.stderr
    assert [int(x["epoch"]) for x in rows(out)] == [1, 2, 3]
    ts = read_checkpoint(out / "last.pt")["train_state"]
    assert ts["step"] == 3 * step1 and ts["epoch"] == 3
    assert len(ts["optimizer"]["state"]) > 0


def test_resume_without_a_run_is_an_error(tmp_path):
    res = run(["train", "--out", tmp_path / "none", "--resume"])
    assert res.exit_code == 1 and "no last.pt" in res.stderr


def test_ctrl_c_saves_a_resumable_checkpoint(scene, tmp_path, monkeypatch):
    import geounet.train.loop as tr

    real = tr.segmentation_loss
    validated = {"n": 0}

    def interrupting(name, **kw):
        fn = real(name, **kw)

        def loss(logits, target):
            if not torch.is_grad_enabled():
                validated["n"] += 1
            elif validated["n"]:  # the first training step of the second epoch
                raise KeyboardInterrupt
            return fn(logits, target)

        return loss

    monkeypatch.setattr(tr, "segmentation_loss", interrupting)
    tif, labels = scene
    out = tmp_path / "run"
    res = run(train_args(tif, labels, out, "--epochs", "3"))
    assert res.exit_code == 130
    assert "resumable checkpoint saved" in res.stderr and "Traceback" not in res.output
    ts = read_checkpoint(out / "last.pt")["train_state"]
    assert ts["epoch"] == 1 and len(rows(out)) == 1
    monkeypatch.setattr(tr, "segmentation_loss", real)
    res = run(["train", "--out", out, "--resume"])
    assert res.exit_code == 0, res.output
    assert [int(x["epoch"]) for x in rows(out)] == [1, 2, 3]


def test_same_seed_repeats_the_run(scene, tmp_path):
    tif, labels = scene
    states = []
    for name in ("a", "b"):
        out = tmp_path / name
        args = train_args(tif, labels, out, "--epochs", "1", "--seed", "7")
        args[args.index("--workers") + 1] = "1"  # with a loader worker, as by default
        assert run(args).exit_code == 0
        states.append(read_checkpoint(out / "last.pt")["state_dict"])
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_max_minutes_stops_the_run(scene, tmp_path):
    tif, labels = scene
    out = tmp_path / "run"
    res = run(train_args(tif, labels, out, "--epochs", "1000", "--max-minutes", "0.05"))
    assert res.exit_code == 0, res.output
    r = rows(out)
    assert 1 <= len(r) < 1000 and float(r[-1]["elapsed_s"]) < 30


# ---------------------------------------------------------------- bad input


def _no_crs_raster(tmp_path):
    img, _ = synthetic_scene(128)
    return write_raster(tmp_path / "nocrs.tif", img, crs=None)


def _labels(tmp_path, name, geoms, crs):
    path = tmp_path / name
    gpd.GeoDataFrame(geometry=geoms, crs=crs).to_file(path)
    return path


BAD = {
    "missing raster": lambda t, tif, lab: (["--raster", t / "nope.tif", "--labels", lab], "nope.tif", "not found"),
    "not a raster": lambda t, tif, lab: (
        ["--raster", _text(t / "notes.tif"), "--labels", lab], "notes.tif", "not a raster"),
    "raster without CRS": lambda t, tif, lab: (
        ["--raster", _no_crs_raster(t), "--labels", lab], "nocrs.tif", "no CRS"),
    "missing labels": lambda t, tif, lab: (["--raster", tif, "--labels", t / "nope.geojson"], "nope.geojson", "not found"),
    "unreadable labels": lambda t, tif, lab: (
        ["--raster", tif, "--labels", _text(t / "bad.geojson")], "bad.geojson", "not a readable vector"),
    "labels without CRS": lambda t, tif, lab: (
        ["--raster", tif, "--labels", _labels(t, "nocrs.shp", [box(0, 0, 1, 1)], None)], "nocrs.shp", "no CRS"),
    "labels elsewhere": lambda t, tif, lab: (
        ["--raster", tif, "--labels", _labels(t, "far.geojson", [box(10, 10, 10.001, 10.001)], "EPSG:4326")],
        "far.geojson", "no label polygon overlaps"),
    "labels not polygons": lambda t, tif, lab: (
        ["--raster", tif, "--labels", _labels(t, "pts.geojson", [Point(15.0, 36.1)], "EPSG:4326")], "pts.geojson", "must be polygons"),
    "unpaired labels": lambda t, tif, lab: (["--raster", tif], "--labels", "one labels file per raster"),
    "tile size not multiple": lambda t, tif, lab: (
        ["--raster", tif, "--labels", lab, "--tile-size", "100"], "--tile-size 100", "multiple of 2**depth = 16"),
}


def _text(path):
    path.write_text("hello, I am not what my name says\n")
    return path


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_raster_inputs(case, scene, tmp_path):
    tif, labels = scene
    args, name, reason = BAD[case](tmp_path, tif, labels)
    out = tmp_path / "run"
    extra = [] if "--tile-size" in args else ["--tile-size", "64"]
    res = run(["train", *args, "--out", out, "--width", "4", "--workers", "0", *extra])
    assert res.exit_code == 1, res.output
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("Error:") and name in err and reason in err
    assert "Traceback" not in res.output
    assert not out.exists()


def test_bad_tile_inputs(tmp_path):
    images, masks = make_tiles(tmp_path, n=3)
    out = tmp_path / "run"

    def check(args, name, reason):
        res = run(["train", *args, "--out", out, *SMALL])
        assert res.exit_code == 1, res.output
        err = res.stderr.strip()
        assert len(err.splitlines()) == 1 and name in err and reason in err, err
        assert not out.exists()

    empty = tmp_path / "empty"
    empty.mkdir()
    check(["--images", empty, "--masks", masks], "empty", "no GeoTIFF tiles")
    check(["--images", tmp_path / "nowhere", "--masks", masks], "nowhere", "folder not found")
    (masks / "t2.tif").unlink()
    check(["--images", images, "--masks", masks], "masks", "no mask for image tile t2.tif")
    write_raster(masks / "t2.tif", np.zeros((1, 100, 128), np.uint8))
    check(["--images", images, "--masks", masks], "t2.tif", "mask is 128x100 px but image t2.tif is 128x128 px")


def test_existing_output_needs_overwrite(scene, tmp_path):
    tif, labels = scene
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    res = run(train_args(tif, labels, out, "--epochs", "1"))
    assert res.exit_code == 1 and "--overwrite" in res.stderr and str(out) in res.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    res = run(train_args(tif, labels, out, "--epochs", "1", "--overwrite"))
    assert res.exit_code == 0, res.output
    assert (out / "best.pt").exists()


def test_overwrite_keeps_the_old_run_when_an_input_is_bad(scene, tmp_path):
    """--overwrite deletes an old run's files only once the inputs have been read and checked: a typo
    in a path fails in one line and leaves the old run's files as they were."""
    tif, _ = scene
    out = tmp_path / "run"
    out.mkdir()
    old = {name: os.urandom(256) for name in ("best.pt", "last.pt", "metrics.csv", "curves.png")}
    for name, data in old.items():
        (out / name).write_bytes(data)
    res = run(train_args(tif, tmp_path / "typo.geojson", out, "--epochs", "1", "--overwrite"))
    assert res.exit_code == 1, res.output
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and "typo.geojson" in err and "not found" in err, err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == old


def test_train_options_default_to_the_config_defaults():
    """TrainConfig holds the one definition of each setting: every `geounet train` option with a
    default has its field's default."""
    from dataclasses import MISSING, fields

    import click

    from geounet.train import TrainConfig

    defaults = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
    command = cli.commands["train"]
    ctx = click.Context(command)
    checked = []
    for p in command.params:
        default = p.get_default(ctx)
        if p.name in defaults and default is not None and not p.multiple:
            assert default == defaults[p.name], p.name
            checked.append(p.name)
    assert len(checked) >= 10, checked


def test_version_and_help():
    assert run(["--version"]).output.strip().endswith(geounet.__version__)
    res = run(["train", "--help"])
    assert res.exit_code == 0 and "--max-minutes" in res.output and "--resume" in res.output


def test_python_m_geounet_runs():
    out = subprocess.run([sys.executable, "-m", "geounet", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and geounet.__version__ in out.stdout


# ---------------------------------------------------------------- distributed


def test_two_process_gloo_ddp(scene, tmp_path):
    tif, labels = scene
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29533",
           "-m", "geounet", "train", "--raster", str(tif), "--labels", str(labels), "--out", str(out),
           *SMALL, "--epochs", "2", "--device", "cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "x2 ranks" in proc.stderr
    assert proc.stderr.count("val_loss") == 2  # only rank 0 reports (one line an epoch) and saves
    assert proc.stderr.count("best validation IoU") == 1
    assert [int(x["epoch"]) for x in rows(out)] == [1, 2]
    sd = read_checkpoint(out / "best.pt")["state_dict"]
    assert not any(k.startswith("module.") for k in sd)
    model, info = geounet.load_model(out / "best.pt")
    assert info.model.outputs == ("building", "border", "contact")
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 3, 64, 64)


# ---------------------------------------------------------------- real data


def test_real_banepa_one_epoch(tmp_path):
    out = tmp_path / "banepa"
    res = run(["train", "--raster", SHARED_DATA / "banepa" / "banepa.tif",
               "--labels", SHARED_DATA / "banepa" / "banepa_buildings.geojson", "--out", out,
               "--width", "8", "--epochs", "2", "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert max(float(x["val_iou"]) for x in rows(out)) > 0.25
    _, info = geounet.load_model(out / "best.pt")
    assert info.preprocessing.pixel_size_m == pytest.approx(0.132, abs=0.003)


def test_real_zanzibar_samples_lie_in_the_imaged_chips():
    sources = raster_sources([str(SHARED_DATA / "zanzibar" / "zanzibar.tif")],
                             [str(SHARED_DATA / "zanzibar" / "zanzibar_buildings.geojson")])
    s = build_samples(sources, [], tile=256, block=1024, val_fraction=0.2, seed=0)
    assert s.train and s.val
    with rasterio.open(sources[0].image) as src:
        for x in s.train[::5] + s.val[::5]:
            valid = read_valid_mask(src, rasterio.windows.Window(*x.window))
            assert valid.mean() >= 0.1


def test_weight_map_training_runs_and_rides_with_the_targets(scene, tmp_path):
    tif, labels = scene
    out = tmp_path / "run"
    res = run(train_args(tif, labels, out, "--epochs", "1", "--no-separation", "--weight-map"))
    assert res.exit_code == 0, res.output
    _, info = geounet.load_model(out / "best.pt")
    assert info.model.outputs == ("building",)
    sources = raster_sources([str(tif)], [str(labels)])
    s = build_samples(sources, [], tile=64, block=64, val_fraction=0.0, seed=0)
    ds = WindowDataset(s.sources, s.train, info.preprocessing, train=True, weights=True)
    _, target = ds[0]
    assert target.shape == (2, 64, 64)
    w = target[1][target[0] != 255]
    assert w.min() >= 10 and w.max() <= 110  # uint8 w * 10, w in [1, 11]


def test_no_photometric_keeps_pixel_values_and_photometric_changes_them():
    from scipy.ndimage import binary_erosion

    from geounet.train.dataset import augmentation

    image = np.full((80, 80, 3), 0.4, dtype=np.float32)
    mask = np.ones((80, 80, 1), dtype=np.uint8)
    geometric_only = augmentation(64, 3, train=True, photometric=False)
    colour = augmentation(64, 3, train=True)
    changed = 0
    for _ in range(20):
        out = geometric_only(image=image, mask=mask)
        # pixels of the image away from the affine's fill (interpolated with it at the edge)
        kept = binary_erosion(out["mask"][..., 0] != IGNORE, iterations=2)
        assert kept.any() and np.allclose(out["image"][kept], 0.4)
        changed += not np.allclose(colour(image=image, mask=mask)["image"], 0.4, atol=1e-3)
    assert changed >= 10  # brightness/contrast alone acts 8 times in 10
