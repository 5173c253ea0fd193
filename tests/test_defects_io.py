"""Defects of inputs and outputs found by review and hostile inputs (issue 10, items 5, 9, 11, 12, 13);
each test failed before its fix."""

from __future__ import annotations

import os
import pickle

import geopandas as gpd
import numpy as np
import pytest
from click.testing import CliRunner
from rasterio.crs import CRS
from shapely.geometry import box

from geounet.cli import cli

from helpers_predict import constant_checkpoint, files_in, scene, write_raster

LOCAL_CRS = CRS.from_wkt('LOCAL_CS["site grid",UNIT["metre",1],AXIS["Easting",EAST],AXIS["Northing",NORTH]]')


def _invoke(*args):
    return CliRunner().invoke(cli, ["-q", *map(str, args)])


def _one_line_error(res, *words):
    msg = res.stderr.strip()
    assert res.exit_code == 1, res.output
    assert msg.startswith("Error: ") and len(msg.splitlines()) == 1, msg
    assert "Traceback" not in res.output
    for w in words:
        assert w in msg, (w, msg)
    return msg


@pytest.mark.parametrize("command", ["predict", "train", "evaluate"])
def test_local_engineering_crs_is_refused_in_one_line(tmp_path, command):
    """A site grid (LOCAL_CS) raster crashed in pyproj ("Error creating Transformer from CRS") with a traceback."""
    tif = write_raster(tmp_path / "site.tif", scene((64, 64)), crs=LOCAL_CRS)
    labels = tmp_path / "l.geojson"
    gpd.GeoDataFrame(geometry=[box(500000, 3999990, 500005, 3999995)], crs="EPSG:32633").to_file(labels)
    ckpt = constant_checkpoint(tmp_path / "m.pt")
    args = {
        "predict": ["predict", tif, "-o", tmp_path / "o.geojson", "--model", ckpt],
        "train": ["train", "--raster", tif, "--labels", labels, "--out", tmp_path / "run", "--width", "4",
                  "--depth", "2", "--tile-size", "32", "--epochs", "1", "--workers", "0"],
        "evaluate": ["evaluate", labels, labels, "--raster", tif],
    }[command]
    before = files_in(tmp_path)
    res = _invoke(*args)
    _one_line_error(res, "site.tif", "local (engineering)")
    assert files_in(tmp_path) == before


def _tiny_checkpoint_bytes(tmp_path) -> bytes:
    return constant_checkpoint(tmp_path / "real.pt").read_bytes()


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {_Evil.marker}",))


@pytest.mark.parametrize("case, words", [
    ("empty", ["empty file"]),
    ("truncated", ["truncated or damaged", "copy or download it again"]),
    ("text", ["not a checkpoint"]),
    ("foreign", ["made by another program"]),
    ("malicious", ["weights_only=False", "not loaded"]),
])
def test_corrupt_model_files_are_described_in_our_words(tmp_path, case, words):
    """The message was torch's generic text cut off mid-word ("... In PyTorch 2.6, we changed the def")."""
    import torch

    model = tmp_path / "model.pt"
    _Evil.marker = tmp_path / "CODE_RAN"
    if case == "empty":
        model.write_bytes(b"")
    elif case == "truncated":
        raw = _tiny_checkpoint_bytes(tmp_path)
        model.write_bytes(raw[: len(raw) * 2 // 3])
    elif case == "text":
        model.write_text("weights are elsewhere\n")
    elif case == "foreign":
        torch.save({"weight": torch.zeros(3)}, model)
    else:
        model.write_bytes(pickle.dumps({"model": _Evil()}))
    tif = write_raster(tmp_path / "r.tif", scene((64, 64)))
    res = _invoke("predict", tif, "-o", tmp_path / "o.geojson", "--model", model)
    msg = _one_line_error(res, "model.pt", *words)
    assert "PyTorch 2.6" not in msg and "internal miniz error" not in msg  # torch's own text, cut off
    assert not _Evil.marker.exists()
    assert not (tmp_path / "o.geojson").exists()


def test_evaluate_refuses_a_raster_that_does_not_overlap_the_footprints(tmp_path):
    """evaluate exited 0 and printed pixel IoU 0.000 as if it were a score."""
    far = write_raster(tmp_path / "far.tif", scene((64, 64)))  # UTM 33N near (500000, 4000000)
    fp = tmp_path / "fp.geojson"
    gpd.GeoDataFrame(geometry=[box(600000, 4100000, 600010, 4100010)], crs="EPSG:32633").to_file(fp)
    res = _invoke("evaluate", fp, fp, "--raster", far)
    _one_line_error(res, "far.tif", "does not overlap")
    assert res.stdout == ""
    near = gpd.GeoDataFrame(geometry=[box(500001, 3999990, 500005, 3999995)], crs="EPSG:32633")
    near.to_file(tmp_path / "near.geojson")
    res = _invoke("evaluate", tmp_path / "near.geojson", tmp_path / "near.geojson", "--raster", far, "--json")
    assert res.exit_code == 0, res.output
    import json

    assert json.loads(res.stdout)["pooled"]["pixel"]["iou"] == 1.0


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def batch(tmp_path):
    """Two good rasters, a truncated one (its header opens, its blocks do not read) and a tiny checkpoint."""
    data = tmp_path / "data"
    data.mkdir()
    good1 = write_raster(data / "good1.tif", scene((96, 96)))
    good2 = write_raster(data / "good2.tif", scene((80, 112), seed=1))
    raw = good1.read_bytes()
    truncated = data / "truncated.tif"
    truncated.write_bytes(raw[: len(raw) // 2])
    return good1, truncated, good2, constant_checkpoint(tmp_path / "m.pt")


@pytest.mark.parametrize("failing", ["probs", "vector"])
def test_vector_file_and_probs_are_committed_together(batch, tmp_path, monkeypatch, failing):
    """The vector file was renamed into place before --probs: when the second rename failed the first stayed,
    and a re-run skipped the input."""
    good1, _, _, ckpt = batch
    out, probs = tmp_path / "out", tmp_path / "probs"
    for folder in (out, probs):
        folder.mkdir()
    (out / "good1.geojson").write_text("old vector")
    (probs / "good1_probs.tif").write_text("old probs")
    real = os.replace
    target = (probs / "good1_probs.tif") if failing == "probs" else (out / "good1.geojson")

    def replace(src, dst):
        if os.fspath(dst) == os.fspath(target) and ".tmp" in os.fspath(src):
            raise OSError(28, "No space left on device", os.fspath(dst))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    res = _invoke("predict", good1, "-o", out / "good1.geojson", "--probs", probs / "good1_probs.tif",
                  "--model", ckpt, "--overwrite")
    _one_line_error(res, "No space left on device")
    assert (out / "good1.geojson").read_text() == "old vector"  # neither replaced
    assert (probs / "good1_probs.tif").read_text() == "old probs"
    assert files_in(out) == {"good1.geojson"} and files_in(probs) == {"good1_probs.tif"}
    (out / "good1.geojson").unlink()
    (probs / "good1_probs.tif").unlink()
    res = _invoke("predict", good1, "-o", out, "--probs", probs, "--model", ckpt)
    _one_line_error(res, "No space left on device")
    assert files_in(out) == set() and files_in(probs) == set()  # so a re-run does not skip it


def test_output_folders_are_not_created_before_the_work_starts(batch, tmp_path):
    """The folders of -o and --probs were made while planning, then left behind by a failure."""
    good1, _, good2, _ = batch
    bad_model = tmp_path / "bad.pt"
    bad_model.write_bytes(b"")
    res = _invoke("predict", good1, good2, "-o", tmp_path / "new" / "out", "--probs", tmp_path / "newprobs",
                  "--model", bad_model)
    _one_line_error(res, "bad.pt")
    assert not (tmp_path / "new").exists() and not (tmp_path / "newprobs").exists()


def test_stale_temporary_files_of_killed_runs_are_swept(batch, tmp_path):
    """Temporary files left by a killed process (SIGKILL, out of memory) were never removed."""
    import subprocess
    import sys

    good1, _, good2, ckpt = batch
    out, probs = tmp_path / "out", tmp_path / "probs"
    out.mkdir()
    probs.mkdir()
    dead = _dead_pid()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = [out / f".good1.{dead}.spill.gpkg", out / f".good1.{dead}.spill.gpkg-journal",
                 out / f".good2.{dead}.tmp.geojson", probs / f".good1_probs.{dead}.tmp.tif"]
        kept = [out / f".good1.{live.pid}.spill.gpkg", out / ".unrelated.123.tmp", out / "notes.txt",
                out / f".other.{dead}.tmp.geojson"]  # another output's: not this run's to judge
        for p in stale + kept:
            p.write_text("x")
        (out / f".good2.{dead}.old.geojson").write_text("previous good2")  # moved aside, never put back
        (out / f".good1.{dead}.old.geojson").write_text("older good1")
        (out / "good1.geojson").write_text("newer good1")
        res = _invoke("predict", good1, good2, "-o", out, "--probs", probs, "--model", ckpt)
        assert res.exit_code == 0, res.output
    finally:
        live.kill()
        live.wait()
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept)
    assert (out / "good2.geojson").read_text() == "previous good2"  # put back, so skipped
    assert (out / "good1.geojson").read_text() == "newer good1"
    assert not (out / f".good1.{dead}.old.geojson").exists()
    assert res.stdout == ""  # both outputs existed: nothing written


def test_one_corrupt_raster_does_not_stop_a_batch(batch, tmp_path):
    """With good1, truncated, good2 the run wrote good1, failed on the truncated file and never did good2."""
    good1, truncated, good2, ckpt = batch
    text = truncated.with_name("text.tif")
    text.write_text("not a raster")  # refused when the inputs are checked, before any work
    out = tmp_path / "out"
    res = _invoke("predict", good1, truncated, text, good2, "-o", out, "--model", ckpt)
    assert res.exit_code == 1, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in res.output, lines
    assert any(l.startswith("Error: ") and "truncated.tif: cannot read raster" in l for l in lines), lines
    assert any(l.startswith("Error: ") and "text.tif: not a raster" in l for l in lines), lines
    assert sorted(res.stdout.split()) == [str(out / "good1.geojson"), str(out / "good2.geojson")]
    assert files_in(out) == {"good1.geojson", "good2.geojson"}
    res = _invoke("predict", good1, truncated, good2, "-o", out, "--model", ckpt)  # the re-run redoes only it
    assert res.exit_code == 1 and res.stdout == ""
    res = _invoke("predict", truncated, "-o", tmp_path / "one.geojson", "--model", ckpt)  # one input: its error
    _one_line_error(res, "truncated.tif: cannot read raster")


def _gdal_cache_max() -> int:
    """GDAL's block cache size in bytes, asked of the GDAL library rasterio loaded (GDALGetCacheMax64)."""
    import ctypes
    import ctypes.util
    import glob

    import rasterio

    libs = glob.glob(os.path.join(os.path.dirname(rasterio.__file__) + ".libs", "libgdal*"))  # pip wheels
    lib = ctypes.CDLL(libs[0] if libs else ctypes.util.find_library("gdal"))  # the one already loaded
    lib.GDALGetCacheMax64.restype = ctypes.c_int64
    return lib.GDALGetCacheMax64()


def test_gdal_cache_setting_is_in_megabytes_and_restored_afterwards():
    """``gdal_env(64)`` gives GDAL a 64 MiB block cache. rasterio passes an integer GDAL_CACHEMAX to
    GDALSetCacheMax64, in bytes: predict's "64 MB" was a 64-byte cache, so a resampled raster's source
    blocks were decoded again for every block of the warped view (r5000: 5.4 s of reading instead of 1.6)."""
    from geounet.io.raster import gdal_env

    before = _gdal_cache_max()
    with gdal_env(64):
        assert _gdal_cache_max() == 64 * 2**20
    with gdal_env(None):
        assert _gdal_cache_max() == before
    assert _gdal_cache_max() == before
