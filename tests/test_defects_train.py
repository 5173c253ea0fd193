"""Defects of issue 10 met through train (each test failed before its fix): DDP on GPUs, training
without validation, a corrupt block met mid-training, process-wide settings."""

import os
import shutil
import subprocess
import sys

import pytest
import rasterio
import torch
import torch.distributed as dist
from torch.distributed.distributed_c10d import BackendConfig

from geounet.model.checkpoint import read_checkpoint
from geounet.train import ddp

from test_train import rows, run, train_args


def test_ddp_on_cuda_has_a_backend_for_the_loops_cpu_tensors(monkeypatch):
    """Defect 6: on GPUs the process group was NCCL alone, which cannot reduce the CPU tensors the
    loop sums (loss sums, validation counts, the time-budget flag)."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    devices = []
    monkeypatch.setattr(torch.cuda, "set_device", devices.append)
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    backends = []
    monkeypatch.setattr(dist, "init_process_group", lambda backend=None, **kw: backends.append(backend))
    for name in ("cuda", "auto"):
        d = ddp.init_distributed(name)
        assert d.enabled and d.rank == 1
    assert devices == [1, 1]
    for backend in backends:
        served = BackendConfig(backend).get_device_backend_map()
        assert served.get("cuda") == "nccl" and served.get("cpu") == "gloo"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    ddp.init_distributed("cpu")
    assert BackendConfig(backends[-1]).get_device_backend_map().get("cpu") == "gloo"


def test_without_validation_best_pt_is_the_last_model(scene, tmp_path):
    """Defect 7: with --val-fraction 0 the validation IoU was 0 every epoch, so best.pt kept the
    epoch-1 model forever."""
    tif, labels = scene
    out = tmp_path / "run"
    res = run(train_args(tif, labels, out, "--epochs", "2", "--val-fraction", "0"))
    assert res.exit_code == 0, res.output
    best, last = read_checkpoint(out / "best.pt"), read_checkpoint(out / "last.pt")
    assert best["epoch"] == last["epoch"] == 2
    assert all(torch.equal(best["state_dict"][k], last["state_dict"][k]) for k in best["state_dict"])
    assert "val_iou" not in best["metrics"]  # no score is claimed that was never measured
    assert "no validation set: best.pt is the model of the last epoch (2)" in res.stderr
    assert "best validation IoU" not in res.stderr
    assert all(r["val_iou"] == "nan" for r in rows(out))


def _deflate_copy(src_path, dst_path):
    """``src_path`` rewritten with DEFLATE-compressed 64 px tiles (a damaged tile then fails to decode)."""
    with rasterio.open(src_path) as src:
        profile = {**src.profile, "compress": "deflate", "tiled": True, "blockxsize": 64, "blockysize": 64}
        with rasterio.open(dst_path, "w", **profile) as dst:
            dst.write(src.read())
    return dst_path


def _damage_lower_half(path):
    """Overwrite the compressed bytes of every tile in the lower half: the file still opens, and its
    upper half reads."""
    with rasterio.open(path) as src:
        rows, cols = src.height // 64, src.width // 64
        spans = [(int(src.get_tag_item(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=b)),
                  int(src.get_tag_item(f"BLOCK_SIZE_{x}_{y}", "TIFF", bidx=b)))
                 for b in src.indexes for y in range(rows // 2, rows) for x in range(cols)]
    with open(path, "r+b") as fh:
        for offset, size in spans:
            fh.seek(offset)
            fh.write(b"\xff" * size)


@pytest.mark.parametrize("workers", ["0", "1"])
def test_a_corrupt_block_met_mid_training_is_one_line_and_the_run_resumes(scene, tmp_path, monkeypatch, workers):
    """Defect 10: a block that fails to decode mid-training reached the user as a traceback (from a
    DataLoader worker, as text inside another traceback) and the run was lost. The raster is damaged
    after the normalisation statistics were read, as a block the statistics' sample missed would be."""
    import geounet.train.loop as loop

    tif, labels = scene
    good = _deflate_copy(tif, tmp_path / "good.tif")
    image = tmp_path / "image.tif"
    shutil.copy(good, image)
    real_stats = loop.compute_stats

    def stats_then_damage(*a, **kw):
        result = real_stats(*a, **kw)
        _damage_lower_half(image)
        return result

    monkeypatch.setattr(loop, "compute_stats", stats_then_damage)
    out = tmp_path / "run"
    args = train_args(image, labels, out, "--epochs", "2")
    args[args.index("--workers") + 1] = workers
    res = run(args)
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output  # the CLI's one line
    errors = [line for line in res.stderr.splitlines() if "cannot read" in line]
    assert len(errors) == 1 and errors[0].startswith(f"Error: {image}: cannot read the window at column "), res.stderr
    assert "last.pt" in errors[0] and "--resume" in errors[0]
    assert read_checkpoint(out / "last.pt")["train_state"]["epoch"] == 0
    shutil.copy(good, image)  # the file mended, the run goes on from its last.pt
    res = run(["train", "--out", out, "--resume", "--workers", workers])
    assert res.exit_code == 0, res.output
    assert [int(r["epoch"]) for r in rows(out)] == [1, 2]


def test_a_corrupt_block_met_by_the_statistics_is_one_line(scene, tmp_path):
    """The normalisation statistics read windows before training: a corrupt block there is one line too."""
    tif, labels = scene
    image = _deflate_copy(tif, tmp_path / "image.tif")
    _damage_lower_half(image)
    out = tmp_path / "run"
    res = run(train_args(image, labels, out, "--epochs", "1"))
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
    errors = [line for line in res.stderr.splitlines() if "cannot read" in line]
    assert len(errors) == 1 and errors[0].startswith(f"Error: {image}: cannot read the window at column "), res.stderr
    assert not out.exists()


def test_train_leaves_the_callers_settings_alone(scene, tmp_path):
    """Defect 14: train seeded the caller's global random generator (torch.manual_seed), and importing
    it set an environment variable for the whole process."""
    from geounet.train import TrainConfig, train

    from test_defects_predict import process_state

    tif, labels = scene
    # torch's first optimizer imports torch._dynamo, which sets TORCHINDUCTOR_CACHE_DIR and a warnings
    # filter: torch's doing in any program that trains, done here before the caller's state is taken
    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])
    torch.manual_seed(1234)
    before = process_state()
    train(TrainConfig(rasters=[str(tif)], labels=[str(labels)], out_dir=str(tmp_path / "run"), width=4, depth=2,
                      tile_size=64, batch_size=4, workers=0, epochs=1, device="auto"))
    after = process_state()
    assert {k: v for k, v in after.items() if before[k] != v} == {}
    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    code = "import os, geounet.train.dataset; print('NO_ALBUMENTATIONS_UPDATE' in os.environ)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr
