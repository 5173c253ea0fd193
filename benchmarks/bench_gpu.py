"""The GPU benchmark of ``geounet predict``, sized for one call of a device machine (benchmarks/gpu.sh runs it).

1. the machine: nvidia-smi, Python, torch, CUDA and cuDNN versions, CPU;
2. the CUDA tests, ``pytest -m cuda`` (tests/test_cuda.py), unless ``--no-tests`` (the default with ``--device cpu``);
3. the model alone: randomly initialised U-Nets of each ``--widths`` on random batches of windows
   (``--tile`` px, ``--batch`` windows) with autocast and channels-last as predict runs them, timed
   with CUDA events (median of ``--model-iters``), and the peak GPU memory;
4. ``geounet predict`` on a ``--size`` px raster made here from the repository's sample imagery
   (benchmarks/make_raster.py), once per width (random weights, head bias -20: no buildings, so the
   vectoriser idles) and once with the bundled model (real footprints), each in a fresh process:
   Mpx/s, the model's share of the wall time (the main thread waiting for the model, copies included),
   the GPU's busy share as nvidia-smi samples it (``utilization.gpu`` every 200 ms, mean over the
   process), peak GPU memory (``torch.cuda.max_memory_allocated``) and peak RSS.

5. many rasters at once (``--ranks``, run before step 4): ``torchrun --nproc-per-node K -m geounet predict`` over
   ``--ranks-copies`` copies of a ``--ranks-size`` px raster with the bundled model, K processes sharing the
   machine's one GPU (:meth:`geounet.predict.shard.Shard.device_name` deals GPUs round-robin): the
   command's wall time, aggregate Mpx/s and the GPU's busy share for each K. One process's reading,
   stitching and vectorising keep a fast GPU busy a few percent of the time; this measures how far
   several processes per GPU take a batch of rasters.

The whole run keeps within ``--budget-s``: a step that would start too late is recorded as not run.
Writes ``gpu_bench.json`` and ``gpu_bench.md`` to ``--out`` and prints the Markdown last.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import bench_predict as bp  # noqa: E402
import make_raster  # noqa: E402

SAMPLE_SOURCE = ROOT / "sample_data" / "banepa_unlabelled.tif"  # travels with the working tree
MIN_STEP_S = 20.0  # a predict run is not started with less time than this left


def sh(cmd: list[str], timeout: float = 30) -> str:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return (res.stdout + res.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{cmd[0]}: {exc}"


def machine_info(device: str) -> dict:
    import torch

    cuda = device.startswith("cuda") and torch.cuda.is_available()
    info = {
        "summary": bp.machine(), "python": platform.python_version(), "torch": torch.__version__,
        "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if cuda else None,
        "device": device, "cpus": os.cpu_count(),
        "nvidia_smi": sh(["nvidia-smi"]) if shutil.which("nvidia-smi") else "nvidia-smi not found",
    }
    if cuda:
        p = torch.cuda.get_device_properties(0)
        info |= {"gpu": p.name, "gpu_memory_gib": round(p.total_memory / 2**30, 1),
                 "multiprocessors": p.multi_processor_count, "bf16": torch.cuda.is_bf16_supported()}
    return info


def run_tests(timeout: float) -> dict:
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", "tests/test_cuda.py"]
    t0 = time.perf_counter()
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return {"status": f"timed out after {timeout:.0f} s", "command": " ".join(cmd[2:]), "output_tail": out[-3000:]}
    out = (res.stdout + res.stderr).strip()
    lines = out.splitlines()
    return {"status": "passed" if res.returncode == 0 else f"failed (exit {res.returncode})",
            "summary": lines[-1] if lines else "", "command": "pytest " + " ".join(cmd[4:]),
            "seconds": time.perf_counter() - t0, "output_tail": out[-3000:]}


def model_alone(width: int, device: str, tile: int, batch: int, iters: int) -> dict:
    """Median time of one batch through a random U-Net of ``width`` (the bundled model's depth and bands)."""
    import torch

    from geounet.config import ModelConfig
    from geounet.device import autocast, channels_last, cudnn_autotune, resolve_device
    from geounet.model import build_model
    from geounet.model.checkpoint import checkpoint_info, read_checkpoint

    dev = resolve_device(device)
    base = checkpoint_info(read_checkpoint(None)).model
    torch.manual_seed(width)
    net = channels_last(build_model(ModelConfig(in_channels=base.in_channels, width=width, depth=base.depth)).eval().to(dev))
    x = torch.randn(batch, base.in_channels, tile, tile, device=dev).contiguous(memory_format=torch.channels_last)
    cuda = dev.type == "cuda"
    times = []
    with torch.inference_mode(), autocast(dev), cudnn_autotune(dev):  # as predict runs it
        for _ in range(3 if cuda else 1):  # warm-up: cuDNN's choices, allocations
            net(x)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        for _ in range(iters):
            if cuda:
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                net(x)
                b.record()
                b.synchronize()
                times.append(a.elapsed_time(b) / 1000.0)
            else:
                t0 = time.perf_counter()
                net(x)
                times.append(time.perf_counter() - t0)
    s = sorted(times)[len(times) // 2]
    out = {"width": width, "batch": batch, "tile": tile, "iters": iters, "ms_per_batch": 1000 * s,
           "mpx_per_s": batch * tile * tile / s / 1e6}
    if cuda:
        out["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


class GpuSampler:
    """``nvidia-smi`` sampling GPU utilisation and memory every 200 ms while a child runs (none without a GPU)."""

    def __init__(self, enabled: bool):
        self.proc = None
        if enabled and shutil.which("nvidia-smi"):
            self.proc = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits", "-lms", "200"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def stop(self) -> dict:
        if self.proc is None:
            return {}
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=10)
        util, mem = [], []
        for line in out.splitlines():
            try:
                u, m = (float(v) for v in line.split(","))
            except ValueError:
                continue
            util.append(u)
            mem.append(m)
        if not util:
            return {}
        return {"gpu_util_mean": sum(util) / len(util), "gpu_util_samples": len(util), "gpu_mem_used_max_mb": max(mem)}


def sampled_run(cmd: list[str], device: str, timeout: float):
    """``cmd`` run to its end with the GPU sampled meanwhile: ``(result, wall seconds, GPU figures)``, or a
    ``{"status": "timed out ..."}`` row when it ran past ``timeout``."""
    sampler = GpuSampler(device.startswith("cuda"))
    t0 = time.perf_counter()
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        sampler.stop()
        return {"status": f"timed out after {timeout:.0f} s"}
    return res, time.perf_counter() - t0, sampler.stop()


def predict_once(raster: Path, model: Path | None, device: str, folder: Path, timeout: float, batch: int | None) -> dict:
    cmd = [sys.executable, str(bp.HERE), "_geounet", str(raster), "--out", str(folder / "b.gpkg"), "--device", device]
    if model is not None:
        cmd += ["--model", str(model)]
    if batch:
        cmd += ["--batch", str(batch)]
    ran = sampled_run(cmd, device, timeout)
    if isinstance(ran, dict):
        return ran
    res, wall, gpu = ran
    if res.returncode != 0:
        return {"status": f"failed (exit {res.returncode})", "stderr_tail": res.stderr[-2000:]}
    out = json.loads(res.stdout.strip().splitlines()[-1]) | gpu
    return out | {"status": "ok", "wall_seconds": wall, "mpx_per_s": out["raster_pixels"] / 1e6 / out["seconds"],
                  "model_share": out["model_seconds"] / out["seconds"]}


def predict_runs(args, raster: Path, deadline: float) -> list[dict]:
    results = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        runs = [(f"random w{w} (no buildings)", w) for w in args.widths]
        runs += [("bundled w16 (real footprints)", None)] if args.bundled else []
        for name, width in runs:
            left = deadline - time.monotonic()
            if left < MIN_STEP_S:
                results.append({"name": name, "status": "not run (time budget)"})
                continue
            model = bp.random_checkpoint(width, d) if width else None
            r = predict_once(raster, model, args.device, d, left, args.batch)
            results.append({"name": name} | r)
            print(f"predict {name}: {r['status']}" + (f", {r['mpx_per_s']:.2f} Mpx/s" if "mpx_per_s" in r else ""),
                  file=sys.stderr)
    return results


def ranks_once(inputs: list[Path], ranks: int, device: str, folder: Path, timeout: float) -> dict:
    """One ``torchrun --nproc-per-node ranks -m geounet predict INPUTS -o folder/`` (bundled model), timed whole."""
    folder.mkdir(parents=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks),
           "-m", "geounet", "-q", "predict", *map(str, inputs), "-o", f"{folder}/", "--device", device]
    ran = sampled_run(cmd, device, timeout)
    if isinstance(ran, dict):
        return ran
    res, wall, gpu = ran
    written = [p for p in folder.iterdir() if not p.name.startswith(".")]  # one vector file per input
    if res.returncode != 0 or len(written) != len(inputs):
        return {"status": f"failed (exit {res.returncode}, {len(written)} of {len(inputs)} written)",
                "stderr_tail": res.stderr[-2000:]}
    return {"status": "ok", "wall_seconds": wall, "outputs": len(written)} | gpu


def ranks_runs(args, deadline: float) -> dict:
    """The bundled model over copies of one raster with each of ``args.ranks`` processes per machine."""
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        raster = d / "source.tif"
        make_raster.make(args.ranks_size, raster, args.source)
        inputs = []
        for i in range(args.ranks_copies):  # links: each input its own name, hence its own output
            inputs.append(d / "in" / f"r{i:02d}.tif")
            inputs[-1].parent.mkdir(exist_ok=True)
            inputs[-1].symlink_to(raster)
        mpx = args.ranks_copies * args.ranks_size**2 / 1e6
        runs = []
        for k in args.ranks:
            left = deadline - time.monotonic()
            if left < MIN_STEP_S:
                runs.append({"ranks": k, "status": "not run (time budget)"})
                continue
            r = {"ranks": k} | ranks_once(inputs, k, args.device, d / f"out{k}", left)
            if r["status"] == "ok":
                r["mpx_per_s"] = mpx / r["wall_seconds"]
            runs.append(r)
            print(f"{k} processes: {r['status']}" + (f", {r['mpx_per_s']:.2f} Mpx/s" if "mpx_per_s" in r else ""),
                  file=sys.stderr)
    return {"size": args.ranks_size, "copies": args.ranks_copies, "mpx": mpx, "runs": runs}


def fmt(v, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [f"# geounet GPU benchmark ({report['date']})", "", f"Machine: {m['summary']}",
             f"Python {m['python']}, torch {m['torch']}, CUDA {m['cuda']}, cuDNN {m['cudnn']}; device `{m['device']}`", ""]
    t = report["tests"]
    lines += ["## CUDA tests", "", f"`{t.get('command', 'pytest -m cuda')}`: {t['status']}"
              + (f" ({t['summary']}, {t['seconds']:.0f} s)" if "summary" in t else ""), ""]
    lines += ["## Model alone", "", "| width | batch | window px | ms per batch | Mpx/s (window pixels) | peak GPU MB |",
              "| --- | --- | --- | --- | --- | --- |"]
    for r in report["model_alone"]:
        lines.append(bp.row([r["width"], r["batch"], r["tile"], fmt(r["ms_per_batch"], ".2f"), fmt(r["mpx_per_s"], ".1f"),
                             fmt(r.get("gpu_peak_mb"), ".0f")]))
    ras = report["raster"]
    lines += ["", f"## geounet predict on a {ras['size']} x {ras['size']} px raster ({ras['mpx']:.1f} Mpx, made in "
              f"{ras['seconds']:.0f} s)", "",
              "| model | status | predict s | process s | Mpx/s | model % of predict | GPU busy % (nvidia-smi) "
              "| peak GPU MB | peak RSS MB | buildings |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in report["predict"]:
        share = r.get("model_share")
        lines.append(bp.row([r["name"], r["status"], fmt(r.get("seconds")), fmt(r.get("wall_seconds")),
                             fmt(r.get("mpx_per_s"), ".2f"), fmt(None if share is None else 100 * share),
                             fmt(r.get("gpu_util_mean")), fmt(r.get("gpu_peak_mb"), ".0f"),
                             fmt(r.get("peak_rss_mb"), ".0f"), r.get("polygons", "-")]))
    rk = report.get("ranks")
    if rk:
        lines += ["", f"## Many rasters: {rk['copies']} rasters of {rk['size']} x {rk['size']} px ({rk['mpx']:.0f} Mpx), "
                  "bundled model, `torchrun --nproc-per-node K -m geounet predict ... -o DIR/`", "",
                  "| processes K | status | command s | Mpx/s (all rasters) | GPU busy % (nvidia-smi) | GPU memory used MB |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for r in rk["runs"]:
            lines.append(bp.row([r["ranks"], r["status"], fmt(r.get("wall_seconds")), fmt(r.get("mpx_per_s"), ".2f"),
                                 fmt(r.get("gpu_util_mean")), fmt(r.get("gpu_mem_used_max_mb"), ".0f")]))
    lines += ["", f"Total {report['seconds']:.0f} s (budget {report['budget_s']:.0f} s)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "runs/gpu-bench")))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--size", type=int, default=20000, help="side of the generated raster in pixels")
    ap.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--bundled", action=argparse.BooleanOptionalAction, default=True,
                    help="also run predict with the bundled model")
    ap.add_argument("--tests", action=argparse.BooleanOptionalAction, default=None,
                    help="run pytest -m cuda (default: on CUDA only)")
    ap.add_argument("--tile", type=int, default=512, help="model alone: window side")
    ap.add_argument("--batch", type=int, default=None, help="windows per batch (default: predict's for the device)")
    ap.add_argument("--model-iters", type=int, default=20)
    ap.add_argument("--ranks", type=int, nargs="*", default=[1, 4, 8, 16],
                    help="many rasters: processes per machine to try (none: skip the step)")
    ap.add_argument("--ranks-size", type=int, default=3000, help="many rasters: side of each raster in pixels")
    ap.add_argument("--ranks-copies", type=int, default=16, help="many rasters: how many rasters")
    ap.add_argument("--budget-s", type=float, default=420.0, help="the whole run's time limit")
    ap.add_argument("--source", type=Path, default=SAMPLE_SOURCE, help="imagery tiled into the raster")
    args = ap.parse_args(argv)
    t0, deadline = time.perf_counter(), time.monotonic() + args.budget_s
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "budget_s": args.budget_s,
              "args": {k: str(v) for k, v in vars(args).items()}, "machine": machine_info(args.device)}
    print(report["machine"]["nvidia_smi"], file=sys.stderr)
    run_tests_now = args.device.startswith("cuda") if args.tests is None else args.tests
    report["tests"] = run_tests(min(240.0, deadline - time.monotonic())) if run_tests_now else {
        "status": "not run (--no-tests, or --device cpu)"}
    print(f"CUDA tests: {report['tests']['status']} {report['tests'].get('summary', '')}", file=sys.stderr)
    from geounet.predict.settings import default_batch_size
    from geounet.device import resolve_device

    batch = args.batch or default_batch_size(resolve_device(args.device))
    report["model_alone"] = [model_alone(w, args.device, args.tile, batch, args.model_iters) for w in args.widths]
    if args.ranks:  # before the large raster: the single-raster runs were measured on an H200 already
        report["ranks"] = ranks_runs(args, deadline)
    with tempfile.TemporaryDirectory() as d:
        raster = Path(d) / f"r{args.size}.tif"
        t = time.perf_counter()
        make_raster.make(args.size, raster, args.source)
        report["raster"] = {"size": args.size, "mpx": args.size**2 / 1e6, "seconds": time.perf_counter() - t,
                            "source": str(args.source)}
        report["predict"] = predict_runs(args, raster, deadline)
    report["seconds"] = time.perf_counter() - t0
    (args.out / "gpu_bench.json").write_text(json.dumps(report, indent=1, default=str))
    md = markdown(report)
    (args.out / "gpu_bench.md").write_text(md)
    print(md)
    steps = report["predict"] + (report["ranks"]["runs"] if args.ranks else [])
    ok = all(r["status"] in ("ok", "not run (time budget)") for r in steps) and not report["tests"]["status"].startswith(("failed", "timed"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
