"""The model alone on real imagery windows: which inference path is fastest at equal masks.

Variants of the bundled width-16 model, each timed on the same real windows (Banepa), interleaved in
one process (variant after variant, repetition after repetition, so a busy machine slows them alike):

- ``base``: what predict ran before BatchNorm folding: bf16 autocast, channels-last weights and input;
- ``fold``: the same with BatchNorm folded into the convolutions (:func:`geounet.model.inference_model`);
- ``compile``: ``fold`` under ``torch.compile`` (inductor, CPU, with inductor's ``freezing``), bf16 autocast;
  the first call per window shape compiles, its time is reported as the path's set-up cost (a cold compile:
  a fresh inductor cache, unless ``--warm-cache``);
- ``int8``: PT2E static int8 quantisation (torchao's ``X86InductorQuantizer``, calibrated on real windows),
  then ``torch.compile`` (with ``freezing``); needs the ``torchao`` package (``pip install --no-deps torchao``,
  for this benchmark only; torch 2.13 no longer ships ``torch.ao.quantization.quantize_pt2e``).

For each window size and batch it prints the median seconds per batch, window megapixels per second and
the ratio to ``base`` (median of the per-repetition ratios), then the agreement of each variant's building
mask (threshold 0.5) with the fp32 model's on real 1024 px crops (IoU), as a Markdown table with the command
and the machine beside it. ``--sweep`` times only the first variant over every window size and batch, the
shapes interleaved, per window pixel (the fastest setting of this CPU)::

    python benchmarks/model_speed.py --sizes 512 256 --batches 1 2 --reps 7 [--threads 1]
    python benchmarks/model_speed.py --variants fold --sweep --sizes 512 256 384 768 --batches 1 2 4 --reps 9
"""

from __future__ import annotations

import argparse
import atexit
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

from geounet.device import autocast
from geounet.model import load_model
from geounet.model.inference import inference_model
from geounet.predict.pipeline import Normaliser

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# real imagery: 1024 px crops with buildings (Banepa: dense town; Zanzibar: its one fully imaged corner)
CROPS = {"banepa": ("banepa/banepa.tif", 1536, 1024), "zanzibar": ("zanzibar/zanzibar.tif", 0, 0)}
VARIANTS = ("base", "fold", "compile", "int8")


def read_crop(data: Path, name: str, size: int, info) -> torch.Tensor:
    path, row, col = CROPS[name]
    with rasterio.open(data / path) as src:
        raw = src.read(list(info.preprocessing.bands), window=Window(col, row, size, size))
    return torch.from_numpy(Normaliser(info.preprocessing)(raw))


def windows_of(crop: torch.Tensor, size: int, batch: int) -> torch.Tensor:
    """``batch`` distinct ``size`` px windows of ``crop`` (1, C, size, size) each, stacked, channels-last."""
    per, rows = crop.shape[-1] // size, crop.shape[-2] // size
    corners = [(((k // per) % rows) * size, (k % per) * size) for k in range(batch)]  # repeats if it must
    wins = [crop[:, r:r + size, c:c + size] for r, c in corners]
    return torch.stack(wins).contiguous(memory_format=torch.channels_last)


def tiles(crop: torch.Tensor, size: int) -> list[torch.Tensor]:
    """The crop cut into ``size`` px windows, row by row, each a (1, C, size, size) batch."""
    n = crop.shape[-1] // size
    return [windows_of(crop[:, r * size:(r + 1) * size, :], size, n)[c:c + 1] for r in range(n) for c in range(n)]


class Runner:
    """One variant: a callable from a channels-last float batch to building probabilities."""

    def __init__(self, name: str, model: torch.nn.Module, calib: list[torch.Tensor]):
        self.name, self.model, self.calib = name, model, calib  # calib: real 1024 px crops
        self.nets: dict[tuple, torch.nn.Module] = {}
        self.setup_s: dict[tuple, float] = {}

    def _build(self, shape: tuple) -> torch.nn.Module:
        if self.name == "base":
            return self.model
        folded = inference_model(self.model)
        if self.name == "fold":
            return folded
        if self.name == "compile":
            return torch.compile(folded)
        return self._int8(shape)

    def _int8(self, shape: tuple) -> torch.nn.Module:
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        example = torch.randn(shape).contiguous(memory_format=torch.channels_last)
        exported = torch.export.export(self.model, (example,)).module()
        quantizer = xiq.X86InductorQuantizer().set_global(xiq.get_default_x86_inductor_quantization_config())
        prepared = prepare_pt2e(exported, quantizer)
        with torch.no_grad():
            for crop in self.calib:  # calibration on real windows of the exported shape
                for k in range(0, (crop.shape[-1] // shape[-1]) ** 2 - shape[0] + 1, shape[0]):
                    prepared(windows_of(crop, shape[-1], k + shape[0])[k:])
        return torch.compile(convert_pt2e(prepared))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = tuple(x.shape)
        if key not in self.nets:
            t0 = time.perf_counter()
            # inductor's freezing: weights as constants, prepacked for oneDNN (PyTorch's advice for CPU inference)
            with torch._inductor.config.patch(freezing=True):
                self.nets[key] = self._build(key)
                self._run(self.nets[key], x)  # the first call compiles (compile, int8)
            self.setup_s[key] = time.perf_counter() - t0
        return self._run(self.nets[key], x)

    def _run(self, net, x):
        with torch.inference_mode(), autocast("cpu", enabled=self.name != "int8"):
            return torch.sigmoid(net(x)[:, 0].float())


def time_all(runners: list[Runner], x: torch.Tensor, reps: int) -> dict[str, list[float]]:
    """Seconds per call of each runner on ``x``, ``reps`` rounds, the runners interleaved in each round."""
    for r in runners:
        r(x)  # set-up and one warm-up call, outside the timing
    times: dict[str, list[float]] = {r.name: [] for r in runners}
    for _ in range(reps):
        for r in runners:
            t0 = time.perf_counter()
            r(x)
            times[r.name].append(time.perf_counter() - t0)
    return times


def sweep(runner: Runner, crop: torch.Tensor, sizes: list[int], batches: list[int], reps: int) -> None:
    """Window size and batch for one variant, all the shapes interleaved in each round; per-pixel speed-up
    against the first shape (median of the per-round ratios)."""
    cases = [(s, b, windows_of(crop, s, b)) for s in sizes for b in batches]
    for _, _, x in cases:
        runner(x)
    times: list[list[float]] = [[] for _ in cases]
    for _ in range(reps):
        for k, (_, _, x) in enumerate(cases):
            t0 = time.perf_counter()
            runner(x)
            times[k].append(time.perf_counter() - t0)
    px = [b * s * s for s, b, _ in cases]
    print(f"| window px | batch | variant | median s/batch | window Mpx/s | per-pixel speed-up vs {sizes[0]} px "
          f"batch {batches[0]} |")
    print("| --- | --- | --- | --- | --- | --- |")
    for k, (s, b, _) in enumerate(cases):
        med = statistics.median(times[k])
        ratio = statistics.median((t0 / px[0]) / (t / px[k]) for t0, t in zip(times[0], times[k]))
        print(f"| {s} | {b} | {runner.name} | {med:.3f} | {px[k] / med / 1e6:.2f} | {ratio:.2f} |", flush=True)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def mask_agreement(runners: list[Runner], ref: torch.nn.Module, crops: dict[str, torch.Tensor], size: int):
    """Per crop: the building share of the fp32 mask and each runner's mask IoU against it (``size`` px windows)."""
    out = {}
    for name, crop in crops.items():
        wins = tiles(crop, size)
        with torch.inference_mode():
            p32 = torch.cat([torch.sigmoid(ref(w)[:, 0]) for w in wins]).numpy() >= 0.5
        out[name] = (float(p32.mean()), {r.name: iou(p32, torch.cat([r(w) for w in wins]).numpy() >= 0.5)
                                         for r in runners})
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 256])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    ap.add_argument("--iou-size", type=int, default=512, help="window size for the mask agreement (0: skip)")
    ap.add_argument("--sweep", action="store_true",
                    help="time only the first variant over every window size and batch, interleaved")
    ap.add_argument("--warm-cache", action="store_true",
                    help="use inductor's on-disk cache of earlier runs (default: a fresh one: a cold compile)")
    ap.add_argument("--data", type=Path, default=DATA)
    args = ap.parse_args(argv)
    if not args.warm_cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache = tempfile.mkdtemp(prefix="model-speed-inductor-")
        atexit.register(shutil.rmtree, cache, True)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, info = load_model()
    model = model.to(memory_format=torch.channels_last)
    crops = {name: read_crop(args.data, name, 1024, info) for name in CROPS}
    # room for four windows of the largest size (2 x 2), 1536 px at least
    timing = read_crop(args.data, "banepa", max(1536, 2 * max(args.sizes)), info)
    calib = list(crops.values())
    runners = [Runner(v, model, calib) for v in args.variants]
    print(f"`{' '.join(['python', 'benchmarks/model_speed.py'] + (argv if argv is not None else sys.argv[1:]))}`\n")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}\n")
    if args.sweep:
        return sweep(runners[0], timing, args.sizes, args.batches, args.reps)
    print("| window px | batch | variant | median s/batch | window Mpx/s | speed-up vs base | set-up s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for size in args.sizes:
        for batch in args.batches:
            x = windows_of(timing, size, batch)
            times = time_all(runners, x, args.reps)
            base = times.get("base")
            for r in runners:
                med = statistics.median(times[r.name])
                ratio = statistics.median(b / t for b, t in zip(base, times[r.name])) if base else float("nan")
                print(f"| {size} | {batch} | {r.name} | {med:.3f} | {batch * size * size / med / 1e6:.2f} | "
                      f"{ratio:.2f} | {r.setup_s[tuple(x.shape)]:.1f} |", flush=True)
    if args.iou_size:
        agreement = mask_agreement(runners, model, crops, args.iou_size)
        print("\n| crop (1024 px) | building share (fp32) | " + " | ".join(f"IoU {r.name}" for r in runners) + " |")
        print("| --- | --- | " + " | ".join("---" for _ in runners) + " |")
        for name, (share, ious) in agreement.items():
            print(f"| {name} | {share:.3f} | " + " | ".join(f"{ious[r.name]:.4f}" for r in runners) + " |")


if __name__ == "__main__":
    main()
