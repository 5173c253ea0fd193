"""A whole predict run: :func:`predict` (a :class:`PredictConfig` to files), input by input.

The order keeps every failure cheap and every folder clean: outputs are planned and checked
(:mod:`.plan`), the model is loaded and every input opened and checked before any work starts;
output folders are created only then (and removed again if nothing was written to them); then
each raster runs through
:func:`~geounet.predict.driver.predict_raster`. A rank of a sharded run (``torchrun``,
:mod:`.shard`) does the same with its share of the inputs, and leaves the output folders it made
even when empty, as another rank may be about to write into them.

With several inputs a batch goes on when one of them fails (a corrupt raster, a full disk):
the failure is logged as one ``Error:`` line naming the file, recorded in the result
(:attr:`RasterResult.error`), and the other inputs are done; the command exits non-zero at the
end. A failed input writes nothing, so re-running the same command redoes exactly the inputs
that failed. With one input its error is raised. Ctrl-C stops the whole batch.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import torch

from ..config import CheckpointInfo
from ..device import cudnn_autotune, resolve_device, torch_threads
from ..errors import GeounetError
from ..io.mosaic import open_input
from ..io.raster import gdal_env
from ..log import logger, prefixed
from ..model.inference import to_channels_last
from .driver import PredictResult, RasterResult, _load_model, predict_raster
from .existing import ExistingBuildings
from .plan import RasterJob, folders_to_create, name_jobs, prepare_jobs
from .resolve import check_polygon_settings, check_raster, resolve_options, with_bands
from .settings import PredictConfig
from .shard import Shard

__all__ = ["predict"]

T = TypeVar("T")


def _skipped(jobs: list[RasterJob]) -> list[RasterResult]:
    out = []
    for j in jobs:
        if j.skip:
            logger.info("skipping %s: %s exists (use --overwrite to redo it)", j.input, j.output)
            out.append(RasterResult(input=j.input, output=j.output, probs=j.probs, skipped=True))
    return out


def _attempt(result: PredictResult, job: RasterJob, batch: bool, work: Callable[[], T]) -> tuple[bool, T | None]:
    """``(True, work())``; in a batch, a :class:`GeounetError` is logged, recorded and gives ``(False, None)``."""
    try:
        return True, work()
    except GeounetError as exc:
        if not batch:
            raise
        logger.error("Error: %s", exc)
        result.rasters.append(RasterResult(input=job.input, output=job.output, probs=job.probs, error=str(exc)))
        return False, None


def _check_input(job: RasterJob, info: CheckpointInfo, input_range) -> None:
    with open_input(job.input) as src:
        check_raster(src, info, str(job.input), input_range)


def _make_folders(folders: list[Path]) -> list[Path]:
    made = []
    for folder in folders:
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            _remove_empty(made)
            raise GeounetError(f"cannot create output folder ({exc.strerror or exc})", folder) from None
        made.append(folder)
    return made


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders this run made that are still empty (innermost first)."""
    for folder in reversed(folders):
        try:
            os.rmdir(folder)
        except OSError:
            pass


def predict(config: PredictConfig, *, model: tuple[torch.nn.Module, CheckpointInfo] | None = None,
            shard: Shard | None = None) -> PredictResult:
    """Predict building footprints for every input of ``config``; see ``geounet predict --help``.

    ``model`` (a module and its :class:`CheckpointInfo`) replaces loading ``config.model_path``.
    With several inputs, one that fails is recorded in the result (``result.failed``) and the
    others go on; with one input its error is raised. ``shard``: this process is one of several
    (``torchrun``; :class:`~geounet.predict.shard.Shard`): it does only its share of the inputs, on its
    own GPU or its share of the CPU cores, and its log lines start with ``[rank R/W]``; default: one
    process doing every input.
    """
    shard = shard or Shard()
    with prefixed(f"[{shard.label}] " if shard.enabled else None):
        return _predict(config, model, shard)


def _share(config: PredictConfig, shard: Shard) -> tuple[list[RasterJob], bool]:
    """This rank's jobs, prepared (:func:`prepare_jobs`), and whether the run is a batch (several inputs:
    a failed one is recorded and the others go on)."""
    jobs = name_jobs(config)
    batch = len(jobs) > 1
    if shard.enabled:
        mine = shard.take(jobs)
        if not batch and mine:
            logger.warning("one output file (%s): this rank predicts it alone, the other %d have nothing to do "
                           "(with -o a folder, the ranks share the inputs)", jobs[0].output, shard.world - 1)
        elif not batch:
            logger.info("nothing to do: the one output file %s is written by rank 0", jobs[0].output)
        else:
            logger.info("%d of the %d inputs (round-robin: input %d and every %d after it)", len(mine), len(jobs),
                        shard.rank + 1, shard.world)
        jobs = mine
    return prepare_jobs(config, jobs), batch


def _device(config: PredictConfig, shard: Shard) -> tuple[torch.device, int | None]:
    """This rank's device, and its torch CPU threads (None: unchanged)."""
    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    device = resolve_device(shard.device_name(config.device, cuda))
    return device, shard.cpu_threads() if device.type == "cpu" else None


def _predict(config: PredictConfig, model: tuple[torch.nn.Module, CheckpointInfo] | None,
             shard: Shard) -> PredictResult:
    check_polygon_settings(config)
    jobs, batch = _share(config, shard)
    result = PredictResult(rasters=_skipped(jobs))
    todo = [j for j in jobs if not j.skip]
    if not todo:
        return result
    device, threads = _device(config, shard)
    net, info = _load_model(config, model, device)
    info = with_bands(info, config.bands)  # --bands: which raster bands feed the model's channels
    options = resolve_options(config, info, device)
    if shard.local_world > 1:  # the bar would overwrite the log lines of the other processes on this terminal
        options = replace(options, progress=False)
    net = to_channels_last(net)
    # refuse unusable inputs before spending time on any of them
    todo = [j for j in todo if _attempt(result, j, batch, lambda j=j: _check_input(j, info, options.input_range))[0]]
    if not todo:
        return result
    logger.info(
        "model %s (width %d, depth %d); windows %d px, overlap %d, batch %d on %s%s%s",
        info.path or "(given)", info.model.width, info.model.depth, options.tile, options.overlap,
        options.batch_size, device, f" ({threads} thread{'s' if threads > 1 else ''})" if threads else "",
        ", autocast" if options.amp else "",
    )
    if config.tta:
        logger.info("test-time augmentation: 8 views per window")
    existing = None if config.existing is None else ExistingBuildings.over_rasters(
        config.existing, [j.input for j in todo], config.match_iou, config.match_cover)
    made = _make_folders(folders_to_create(todo))
    try:
        # each restored after the run: GDAL's cache, cuDNN's autotuner, torch's threads, CUDA's current device
        with gdal_env(options.gdal_cache_mb), cudnn_autotune(device), torch_threads(threads), _current(device):
            for j in todo:
                ok, r = _attempt(result, j, batch, lambda j=j: predict_raster(
                    net, info, j.input, j.output, options, probs=j.probs, device=device, existing=existing,
                    preview=j.preview))
                if ok:
                    _log_done(j, r, existing is not None)
                    result.rasters.append(r)
    finally:
        if not shard.enabled:  # another rank may be about to write into a folder that is empty now
            _remove_empty(made)
    return result


def _current(device: torch.device):
    """CUDA's current device for the block: this rank's GPU (what torch allocates without naming one)."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def _log_done(j: RasterJob, r: RasterResult, existing: bool) -> None:
    mpx = r.pixels / 1e6
    logger.info(
        "%s: %d buildings%s -> %s (%.1f Mpx in %.1f s, %.2f Mpx/s; %d of %d windows run; "
        "model %.0f%% of the time)", j.input, r.n_polygons,
        f" ({r.n_new} new, {r.n_mapped} mapped)" if existing else "", j.output, mpx, r.seconds,
        mpx / max(r.seconds, 1e-9), r.windows_run, r.windows, 100.0 * r.model_seconds / max(r.seconds, 1e-9),
    )
