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
