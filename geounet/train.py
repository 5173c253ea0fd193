"""The training loop: spatially split windows, AdamW with a cosine schedule over the run's budget,
mixed precision, best/last checkpoints, resume, Ctrl-C safety and DistributedDataParallel.

Run under ``torchrun --nproc-per-node N -m geounet train ...`` it trains with DDP (gloo on
CPU, NCCL on CUDA): each rank sees its share of the windows through a DistributedSampler,
validation counts are summed over ranks, and only rank 0 writes files.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm

from .checkpoint import checkpoint_dict, model_from_checkpoint, read_checkpoint, save_checkpoint
from .config import ModelConfig, Preprocessing
from .data import (
    SampleSet,
    WindowDataset,
    build_samples,
    check_consistent,
    compute_stats,
    place_weights,
    raster_sources,
    set_pixel_size,
    tile_sources,
    worker_init,
)
from .device import autocast, channels_last, needs_grad_scaler, resolve_device
from .errors import ConfigError, OutputExistsError
from .log import logger, progress_enabled
from .losses import confusion, segmentation_loss
from .metrics import scores
from .model import build_model
from .plot import plot_curves
from .targets import OUTPUTS_PLAIN, OUTPUTS_SEPARATION

RUN_FILES = ("best.pt", "last.pt", "metrics.csv", "curves.png")
CSV_FIELDS = (
    "epoch", "train_loss", "val_loss", "val_iou", "val_precision", "val_recall", "val_f1",
    "lr", "elapsed_s", "train_windows", "val_windows",
)
DEFAULT_EPOCHS = 50
WARMUP = 0.05
MIN_LR_FRACTION = 0.02


@dataclass
class TrainConfig:
    """Everything ``geounet train`` was asked to do; stored in ``last.pt`` so ``--resume`` can continue."""

    out_dir: str
    images: str | None = None
    masks: str | None = None
    rasters: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    val_rasters: list[str] = field(default_factory=list)
    val_labels: list[str] = field(default_factory=list)
    width: int = 16
    depth: int = 4
    tile_size: int = 256
    block_size: int | None = None
    batch_size: int = 4
    epochs: int | None = None
    max_minutes: float | None = None
    lr: float = 2e-3
    weight_decay: float = 1e-4
    loss: str = "bce+dice"
    separation: bool = True
    weight_map: bool = False
    pixel_size: float | None = None
    pixel_size_range: tuple[float, float] | None = None
    bands: tuple[int, ...] | None = None
    device: str = "auto"
    amp: bool = True
    val_fraction: float = 0.2
    workers: int | None = None
    resume: bool = False
    seed: int = 0
    overwrite: bool = False

    @classmethod
    def from_cli(cls, **kw: Any) -> "TrainConfig":
        """Build from the Click command's keyword arguments (unset options keep their defaults)."""
        kw = {k: v for k, v in kw.items() if v is not None}
        for key in ("rasters", "labels", "val_rasters", "val_labels"):
            kw[key] = list(kw.get(key, ()))
        if isinstance(kw.get("bands"), str):
            kw["bands"] = parse_bands(kw["bands"])
        if kw.get("pixel_size_range"):
            kw["pixel_size_range"] = tuple(float(v) for v in kw["pixel_size_range"])
        else:
            kw.pop("pixel_size_range", None)
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bands"] = list(self.bands) if self.bands else None
        d["pixel_size_range"] = list(self.pixel_size_range) if self.pixel_size_range else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def block(self) -> int:
        return self.block_size or 4 * self.tile_size

    def validate(self) -> None:
        """Check option combinations before any file is read or written.

        Training data: a folder of image tiles (``--images`` with a ``--masks`` folder or a
        ``--labels`` file covering the tiles), ``--raster``/``--labels`` pairs, or both. With
        both, ``--labels`` pair with ``--raster`` in order and the tiles' labels file comes last.
        """
        if self.masks is not None and self.images is None:
            raise ConfigError("--masks goes with --images")
        tiles = self.images is not None
        tile_labels = int(tiles and self.masks is None)
        if not tiles and not self.rasters:
            raise ConfigError("no training data: give --images DIR with --masks DIR or --labels FILE, or --raster R.tif --labels L.geojson")
        if len(self.labels) != len(self.rasters) + tile_labels:
            if tiles and self.masks is None and len(self.labels) == len(self.rasters):
                raise ConfigError("--images needs --masks DIR or a --labels file (given after the --raster labels)")
            raise ConfigError(f"{len(self.rasters)} --raster but {len(self.labels) - tile_labels} --labels: give one labels file per raster")
        if len(self.val_rasters) != len(self.val_labels):
            raise ConfigError("--val-raster and --val-labels must come in pairs")
        if self.val_rasters and not self.rasters:
            raise ConfigError("--val-raster/--val-labels go with --raster/--labels training data")
        if self.pixel_size and self.pixel_size_range:
            raise ConfigError("give --pixel-size or --pixel-size-range, not both")
        if self.pixel_size_range is not None:
            lo, hi = self.pixel_size_range
            if not 0 < lo <= hi:
                raise ConfigError(f"--pixel-size-range needs 0 < MIN <= MAX, got {lo} {hi}")
        m = 2**self.depth
        if self.tile_size % m:
            raise ConfigError(f"--tile-size {self.tile_size} is not a multiple of 2**depth = {m}")
        if self.loss not in ("bce", "dice", "bce+dice"):
            raise ConfigError(f"unknown loss '{self.loss}'")


@dataclass
class TrainResult:
    best_iou: float
    best_epoch: int
    epochs_done: int
    history: list[dict[str, float]]


def parse_bands(text: str) -> tuple[int, ...]:
    """``"1,2,3"`` -> ``(1, 2, 3)``."""
    try:
        bands = tuple(int(b) for b in text.replace(" ", "").split(",") if b)
    except ValueError:
        raise ConfigError(f"--bands must be comma-separated band numbers, got '{text}'") from None
    if not bands or any(b < 1 for b in bands):
        raise ConfigError(f"--bands must be band numbers starting at 1, got '{text}'")
    return bands


# ---------------------------------------------------------------- distributed


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def _init_distributed(device_name: str) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    d = _Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    use_cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(d.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return d


def _all_sum(t: torch.Tensor, d: _Dist) -> torch.Tensor:
    if d.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


# ---------------------------------------------------------------- outputs


def _prepare_out_dir(cfg: TrainConfig) -> None:
    out = Path(cfg.out_dir)
    if out.exists() and not out.is_dir():
        raise OutputExistsError("exists and is not a folder", out)
    if cfg.resume:
        if not (out / "last.pt").exists():
            raise ConfigError("--resume: no last.pt to continue from", out)
        return
    existing = [f for f in RUN_FILES if (out / f).exists()]
    if out.exists() and any(out.iterdir()) and not cfg.overwrite:
        raise OutputExistsError("run folder exists and is not empty (use --overwrite or --resume)", out)
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        raise OutputExistsError("folder is not writable", parent)
    if cfg.overwrite:
        for f in existing:
            (out / f).unlink()


def _write_metrics_csv(rows: list[dict], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k) for k in CSV_FIELDS})
    os.replace(tmp, path)


# ---------------------------------------------------------------- schedule


def lr_at(progress: float, base_lr: float) -> float:
    """Linear warm-up over the first 5% of the run, then cosine decay to 2% of ``base_lr``.

    ``progress`` in [0, 1] is the larger of steps done / planned steps and minutes used /
    ``--max-minutes``, so a run stopped by its time budget still ends at a low rate.
    """
    p = min(max(progress, 0.0), 1.0)
    if p < WARMUP:
        return base_lr * max(p / WARMUP, 0.01)
    q = (p - WARMUP) / (1 - WARMUP)
    return base_lr * (MIN_LR_FRACTION + (1 - MIN_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * q)))


# ---------------------------------------------------------------- data


def _load_data(cfg: TrainConfig, seed: int) -> tuple[SampleSet, tuple[int, ...]]:
    train_sources = []
    if cfg.images is not None:
        tile_labels = cfg.labels[-1] if cfg.masks is None else None
        train_sources += tile_sources(cfg.images, cfg.masks, tile_labels)
    if cfg.rasters:
        train_sources += raster_sources(cfg.rasters, cfg.labels[: len(cfg.rasters)])
    val_sources = raster_sources(cfg.val_rasters, cfg.val_labels) if cfg.val_rasters else []
    bands = check_consistent(train_sources + val_sources, cfg.bands)
    set_pixel_size(train_sources + val_sources, reference_pixel_size(cfg))
    samples = build_samples(
        train_sources, val_sources, tile=cfg.tile_size, block=cfg.block,
        val_fraction=0.0 if val_sources else cfg.val_fraction, seed=seed,
    )
    return samples, bands


def reference_pixel_size(cfg: TrainConfig) -> float | None:
    """The pixel size windows are laid out at: ``--pixel-size``, the geometric middle of
    ``--pixel-size-range``, or None (native)."""
    if cfg.pixel_size_range:
        lo, hi = cfg.pixel_size_range
        return math.sqrt(lo * hi)
    return cfg.pixel_size


def _loader(ds: WindowDataset, cfg: TrainConfig, d: _Dist, train: bool, device: torch.device, seed: int,
            weights: list[float] | None = None):
    workers = 1 if cfg.workers is None else cfg.workers
    sampler = None
    g = torch.Generator()
    g.manual_seed(seed + (0 if train else 7919))
    if train and d.enabled:
        sampler = torch.utils.data.distributed.DistributedSampler(
            ds, num_replicas=d.world, rank=d.rank, shuffle=True, seed=seed
        )
    elif train and weights is not None:
        sampler = torch.utils.data.WeightedRandomSampler(weights, num_samples=len(ds), replacement=True, generator=g)
    return torch.utils.data.DataLoader(
        ds,
        batch_size=cfg.batch_size,
        shuffle=train and sampler is None,
        sampler=sampler,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=device.type == "cuda",
        worker_init_fn=worker_init,
        generator=g,
        drop_last=False,
    )


# ---------------------------------------------------------------- main entry


def train(cfg: TrainConfig) -> TrainResult:
    """Train a U-Net as ``cfg`` says, writing best.pt, last.pt, metrics.csv and curves.png to ``cfg.out_dir``."""
    d = _init_distributed(cfg.device)
    if not d.main:
        logger.setLevel(logging.WARNING)  # rank 0 speaks for the run
    try:
        return _train(cfg, d)
    finally:
        if d.enabled and dist.is_initialized():
            dist.destroy_process_group()


def _resume_state(cfg: TrainConfig) -> tuple[TrainConfig, dict[str, Any]]:
    ckpt = read_checkpoint(Path(cfg.out_dir) / "last.pt")
    state = ckpt.get("train_state")
    if not state:
        raise ConfigError("last.pt holds no training state to resume", Path(cfg.out_dir) / "last.pt")
    stored = TrainConfig.from_dict(state["config"])
    # The stored run defines data and architecture; the command may extend the budget.
    merged = TrainConfig.from_dict({
        **stored.to_dict(),
        "resume": True,
        "epochs": cfg.epochs or stored.epochs,
        "max_minutes": cfg.max_minutes or stored.max_minutes,
        "device": cfg.device,
        "workers": cfg.workers if cfg.workers is not None else stored.workers,
        "out_dir": cfg.out_dir,
    })
    merged.bands = tuple(merged.bands) if merged.bands else None
    merged.pixel_size_range = tuple(merged.pixel_size_range) if merged.pixel_size_range else None
    return merged, ckpt


def _train(cfg: TrainConfig, d: _Dist) -> TrainResult:
    if d.main:
        _prepare_out_dir(cfg)
    ckpt = None
    if cfg.resume:
        cfg, ckpt = _resume_state(cfg)
    cfg.validate()
    if cfg.epochs is None:
        cfg.epochs = DEFAULT_EPOCHS
    out = Path(cfg.out_dir)
    device = resolve_device(cfg.device)
    if device.type == "cuda" and d.enabled:
        device = torch.device("cuda", d.local_rank)
    torch.manual_seed(cfg.seed + d.rank)

    samples, bands = _load_data(cfg, cfg.seed)
    if ckpt is not None:
        model, info = model_from_checkpoint(ckpt)
        prep, mcfg = info.preprocessing, info.model
    else:
        scale, mean, std = compute_stats(samples.sources, samples.train, bands, cfg.seed)
        psizes = [s.pixel_size_m for s in samples.sources]
        reference = reference_pixel_size(cfg)
        if not reference and max(psizes) > 1.2 * min(psizes):
            logger.warning("training rasters differ in pixel size (%.3f to %.3f m)", min(psizes), max(psizes))
        prep = Preprocessing(
            bands=bands, scale=scale, mean=tuple(mean), std=tuple(std),
            pixel_size_m=float(reference or sum(psizes) / len(psizes)),
            pixel_size_range_m=tuple(cfg.pixel_size_range) if cfg.pixel_size_range else None,
            tile_size=cfg.tile_size, dtype=samples.sources[0].dtype,
        )
        outputs = OUTPUTS_SEPARATION if cfg.separation else OUTPUTS_PLAIN
        mcfg = ModelConfig(in_channels=len(bands), out_channels=len(outputs), width=cfg.width, depth=cfg.depth,
                           outputs=outputs)
        model = build_model(mcfg)
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        logger.info(
            "training on %d windows, validating on %d (tile %d px, %.3f m/px, %d bands) on %s%s",
            len(samples.train), len(samples.val), cfg.tile_size, prep.pixel_size_m, len(bands), device,
            f" x{d.world} ranks" if d.enabled else "",
        )

    model = channels_last(model.to(device))
    if device.type == "cuda" and d.enabled:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler("cuda") if needs_grad_scaler(device, cfg.amp) else None
    state = {"epoch": 0, "step": 0, "elapsed_s": 0.0, "best_iou": -1.0, "best_epoch": 0, "history": []}
    if ckpt is not None:
        ts = ckpt["train_state"]
        optimizer.load_state_dict(ts["optimizer"])
        if scaler is not None and ts.get("scaler"):
            scaler.load_state_dict(ts["scaler"])
        for k in state:
            state[k] = ts.get(k, state[k])
        if d.main:
            logger.info("resuming at epoch %d (%.1f min done)", state["epoch"] + 1, state["elapsed_s"] / 60)
    net = model
    if d.enabled:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    train_ds = WindowDataset(samples.sources, samples.train, prep, train=True, outputs=mcfg.outputs,
                             weights=cfg.weight_map)
    val_samples = samples.val[d.rank :: d.world]
    val_ds = WindowDataset(samples.sources, val_samples, prep, train=False, outputs=mcfg.outputs,
                           weights=cfg.weight_map)
    train_dl = _loader(train_ds, cfg, d, True, device, cfg.seed + state["epoch"], weights=place_weights(samples))
    val_dl = _loader(val_ds, cfg, d, False, device, cfg.seed) if len(val_ds) else None
    loss_fn = segmentation_loss(cfg.loss, weighted=cfg.weight_map)
    steps_per_epoch = len(train_dl)
    total_steps = max(1, steps_per_epoch * cfg.epochs)
    budget_s = cfg.max_minutes * 60 if cfg.max_minutes else None
    show = d.main and progress_enabled()

    t0 = time.monotonic() - state["elapsed_s"]
    val_seconds = 0.0

    def elapsed() -> float:
        return time.monotonic() - t0

    def save_last(epoch_next: int, metrics: dict[str, float] | None = None) -> None:
        extra = {
            "config": cfg.to_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "epoch": epoch_next,
            "step": state["step"],
            "elapsed_s": elapsed(),
            "best_iou": state["best_iou"],
            "best_epoch": state["best_epoch"],
            "history": state["history"],
        }
        save_checkpoint(out / "last.pt", checkpoint_dict(model, mcfg, prep, metrics=metrics, epoch=epoch_next, extra=extra))

    epoch = state["epoch"]
    try:
        while epoch < cfg.epochs:
            if budget_s is not None and elapsed() + val_seconds >= budget_s:
                break
            if d.enabled:
                train_dl.sampler.set_epoch(epoch)
            net.train()
            loss_sum = torch.zeros(2, dtype=torch.float64)
            bar = tqdm(train_dl, desc=f"epoch {epoch + 1}/{cfg.epochs}", file=sys.stderr, disable=not show, leave=False, dynamic_ncols=True,
                       mininterval=0.5 if sys.stderr.isatty() else 30)
            stop = False
            for x, y in bar:
                progress = state["step"] / total_steps
                if budget_s is not None:
                    progress = max(progress, elapsed() / budget_s)
                lr = lr_at(progress, cfg.lr)
                for g in optimizer.param_groups:
                    g["lr"] = lr
                x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
                y = y.to(device, non_blocking=True)
                with autocast(device, cfg.amp):
                    logits = net(x)
                loss = loss_fn(logits, y)
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    optimizer.step()
                state["step"] += 1
                loss_sum += torch.tensor([loss.item() * len(x), len(x)], dtype=torch.float64)
                bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.2e}", refresh=False)
                if budget_s is not None:
                    flag = torch.tensor([float(elapsed() + val_seconds >= budget_s)])
                    stop = bool(_all_sum(flag, d).item() > 0)
                    if stop:
                        break
            bar.close()
            loss_sum = _all_sum(loss_sum, d)
            train_loss = float(loss_sum[0] / max(loss_sum[1], 1))
            tv = time.monotonic()
            val_loss, metrics = _validate(net, val_dl, loss_fn, device, cfg.amp, d)
            val_seconds = time.monotonic() - tv
            epoch += 1
            row = {
                "epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                **{f"val_{k}": v for k, v in metrics.items()},
                "lr": lr_at(state["step"] / total_steps, cfg.lr) if budget_s is None else optimizer.param_groups[0]["lr"],
                "elapsed_s": round(elapsed(), 1), "train_windows": len(samples.train), "val_windows": len(samples.val),
            }
            state["history"].append(row)
            if d.main:
                ckpt_metrics = {**{f"val_{k}": v for k, v in metrics.items()}, "val_loss": val_loss, "train_loss": train_loss, "epoch": epoch}
                if metrics["iou"] > state["best_iou"]:
                    state["best_iou"], state["best_epoch"] = metrics["iou"], epoch
                    save_checkpoint(out / "best.pt", checkpoint_dict(model, mcfg, prep, metrics=ckpt_metrics, epoch=epoch))
                save_last(epoch, ckpt_metrics)
                _write_metrics_csv(state["history"], out / "metrics.csv")
                plot_curves(state["history"], out / "curves.png")
                logger.info(
                    "epoch %d/%d  loss %.4f  val_loss %.4f  IoU %.4f  P %.3f  R %.3f  F1 %.3f  (%.1f min)",
                    epoch, cfg.epochs, train_loss, val_loss, metrics["iou"], metrics["precision"],
                    metrics["recall"], metrics["f1"], elapsed() / 60,
                )
            if d.enabled:
                dist.barrier()
            if stop:
                break
    except KeyboardInterrupt:
        if d.main:
            save_last(epoch)
            logger.warning("interrupted: resumable checkpoint saved to %s (continue with --resume)", out / "last.pt")
        raise
    return TrainResult(state["best_iou"], state["best_epoch"], epoch, state["history"])


@torch.no_grad()
def _validate(net, loader, loss_fn, device: torch.device, amp: bool, d: _Dist) -> tuple[float, dict[str, float]]:
    """Validation loss and pixel scores, summed over all ranks' shards."""
    net.eval()
    counts = torch.zeros(4, dtype=torch.float64)
    loss_sum = torch.zeros(2, dtype=torch.float64)
    model = net.module if isinstance(net, torch.nn.parallel.DistributedDataParallel) else net
    if loader is not None:
        for x, y in loader:
            x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            y = y.to(device, non_blocking=True)
            with autocast(device, amp):
                logits = model(x)
            logits = logits.float()
            loss_sum += torch.tensor([loss_fn(logits, y).item() * len(x), len(x)], dtype=torch.float64)
            counts += confusion(logits, y).cpu()
    counts = _all_sum(counts, d)
    loss_sum = _all_sum(loss_sum, d)
    return float(loss_sum[0] / max(loss_sum[1], 1)), scores(counts)
