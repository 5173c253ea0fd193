"""Predicting across processes and machines: ``torchrun --nnodes M --nproc-per-node N -m geounet predict ...``.

Each process (a *rank*) takes its share of the inputs (:meth:`Shard.take`) and predicts it on its own
device, with no process group: ranks never wait on each other while they work, so a failed input, or a
failed rank, costs only its own files, and a re-run of the same command (with any number of ranks) does
exactly the outputs that are missing (every rank skips existing outputs, as a single process does).

- **The split** is round-robin over the planned jobs in the order of the command line: rank ``r`` of
  ``W`` takes jobs ``r, r + W, r + 2W, ...`` (:func:`shard_indices`). It depends on the command line
  alone, so every rank on every machine computes the same disjoint, covering split without opening a
  raster (hundreds of remote rasters are not read once per rank) and without asking the others; whether
  an output exists (which changes while the ranks work) does not enter it, so the ranks never disagree.
  Balancing by pixel count would need every raster's size on every rank, and one rank failing to open
  one would give it another split; interleaving spreads the large and small rasters of a folder listed
  by name about evenly.
- **Devices**: ``--device auto|cuda`` becomes ``cuda:(LOCAL_RANK mod GPUs)``: one process per GPU, or several
  sharing each GPU (one process's CPU side cannot keep a fast GPU busy);
  on CPU each rank uses its share of the machine's cores (``cores // LOCAL_WORLD_SIZE`` torch threads,
  only while it predicts: :func:`geounet.device.torch_threads`; torchrun sets ``OMP_NUM_THREADS=1``).
- **Exit**: torchrun stops every rank of a machine as soon as one exits non-zero. So that a corrupt
  raster in one rank's share does not kill the others' work, a rank with failures says it is done in
  torchrun's key-value store and waits, before it exits 1, until every rank has said so
  (:meth:`Shard.finish`); a rank without failures exits 0 at once.

Without torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``) there is
one rank and everything is as for a single process.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from ..errors import ConfigError
from ..io.files import pid_alive
from ..log import logger

__all__ = ["Shard", "shard_indices"]

T = TypeVar("T")

_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")
_EXIT_GRACE_S = 30.0  # how long a failed rank waits for its finished neighbours' processes to be gone


def shard_indices(n: int, rank: int, world: int) -> list[int]:
    """The indexes of ``n`` planned jobs that rank ``rank`` of ``world`` does: ``rank, rank + world, ...``.

    Over the ranks ``0 .. world - 1`` they are disjoint and cover ``range(n)``; ``world == 1`` gives all.
    """
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank {rank} of world {world}")
    return list(range(rank, n, world))


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} in the environment is not a number (torchrun sets it)") from None


@dataclass(frozen=True)
class Shard:
    """Which process this is among those torchrun started (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0  # on this machine
    local_world: int = 1  # processes on this machine

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Shard":
        """The rank torchrun's environment describes; one rank without it (``WORLD_SIZE`` unset or 1)."""
        env = os.environ if env is None else env
        world = _env_int(env, "WORLD_SIZE", 1)
        if world <= 1:
            return cls()
        rank = _env_int(env, "RANK", 0)
        local_world = _env_int(env, "LOCAL_WORLD_SIZE", 1)
        local_rank = _env_int(env, "LOCAL_RANK", 0)
        if not (0 <= rank < world and 0 <= local_rank < local_world <= world):
            raise ConfigError("the environment's " + ", ".join(f"{k}={env.get(k)}" for k in _ENV)
                              + " do not describe one process among several (torchrun sets them)")
        return cls(rank, world, local_rank, local_world)

    @property
    def enabled(self) -> bool:
        """Several ranks share the inputs."""
        return self.world > 1

    @property
    def label(self) -> str:
        """``rank 1/4``: the prefix of this rank's log lines."""
        return f"rank {self.rank}/{self.world}"

    def take(self, items: Sequence[T]) -> list[T]:
        """This rank's share of ``items`` (:func:`shard_indices`)."""
        return [items[i] for i in shard_indices(len(items), self.rank, self.world)]

    def device_name(self, name: str, cuda_count: int) -> str:
        """``--device`` for this rank: ``auto`` or ``cuda`` is ``cuda:(LOCAL_RANK mod cuda_count)`` when there
        are GPUs (``cuda_count``), so the processes of a machine share its GPUs evenly; an explicit ``cuda:N``
        or ``cpu`` is kept."""
        name = (name or "auto").strip().lower()
        if not self.enabled or name not in ("auto", "cuda") or cuda_count == 0:  # no GPU: resolve_device says so
            return name
        # more processes than GPUs share them round-robin: one process's reading, stitching and vectorising
        # keep a fast GPU busy only a few percent of the time (docs/benchmarks.md, "Measured on an H200"),
        # so several processes per GPU are how a many-core GPU machine predicts many rasters at its speed
        return f"cuda:{self.local_rank % cuda_count}"

    def cpu_threads(self, cpus: int | None = None) -> int | None:
        """torch threads for this rank on CPU: its share of the machine's cores (None: one rank, unchanged)."""
        if self.local_world <= 1:
            return None
        if cpus is None:
            cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return max(1, cpus // self.local_world)

    def finish(self, failed: bool, env: Mapping[str, str] | None = None) -> None:
        """Say this rank is done; when it ``failed``, return only once every rank is done.

        torchrun stops all its processes as soon as one exits non-zero, so a rank about to exit 1 waits
        for the others first (through torchrun's key-value store; no process group). Without torchrun's
        store (one rank, or another launcher) this returns at once.
        """
        store, prefix = _agent_store(self, os.environ if env is None else env)
        if store is None:
            return
        me = f"{socket.gethostname()}:{os.getpid()}"
        try:
            store.set(f"{prefix}/{self.rank}", me)
            if not failed:
                return
            logger.info("[%s] waiting for the other ranks to finish before exiting with the failure "
                        "(torchrun stops every rank when one exits non-zero)", self.label)
            keys = [f"{prefix}/{r}" for r in range(self.world)]
            store.wait(keys, timedelta(days=30))
            others = [store.get(k).decode() for k in keys]
        except Exception as exc:  # noqa: BLE001 - the store is gone (its machine finished): nothing left to wait for
            logger.debug("[%s] torchrun's store: %s", self.label, exc)
            return
        _wait_gone([o for o in others if o != me], socket.gethostname())


def _agent_store(shard: Shard, env: Mapping[str, str]):
    """A client of torchrun's key-value store and this run's key prefix, or ``(None, "")``."""
    if not shard.enabled or env.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() != "true":
        return None, ""
    try:
        import torch.distributed as dist

        store = dist.TCPStore(env["MASTER_ADDR"], int(env["MASTER_PORT"]), is_master=False,
                              timeout=timedelta(seconds=60))
    except Exception as exc:  # noqa: BLE001 - no store to reach: each rank exits on its own
        logger.debug("[%s] cannot reach torchrun's store: %s", shard.label, exc)
        return None, ""
    run = f"{env.get('TORCHELASTIC_RUN_ID', 'none')}/{env.get('TORCHELASTIC_RESTART_COUNT', '0')}"
    return store, f"geounet/predict/{run}/done"


def _wait_gone(ranks: list[str], host: str) -> None:
    """Wait (a little) until the processes ``host:pid`` of this machine among ``ranks`` have exited, so that
    torchrun does not stop them in the middle of exiting."""
    pids = [int(p) for h, _, p in (r.rpartition(":") for r in ranks) if h == host and p.isdigit()]
    deadline = time.monotonic() + _EXIT_GRACE_S
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if pid_alive(p) and not _zombie(p)]
        if pids:
            time.sleep(0.05)


def _zombie(pid: int) -> bool:
    """Exited, not yet collected by its parent (torchrun collects its processes every 0.1 s)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False
