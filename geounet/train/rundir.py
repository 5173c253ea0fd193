"""The run folder: checked before anything is read, prepared once the inputs are read and checked,
and the one place that knows what last.pt carries to resume a run.

The order is the point. :func:`check_run_folder` runs first and only looks: a folder holding
another run without ``--overwrite``, or ``--resume`` without a last.pt, fails at once, before
any data is read. :func:`prepare_run_folder` is the only step that deletes anything (an old
run's files under ``--overwrite``); the loop calls it after the inputs have been loaded and
checked, so ``--overwrite`` with a typo in a path fails and leaves the old run as it was.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from ..model.checkpoint import read_checkpoint
from ..errors import ConfigError, OutputExistsError
from .config import TrainConfig
from .plot import plot_curves

RUN_FILES = ("best.pt", "best_raw.pt", "last.pt", "metrics.csv", "curves.png")  # best_raw.pt: --ema runs
CSV_FIELDS = (
    "epoch", "train_loss", "val_loss", "val_iou", "val_precision", "val_recall", "val_f1",
    "lr", "elapsed_s", "train_windows", "val_windows", "raw_val_iou",
)


@dataclass
class RunState:
    """Where a run stands; saved in last.pt (beside the config, the optimizer and the grad scaler)."""

    epoch: int = 0  # epochs done
    step: int = 0  # optimizer steps done
    elapsed_s: float = 0.0  # run time when last saved (a resumed run's clock goes on from it)
    best_iou: float = -1.0
    best_epoch: int = 0
    best_raw_iou: float = -1.0  # --ema: the trained weights' best (best_raw.pt); best_iou is the average's
    history: list[dict[str, Any]] = field(default_factory=list)  # one record an epoch: metrics.csv


def check_run_folder(cfg: TrainConfig) -> None:
    """Refuse a run folder that cannot be used, before any data is read; deletes nothing."""
    out = Path(cfg.out_dir)
    if out.exists() and not out.is_dir():
        raise OutputExistsError("exists and is not a folder", out)
    if cfg.resume:
        if not (out / "last.pt").exists():
            raise ConfigError("--resume: no last.pt to continue from", out)
        return
    if out.exists() and any(out.iterdir()) and not cfg.overwrite:
        raise OutputExistsError("run folder exists and is not empty (use --overwrite or --resume)", out)
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        raise OutputExistsError("folder is not writable", parent)


def prepare_run_folder(cfg: TrainConfig) -> None:
    """Create the run folder; under ``--overwrite`` (not ``--resume``) delete the old run's files.
    Call only once the inputs have been read and checked."""
    out = Path(cfg.out_dir)
    if cfg.overwrite and not cfg.resume:
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def resume_config(cfg: TrainConfig) -> tuple[TrainConfig, dict[str, Any]]:
    """The stored run's config, extended by this command, and the last.pt checkpoint it continues from.

    The stored run defines data and architecture; the command may extend the budget
    (``epochs``, ``max_minutes``) and choose ``device`` and ``workers``.
    """
    ckpt = read_checkpoint(Path(cfg.out_dir) / "last.pt")
    state = ckpt.get("train_state")
    if not state:
        raise ConfigError("last.pt holds no training state to resume", Path(cfg.out_dir) / "last.pt")
    stored = TrainConfig.from_dict(state["config"])
    merged = TrainConfig.from_dict({
        **stored.to_dict(),
        "resume": True,
        "epochs": cfg.epochs or stored.epochs,
        "max_minutes": cfg.max_minutes or stored.max_minutes,
        "device": cfg.device,
        "workers": cfg.workers if cfg.workers is not None else stored.workers,
        "out_dir": cfg.out_dir,
    })
    return merged, ckpt


def train_state(cfg: TrainConfig, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None,
                state: RunState, elapsed_s: float) -> dict[str, Any]:
    """What last.pt carries, besides the model, to continue the run (read back by :func:`restore`)."""
    return {
        "config": cfg.to_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "epoch": state.epoch,
        "step": state.step,
        "elapsed_s": elapsed_s,
        "best_iou": state.best_iou,
        "best_epoch": state.best_epoch,
        "history": state.history,
    }


def restore(ckpt: dict[str, Any], optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None) -> RunState:
    """Load the optimizer and grad scaler from a last.pt written with :func:`train_state`; return its state."""
    saved = ckpt["train_state"]
    optimizer.load_state_dict(saved["optimizer"])
    if scaler is not None and saved.get("scaler"):
        scaler.load_state_dict(saved["scaler"])
    state = RunState()
    for f in fields(RunState):
        setattr(state, f.name, saved.get(f.name, getattr(state, f.name)))
    return state


def write_history(history: list[dict[str, Any]], out: Path) -> None:
    """metrics.csv (one row an epoch) and curves.png, each replaced atomically."""
    path = out / "metrics.csv"
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        w.writeheader()
        for record in history:
            w.writerow({k: record.get(k) for k in CSV_FIELDS})
    os.replace(tmp, path)
    plot_curves(history, out / "curves.png")
