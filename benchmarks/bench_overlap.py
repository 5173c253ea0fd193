"""Seams versus speed: how tile size and overlap change shift-agreement and cost.

    python benchmarks/bench_overlap.py 512/0 512/64 512/128 256/64 768/128

For each ``tile/overlap`` the bundled model predicts a 1536 x 1536 px crop of the Banepa
orthophoto (shared/data) and the same crop shifted by a few pixels (so every window falls
elsewhere on the buildings), and reports the IoU of the two building masks over the shared
area, whole (``IoU``) and away from the shifted crop's cut edges (``IoU core``: 64 px in,
where both runs see the same context), the largest probability difference there, and
the time per megapixel, and whether the probabilities are identical more than one window in
from the shifted crop's edges (``same inner``: where both runs have the same windows on the
same pixels, since the window lattice is anchored at the CRS origin). The shifts are not
multiples of 2**depth, except (16, 32).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
SOURCE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "banepa" / "banepa.tif"
SHIFTS = [(11, 7), (3, 5), (16, 32), (37, 53)]
MARGIN = 64


def write(path: Path, img: np.ndarray, crs, transform: Affine) -> Path:
    profile = dict(driver="GTiff", width=img.shape[2], height=img.shape[1], count=3, dtype="uint8", crs=crs,
                   transform=transform, tiled=True, blockxsize=256, blockysize=256)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(img)
    return path


def main(argv=None) -> int:
    from geounet.model.checkpoint import load_model
    from geounet.predict import RunOptions, predict_raster

    combos = [tuple(int(v) for v in a.split("/")) for a in (argv or sys.argv[1:] or ["512/128"])]
    net, info = load_model(None)
    with rasterio.open(SOURCE) as src:
        win = Window(512, 1024, 1536, 1536)
        img = src.read(window=win)
        t = window_transform(win, src.transform)
        crs = src.crs
    print(f"crop {win} of {SOURCE.name}; model {info.model.width}w/{info.model.depth}d; shifts {SHIFTS}\n")
    print("| tile | overlap | windows x pixels / raster | s per Mpx | " + " | ".join(
        f"IoU {s} | IoU core {s} | max dp core {s}" for s in SHIFTS) + " | same inner |")
    print("|" + " --- |" * (5 + 3 * len(SHIFTS)))
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        a = write(d / "a.tif", img, crs, t)
        for tile, overlap in combos:
            opts = RunOptions(tile=tile, overlap=overlap, batch_size=1)
            t0 = time.perf_counter()
            ra = predict_raster(net, info, a, d / f"a{tile}_{overlap}.gpkg", opts, probs=d / f"pa{tile}_{overlap}.tif")
            secs = time.perf_counter() - t0
            with rasterio.open(d / f"pa{tile}_{overlap}.tif") as p:
                pa_full = p.read(1) / 255.0
            cells, same = [], []
            for dy, dx in SHIFTS:
                b = write(d / "b.tif", img[:, dy:, dx:], crs, t @ Affine.translation(dx, dy))
                for f in (d / "b.gpkg", d / "pb.tif"):
                    f.unlink(missing_ok=True)
                predict_raster(net, info, b, d / "b.gpkg", opts, probs=d / "pb.tif")
                with rasterio.open(d / "pb.tif") as p:
                    pb = p.read(1) / 255.0
                pa = pa_full[dy:, dx:]
                ma, mb = pa >= 0.5, pb >= 0.5
                iou = (ma & mb).sum() / max(1, (ma | mb).sum())
                m = MARGIN
                ca, cb = ma[m:-m, m:-m], mb[m:-m, m:-m]
                iou_core = (ca & cb).sum() / max(1, (ca | cb).sum())
                dp = np.abs(pa[m:-m, m:-m] - pb[m:-m, m:-m]).max()
                cells += [f"{iou:.4f}", f"{iou_core:.4f}", f"{dp:.2f}"]
                same.append("yes" if np.array_equal(pa[tile:-tile, tile:-tile], pb[tile:-tile, tile:-tile]) else "no")
            cost = ra.windows_run * tile * tile / ra.pixels
            print(f"| {tile} | {overlap} | {cost:.2f} | {secs / (ra.pixels / 1e6):.2f} | " + " | ".join(cells) + f" | {'/'.join(same)} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
