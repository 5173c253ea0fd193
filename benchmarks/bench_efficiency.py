"""predict against the model alone: how much of predict's wall time is the model.

    python benchmarks/bench_efficiency.py RASTER [RASTER ...] [--model default] [--repeat 1] [--predict-args "..."]

For each raster, in fresh child processes (one at a time; run it alone on the machine):

1. ``geounet predict RASTER -o x.gpkg`` with its defaults, as a command (``python -m geounet``):
   its whole wall time, Python start-up, imports and model loading included ("command s"), and the
   windows it ran (size and count, from its log).
2. The model alone on those windows: the model loaded and prepared exactly as predict prepares it
   (``geounet.predict.driver._load_model`` + ``to_channels_last``, then BatchNorm folded as ``predict_raster``
   does), fed random windows of predict's size already in memory (no reading, no stitching, no writing)
   at batch 1, 2 and 4 under predict's autocast; the fastest batch, times the number of windows predict
   ran, is "model-only s".

Efficiency = model-only s / command s (1.0: predict costs nothing but the model). Raster
throughput = the raster's own pixels / command s (a model trained at coarser pixels than the
raster's, like the default on 0.13 m imagery, runs on fewer: the "model grid" Mpx). Prints a Markdown table with the machine.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_predict import machine, raster_pixels, row  # noqa: E402

HERE = Path(__file__).resolve()


def child_model(args) -> dict:
    """Seconds per window of ``args.tile`` px for batch 1, 2, 4 (model only, windows in memory)."""
    import torch

    from geounet.device import autocast, resolve_device
    from geounet.model.inference import inference_model, to_channels_last
    from geounet.predict.driver import _load_model
    from geounet.predict.settings import PredictConfig

    device = resolve_device(args.device)
    cfg = PredictConfig(inputs=[], output=None, model_path=args.model, device=args.device)
    net, info = _load_model(cfg, None, device)
    net = inference_model(to_channels_last(net))  # predict_raster folds BatchNorm (after --adapt, which this omits)
    bands = len(info.preprocessing.bands)
    out = {}
    with torch.inference_mode():
        for b in (1, 2, 4):
            x = torch.randn(b, bands, args.tile, args.tile).contiguous(memory_format=torch.channels_last).to(device)
            for _ in range(2):  # warm-up: allocations, oneDNN primitive caches
                with autocast(device):
                    torch.sigmoid(net(x).float())
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < args.seconds:
                with autocast(device):
                    torch.sigmoid(net(x).float()).cpu()
                n += b
            out[b] = (time.perf_counter() - t0) / n
    return {"seconds_per_window": out}


def predict_command(raster: str, model: str | None, folder: Path, extra: list[str] = ()) -> dict:
    """``python -m geounet -v predict``: command wall seconds and the windows it ran (from its log)."""
    cmd = [sys.executable, "-m", "geounet", "-v", "predict", raster, "-o", str(folder / "x.gpkg"), "--overwrite",
           *extra]
    if model:
        cmd += ["--model", model]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{res.stderr[-2000:]}")
    tile = int(re.search(r"windows (\d+) px", res.stderr).group(1))
    m = re.search(r"\(([\d.]+) Mpx in ([\d.]+) s, [\d.]+ Mpx/s; (\d+) of (\d+) windows run", res.stderr)
    # "raster_mpx": the input's own pixels; "mpx": the grid the model ran on
    return {"command_seconds": wall, "mpx": float(m.group(1)), "raster_mpx": raster_pixels(raster) / 1e6,
            "predict_seconds": float(m.group(2)), "windows_run": int(m.group(3)), "tile": tile}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("raster", nargs="+")
    ap.add_argument("--model", default=None, help="checkpoint or bundled name (default: the bundled default)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seconds", type=float, default=4.0, help="model-only: time per batch size")
    ap.add_argument("--repeat", type=int, default=1, help="predict runs per raster (the fastest is kept)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--predict-args", default="", help="more predict options, e.g. --predict-args='--tile-size 768'")
    ap.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tile", type=int, default=512, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._child:
        print(json.dumps(child_model(args)))
        return 0
    results = []
    with tempfile.TemporaryDirectory() as d:
        for raster in args.raster:
            runs = [predict_command(raster, args.model, Path(d), shlex.split(args.predict_args))
                    for _ in range(args.repeat)]
            r = min(runs, key=lambda x: x["command_seconds"])
            cmd = [sys.executable, str(HERE), raster, "--_child", "--tile", str(r["tile"]), "--device", args.device,
                   "--seconds", str(args.seconds)] + (["--model", args.model] if args.model else [])
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
            spw = json.loads(res.stdout.strip().splitlines()[-1])["seconds_per_window"]
            best = min(spw, key=spw.get)
            r.update(raster=raster, seconds_per_window=spw, best_batch=int(best),
                     model_only_seconds=r["windows_run"] * spw[best])
            results.append(r)
    print(f"\nMachine: {machine()}\n")
    print(row(["raster", "raster Mpx (model grid)", "windows run", "command s", "predict s (in the library)", "model-only s (batch)",
               "efficiency", "raster Mpx/s (command)"]))
    print(row(["---"] * 8))
    for r in results:
        print(row([Path(r["raster"]).name, f"{r['raster_mpx']:.1f} ({r['mpx']:.1f})", f"{r['windows_run']} x {r['tile']} px",
                   f"{r['command_seconds']:.1f}", f"{r['predict_seconds']:.1f}",
                   f"{r['model_only_seconds']:.1f} ({r['best_batch']})",
                   f"{r['model_only_seconds'] / r['command_seconds']:.2f}", f"{r['raster_mpx'] / r['command_seconds']:.2f}"]))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
