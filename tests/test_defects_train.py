"""Defects of issue 10 met through train (each test failed before its fix): DDP on GPUs, training
without validation, a corrupt block met mid-training, process-wide settings."""

import torch
import torch.distributed as dist
from torch.distributed.distributed_c10d import BackendConfig

from geounet.train import ddp


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
