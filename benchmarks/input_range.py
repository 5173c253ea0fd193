"""16-bit imagery for an 8-bit model (``predict --input-range``): how close the stretched copy comes to the original.

    python benchmarks/input_range.py --runs /work/runs/lopo80 [--places zanzibar,joplin,nacala,banepa]
                                     [--percentiles 2,98 1,99 0.5,99.5 0.1,99.9 0,100] [--out /tmp/input-range]

Real 16-bit scenes with footprints are not in ../shared/data, so each place's 8-bit raster is turned into
two uint16 copies (same grid, same mask), with the transfer functions 16-bit deliveries have:
- ``linear``: ``raw = 8 v + 37``, an 11-bit product that is the 8-bit one rescaled;
- ``radiance``: ``raw = 3000 (v / 255) ** 2.2 + 60``, values linear in light, as radiance and reflectance
  products are, where 8-bit imagery is gamma-encoded for display (a linear stretch of it looks darker in
  the mid-tones).
Each copy is predicted (``--input-range auto`` at each pair of ``--percentiles``), and the 8-bit original
once, by the leave-one-place-out model that never saw the place (``RUNS/without-PLACE/best.pt``, so the
numbers are of unseen imagery), and scored with ``geounet evaluate`` (object F1 at IoU 0.5, pixel IoU).
Banepa is its main raster only. ``--stretch-8-bit`` also predicts the 8-bit original stretched the same way
(per-raster normalisation of imagery of the model's own type, which ``auto`` does not do: does it help on
unseen places?). Prints a Markdown table; run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import rasterio

import geounet.io.stretch as stretch_mod
from geounet.predict import PredictConfig, predict

DTYPE_FITS = stretch_mod.dtype_fits
TRANSFERS = {
    "linear": lambda v: v.astype(np.float32) * 8 + 37,
    "radiance": lambda v: 3000 * (v.astype(np.float32) / 255) ** 2.2 + 60,
}


def copy16(src_path: Path, dst_path: Path, transfer) -> None:
    """``src_path`` (uint8) through ``transfer`` into a uint16 GeoTIFF of the same grid and mask, block by block."""
    with rasterio.open(src_path) as src:
        profile = src.profile.copy()
        profile.update(dtype="uint16", compress="deflate", predictor=2, tiled=True, blockxsize=256, blockysize=256,
                       photometric="minisblack", nodata=None)
        profile.pop("jpeg_quality", None)
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(dst_path, "w", **profile) as dst:
            for _, win in dst.block_windows(1):
                dst.write(np.round(transfer(src.read(window=win))).clip(0, 65535).astype(np.uint16), window=win)
                dst.write_mask(src.dataset_mask(window=win), window=win)


def score(pred: Path, truth: Path, raster: Path) -> dict:
    out = subprocess.run(["geounet", "evaluate", str(pred), str(truth), "--raster", str(raster), "--json"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["pairs"][0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, required=True, help="folder of without-PLACE/best.pt fold models")
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    ap.add_argument("--places", default="zanzibar,joplin,nacala,banepa")
    ap.add_argument("--percentiles", nargs="+", default=["2,98", "1,99", "0.5,99.5", "0.1,99.9", "0,100"])
    ap.add_argument("--out", type=Path, default=Path("/tmp/input-range"))
    ap.add_argument("--stretch-8-bit", action="store_true", help="also stretch the 8-bit originals")
    ap.add_argument("--no-16-bit", action="store_true", help="skip the uint16 copies")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    print("| place | imagery | stretch | TP | FP | FN | object F1 | pixel IoU | predict s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for place in a.places.split(","):
        tif = a.shared / place / f"{place}.tif"
        truth = a.shared / place / f"{place}_buildings.geojson"
        model = str(a.runs / f"without-{place}" / "best.pt")
        runs = [("uint8 (original)", tif, None)]
        runs += [("uint8 stretched", tif, p) for p in a.percentiles] if a.stretch_8_bit else []
        for name, transfer in ({} if a.no_16_bit else TRANSFERS).items():
            copy = a.out / f"{place}-{name}.tif"
            if not copy.exists():
                copy16(tif, copy, transfer)
            runs += [(f"uint16 {name}", copy, p) for p in a.percentiles]
        for label, raster, pct in runs:
            if pct is not None:
                stretch_mod.PERCENTILES = tuple(float(v) for v in pct.split(","))
            # the 8-bit original stretched too: auto then treats it as of another type than the model's
            stretch_mod.dtype_fits = (lambda r, m: False) if label == "uint8 stretched" else DTYPE_FITS
            pred = a.out / f"{place}-{label.split()[0]}-{label.split()[-1].strip('()')}-{pct or 'none'}.gpkg"
            pred.unlink(missing_ok=True)
            t0 = time.perf_counter()
            predict(PredictConfig(inputs=[raster], output=pred, model_path=model, progress=False))
            secs = time.perf_counter() - t0
            s = score(pred, truth, raster)
            print(f"| {place} | {label} | {'-' if pct is None else 'auto ' + pct} | {s['tp']} | {s['fp']} | {s['fn']} "
                  f"| {s['f1']:.3f} | {s['pixel']['iou']:.3f} | {secs:.0f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
