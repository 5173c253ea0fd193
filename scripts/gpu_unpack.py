"""Unpack what scripts/gpu_train.sh sent back from a device machine into ordinary run folders.

    python scripts/gpu_unpack.py /work/.device/N runs/gpu      # N: the call's files_at

Joins ``models.tar.part-*``, extracts ``train_logs.tar.gz``, keeps the large run's best.pt as it came,
and turns each fold's ``best_fp16.pt`` back into a float32 ``best.pt`` (the weights were rounded to
float16 for the trip; BatchNorm's counters stay integers), so ``benchmarks/lopo_eval.py DEST/folds``
scores them like CPU-trained folds.
"""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

import torch

HALF_MAX = 6e4  # float16 reaches 65,504: a tensor with larger values (a BatchNorm variance can be) stays float32


def round_to_half(state_dict: dict) -> dict:
    """The weights as scripts/gpu_train.sh sends them back: floating-point tensors within float16's range
    as float16, the rest as they are."""
    return {k: v.half() if v.is_floating_point() and v.abs().max() < HALF_MAX else v for k, v in state_dict.items()}


def back_to_float(state_dict: dict) -> dict:
    """:func:`round_to_half`'s weights as float32 again (integer counters untouched)."""
    return {k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()}


def main(src: Path, dest: Path) -> None:
    parts = sorted(src.glob("models.tar.part-*"), key=lambda p: int(p.name.rsplit("-", 1)[1]))
    if not parts:
        sys.exit(f"{src}: no models.tar.part-* (not a scripts/gpu_train.sh result)")
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in parts))) as tar:
        tar.extractall(dest, filter="data")
    if (src / "train_logs.tar.gz").exists():
        with tarfile.open(src / "train_logs.tar.gz") as tar:
            tar.extractall(dest, filter="data")
    for half in sorted(dest.glob("folds/*/best_fp16.pt")):
        ckpt = torch.load(half, map_location="cpu", weights_only=False)
        ckpt["state_dict"] = back_to_float(ckpt["state_dict"])
        torch.save(ckpt, half.with_name("best.pt"))
        half.unlink()
    for best in sorted(dest.rglob("best.pt")):
        print(best)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
