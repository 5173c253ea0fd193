"""geounet train --init / --freeze-encoder: fine-tuning starts from a checkpoint and keeps what defines it."""

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner

import geounet
from geounet.cli import cli
from geounet.model.checkpoint import read_checkpoint

from conftest import make_scene

SMALL = ["--tile-size", "64", "--batch-size", "4", "--workers", "0", "--epoch-windows", "1"]


def run(args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A small model trained from scratch (width 4, depth 2, separation outputs) and its scene."""
    tmp = tmp_path_factory.mktemp("base")
    tif, labels = make_scene(tmp, "scene", size=256, seed=1)
    out = tmp / "base"
    res = run(["train", "--raster", tif, "--labels", labels, "--out", out, "--width", "4", "--depth", "2",
               *SMALL, "--epochs", "1"])
    assert res.exit_code == 0, res.output
    return tif, labels, out / "best.pt"


def finetune(base, out, *extra):
    tif, labels, ckpt = base
    return run(["train", "--raster", tif, "--labels", labels, "--out", out, "--init", ckpt, *SMALL, *extra])


def test_init_round_trip_keeps_model_and_preprocessing_and_records_the_start(base, tmp_path):
    res = finetune(base, tmp_path / "ft", "--epochs", "1")
    assert res.exit_code == 0, res.output
    start = geounet.load_model(base[2])[1]
    model, info = geounet.load_model(tmp_path / "ft" / "best.pt")
    assert info.model == start.model  # width 4, depth 2 came from the checkpoint, not the defaults
    p, q = info.preprocessing, start.preprocessing
    assert (p.bands, p.scale, p.mean, p.std, p.pixel_size_m, p.dtype) == (q.bands, q.scale, q.mean, q.std, q.pixel_size_m, q.dtype)
    assert info.init["from"] == str(base[2]) and info.init["epoch"] == start.epoch
    last = read_checkpoint(tmp_path / "ft" / "last.pt")
    assert last["init"]["from"] == str(base[2])
    assert last["train_state"]["config"]["lr"] == pytest.approx(5e-4)  # the fine-tuning peak
    # the weights moved from the start
    a = read_checkpoint(base[2])["state_dict"]
    b = last["state_dict"]
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())


@pytest.mark.parametrize("extra, words", [
    (["--width", "8"], ["--width 8", "width 4"]),
    (["--depth", "3"], ["--depth 3", "depth 2"]),
    (["--bands", "1,2"], ["--bands 1,2", "1,2,3"]),
    (["--no-separation"], ["building, border, contact", "--separation"]),
])
def test_init_mismatch_refused_in_one_line(base, tmp_path, extra, words):
    res = finetune(base, tmp_path / "ft", "--epochs", "1", *extra)
    assert res.exit_code == 1, res.output
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and all(w in err for w in words), err
    assert "Traceback" not in res.output and not (tmp_path / "ft").exists()


def test_init_of_a_missing_or_foreign_file_refused(base, tmp_path):
    tif, labels, _ = base
    bad = tmp_path / "notamodel.pt"
    bad.write_bytes(b"hello")
    for ckpt in (tmp_path / "missing.pt", bad):
        res = finetune((tif, labels, ckpt), tmp_path / "ft", "--epochs", "1")
        assert res.exit_code == 1 and str(ckpt.name) in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_freeze_encoder_keeps_encoder_weights_and_statistics(base, tmp_path):
    res = finetune(base, tmp_path / "ft", "--epochs", "2", "--freeze-encoder", "--lr", "5e-3")
    assert res.exit_code == 0, res.output
    a = read_checkpoint(base[2])["state_dict"]
    b = read_checkpoint(tmp_path / "ft" / "last.pt")["state_dict"]
    encoder = [k for k in a if k.startswith(("downs.", "bottleneck."))]
    decoder = [k for k in a if k.startswith(("ups.", "head.")) and a[k].is_floating_point()]
    assert encoder and decoder
    for k in encoder:  # weights, BatchNorm running means and variances alike
        assert torch.equal(a[k], b[k]), k
    assert any(not torch.equal(a[k], b[k]) for k in decoder)


def test_freeze_without_init_and_init_with_resume_refused(base, tmp_path):
    tif, labels, ckpt = base
    res = run(["train", "--raster", tif, "--labels", labels, "--out", tmp_path / "x", *SMALL, "--freeze-encoder"])
    assert res.exit_code == 1 and "--freeze-encoder needs --init" in res.stderr
    res = run(["train", "--out", Path(ckpt).parent, "--resume", "--init", ckpt])
    assert res.exit_code == 1 and "leave out --init" in res.stderr


def test_init_from_the_bundled_default_model(base, tmp_path):
    """`--init default` takes the shipped model: width 16, its pixel size, its normalisation."""
    tif, labels, _ = base
    res = run(["train", "--raster", tif, "--labels", labels, "--out", tmp_path / "ftd", "--init", "default",
               "--tile-size", "64", "--batch-size", "4", "--workers", "0", "--epochs", "1"])
    assert res.exit_code == 0, res.output
    info = geounet.load_model(tmp_path / "ftd" / "best.pt")[1]
    default = geounet.load_model()[1]
    assert info.model == default.model and info.preprocessing.mean == default.preprocessing.mean
    assert info.preprocessing.pixel_size_m == pytest.approx(default.preprocessing.pixel_size_m)
    assert info.init["from"] == "default"


def test_small_training_sets_fill_an_epoch_with_repeated_windows(tmp_path):
    """--epoch-windows: 16 windows drawn 4 times each in an epoch of 64 (each pass a permutation)."""
    from collections import Counter

    from geounet.train.config import TrainConfig
    from geounet.train.dataset import make_loader
    from geounet.train.ddp import Dist

    class Windows(torch.utils.data.Dataset):
        def __len__(self):
            return 16

        def __getitem__(self, i):
            return torch.tensor(i)

    cfg = TrainConfig(out_dir=str(tmp_path), batch_size=4, workers=0, epoch_windows=64)
    seen = [int(i) for b in make_loader(Windows(), cfg, Dist(), True, torch.device("cpu"), 0) for i in b]
    assert len(seen) == 64 and set(Counter(seen).values()) == {4}
    assert all(sorted(seen[k:k + 16]) == list(range(16)) for k in range(0, 64, 16))
    cfg.epoch_windows = 8  # fewer than the windows: each window once
    seen = [int(i) for b in make_loader(Windows(), cfg, Dist(), True, torch.device("cpu"), 0) for i in b]
    assert sorted(seen) == list(range(16))


def test_init_an_8_bit_model_on_16_bit_imagery_stretches_it(base, tmp_path):
    """Fine-tuning data of another data type is stretched as predict --input-range auto stretches it."""
    tif, labels, ckpt = base
    with rasterio.open(tif) as src:
        profile, img = src.profile, src.read()
    tif16 = tmp_path / "scene16.tif"
    with rasterio.open(tif16, "w", **(profile | {"dtype": "uint16"})) as dst:
        dst.write(img.astype(np.uint16) * 16 + 100)
    res = run(["train", "--raster", tif16, "--labels", labels, "--out", tmp_path / "ft", "--init", ckpt, *SMALL,
               "--epochs", "1"])
    assert res.exit_code == 0, res.output
    assert "training images are uint16, the model's uint8: each stretched per band" in res.stderr
    start, tuned = geounet.load_model(ckpt)[1], geounet.load_model(tmp_path / "ft" / "last.pt")[1]
    assert tuned.preprocessing.dtype == "uint8" and tuned.preprocessing.scale == start.preprocessing.scale == 255
