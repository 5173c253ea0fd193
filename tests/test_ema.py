"""``geounet train --ema DECAY``: an exponential moving average of the weights, validated and saved beside
the trained weights."""

from __future__ import annotations

import csv

import pytest
import torch
from click.testing import CliRunner

import geounet
from geounet.cli import cli
from geounet.config import ModelConfig
from geounet.model import build_model
from geounet.model.checkpoint import read_checkpoint
from geounet.train.ema import weight_average

SMALL = ["--width", "4", "--depth", "2", "--tile-size", "64", "--batch-size", "4", "--workers", "0", "--epoch-windows", "1"]


def _invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_the_average_follows_its_formula_for_weights_and_batchnorm_statistics():
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=4, depth=2))
    avg = weight_average(model, 0.9)
    avg.update_parameters(model)  # the first update copies
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
        for name, b in model.named_buffers():
            if b.is_floating_point():
                b.add_(2.0)
    avg.update_parameters(model)
    after, got = model.state_dict(), avg.module.state_dict()
    checked = 0
    for k, v in after.items():
        if v.is_floating_point():
            assert torch.allclose(got[k], 0.9 * before[k] + 0.1 * v, atol=1e-6), k
            checked += 1
    assert checked > 20 and not avg.module.training


def test_a_run_with_ema_saves_the_average_as_best_and_the_trained_weights_beside_it(scene, tmp_path):
    tif, labels = scene
    out = tmp_path / "run"
    res = _invoke("train", "--raster", tif, "--labels", labels, "--out", out, *SMALL, "--epochs", "2", "--ema", "0.5")
    assert res.exit_code == 0, res.output
    assert {p.name for p in out.iterdir()} == {"best.pt", "best_raw.pt", "last.pt", "metrics.csv", "curves.png"}
    with open(out / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and all(0 <= float(r["raw_val_iou"]) <= 1 for r in rows)
    best, raw, last = (read_checkpoint(out / n) for n in ("best.pt", "best_raw.pt", "last.pt"))
    assert best["metrics"]["val_iou"] == max(float(r["val_iou"]) for r in rows)
    assert raw["metrics"]["val_iou"] == max(float(r["raw_val_iou"]) for r in rows)
    key = "head.weight"
    ema_state = last["train_state"]["ema"]
    assert torch.equal(ema_state[f"module.{key}"], best["state_dict"][key]) or best["epoch"] < last["epoch"]
    assert not torch.equal(ema_state[f"module.{key}"], last["state_dict"][key])  # an average, not the weights
    model, _ = geounet.load_model(out / "best.pt")  # an ordinary checkpoint for predict
    assert not model.training


def test_resume_continues_the_average(scene, tmp_path):
    tif, labels = scene
    out = tmp_path / "run"
    assert _invoke("train", "--raster", tif, "--labels", labels, "--out", out, *SMALL, "--epochs", "1",
                   "--ema", "0.9").exit_code == 0
    n1 = int(read_checkpoint(out / "last.pt")["train_state"]["ema"]["n_averaged"])
    res = _invoke("train", "--out", out, "--resume", "--epochs", "2")
    assert res.exit_code == 0, res.output
    ts = read_checkpoint(out / "last.pt")["train_state"]
    assert int(ts["ema"]["n_averaged"]) == 2 * n1 == 2 * ts["step"] // 2


@pytest.mark.parametrize("value", ["1", "-0.1", "1.5"])
def test_a_decay_outside_0_to_1_is_refused_in_one_line(scene, tmp_path, value):
    tif, labels = scene
    res = _invoke("train", "--raster", tif, "--labels", labels, "--out", tmp_path / "run", *SMALL, "--ema", value)
    assert res.exit_code != 0 and "--ema" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "run").exists()


def test_overwrite_without_ema_leaves_no_best_raw_of_the_old_run(scene, tmp_path):
    tif, labels = scene
    out = tmp_path / "run"
    assert _invoke("train", "--raster", tif, "--labels", labels, "--out", out, *SMALL, "--epochs", "1",
                   "--ema", "0.9").exit_code == 0
    assert (out / "best_raw.pt").exists()
    res = _invoke("train", "--raster", tif, "--labels", labels, "--out", out, *SMALL, "--epochs", "1", "--overwrite")
    assert res.exit_code == 0, res.output
    assert {p.name for p in out.iterdir()} == {"best.pt", "last.pt", "metrics.csv", "curves.png"}
