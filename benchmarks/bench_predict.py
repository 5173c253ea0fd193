"""Benchmarks for ``geounet predict``: throughput, time in the model, peak memory, and MONAI as a peer.

Every measurement runs in a fresh child process, so its peak resident memory
(``ru_maxrss``) and wall time (start-up and imports included) are its own. Run heavy
benchmarks one at a time (on a shared machine: ``flock /tmp/geounet-cpu.lock ...``).

    # rasters (tiled real imagery, EPSG:4326, 0.13 m) in /tmp, not in the repository
    python benchmarks/make_raster.py --size 3072 -o /tmp/geounet-bench/r3072.tif
    python benchmarks/bench_predict.py throughput /tmp/geounet-bench/r3072.tif --widths 16 32 64
    python benchmarks/bench_predict.py memory /tmp/geounet-bench/r5000.tif /tmp/geounet-bench/r10000.tif
    python benchmarks/bench_predict.py monai /tmp/geounet-bench/r5000.tif

Each prints a Markdown table (and ``--json FILE`` keeps the raw numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
HERE = Path(__file__).resolve()


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM{gpu}; torch {torch.__version__}"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ------------------------------------------------------------------------------------------
# children


def child_geounet(args) -> dict:
    """One ``geounet predict`` through the library, in this (child) process."""
    from geounet.predict import PredictConfig, predict

    out = Path(args.out)
    cfg = PredictConfig(
        inputs=[args.raster], output=out, model_path=args.model, probs=args.probs, device=args.device,
        tile_size=args.tile, overlap=args.overlap, batch_size=args.batch, overwrite=True, progress=False,
        pixel_size=args.pixel_size, **({"band_width": args.band_width} if args.band_width else {}),
    )
    r = predict(cfg).rasters[0]
    if r.error is not None:
        raise SystemExit(r.error)
    # raster_pixels: the input's own pixels (throughput is per raster pixel); pixels: the grid the model
    # ran on, fewer when --pixel-size auto resamples fine imagery to a coarser model (or more)
    out = {
        "raster_pixels": raster_pixels(args.raster), "pixels": r.pixels, "seconds": r.seconds, "model_seconds": r.model_seconds, "windows": r.windows,
        "windows_run": r.windows_run, "polygons": r.n_polygons, "peak_rss_mb": peak_rss_mb(),
    }
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def child_monai(args) -> dict:
    """MONAI ``sliding_window_inference`` (gaussian blending) on the same model and raster, whole raster in memory."""
    import numpy as np
    import rasterio
    import torch
    from monai.inferers import sliding_window_inference

    from geounet.model.checkpoint import load_model
    from geounet.device import autocast, resolve_device

    t0 = time.perf_counter()
    device = resolve_device(args.device)
    net, info = load_model(args.model, device)
    net = net.to(memory_format=torch.channels_last)
    prep = info.preprocessing
    with rasterio.open(args.raster) as src:
        # at the pixel size predict reads (--pixel-size): the same bilinear resampling as geounet's ScaledRaster,
        # onto the grid of geounet's --probs when given (same shape, so the masks compare pixel for pixel)
        from geounet.io.raster import IMAGE_RESAMPLING, pixel_size_m, resampled
        from geounet.predict.resolve import parse_pixel_size, target_pixel_size

        target = target_pixel_size(parse_pixel_size(args.pixel_size or "native"), pixel_size_m(src),
                                   prep.pixel_size_m, prep.pixel_size_range_m)
        shape = None
        if target is not None:
            if args.compare:
                with rasterio.open(args.compare) as p:
                    shape = (p.height, p.width)
            else:
                with resampled(src, target) as grid:  # predict's own grid at that pixel size
                    shape = (grid.height, grid.width)
        img = src.read(list(prep.bands), out_shape=None if shape is None else (len(prep.bands), *shape),
                       resampling=IMAGE_RESAMPLING).astype(np.float32)
    std = np.asarray(prep.std, np.float32)[:, None, None]
    mean = np.asarray(prep.mean, np.float32)[:, None, None]
    img /= prep.scale
    img -= mean
    img /= std
    x = torch.from_numpy(img)[None]
    del img
    model_time = 0.0

    def predictor(batch):
        nonlocal model_time
        t = time.perf_counter()
        with autocast(device):
            y = torch.sigmoid(net(batch.to(device).contiguous(memory_format=torch.channels_last))[:, :1].float())
        model_time += time.perf_counter() - t
        return y

    tile = args.tile or 512
    with torch.inference_mode():
        probs = sliding_window_inference(
            x, roi_size=(tile, tile), sw_batch_size=args.batch or 1, predictor=predictor, overlap=0.25,
            mode="gaussian", padding_mode="reflect", sw_device=device, device="cpu",
        )
    mask = (probs[0, 0] >= 0.5).numpy()
    seconds = time.perf_counter() - t0
    out = {"raster_pixels": raster_pixels(args.raster), "pixels": int(mask.size), "seconds": seconds, "model_seconds": model_time, "peak_rss_mb": peak_rss_mb()}
    if args.compare:
        with rasterio.open(args.compare) as p:
            ours = p.read(1) >= 128
        out["iou_vs_geounet"] = float((ours & mask).sum() / max(1, (ours | mask).sum()))
    return out


def run_child(kind: str, raster: str, **kw) -> dict:
    cmd = [sys.executable, str(HERE), f"_{kind}", raster]
    for k, v in kw.items():
        if v is not None:
            cmd += [f"--{k}", str(v)]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        sys.stderr.write(res.stderr)
        raise SystemExit(f"child failed: {' '.join(cmd)}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out["wall_seconds"] = wall
    return out


# ------------------------------------------------------------------------------------------
# benchmarks


def random_checkpoint(width: int, folder: Path, bias: float = -20.0) -> Path:
    """A randomly initialised U-Net of ``width`` with the bundled model's preprocessing.

    The head bias is very negative, so it finds no buildings: the run measures reading, the
    model and writing, not the vectoriser busy with random noise.
    """
    import torch

    from geounet.model.checkpoint import checkpoint_dict, read_checkpoint, checkpoint_info, save_checkpoint
    from geounet.config import ModelConfig
    from geounet.model import build_model

    info = checkpoint_info(read_checkpoint(None))
    torch.manual_seed(width)
    cfg = ModelConfig(in_channels=info.model.in_channels, width=width, depth=info.model.depth)
    model = build_model(cfg).eval()
    with torch.no_grad():
        model.head.bias.fill_(bias)
    path = folder / f"random_w{width}.pt"
    save_checkpoint(path, checkpoint_dict(model, cfg, info.preprocessing))
    return path


def km2_per_hour(mpx_per_s: float, pixel_m: float) -> float:
    return mpx_per_s * 3600.0 * pixel_m * pixel_m


def raster_pixels(raster: str) -> int:
    """The raster's own pixel count (what raster throughput is counted in, whatever grid the model ran on)."""
    import rasterio

    with rasterio.open(raster) as src:
        return src.width * src.height


def raster_pixel_size(raster: str) -> float:
    """The raster's own ground pixel size in metres (what km²/h of raster is counted at)."""
    import rasterio

    from geounet.io.raster import pixel_size_m

    with rasterio.open(raster) as src:
        return pixel_size_m(src)


def row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def bench_throughput(args) -> list[dict]:
    px = raster_pixel_size(args.raster[0])
    results = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        runs = [("bundled w16 (real output)", None)] if args.bundled else []
        runs += [(f"random w{w} (no buildings)", random_checkpoint(w, d)) for w in args.widths]
        for name, model in runs:
            r = run_child("geounet", args.raster[0], model=model, out=d / "b.gpkg", device=args.device,
                          tile=args.tile, overlap=args.overlap, batch=args.batch)
            r["name"] = name
            results.append(r)
    print(f"\nMachine: {machine()}\nRaster: {args.raster[0]}\n")
    print(row(["model", "Mpx", "predict s", "Mpx/s", f"km²/h at {px:.3f} m", "model % of predict",
               "model % of command", "command s", "peak RSS MB"]))
    print(row(["---"] * 9))
    for r in results:
        mpx = r["raster_pixels"] / 1e6
        rate = mpx / r["seconds"]
        print(row([r["name"], f"{mpx:.1f}", f"{r['seconds']:.1f}", f"{rate:.2f}", f"{km2_per_hour(rate, px):.0f}",
                   f"{100 * r['model_seconds'] / r['seconds']:.1f}", f"{100 * r['model_seconds'] / r['wall_seconds']:.1f}",
                   f"{r['wall_seconds']:.1f}", f"{r['peak_rss_mb']:.0f}"]))
    return results


def bench_memory(args) -> list[dict]:
    results = []
    with tempfile.TemporaryDirectory() as d:
        for raster in args.raster:
            r = run_child("geounet", raster, out=Path(d) / "b.gpkg", device=args.device, tile=args.tile,
                          overlap=args.overlap, batch=args.batch, model=args.model)
            r["raster"] = raster
            results.append(r)
    print(f"\nMachine: {machine()}\n")
    print(row(["raster", "pixels", "buildings", "predict s", "Mpx/s", "model % of command", "peak RSS MB"]))
    print(row(["---"] * 7))
    for r in results:
        side = int(round(r["raster_pixels"] ** 0.5))
        print(row([Path(r["raster"]).name, f"{side} x {side}", r["polygons"], f"{r['seconds']:.1f}",
                   f"{r['raster_pixels'] / 1e6 / r['seconds']:.2f}", f"{100 * r['model_seconds'] / r['wall_seconds']:.1f}",
                   f"{r['peak_rss_mb']:.0f}"]))
    return results


def bench_monai(args) -> list[dict]:
    raster = args.raster[0]
    with tempfile.TemporaryDirectory() as d:
        probs = Path(d) / "p.tif"
        # both read the raster at the same pixel size (--pixel-size, native unless given: MONAI gets the
        # raster resampled in memory as geounet resamples it), so both compute the same pixels and the
        # masks compare pixel for pixel
        px = args.pixel_size or "native"
        ours = run_child("geounet", raster, out=Path(d) / "b.gpkg", probs=probs, device=args.device,
                         tile=args.tile, overlap=args.overlap, batch=args.batch, model=args.model,
                         **{"pixel-size": px})
        peer = run_child("monai", raster, device=args.device, tile=args.tile, batch=args.batch, model=args.model,
                         compare=probs, **{"pixel-size": px})
    ours["name"] = "geounet predict (streaming; + --probs GeoTIFF + polygons)"
    peer["name"] = "MONAI sliding_window_inference, gaussian (whole raster in memory; mask only)"
    print(f"\nMachine: {machine()}\nRaster: {raster}\n")
    print(row(["method", "seconds (command)", "model s", "Mpx/s", "peak RSS MB"]))
    print(row(["---"] * 5))
    for r in (ours, peer):
        print(row([r["name"], f"{r['wall_seconds']:.1f}", f"{r['model_seconds']:.1f}",
                   f"{r['raster_pixels'] / 1e6 / r['wall_seconds']:.2f}", f"{r['peak_rss_mb']:.0f}"]))
    print(f"\nMask IoU, MONAI vs geounet: {peer.get('iou_vs_geounet', float('nan')):.4f}")
    return [ours, peer]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["throughput", "memory", "monai", "_geounet", "_monai"])
    ap.add_argument("raster", nargs="+")
    ap.add_argument("--widths", type=int, nargs="*", default=[16, 32, 64])
    ap.add_argument("--bundled", action=argparse.BooleanOptionalAction, default=True,
                    help="throughput: also run the bundled (trained) model")
    ap.add_argument("--model", default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--tile", type=int, default=None)
    ap.add_argument("--overlap", type=int, default=None)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--probs", default=None)
    ap.add_argument("--band-width", type=int, default=None, help="WindowSettings.band_width (default: its own)")
    ap.add_argument("--compare", default=None)
    ap.add_argument("--pixel-size", default=None,
                    help="predict's --pixel-size (auto, native or metres; default: predict's own, auto)")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    args = ap.parse_args(argv)
    if args.what == "_geounet":
        args.raster = args.raster[0]
        print(json.dumps(child_geounet(args)))
        return 0
    if args.what == "_monai":
        args.raster = args.raster[0]
        print(json.dumps(child_monai(args)))
        return 0
    results = {"throughput": bench_throughput, "memory": bench_memory, "monai": bench_monai}[args.what](args)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "results": results}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
