"""``geounet predict`` through the CLI: outputs, several inputs, and every bad input failing cleanly."""

import atexit
import gc
import json
import os
import subprocess
import sys

import numpy as np
import pyogrio
import pytest
import torch
from click.testing import CliRunner

from geounet.cli import cli, main

from helpers_predict import (
    Interrupting,
    constant_checkpoint,
    constant_unet,
    files_in,
    prep,
    save_unet,
    scene,
    write_raster,
)


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def setup(tmp_path):
    """A raster, a constant-model checkpoint (every valid pixel is building) and an output folder."""
    data = tmp_path / "data"
    data.mkdir()
    valid = np.ones((150, 200), bool)
    valid[:, 150:] = False
    tif = write_raster(data / "r.tif", scene((150, 200)), valid=valid)
    ckpt = constant_checkpoint(tmp_path / "m.pt", 3.0)
    out = tmp_path / "out"
    out.mkdir()
    return tif, ckpt, out


def invoke(runner, *args):
    return runner.invoke(cli, ["-q", "predict", *map(str, args)], catch_exceptions=False)


def test_predict_writes_geojson_and_prints_only_its_path(runner, setup):
    tif, ckpt, out = setup
    res = invoke(runner, tif, "-o", out / "b.geojson", "--model", ckpt, "--probs", out / "p.tif", "--tile-size", "64")
    assert res.exit_code == 0, res.output
    assert res.stdout.strip().splitlines() == [str(out / "b.geojson")]
    gj = json.loads((out / "b.geojson").read_text())
    assert gj["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::32633"
    assert len(gj["features"]) == 1
    props = gj["features"][0]["properties"]
    assert props["area_m2"] == pytest.approx(150 * 150 * 0.04, rel=0.01)  # the valid part only
    assert props["score"] == pytest.approx(1 / (1 + np.exp(-3)), abs=0.01)
    assert files_in(out) == {"b.geojson", "p.tif"}


def test_default_model_is_the_bundled_one(runner, setup, tmp_path):
    tif, _, out = setup
    res = invoke(runner, tif, "-o", out / "b.gpkg")
    assert res.exit_code == 0, res.output
    assert pyogrio.read_info(out / "b.gpkg")["crs"] == "EPSG:32633"


def test_several_inputs_go_to_a_folder_and_existing_outputs_are_skipped(runner, setup, tmp_path):
    tif, ckpt, out = setup
    second = write_raster(tif.parent / "s.tif", scene((100, 120)))
    folder = out / "many"
    res = invoke(runner, tif, second, "-o", folder, "--model", ckpt, "--format", "fgb", "--probs", out / "probs")
    assert res.exit_code == 0, res.output
    assert sorted(res.stdout.split()) == sorted([str(folder / "r.fgb"), str(folder / "s.fgb")])
    assert files_in(out / "probs") == {"r_probs.tif", "s_probs.tif"}
    before = (folder / "r.fgb").stat().st_mtime_ns
    (folder / "s.fgb").unlink()  # as if the batch had failed on the second input
    res = invoke(runner, tif, second, "-o", folder, "--model", ckpt, "--format", "fgb", "--probs", out / "probs")
    assert res.exit_code != 0  # s_probs.tif exists, so s is not redone silently
    (out / "probs" / "s_probs.tif").unlink()
    res = invoke(runner, tif, second, "-o", folder, "--model", ckpt, "--format", "fgb", "--probs", out / "probs")
    assert res.exit_code == 0, res.output
    assert res.stdout.split() == [str(folder / "s.fgb")]
    assert (folder / "r.fgb").stat().st_mtime_ns == before
    res = invoke(runner, tif, second, "-o", folder, "--model", ckpt, "--format", "fgb", "--overwrite")
    assert res.exit_code == 0 and len(res.stdout.split()) == 2


def test_overwrite_replaces_an_existing_output(runner, setup):
    tif, ckpt, out = setup
    (out / "b.geojson").write_text("old")
    res = invoke(runner, tif, "-o", out / "b.geojson", "--model", ckpt, "--overwrite")
    assert res.exit_code == 0
    assert json.loads((out / "b.geojson").read_text())["type"] == "FeatureCollection"


def _bad_cases(tmp_path, tif, ckpt):
    d = tmp_path / "bad"
    d.mkdir()
    text = d / "notes.tif"
    text.write_text("not a raster")
    nocrs = write_raster(d / "nocrs.tif", scene((64, 64)), crs=None)
    oneband = write_raster(d / "gray.tif", scene((64, 64))[:1])
    sixteen = write_raster(d / "u16.tif", scene((64, 64)).astype(np.uint16), dtype="uint16")
    corrupt = d / "corrupt.pt"
    corrupt.write_bytes(b"\x80\x04garbage" * 10)
    foreign = d / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    wrong_bands = save_unet(d / "fourband.pt", constant_unet(1.0, in_channels=4), prep(bands=(1, 2, 3, 4)))
    existing = d / "exists.geojson"
    existing.write_text("{}")
    return [
        # (args, text the one-line message must contain)
        ([d / "missing.tif", "-o", d / "o.geojson", "--model", ckpt], "missing.tif: file not found"),
        ([d, "-o", d / "o.geojson", "--model", ckpt], "is a directory"),
        ([text, "-o", d / "o.geojson", "--model", ckpt], "notes.tif: not a raster"),
        ([nocrs, "-o", d / "o.geojson", "--model", ckpt], "nocrs.tif: raster has no CRS"),
        ([oneband, "-o", d / "o.geojson", "--model", ckpt], "gray.tif: raster has 1 band(s)"),
        ([sixteen, "-o", d / "o.geojson", "--model", ckpt, "--input-range", "none"], "u16.tif: raster is uint16"),
        ([tif, "-o", d / "o.geojson", "--model", corrupt], "corrupt.pt: truncated or damaged checkpoint"),
        ([tif, "-o", d / "o.geojson", "--model", foreign], "foreign.pt: not a geounet checkpoint"),
        ([tif, "-o", d / "o.geojson", "--model", d / "nope.pt"], "nope.pt: checkpoint not found"),
        ([tif, "-o", d / "o.geojson", "--model", wrong_bands], "r.tif: raster has 3 band(s)"),
        ([tif, "-o", d / "no" / "such" / "o.geojson", "--model", ckpt], "folder does not exist"),
        ([tif, "-o", existing, "--model", ckpt], "exists.geojson: output exists"),
        ([tif, "-o", d / "o.shp", "--model", ckpt], "unsupported output format '.shp'"),
        ([tif, "-o", d / "o.geojson", "--model", ckpt, "--probs", existing], "--probs must name a GeoTIFF"),
        ([tif, "-o", d / "o.geojson", "--model", ckpt, "--tile-size", "70"], "--tile-size 70 must be a positive multiple of 4"),
        ([tif, "-o", d / "o.geojson", "--model", ckpt, "--tile-size", "64", "--overlap", "64"], "--overlap 64 must be a multiple of 4"),
        ([tif, "-o", d / "o.geojson", "--model", ckpt, "--tile-size", "64", "--overlap", "6"], "--overlap 6 must be a multiple of 4"),
        ([tif, tif, "-o", d / "o.geojson", "--model", ckpt], "with several inputs, -o/--output must be a folder"),
        ([tif, "-o", d / "o.geojson", "--model", ckpt, "--pixel-size", "fine"], "--pixel-size must be auto, native or"),
        ([tif, "-o", tif.with_suffix(".gpkg"), "--model", ckpt, "--probs", tif], "output would overwrite an input"),
        ([tif, "-o", d / "o.geojson", "--model", ckpt, "--device", "cuda"] if not torch.cuda.is_available()
         else [tif, "-o", d / "o.geojson", "--model", ckpt, "--tile-size", "2"], "cuda" if not torch.cuda.is_available() else "tile"),
    ]


def test_bad_inputs_fail_with_one_line_and_leave_no_output(runner, setup, tmp_path):
    tif, ckpt, _ = setup
    cases = _bad_cases(tmp_path, tif, ckpt)
    bad = tmp_path / "bad"
    before_bad, before_data = files_in(bad), files_in(tif.parent)
    for args, expected in cases:
        res = invoke(runner, *args)
        msg = res.stderr.strip()
        assert res.exit_code == 1, (args, res.output)
        assert msg.startswith("Error: ") and expected in msg, (expected, msg)
        assert len(msg.splitlines()) == 1 and "Traceback" not in res.output, msg
        assert res.stdout == ""
        assert files_in(bad) == before_bad and files_in(tif.parent) == before_data, expected


def test_ctrl_c_leaves_no_partial_output(runner, setup, monkeypatch):
    tif, ckpt, out = setup
    (out / "keep.geojson").write_text("previous result")
    import geounet.model.checkpoint as checkpoint

    real = checkpoint.load_model

    def interrupting(path=None, device="cpu"):
        net, info = real(path, device)
        return Interrupting(net, after=2), info

    monkeypatch.setattr(checkpoint, "load_model", interrupting)
    res = runner.invoke(cli, ["-q", "predict", str(tif), "-o", str(out / "b.gpkg"), "--model", str(ckpt),
                              "--probs", str(out / "p.tif"), "--tile-size", "32", "--overlap", "8"])
    assert res.exit_code == 130
    assert "Traceback" not in res.output
    assert files_in(out) == {"keep.geojson"}
    res = runner.invoke(cli, ["-q", "predict", str(tif), "-o", str(out / "keep.geojson"), "--model", str(ckpt),
                              "--tile-size", "32", "--overwrite"])
    assert res.exit_code == 130
    assert (out / "keep.geojson").read_text() == "previous result"  # replaced only by a complete file
    assert files_in(out) == {"keep.geojson"}


def test_help_lists_the_options(runner):
    res = runner.invoke(cli, ["predict", "--help"])
    assert res.exit_code == 0
    for opt in ("--model", "--probs", "--threshold", "--tile-size", "--overlap", "--batch-size", "--device",
                "--min-area", "--simplify", "--overwrite", "--wgs84"):
        assert opt in res.output


def test_the_command_skips_the_final_garbage_collection(monkeypatch):
    """The console script freezes the garbage collector at exit (0.5 s saved per command)."""
    registered = []
    monkeypatch.setattr(atexit, "register", registered.append)
    monkeypatch.setattr(sys, "argv", ["geounet", "--version"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0
    assert gc.freeze in registered


def test_outputs_are_complete_when_the_process_exits(setup):
    """With the final collection skipped, the written file is still whole and readable."""
    tif, ckpt, out = setup
    res = subprocess.run([sys.executable, "-m", "geounet", "-q", "predict", str(tif), "--model", str(ckpt),
                          "-o", str(out / "b.gpkg"), "--tile-size", "64"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(out / "b.gpkg")
    assert len(pyogrio.read_info(out / "b.gpkg")["fields"]) >= 2
    assert pyogrio.read_info(out / "b.gpkg")["features"] >= 1
    assert files_in(out) == {"b.gpkg"}


def test_read_errors_in_the_middle_become_clean_errors(runner, setup, tmp_path):
    tif, ckpt, out = setup
    # a raster whose data is cut short: the header opens, later blocks cannot be read
    broken = tmp_path / "data" / "broken.tif"
    raw = tif.read_bytes()
    broken.write_bytes(raw[: len(raw) // 2])
    res = invoke(runner, broken, "-o", out / "x.geojson", "--model", ckpt, "--tile-size", "64")
    assert res.exit_code == 1
    msg = res.stderr.strip()
    assert msg.startswith("Error: ") and "broken.tif" in msg and len(msg.splitlines()) == 1, msg
    assert "x.geojson" not in os.listdir(out) and not any(n.startswith(".") for n in os.listdir(out))
