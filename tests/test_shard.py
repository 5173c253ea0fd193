"""predict across processes and machines (issue 13, part 5): ``torchrun ... -m geounet predict INPUTS -o DIR/``.

Pure tests of the split; the ranks simulated one after the other in this process (torchrun's environment
given to the CLI); and two real processes under ``python -m torch.distributed.run`` with a corrupt raster
in one rank's share.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from geounet.cli import cli
from geounet.config import CheckpointInfo
from geounet.device import torch_threads
from geounet.errors import ConfigError
from geounet.io.files import host_tag, sweep_stale, temp_path
from geounet.predict import PredictConfig, predict
from geounet.predict.shard import Shard, shard_indices

from helpers_predict import constant_checkpoint, constant_unet, files_in, prep, scene, write_raster

ROOT = Path(__file__).resolve().parents[1]


def _env(rank: int, world: int, local_rank: int | None = None, local_world: int | None = None) -> dict[str, str]:
    local_rank = rank if local_rank is None else local_rank
    local_world = world if local_world is None else local_world
    return {"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(local_rank),
            "LOCAL_WORLD_SIZE": str(local_world)}


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---------------------------------------------------------------- the split, pure


@pytest.mark.parametrize("n", [0, 1, 2, 5, 7, 100])
@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_shares_are_disjoint_cover_every_job_and_are_deterministic(n, world):
    shares = [shard_indices(n, r, world) for r in range(world)]
    flat = [i for s in shares for i in s]
    assert sorted(flat) == list(range(n)) and len(flat) == len(set(flat))
    assert shares == [shard_indices(n, r, world) for r in range(world)]
    assert max(map(len, shares)) - min(map(len, shares)) <= 1  # as even as counts allow
    for s in shares:
        assert s == sorted(s)  # each rank keeps the command line's order


def test_one_rank_takes_everything_in_order():
    items = ["c.tif", "a.tif", "b.tif"]
    assert Shard().take(items) == items and not Shard().enabled
    assert shard_indices(3, 0, 1) == [0, 1, 2]
    assert Shard(1, 3, 1, 3).take(["a", "b", "c", "d", "e"]) == ["b", "e"]
    with pytest.raises(ValueError):
        shard_indices(3, 2, 2)


def test_rank_from_torchrun_environment():
    assert Shard.from_env({}) == Shard()
    assert Shard.from_env({"WORLD_SIZE": "1", "RANK": "0"}) == Shard()
    assert Shard.from_env(_env(5, 8, 1, 4)) == Shard(5, 8, 1, 4)
    assert Shard.from_env(_env(5, 8, 1, 4)).label == "rank 5/8"
    for bad in (_env(2, 2), {**_env(0, 2), "RANK": "x"}, _env(0, 2, 3, 2)):
        with pytest.raises(ConfigError):
            Shard.from_env(bad)


def test_each_rank_gets_a_gpu_round_robin_or_its_share_of_the_cores():
    one, r1 = Shard(), Shard(3, 4, 1, 2)
    assert one.device_name("auto", 4) == "auto" and one.cpu_threads(16) is None
    assert r1.device_name("auto", 2) == "cuda:1" and r1.device_name("cuda", 2) == "cuda:1"
    assert r1.device_name("auto", 0) == "auto" and r1.device_name("cpu", 2) == "cpu"
    assert r1.device_name("cuda:0", 2) == "cuda:0"  # asked for by name: kept
    assert r1.device_name("cuda", 1) == "cuda:0"  # two processes on this machine share its one GPU
    assert [Shard(r, 8, r, 8).device_name("auto", 3) for r in range(8)] == [f"cuda:{i % 3}" for i in range(8)]
    assert r1.device_name("cuda", 0) == "cuda"  # no GPU: left for resolve_device to refuse in one line
    assert r1.cpu_threads(16) == 8 and Shard(0, 3, 2, 3).cpu_threads(2) == 1
    assert Shard(0, 2, 0, 1).cpu_threads(16) is None  # one process on this machine: torch's own choice


def test_torch_threads_are_restored_after_the_block():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before


# ---------------------------------------------------------------- temporary files of several machines


def test_temporary_names_carry_the_machine_and_only_this_machines_dead_processes_are_swept(tmp_path):
    """pids are per machine: a rank on machine A took machine B's live temporary file for a dead process's."""
    out = tmp_path / "a.geojson"
    tmp = temp_path(out)
    assert tmp.name == f".a.{os.getpid()}-{host_tag()}.tmp.geojson"
    assert re.fullmatch(r"[A-Za-z0-9-]{1,40}", host_tag())
    dead = _dead_pid()
    mine_dead = tmp_path / f".a.{dead}-{host_tag()}.spill.gpkg"
    legacy_dead = tmp_path / f".a.{dead}.tmp.geojson"  # written before names carried the machine
    other_host = tmp_path / f".a.{dead}-not-{host_tag()}.tmp.geojson"  # a live process elsewhere
    mine_live = tmp_path / f".a.{os.getpid()}-{host_tag()}.tmp.geojson"
    for p in (mine_dead, legacy_dead, other_host, mine_live):
        p.write_text("x")
    assert sorted(sweep_stale([out])) == sorted([mine_dead, legacy_dead])
    assert other_host.exists() and mine_live.exists()


# ---------------------------------------------------------------- ranks simulated in this process


@pytest.fixture
def six(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    tifs = [write_raster(data / f"r{i}.tif", scene((64 + 16 * i, 80), seed=i)) for i in range(6)]
    return tifs, constant_checkpoint(tmp_path / "m.pt")


def _run_rank(env: dict[str, str], *args):
    return CliRunner(env=env).invoke(cli, [*map(str, args)])


def _done_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "buildings ->" in line]


def test_ranks_one_after_the_other_write_every_output_once(six, tmp_path):
    tifs, ckpt = six
    out = tmp_path / "out"
    written = []
    for rank in range(3):
        res = _run_rank(_env(rank, 3), "predict", *tifs, "-o", out, "--model", ckpt, "--device", "cpu")
        assert res.exit_code == 0, res.output
        mine = [out / f"r{i}.geojson" for i in range(rank, 6, 3)]
        assert res.stdout.split() == [str(p) for p in mine]
        assert f"[rank {rank}/3] 2 of the 6 inputs (round-robin: input {rank + 1} and every 3 after it)" in res.stderr
        done = _done_lines(res.stderr)
        assert len(done) == 2 and all(line.startswith(f"[rank {rank}/3] ") for line in done), res.stderr
        written += res.stdout.split()
    assert sorted(written) == sorted(str(out / f"r{i}.geojson") for i in range(6))
    assert files_in(out) == {f"r{i}.geojson" for i in range(6)}
    for i in range(6):
        df = gpd.read_file(out / f"r{i}.geojson")
        assert len(df) == 1 and df.crs.to_epsg() == 32633  # the constant model: one building, the raster
    res = _run_rank(_env(1, 3), "predict", *tifs, "-o", out, "--model", ckpt)  # a re-run: nothing missing
    assert res.exit_code == 0 and res.stdout == "" and res.stderr.count("skipping") == 2


def test_a_rank_sweeps_only_its_own_inputs_temporary_files(six, tmp_path):
    """With several ranks, a rank must never remove another rank's files (even of a process it thinks dead)."""
    tifs, ckpt = six
    out = tmp_path / "out"
    out.mkdir()
    dead = _dead_pid()
    theirs = [out / f".r{i}.{dead}-{host_tag()}.tmp.geojson" for i in (1, 3, 5)]  # rank 1's inputs
    mine = [out / f".r{i}.{dead}-{host_tag()}.spill.gpkg" for i in (0, 2, 4)]
    for p in theirs + mine:
        p.write_text("x")
    res = _run_rank(_env(0, 2), "predict", *tifs, "-o", out, "--model", ckpt, "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert all(p.exists() for p in theirs) and not any(p.exists() for p in mine)
    res = _run_rank(_env(1, 2), "predict", *tifs, "-o", out, "--model", ckpt, "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert files_in(out) == {f"r{i}.geojson" for i in range(6)}


def test_a_rank_leaves_the_output_folder_it_made_for_the_others(six, tmp_path):
    """A rank whose inputs all failed removed the empty folder it had made while another rank was about to
    write into it."""
    tifs, ckpt = six
    raw = write_raster(tmp_path / "whole.tif", scene((256, 256))).read_bytes()
    bad = tifs[0].with_name("bad.tif")
    bad.write_bytes(raw[: len(raw) // 2])  # its header opens, its blocks do not read: fails once work started
    out = tmp_path / "new" / "out"
    res = _run_rank(_env(0, 2), "-q", "predict", bad, tifs[1], "-o", out, "--model", ckpt, "--device", "cpu")
    assert res.exit_code == 1 and res.stdout == ""
    assert res.stderr.startswith("[rank 0/2] Error: ") and "bad.tif" in res.stderr
    assert out.is_dir() and files_in(out) == set()
    res = _run_rank(_env(1, 2), "-q", "predict", bad, tifs[1], "-o", out, "--model", ckpt, "--device", "cpu")
    assert res.exit_code == 0 and res.stdout.split() == [str(out / "r1.geojson")]
    res = _run_rank({}, "-q", "predict", bad, "-o", tmp_path / "alone" / "x", "--model", ckpt)
    assert res.exit_code == 1 and not (tmp_path / "alone").exists()  # one process: removed as before


def test_one_output_file_is_rank_zeros(six, tmp_path):
    tifs, ckpt = six
    out = tmp_path / "one.geojson"
    res = _run_rank(_env(1, 2), "predict", tifs[0], "-o", out, "--model", ckpt, "--device", "cpu")
    assert res.exit_code == 0 and res.stdout == "" and not out.exists()
    assert "[rank 1/2] nothing to do: the one output file" in res.stderr
    res = _run_rank(_env(0, 2), "predict", tifs[0], "-o", out, "--model", ckpt, "--device", "cpu")
    assert res.exit_code == 0 and res.stdout.split() == [str(out)]
    assert "[rank 0/2] one output file" in res.stderr and "the other 1 have nothing to do" in res.stderr
    res = _run_rank(_env(1, 2), "-q", "predict", *tifs[:2], "-o", out, "--model", ckpt)
    assert res.exit_code == 1 and "must be a folder" in res.stderr  # several inputs, one file: refused as always


class _ThreadsSeen(nn.Module):
    seen: set[int] = set()  # of the class: predict runs a copy of the model (BatchNorm folded), which adds here too

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        _ThreadsSeen.seen.clear()

    def forward(self, x):
        self.seen.add(torch.get_num_threads())
        return self.inner(x)


def test_on_cpu_each_rank_uses_its_share_of_the_cores_only_while_predicting(six, tmp_path):
    tifs, _ = six
    net = _ThreadsSeen(constant_unet(3.0))
    info = CheckpointInfo(model=net.inner.config, preprocessing=prep())
    before = torch.get_num_threads()
    cpus = len(os.sched_getaffinity(0))
    config = PredictConfig(inputs=tifs, output=tmp_path / "out", device="cpu", progress=False)
    result = predict(config, model=(net, info), shard=Shard(1, 4, 1, 4))
    assert [r.input for r in result.rasters] == [tifs[1], tifs[5]]
    assert net.seen == {max(1, cpus // 4)}
    assert torch.get_num_threads() == before


# ---------------------------------------------------------------- two real processes under torchrun


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(*args: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "NO_ALBUMENTATIONS_UPDATE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
           str(_free_port()), "-m", "geounet", "predict", *map(str, args), "--device", "cpu", "--tile-size", "64"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


def test_torchrun_two_processes_share_the_inputs_and_a_failure_costs_only_its_input(tmp_path):
    """Rank 0's share holds a corrupt raster: it fails on it, does its other inputs and exits 1; rank 1, busy
    with larger rasters, was stopped by torchrun (which stops every rank when one exits non-zero) before it wrote
    anything; now it finishes, and a re-run of the same command writes exactly what is missing."""
    data = tmp_path / "data"
    data.mkdir()
    # rank 0: 0, 2, 4 (done in a moment); rank 1: 1, 3, 5 (441 windows of 64 px each, seconds)
    sizes = {0: None, 1: 1024, 2: 64, 3: 1024, 4: 64, 5: 1024}
    tifs = []
    for i, size in sizes.items():
        if size is None:
            (data / "r0.tif").write_text("not a raster")
            tifs.append(data / "r0.tif")
        else:
            tifs.append(write_raster(data / f"r{i}.tif", scene((size, size), seed=i)))
    ckpt = constant_checkpoint(tmp_path / "m.pt")
    out = tmp_path / "out"
    proc = _torchrun(*tifs, "-o", out, "--model", ckpt)
    assert proc.returncode == 1, proc.stderr[-3000:]
    good = [out / f"r{i}.geojson" for i in range(1, 6)]
    assert sorted(proc.stdout.split()) == sorted(map(str, good)), proc.stderr[-3000:]  # each once
    assert files_in(out) == {p.name for p in good}  # no temporary file left
    for p in good:
        df = gpd.read_file(p)
        assert len(df) == 1 and df.crs.to_epsg() == 32633
    err = proc.stderr.splitlines()
    assert sum(line.startswith("[rank 0/2] Error: ") and "r0.tif" in line for line in err) == 1, proc.stderr
    for rank, inputs in ((0, (2, 4)), (1, (1, 3, 5))):
        done = sorted(re.search(r"r(\d)\.tif: ", line).group(1) for line in _done_lines(proc.stderr)
                      if line.startswith(f"[rank {rank}/2] "))
        assert done == [str(i) for i in inputs], proc.stderr
    assert "SIGTERM" not in proc.stderr  # rank 1 finished on its own
    write_raster(data / "r0.tif", scene((64, 64)))  # the corrupt raster replaced: the same command again
    for rank, skipped in ((0, 2), (1, 3)):  # its two ranks, in this process (a third torchrun start is slow)
        res = _run_rank(_env(rank, 2), "predict", *tifs, "-o", out, "--model", ckpt, "--device", "cpu",
                        "--tile-size", "64")
        assert res.exit_code == 0, res.output
        assert res.stdout.split() == ([str(out / "r0.geojson")] if rank == 0 else [])
        assert res.stderr.count("skipping") == skipped
    assert files_in(out) == {f"r{i}.geojson" for i in range(6)}
