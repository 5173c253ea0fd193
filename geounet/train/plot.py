"""The training-curves PNG written beside the checkpoints."""

from __future__ import annotations

import os
from pathlib import Path


def plot_curves(history: list[dict], path: str | os.PathLike) -> None:
    """Loss (train, validation) and validation IoU/F1 per epoch of ``history`` (one record an epoch, as in
    metrics.csv), written atomically to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [r["train_loss"] for r in history], label="train")
    ax1.plot(epochs, [r["val_loss"] for r in history], label="validation")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.legend()
    for key in ("val_iou", "val_f1", "val_precision", "val_recall"):
        ax2.plot(epochs, [r[key] for r in history], label=key[4:])
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("validation (pixels)")
    ax2.set_ylim(0, 1)
    ax2.legend()
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    try:
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
