"""DistributedDataParallel plumbing: which rank this process is, and the collective calls the loop needs.

Run under ``torchrun --nproc-per-node N -m geounet train ...`` training uses DDP (gloo on CPU;
on CUDA NCCL for the model's tensors and gloo for the few CPU numbers the loop sums: see
:func:`backend_for`): each rank sees its share of the windows through a DistributedSampler,
validation counts are summed over ranks, and only rank 0 writes files. Without torchrun every
helper here is a no-op for the one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..device import resolve_device


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one that logs and writes the run folder."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_distributed(device_name: str) -> Dist:
    """Join the process group torchrun describes in the environment (a single process without it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    d = Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    device = resolve_device(device_name)
    if device.type == "cuda":
        torch.cuda.set_device(d.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend_for(device))
    return d


def backend_for(device: torch.device) -> str:
    """The process-group backend for training on ``device``.

    On CUDA the gradients, SyncBatchNorm and the model's broadcasts go through NCCL, but the
    loop also sums small CPU tensors (loss sums, validation counts, the time-budget flag), which
    NCCL cannot reduce: one group with a backend per device type serves both.
    """
    return "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"


def close_distributed(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()


def all_sum(t: torch.Tensor, d: Dist) -> torch.Tensor:
    """``t`` summed over all ranks (in place)."""
    if d.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def any_rank(flag: bool, d: Dist) -> bool:
    """True when ``flag`` is true on any rank (so all ranks stop together)."""
    return bool(all_sum(torch.tensor([float(flag)]), d).item() > 0)


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def wrap(model: torch.nn.Module, device: torch.device, d: Dist) -> torch.nn.Module:
    """The module to train: ``model`` itself, or wrapped in DistributedDataParallel."""
    if not d.enabled:
        return model
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def unwrap(net: torch.nn.Module) -> torch.nn.Module:
    return net.module if isinstance(net, torch.nn.parallel.DistributedDataParallel) else net
