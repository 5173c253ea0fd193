"""What rounding a checkpoint's weights to float16 (scripts/gpu_train.sh sends fold models back so) changes.

    python benchmarks/half_weights.py CKPT RASTER [RASTER ...]

Writes CKPT with its floating-point tensors rounded to float16 and back to float32 (those within float16's
range, as scripts/gpu_train.sh does), predicts each
RASTER with both (``geounet predict`` defaults, ``--probs``), and prints per raster the building-mask IoU
of the two (probability >= 0.5 inside the valid area), the largest probability difference (of 255
levels) and the two building counts.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from gpu_unpack import back_to_float, round_to_half  # noqa: E402


def predict(ckpt: Path, raster: Path, folder: Path, tag: str) -> tuple[np.ndarray, int]:
    out, probs = folder / f"{tag}.gpkg", folder / f"{tag}.tif"
    subprocess.run([sys.executable, "-m", "geounet", "-q", "predict", str(raster), "-o", str(out), "--model", str(ckpt),
                    "--probs", str(probs), "--overwrite"], check=True, stdout=subprocess.DEVNULL)
    import pyogrio

    with rasterio.open(probs) as src:
        return src.read(1), len(pyogrio.read_dataframe(out, read_geometry=False))


def main(ckpt: Path, rasters: list[Path]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        state["state_dict"] = back_to_float(round_to_half(state["state_dict"]))  # scripts/gpu_train.sh's trip
        half = folder / "half.pt"
        torch.save(state, half)
        print("| raster | mask IoU | largest difference (levels) | buildings float32 | buildings float16 |")
        print("| --- | --- | --- | --- | --- |")
        for raster in rasters:
            a, na = predict(ckpt, raster, folder, "full")
            b, nb = predict(half, raster, folder, "half")
            ma, mb = a >= 128, b >= 128  # 0.5 as stored: round(0.5 * 255) = 128
            iou = (ma & mb).sum() / max((ma | mb).sum(), 1)
            diff = int(np.abs(a.astype(int) - b.astype(int)).max())
            print(f"| {raster.name} | {iou:.5f} | {diff} | {na} | {nb} |")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]])
