"""Hostile and unusual inputs across train, predict and evaluate, one row each (issue 10).

A row that must be refused ends with exit code 1, exactly one ``Error:`` line on stderr naming
the file or option, nothing on stdout, no traceback, and the folder exactly as it was: no output,
no temporary file, every file that was there untouched. A row that is unusual but valid must give
the right result. Interrupting a run (SIGINT to a real subprocess) leaves no output and no
temporary file (predict) or a resumable last.pt (train).

Rasters are tiny and the model is a constant U-Net of width 4 (every valid pixel a building), so
the whole module runs in seconds; each row builds its own inputs in its own folder.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner
from rasterio.crs import CRS
from rasterio.enums import ColorInterp
from shapely.geometry import LineString, Point, box

from geounet.cli import cli

from helpers_predict import constant_checkpoint, constant_unet, prep, save_unet, scene, write_raster

ROOT = Path(__file__).resolve().parents[1]
LOCAL_CRS = CRS.from_wkt('LOCAL_CS["site grid",UNIT["metre",1],AXIS["Easting",EAST],AXIS["Northing",NORTH]]')
UTM = "EPSG:32633"
TRAIN_SMALL = ["--width", "4", "--depth", "2", "--tile-size", "32", "--batch-size", "2", "--workers", "0",
               "--epochs", "1"]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Checkpoints shared by the rows (read only): RGB uint8, RGB float32, and one for four bands."""
    d = tmp_path_factory.mktemp("models")
    return {
        "rgb": constant_checkpoint(d / "rgb.pt", 3.0),
        "float": save_unet(d / "float.pt", constant_unet(3.0), prep(dtype="float32", scale=1.0)),
        "four": save_unet(d / "four.pt", constant_unet(3.0, in_channels=4), prep(bands=(1, 2, 3, 4))),
        "uint16": save_unet(d / "uint16.pt", constant_unet(3.0), prep(dtype="uint16", scale=4000.0)),
    }


# ---------------------------------------------------------------- building inputs


def rgb(d: Path, name: str = "r.tif", size=(64, 64), **kw) -> Path:
    return write_raster(d / name, scene(size), **kw)


def text(path: Path, content: str = "not what the name says\n") -> Path:
    path.write_text(content)
    return path


def truncated(d: Path, name: str = "cut.tif") -> Path:
    whole = rgb(d, "whole.tif", (128, 128))
    raw = whole.read_bytes()
    whole.unlink()
    (d / name).write_bytes(raw[: len(raw) // 2])
    return d / name


def vector(path: Path, geoms, crs=UTM) -> Path:
    gpd.GeoDataFrame(geometry=list(geoms), crs=crs).to_file(path)
    return path


def footprint(d: Path, name: str = "truth.geojson") -> Path:
    """A 4 m x 4 m building inside :func:`rgb`'s default 64 x 64 px raster (0.2 m pixels, UTM 33N)."""
    return vector(d / name, [box(500002, 3999990, 500006, 3999994)])


def far_raster(d: Path) -> Path:
    """:func:`rgb`'s raster 200 km away from :func:`footprint`."""
    return rgb(d, "far.tif", transform=Affine(0.2, 0, 700000, 0, -0.2, 4200000))


def half_nan() -> np.ndarray:
    """float32 RGB, 64 x 64, with its right half NaN."""
    return np.where(np.arange(64) < 32, 0.5, np.nan).astype(np.float32) * np.ones((3, 64, 1), np.float32)


def rgba(d: Path) -> Path:
    alpha = np.full((1, 64, 64), 255, np.uint8)
    alpha[:, :, 32:] = 0
    path = write_raster(d / "rgba.tif", np.concatenate([scene((64, 64)), alpha]))
    with rasterio.open(path, "r+") as dst:
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
    return path


class Evil:
    """A pickle that would run a command if it were ever unpickled by plain pickle."""

    marker: Path

    def __reduce__(self):
        return (os.system, (f"touch {Evil.marker}",))


def evil_model(d: Path) -> Path:
    Evil.marker = d.parent / f"{d.name}-CODE-RAN"
    (d / "evil.pt").write_bytes(pickle.dumps({"format": "geounet-checkpoint", "model": Evil()}))
    return d / "evil.pt"


def masks_of_other_size(d: Path) -> list:
    images, masks = d / "images", d / "masks"
    images.mkdir()
    masks.mkdir()
    rgb(images, "a.tif", (64, 64))
    write_raster(masks / "a.tif", np.ones((1, 48, 64), np.uint8))
    return ["--images", images, "--masks", masks]


# ---------------------------------------------------------------- checking results


def features(path: Path) -> list[dict]:
    return json.loads(Path(path).read_text())["features"]


def one_building_of(area_m2: float, output: str = "o.geojson"):
    """A check: ``output`` holds one building of ``area_m2`` (the constant model marks every valid pixel)."""

    def check(d: Path, res) -> None:
        assert str(d / output) in res.stdout.split()
        feats = features(d / output)
        assert len(feats) == 1, feats
        assert feats[0]["properties"]["area_m2"] == pytest.approx(area_m2, rel=0.02)

    return check


def no_building(d: Path, res) -> None:
    assert features(d / "o.geojson") == []


def rotated_check(d: Path, res) -> None:
    """The footprint of a rotated raster is the rotated square, in the raster's CRS."""
    feats = features(d / "o.geojson")
    assert len(feats) == 1
    from shapely.geometry import shape

    poly = shape(feats[0]["geometry"])
    with rasterio.open(d / "rot.tif") as src:
        frame = box(0, 0, 64, 64)
        corners = [src.transform @ c for c in frame.exterior.coords]
    from shapely.geometry import Polygon

    expected = Polygon(corners)
    assert poly.area == pytest.approx(expected.area, rel=0.03)
    assert poly.symmetric_difference(expected).area < 0.05 * expected.area


def pooled(key: str, value: float):
    def check(d: Path, res) -> None:
        out = json.loads(res.stdout)["pooled"]
        assert out[key] == value, out

    return check


# ---------------------------------------------------------------- the table


@dataclass
class Row:
    """``build(folder, models)`` makes the inputs and returns the command line; ``error``: words of the one
    error line (None: a valid input, checked by ``check``, writing ``outputs``)."""

    build: Callable[[Path, dict], list]
    error: list[str] | None
    check: Callable[[Path, object], None] | None = None
    outputs: frozenset = frozenset({"o.geojson"})
    code: int = 1  # of a refused input: 1, or 2 for an option click itself refuses


def predict(*inputs_and_options):
    return ["predict", *inputs_and_options]


ROWS = {
    # ---- predict: the input raster
    "predict empty file": Row(lambda d, m: predict(text(d / "e.tif", ""), "-o", d / "o.geojson", "--model", m["rgb"]),
                              ["e.tif", "not a raster"]),
    "predict directory as input": Row(lambda d, m: predict(d, "-o", d / "o.geojson", "--model", m["rgb"]),
                                      ["is a directory"]),
    "predict text named .tif": Row(lambda d, m: predict(text(d / "t.tif"), "-o", d / "o.geojson", "--model", m["rgb"]),
                                   ["t.tif", "not a raster"]),
    "predict truncated GeoTIFF": Row(lambda d, m: predict(truncated(d), "-o", d / "o.geojson", "--model", m["rgb"]),
                                     ["cut.tif", "cannot read raster"]),
    "predict no CRS": Row(lambda d, m: predict(rgb(d, crs=None), "-o", d / "o.geojson", "--model", m["rgb"]),
                          ["r.tif", "no CRS"]),
    "predict local CRS": Row(lambda d, m: predict(rgb(d, crs=LOCAL_CRS), "-o", d / "o.geojson", "--model", m["rgb"]),
                             ["r.tif", "local (engineering)"]),
    "predict 1 band for an RGB model": Row(lambda d, m: predict(
        write_raster(d / "g.tif", scene((64, 64))[:1]), "-o", d / "o.geojson", "--model", m["rgb"]),
        ["g.tif", "raster has 1 band(s)"]),
    "predict 2 bands for an RGB model": Row(lambda d, m: predict(
        write_raster(d / "g2.tif", scene((64, 64))[:2]), "-o", d / "o.geojson", "--model", m["rgb"]),
        ["g2.tif", "raster has 2 band(s)"]),
    "predict 4 bands (RGB + NIR) for an RGB model": Row(lambda d, m: predict(
        write_raster(d / "n.tif", np.concatenate([scene((64, 64)), scene((64, 64))[:1]])), "-o", d / "o.geojson",
        "--model", m["rgb"]), None, one_building_of(64 * 64 * 0.04)),
    "predict float32 with NaN for a uint8 model": Row(lambda d, m: predict(
        write_raster(d / "f.tif", np.full((3, 64, 64), np.nan, np.float32)), "-o", d / "o.geojson",
        "--model", m["rgb"]), ["f.tif", "no valid pixels to measure its value range on"]),
    # half NaN, declared as no-data or not: the other half is the building, for a float model and (stretched
    # by --input-range auto) for a uint8 one
    **{f"predict float32 with {how} for a {kind} model": Row(
        lambda d, m, key=key, nodata=nodata: predict(write_raster(d / "f.tif", half_nan(), **nodata), "-o",
                                                     d / "o.geojson", "--model", m[key]),
        None, one_building_of(64 * 32 * 0.04))
       for how, nodata in (("NaN no-data", {"nodata": float("nan")}), ("undeclared NaN", {}))
       for kind, key in (("float", "float"), ("uint8", "rgb"))},
    "predict uint16 for a uint8 model, --input-range none": Row(lambda d, m: predict(
        write_raster(d / "u.tif", scene((64, 64)).astype(np.uint16)), "-o", d / "o.geojson", "--model", m["rgb"],
        "--input-range", "none"), ["u.tif", "raster is uint16"]),
    "predict uint16 for a uint8 model (stretched)": Row(lambda d, m: predict(
        write_raster(d / "u.tif", scene((64, 64)).astype(np.uint16) * 16), "-o", d / "o.geojson", "--model",
        m["rgb"]), None, one_building_of(64 * 64 * 0.04)),
    "predict uint16 for a uint16 model": Row(lambda d, m: predict(
        write_raster(d / "u.tif", scene((64, 64)).astype(np.uint16) * 12), "-o", d / "o.geojson", "--model",
        m["uint16"]), None, one_building_of(64 * 64 * 0.04)),
    "predict RGBA (alpha is no-data)": Row(lambda d, m: predict(rgba(d), "-o", d / "o.geojson", "--model", m["rgb"]),
                                           None, one_building_of(64 * 32 * 0.04)),
    "predict raster smaller than one window": Row(lambda d, m: predict(
        rgb(d, size=(9, 13)), "-o", d / "o.geojson", "--model", m["rgb"], "--tile-size", "64", "--min-area", "2"),
        None, one_building_of(9 * 13 * 0.04)),
    "predict raster of one pixel": Row(lambda d, m: predict(
        rgb(d, size=(1, 1)), "-o", d / "o.geojson", "--model", m["rgb"], "--min-area", "0", "--simplify", "0"),
        None, one_building_of(0.04)),
    "predict --pixel-size larger than the raster": Row(lambda d, m: predict(
        rgb(d), "-o", d / "o.geojson", "--model", m["rgb"], "--pixel-size", "1000"), None, one_building_of(12.8 ** 2)),
    "predict all no-data": Row(lambda d, m: predict(
        rgb(d, valid=np.zeros((64, 64), bool)), "-o", d / "o.geojson", "--model", m["rgb"]), None, no_building),
    "predict rotated geotransform": Row(lambda d, m: predict(
        rgb(d, "rot.tif", transform=Affine.translation(500000, 4000000) @ Affine.rotation(30) @ Affine.scale(0.2, -0.2)),
        "-o", d / "o.geojson", "--model", m["rgb"]), None, rotated_check),
    # ---- predict: outputs and models
    "predict unknown output extension": Row(lambda d, m: predict(rgb(d), "-o", d / "o.shp", "--model", m["rgb"]),
                                            ["o.shp", "unsupported output format"]),
    "predict output folder does not exist": Row(lambda d, m: predict(
        rgb(d), "-o", d / "no" / "o.geojson", "--model", m["rgb"]), ["o.geojson", "folder does not exist"]),
    "predict output folder is a file": Row(lambda d, m: predict(
        rgb(d), rgb(d, "s.tif"), "-o", text(d / "results"), "--model", m["rgb"]), ["results", "output folder is a file"]),
    "predict several inputs into a new folder": Row(lambda d, m: predict(
        rgb(d), rgb(d, "s.tif", (32, 48)), "-o", d / "new" / "out", "--model", m["rgb"]), None,
        lambda d, res: one_building_of(32 * 48 * 0.04, "new/out/s.geojson")(d, res),
        frozenset({"new", "new/out", "new/out/r.geojson", "new/out/s.geojson"})),
    "predict --probs folder is a file": Row(lambda d, m: predict(
        rgb(d), rgb(d, "s.tif"), "-o", d / "out", "--probs", text(d / "probs"), "--model", m["rgb"]),
        ["probs", "output folder is a file"]),
    "predict --model is a folder": Row(lambda d, m: predict(rgb(d), "-o", d / "o.geojson", "--model", d),
                                       ["--model", "is a directory"], code=2),
    "predict unknown --format": Row(lambda d, m: predict(rgb(d), rgb(d, "s.tif"), "-o", d / "out", "--format", "shp",
                                                         "--model", m["rgb"]), ["--format", "'shp'"], code=2),
    "predict malicious pickle as model": Row(lambda d, m: predict(rgb(d), "-o", d / "o.geojson", "--model",
                                                                  evil_model(d)), ["evil.pt", "not loaded"]),
    "predict model for other bands": Row(lambda d, m: predict(rgb(d), "-o", d / "o.geojson", "--model", m["four"]),
                                         ["r.tif", "raster has 3 band(s)", "[1, 2, 3, 4]"]),
    "predict --tile-size not a multiple": Row(lambda d, m: predict(
        rgb(d), "-o", d / "o.geojson", "--model", m["rgb"], "--tile-size", "30"), ["--tile-size 30"]),
    "predict output is an input": Row(lambda d, m: predict(
        rgb(d), "-o", d / "o.geojson", "--probs", d / "r.tif", "--model", m["rgb"]), ["r.tif", "overwrite an input"]),
    # ---- train
    "train labels are points": Row(lambda d, m: ["train", "--raster", rgb(d), "--labels", vector(
        d / "p.geojson", [Point(500003, 3999992)]), "--out", d / "run", *TRAIN_SMALL], ["p.geojson", "must be polygons"]),
    "train labels are lines": Row(lambda d, m: ["train", "--raster", rgb(d), "--labels", vector(
        d / "l.geojson", [LineString([(500001, 3999991), (500009, 3999995)])]), "--out", d / "run", *TRAIN_SMALL],
        ["l.geojson", "must be polygons", "LineString"]),
    "train labels in no CRS": Row(lambda d, m: ["train", "--raster", rgb(d), "--labels", vector(
        d / "n.shp", [box(500002, 3999990, 500006, 3999994)], None), "--out", d / "run", *TRAIN_SMALL],
        ["n.shp", "no CRS"]),
    "train labels outside the raster": Row(lambda d, m: ["train", "--raster", rgb(d), "--labels", vector(
        d / "far.geojson", [box(600000, 4100000, 600004, 4100004)]), "--out", d / "run", *TRAIN_SMALL],
        ["far.geojson", "no label polygon overlaps"]),
    "train empty label file": Row(lambda d, m: ["train", "--raster", rgb(d), "--labels", vector(
        d / "none.geojson", []), "--out", d / "run", *TRAIN_SMALL], ["none.geojson", "no geometries"]),
    "train empty (0-byte) label file": Row(lambda d, m: ["train", "--raster", rgb(d), "--labels", text(
        d / "zero.geojson", ""), "--out", d / "run", *TRAIN_SMALL], ["zero.geojson", "empty file"]),
    "train --out is a file": Row(lambda d, m: ["train", "--raster", rgb(d), "--labels", footprint(d), "--out",
                                               text(d / "run.txt"), *TRAIN_SMALL], ["--out", "run.txt", "is a file"],
                                 code=2),
    "train masks of another size": Row(lambda d, m: ["train", *masks_of_other_size(d), "--out", d / "run",
                                                     *TRAIN_SMALL], ["a.tif", "mask is 64x48 px"]),
    "train --resume without a run": Row(lambda d, m: ["train", "--out", d / "run", "--resume"],
                                        ["run", "--resume", "no last.pt"]),
    "train raster is a directory": Row(lambda d, m: ["train", "--raster", d, "--labels", footprint(d),
                                                     "--out", d / "run", *TRAIN_SMALL], ["is a directory"]),
    "train raster in a local CRS": Row(lambda d, m: ["train", "--raster", rgb(d, crs=LOCAL_CRS), "--labels",
                                                     footprint(d), "--out", d / "run", *TRAIN_SMALL],
                                       ["r.tif", "local (engineering)"]),
    "train --bands beyond the raster": Row(lambda d, m: ["train", "--raster", rgb(d), "--labels", footprint(d),
                                                         "--out", d / "run", "--bands", "1,2,5", *TRAIN_SMALL],
                                           ["r.tif", "band"]),
    # ---- evaluate
    "evaluate missing prediction file": Row(lambda d, m: ["evaluate", d / "nope.geojson", footprint(d)],
                                            ["nope.geojson", "not found"]),
    "evaluate missing truth file": Row(lambda d, m: ["evaluate", footprint(d), d / "nope.gpkg"],
                                       ["nope.gpkg", "not found"]),
    "evaluate empty (0-byte) prediction file": Row(lambda d, m: ["evaluate", text(d / "zero.geojson", ""),
                                                                 footprint(d)], ["zero.geojson", "empty file"]),
    "evaluate an odd number of files": Row(lambda d, m: ["evaluate", footprint(d)], ["PRED TRUTH pairs"], code=2),
    "evaluate predictions that are points": Row(lambda d, m: ["evaluate", vector(
        d / "pts.geojson", [Point(500003, 3999992)]), footprint(d)], ["pts.geojson", "must be polygons"]),
    "evaluate truth in no CRS": Row(lambda d, m: ["evaluate", footprint(d), vector(
        d / "n.shp", [box(500002, 3999990, 500006, 3999994)], None)], ["n.shp", "no CRS"]),
    "evaluate raster that does not overlap": Row(lambda d, m: ["evaluate", footprint(d), footprint(d, "t2.geojson"),
                                                               "--raster", far_raster(d)],
                                                 ["far.tif", "does not overlap"]),
    "evaluate missing raster": Row(lambda d, m: ["evaluate", footprint(d), footprint(d, "t2.geojson"),
                                                 "--raster", d / "gone.tif"], ["gone.tif", "not found"]),
    "evaluate empty predictions": Row(lambda d, m: ["evaluate", vector(d / "none.geojson", []), footprint(d),
                                                    "--json"], None, pooled("fn", 1), frozenset()),
}


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``folder`` (hidden ones too) with its size and modification time (files only: a
    folder's time changes when a temporary file comes and goes)."""
    return {str(p.relative_to(folder)): (0, 0) if p.is_dir() else (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*")}


@pytest.mark.parametrize("name", list(ROWS))
def test_hostile_input(name, tmp_path, models):
    row = ROWS[name]
    args = [str(a) for a in row.build(tmp_path, models)]
    before = snapshot(tmp_path)
    res = CliRunner().invoke(cli, ["-q", *args])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exc_info
    assert "Traceback" not in res.output
    after = snapshot(tmp_path)
    if row.error is None:
        assert res.exit_code == 0, res.output
        assert set(after) - set(before) == set(row.outputs)
        assert {k: v for k, v in after.items() if k in before} == before
        row.check(tmp_path, res)
        return
    msg = res.stderr.strip()
    assert res.exit_code == row.code, res.output
    assert len(msg.splitlines()) == 1 and msg.startswith("Error: "), msg
    for words in row.error:
        assert words in msg, (words, msg)
    assert res.stdout == ""
    assert after == before  # no output, no temporary file, nothing touched
    assert not any(tmp_path.parent.glob(f"{tmp_path.name}-CODE-RAN"))


def test_several_inputs_with_one_corrupt(tmp_path, models):
    """The other inputs are still done; the corrupt one is reported in one line; exit code 1."""
    good1, cut, good2 = rgb(tmp_path, "a.tif"), truncated(tmp_path), rgb(tmp_path, "b.tif", (48, 80))
    res = CliRunner().invoke(cli, ["-q", "predict", *map(str, (good1, cut, good2)), "-o", str(tmp_path / "out"),
                                   "--model", str(models["rgb"])])
    assert res.exit_code == 1
    msg = res.stderr.strip()
    assert len(msg.splitlines()) == 1 and msg.startswith("Error: ") and "cut.tif" in msg, msg
    assert sorted(os.listdir(tmp_path / "out")) == ["a.geojson", "b.geojson"]
    assert len(features(tmp_path / "out" / "b.geojson")) == 1


# ---------------------------------------------------------------- Ctrl-C in a real process

SLOW_RUN = """
import signal, sys, time
from pathlib import Path
# Python leaves SIGINT ignored when it starts ignored (a test run launched in the background by a
# non-interactive shell): give it Python's usual Ctrl-C handler, which is what a user's terminal gives
signal.signal(signal.SIGINT, signal.default_int_handler)
marker = Path(sys.argv[1])
import geounet.model.checkpoint as ck
import geounet.train.loop as loop

def slow(f):
    def run(*a, **k):
        marker.touch()  # working now: the parent may send SIGINT
        time.sleep(0.2)
        return f(*a, **k)
    return run

real_load = ck.load_model
def load_model(path=None, device="cpu"):
    net, info = real_load(path, device)
    net.forward = slow(net.forward)
    return net, info
ck.load_model = load_model
loop.train_step = slow(loop.train_step)
from geounet.cli import main
sys.argv = ["geounet", *sys.argv[2:]]
main()
"""


def interrupt(tmp_path: Path, args: list, sig=signal.SIGINT, ready=lambda: True) -> subprocess.CompletedProcess:
    """Run geounet in a subprocess, send ``sig`` once it is working (and ``ready()``), and return how it ended."""
    marker = tmp_path.parent / f"{tmp_path.name}-working"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", SLOW_RUN, str(marker), "-q", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (marker.exists() and ready()) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), proc.communicate()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_sigint_during_predict_leaves_nothing(tmp_path, models):
    tif = rgb(tmp_path, size=(128, 128))
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    before = snapshot(tmp_path)
    done = interrupt(tmp_path, ["predict", tif, "-o", out / "o.geojson", "--probs", out / "p.tif",
                                "--model", models["rgb"], "--tile-size", "32", "--batch-size", "1"])
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip() == "Interrupted." and done.stdout == ""
    assert snapshot(tmp_path) == before


def test_sigkill_during_predict_is_cleaned_up_by_the_next_run(tmp_path, models):
    """A killed process (SIGKILL, out of memory) cannot clean up: the next run over the same outputs does."""
    tif = rgb(tmp_path, size=(128, 128))
    out = tmp_path / "out"
    args = ["predict", tif, "-o", out / "o.geojson", "--probs", out / "p.tif", "--model", models["rgb"],
            "--tile-size", "32", "--batch-size", "1"]
    out.mkdir()
    done = interrupt(tmp_path, args, signal.SIGKILL, ready=lambda: any(p.name.startswith(".") for p in out.iterdir()))
    assert done.returncode == -signal.SIGKILL
    assert any(p.name.startswith(".") for p in out.iterdir())  # what the killed run left
    res = CliRunner().invoke(cli, ["-q", *map(str, args)])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["o.geojson", "p.tif"]


def test_sigint_during_train_leaves_a_resumable_run(tmp_path):
    tif = rgb(tmp_path, size=(128, 128))
    labels = footprint(tmp_path)
    run = tmp_path / "run"
    done = interrupt(tmp_path, ["train", "--raster", tif, "--labels", labels, "--out", run,
                                *TRAIN_SMALL[:-1], "50"])
    assert done.returncode == 130, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1] == "Interrupted." and "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 2 and "resumable checkpoint saved" in lines[0] and "last.pt" in lines[0], lines
    assert sorted(p.name for p in run.iterdir()) == ["last.pt"]  # nothing temporary left
    from geounet.model.checkpoint import read_checkpoint

    assert read_checkpoint(run / "last.pt")["train_state"]
