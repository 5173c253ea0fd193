"""A whole predict run: :func:`predict` (a :class:`PredictConfig` to files), input by input.

The order keeps every failure cheap and every folder clean: outputs are planned and checked
(:mod:`.plan`), the model is loaded and every input opened and checked before any work starts;
output folders are created only then (and removed again if nothing was written to them); then
each raster runs through
:func:`~geounet.predict.driver.predict_raster`.

With several inputs a batch goes on when one of them fails (a corrupt raster, a full disk):
the failure is logged as one ``Error:`` line naming the file, recorded in the result
(:attr:`RasterResult.error`), and the other inputs are done; the command exits non-zero at the
end. A failed input writes nothing, so re-running the same command redoes exactly the inputs
that failed. With one input its error is raised. Ctrl-C stops the whole batch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

from ..config import CheckpointInfo
from ..device import cudnn_autotune, resolve_device
from ..errors import GeounetError
from ..io.mosaic import open_input
from ..io.raster import gdal_env
from ..log import logger
from .driver import PredictResult, RasterResult, _load_model, _prepare, predict_raster
from .existing import ExistingBuildings
from .plan import RasterJob, folders_to_create, plan_jobs
from .resolve import check_polygon_settings, check_raster, resolve_options
from .settings import PredictConfig

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


def _check_input(job: RasterJob, info: CheckpointInfo) -> None:
    with open_input(job.input) as src:
        check_raster(src, info, str(job.input))


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


def predict(config: PredictConfig, *, model: tuple[torch.nn.Module, CheckpointInfo] | None = None) -> PredictResult:
    """Predict building footprints for every input of ``config``; see ``geounet predict --help``.

    ``model`` (a module and its :class:`CheckpointInfo`) replaces loading ``config.model_path``.
    With several inputs, one that fails is recorded in the result (``result.failed``) and the
    others go on; with one input its error is raised.
    """
    check_polygon_settings(config)
    jobs = plan_jobs(config)
    result = PredictResult(rasters=_skipped(jobs))
    todo = [j for j in jobs if not j.skip]
    if not todo:
        return result
    batch = len(jobs) > 1
    device = resolve_device(config.device)
    net, info = _load_model(config, model, device)
    options = resolve_options(config, info, device)
    net = _prepare(net)
    # refuse unusable inputs before spending time on any of them
    todo = [j for j in todo if _attempt(result, j, batch, lambda j=j: _check_input(j, info))[0]]
    if not todo:
        return result
    logger.info(
        "model %s (width %d, depth %d); windows %d px, overlap %d, batch %d on %s%s",
        info.path or "(given)", info.model.width, info.model.depth, options.tile, options.overlap,
        options.batch_size, device, ", autocast" if options.amp else "",
    )
    if config.tta:
        logger.info("test-time augmentation: 8 views per window")
    existing = None if config.existing is None else ExistingBuildings.over_rasters(
        config.existing, [j.input for j in todo], config.match_iou, config.match_cover)
    made = _make_folders(folders_to_create(todo))
    try:
        with gdal_env(options.gdal_cache_mb), cudnn_autotune(device):  # both restored after the run
            for j in todo:
                ok, r = _attempt(result, j, batch, lambda j=j: predict_raster(
                    net, info, j.input, j.output, options, probs=j.probs, device=device, existing=existing,
                    preview=j.preview))
                if not ok:
                    continue
                mpx = r.pixels / 1e6
                logger.info(
                    "%s: %d buildings%s -> %s (%.1f Mpx in %.1f s, %.2f Mpx/s; %d of %d windows run; "
                    "model %.0f%% of the time)", j.input, r.n_polygons,
                    f" ({r.n_new} new, {r.n_mapped} mapped)" if existing else "", j.output, mpx, r.seconds,
                    mpx / max(r.seconds, 1e-9), r.windows_run, r.windows, 100.0 * r.model_seconds / max(r.seconds, 1e-9),
                )
                result.rasters.append(r)
    finally:
        _remove_empty(made)
    return result
