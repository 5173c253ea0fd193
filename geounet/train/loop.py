"""The training loop, read top to bottom: set-up, then epochs of training steps, validation and
checkpoints. AdamW with a cosine schedule over the run's budget, mixed precision, best/last
checkpoints, resume, Ctrl-C safety and DistributedDataParallel (:mod:`.ddp`).

The set-up's order keeps an old run safe: options and the run folder are checked (nothing
deleted), the inputs read and checked, the model built or resumed, and only then is the run
folder prepared (:mod:`.rundir`), so a bad input never costs an ``--overwrite``'d run its files.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from ..model.checkpoint import checkpoint_dict, model_from_checkpoint, save_checkpoint
from ..config import ModelConfig, Preprocessing
from ..device import autocast, channels_last, needs_grad_scaler, private_rng, resolve_device
from ..log import logger, progress_enabled
from ..metrics import scores
from ..model import build_model
from ..errors import ConfigError, InputError
from .config import TrainConfig, TrainResult, reference_pixel_size
from .init import freeze_encoder, hold_frozen_statistics, init_preprocessing, read_init, stretch_sources
from .dataset import WindowDataset, batches, compute_stats, make_loader
from .ddp import Dist, all_sum, any_rank, barrier, close_distributed, init_distributed, unwrap, wrap
from .ema import weight_average
from .losses import confusion, segmentation_loss
from .mixstyle import MixStyleHooks
from .rundir import RunState, check_run_folder, prepare_run_folder, restore, resume_config, train_state, write_history
from .samples import SampleSet, load_samples, place_weights
from .targets import OUTPUTS_PLAIN, OUTPUTS_SEPARATION

WARMUP = 0.05
MIN_LR_FRACTION = 0.02


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


@dataclass
class Run:
    """What the set-up builds and every step uses (a nanoGPT script keeps these as globals)."""

    cfg: TrainConfig
    d: Dist
    device: torch.device
    out: Path
    model: torch.nn.Module  # the bare model: what checkpoints hold
    net: torch.nn.Module  # the model as trained: wrapped in DDP when distributed
    mcfg: ModelConfig
    prep: Preprocessing
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    train_dl: torch.utils.data.DataLoader
    val_dl: torch.utils.data.DataLoader | None
    samples: SampleSet
    state: RunState
    t0: float  # monotonic clock at the run's start, earlier sessions' time included
    val_seconds: float = 0.0  # the last epoch's validation (both models with --ema): the time budget keeps room for it
    init: dict | None = None  # what an --init run started from: every checkpoint records it
    ema: torch.optim.swa_utils.AveragedModel | None = None  # --ema: the average, validated and saved as best.pt

    @property
    def total_steps(self) -> int:
        return max(1, len(self.train_dl) * self.cfg.epochs)

    @property
    def budget_s(self) -> float | None:
        return self.cfg.max_minutes * 60 if self.cfg.max_minutes else None

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    @property
    def validated(self) -> bool:
        """Whether the run has validation windows (``--val-fraction 0`` without ``--val-raster``: none)."""
        return bool(self.samples.val)

    def out_of_time(self) -> bool:
        return self.budget_s is not None and self.elapsed() + self.val_seconds >= self.budget_s


def train(cfg: TrainConfig) -> TrainResult:
    """Train a U-Net as ``cfg`` says, writing best.pt, last.pt, metrics.csv and curves.png to ``cfg.out_dir``."""
    d = init_distributed(cfg.device)
    level = logger.level
    if not d.main:
        logger.setLevel(logging.WARNING)  # rank 0 speaks for the run
    try:
        with private_rng():  # the run seeds its own generator; the caller's is restored after
            return _train(setup(cfg, d))
    finally:
        logger.setLevel(level)
        close_distributed(d)


def _train(run: Run) -> TrainResult:
    st = run.state
    try:
        while st.epoch < run.cfg.epochs and not run.out_of_time():
            train_loss, stop = train_epoch(run)
            started = time.monotonic()
            val_loss, metrics = validate(run, run.ema.module if run.ema else None)
            raw = validate(run)[1] if run.ema else None  # the trained weights too: one run compares both
            run.val_seconds = time.monotonic() - started  # the time budget keeps room for the validation
            st.epoch += 1
            end_epoch(run, train_loss, val_loss, metrics, raw)
            if stop:
                break
    except KeyboardInterrupt:
        if run.d.main:
            save_last(run)
            logger.warning("interrupted: resumable checkpoint saved to %s (continue with --resume)", run.out / "last.pt")
        raise
    except InputError as exc:  # a window that cannot be read (a corrupt block): one line, and the run kept
        if not run.d.main:
            raise
        save_last(run)
        raise InputError(f"{exc.args[0]}; the run so far is in {run.out / 'last.pt'} (fix the file, then "
                         "continue with --resume)", exc.path) from None
    if not run.validated:
        return TrainResult(math.nan, st.epoch, st.epoch, st.history, validated=False, main=run.d.main)
    return TrainResult(st.best_iou, st.best_epoch, st.epoch, st.history, main=run.d.main)


# ---------------------------------------------------------------- set-up


def setup(cfg: TrainConfig, d: Dist) -> Run:
    """Check, load, build, and only then prepare the run folder (see the module docstring)."""
    if d.main:
        check_run_folder(cfg)
    ckpt = init = None
    if cfg.resume:
        if cfg.init:
            raise ConfigError("--resume continues the run from its last.pt: leave out --init")
        cfg, ckpt = resume_config(cfg)
    cfg.validate()
    if cfg.init and ckpt is None:
        init = read_init(cfg)  # fills width, depth, bands, pixel size from the checkpoint
    cfg.fill_defaults()
    cfg.validate()  # again, with the depth the checkpoint gave
    device = resolve_device(cfg.device)
    if device.type == "cuda" and d.enabled:
        device = torch.device("cuda", d.local_rank)
    torch.default_generator.manual_seed(cfg.seed + d.rank)  # inside train's private_rng

    samples, bands = load_samples(cfg)
    if ckpt is not None:
        model, info = model_from_checkpoint(ckpt)
        mcfg, prep, provenance = info.model, info.preprocessing, ckpt.get("init")
    elif init is not None:
        model, info = model_from_checkpoint(init.ckpt, init.info.path)
        mcfg, provenance = info.model, init.provenance()
        prep = init_preprocessing(init, cfg, len(bands))
    else:
        model, mcfg, prep = new_model(cfg, samples, bands)
        provenance = None
    stretch_sources(samples.sources, prep)  # fine-tuning on another data type (also when resumed)
    if cfg.freeze_encoder:
        freeze_encoder(model)
    if cfg.mixstyle > 0:
        MixStyleHooks(model, cfg.mixstyle)  # training mode only: validation and the checkpoints are untouched
    if d.main:
        prepare_run_folder(cfg)
        logger.info(
            "training on %d windows, validating on %d (tile %d px, %.3f m/px, %d bands) on %s%s",
            len(samples.train), len(samples.val), cfg.tile_size, prep.pixel_size_m, len(bands), device,
            f" x{d.world} ranks" if d.enabled else "",
        )

    model = channels_last(model.to(device))
    if device.type == "cuda" and d.enabled:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                                  weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler("cuda") if needs_grad_scaler(device, cfg.amp) else None
    state = RunState()
    if ckpt is not None:
        state = restore(ckpt, optimizer, scaler)
        if d.main:
            logger.info("resuming at epoch %d (%.1f min done)", state.epoch + 1, state.elapsed_s / 60)
    net = wrap(model, device, d)
    ema = None
    if cfg.ema:  # after channels_last and the device: the average is a copy of the model as trained
        ema = weight_average(model, cfg.ema, ckpt["train_state"].get("ema") if ckpt is not None else None)

    train_ds = WindowDataset(samples.sources, samples.train, prep, train=True, outputs=mcfg.outputs,
                             weights=cfg.weight_map, seed=cfg.seed + state.epoch + d.rank,
                             photometric=cfg.photometric)
    val_ds = WindowDataset(samples.sources, samples.val[d.rank :: d.world], prep, train=False,
                           outputs=mcfg.outputs, weights=cfg.weight_map)
    train_dl = make_loader(train_ds, cfg, d, True, device, cfg.seed + state.epoch,
                           weights=place_weights(samples, cfg.place_balance))
    val_dl = make_loader(val_ds, cfg, d, False, device, cfg.seed) if len(val_ds) else None
    loss_fn = segmentation_loss(cfg.loss, weighted=cfg.weight_map)
    return Run(cfg, d, device, Path(cfg.out_dir), model, net, mcfg, prep, optimizer, scaler, loss_fn,
               train_dl, val_dl, samples, state, t0=time.monotonic() - state.elapsed_s, init=provenance, ema=ema)


def new_model(cfg: TrainConfig, samples: SampleSet, bands: tuple[int, ...]
              ) -> tuple[torch.nn.Module, ModelConfig, Preprocessing]:
    """A fresh U-Net and its preprocessing, normalised by statistics of the training windows."""
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
    return build_model(mcfg), mcfg, prep


# ---------------------------------------------------------------- step


def train_epoch(run: Run) -> tuple[float, bool]:
    """One pass over this rank's training windows: (mean loss over all ranks, whether time ran out)."""
    if run.d.enabled:
        run.train_dl.sampler.set_epoch(run.state.epoch)
    run.net.train()
    if run.cfg.freeze_encoder:
        hold_frozen_statistics(run.model)
    loss_sum = torch.zeros(2, dtype=torch.float64)
    bar = tqdm(run.train_dl, desc=f"epoch {run.state.epoch + 1}/{run.cfg.epochs}", file=sys.stderr,
               disable=not (run.d.main and progress_enabled()), leave=False, dynamic_ncols=True,
               mininterval=0.5 if sys.stderr.isatty() else 30)
    stop = False
    for x, y in batches(bar):
        loss, lr = train_step(run, x, y)
        loss_sum += torch.tensor([loss * len(x), len(x)], dtype=torch.float64)
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", refresh=False)
        if run.budget_s is not None:
            stop = any_rank(run.out_of_time(), run.d)
            if stop:
                break
    bar.close()
    loss_sum = all_sum(loss_sum, run.d)
    return float(loss_sum[0] / max(loss_sum[1], 1)), stop


def train_step(run: Run, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """One optimizer step at the scheduled learning rate; returns (loss, learning rate)."""
    progress = run.state.step / run.total_steps
    if run.budget_s is not None:
        progress = max(progress, run.elapsed() / run.budget_s)
    lr = lr_at(progress, run.cfg.lr)
    for g in run.optimizer.param_groups:
        g["lr"] = lr
    x = x.to(run.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
    y = y.to(run.device, non_blocking=True)
    with autocast(run.device, run.cfg.amp):
        logits = run.net(x)
    loss = run.loss_fn(logits, y)
    run.optimizer.zero_grad(set_to_none=True)
    if run.scaler is not None:
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        loss.backward()
        run.optimizer.step()
    if run.ema is not None:
        run.ema.update_parameters(run.model)
    run.state.step += 1
    return loss.item(), lr


# ---------------------------------------------------------------- validate


@torch.no_grad()
def validate(run: Run, model: torch.nn.Module | None = None) -> tuple[float, dict[str, float]]:
    """Validation loss and pixel scores of ``model`` (default: the model as trained), summed over all ranks'
    shards; NaN without validation windows."""
    if not run.validated:
        return math.nan, {k: math.nan for k in ("iou", "precision", "recall", "f1")}
    run.net.eval()
    model = unwrap(run.net) if model is None else model
    counts = torch.zeros(4, dtype=torch.float64)
    loss_sum = torch.zeros(2, dtype=torch.float64)
    for x, y in batches(run.val_dl or ()):
        x = x.to(run.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        y = y.to(run.device, non_blocking=True)
        with autocast(run.device, run.cfg.amp):
            logits = model(x)
        logits = logits.float()
        loss_sum += torch.tensor([run.loss_fn(logits, y).item() * len(x), len(x)], dtype=torch.float64)
        counts += confusion(logits, y).cpu()
    counts = all_sum(counts, run.d)
    loss_sum = all_sum(loss_sum, run.d)
    return float(loss_sum[0] / max(loss_sum[1], 1)), scores(counts)


# ---------------------------------------------------------------- checkpoint


def end_epoch(run: Run, train_loss: float, val_loss: float, metrics: dict[str, float],
              raw: dict[str, float] | None = None) -> None:
    """Record the epoch just done; rank 0 saves best.pt (on a better IoU; without validation, every
    epoch: the last model), last.pt, metrics.csv and curves.png, and logs a line. With ``--ema``,
    ``metrics`` are the average's and ``raw`` the trained weights' (best_raw.pt on a better IoU)."""
    st, cfg = run.state, run.cfg
    val = {f"val_{k}": v for k, v in metrics.items()}
    if raw is not None:
        val["raw_val_iou"] = raw["iou"]
    st.history.append({
        "epoch": st.epoch, "train_loss": train_loss, "val_loss": val_loss, **val,
        "lr": lr_at(st.step / run.total_steps, cfg.lr) if run.budget_s is None else run.optimizer.param_groups[0]["lr"],
        "elapsed_s": round(run.elapsed(), 1), "train_windows": len(run.samples.train),
        "val_windows": len(run.samples.val),
    })
    if run.d.main:
        ckpt_metrics = {"train_loss": train_loss, "epoch": st.epoch}
        if run.validated:
            ckpt_metrics.update(val, val_loss=val_loss)
        if not run.validated or metrics["iou"] > st.best_iou:
            if run.validated:
                st.best_iou, st.best_epoch = metrics["iou"], st.epoch
            save_checkpoint(run.out / "best.pt",
                            checkpoint_dict(run.ema.module if run.ema else run.model, run.mcfg, run.prep,
                                            metrics=ckpt_metrics, epoch=st.epoch, init=run.init))
        if raw is not None and run.validated and raw["iou"] > st.best_raw_iou:
            st.best_raw_iou = raw["iou"]
            save_checkpoint(run.out / "best_raw.pt", checkpoint_dict(run.model, run.mcfg, run.prep, epoch=st.epoch,
                                                                     metrics=dict(ckpt_metrics, val_iou=raw["iou"]),
                                                                     init=run.init))
        save_last(run, ckpt_metrics)
        write_history(st.history, run.out)
        _log_epoch(run, train_loss, val_loss, metrics)
    barrier(run.d)


def _log_epoch(run: Run, train_loss: float, val_loss: float, metrics: dict[str, float]) -> None:
    st, minutes = run.state, run.elapsed() / 60
    if not run.validated:
        logger.info("epoch %d/%d  loss %.4f  (no validation set; %.1f min)", st.epoch, run.cfg.epochs, train_loss,
                    minutes)
        return
    logger.info(
        "epoch %d/%d  loss %.4f  val_loss %.4f  IoU %.4f  P %.3f  R %.3f  F1 %.3f  (%.1f min)",
        st.epoch, run.cfg.epochs, train_loss, val_loss, metrics["iou"], metrics["precision"],
        metrics["recall"], metrics["f1"], minutes,
    )


def save_last(run: Run, metrics: dict[str, float] | None = None) -> None:
    """last.pt: the model after ``run.state.epoch`` epochs and all it takes to resume from there."""
    extra = train_state(run.cfg, run.optimizer, run.scaler, run.state, run.elapsed())
    if run.ema is not None:
        extra["ema"] = {k: v.detach().cpu() for k, v in run.ema.state_dict().items()}
    save_checkpoint(run.out / "last.pt",
                    checkpoint_dict(run.model, run.mcfg, run.prep, metrics=metrics, epoch=run.state.epoch, extra=extra,
                                    init=run.init))
