"""Test-time adaptation (``predict --adapt``): the model's BatchNorm statistics re-estimated on the
raster at hand, before predicting it.

Why: each BatchNorm layer normalises its channels with the mean and variance it saw in training.
Imagery from a camera the model never saw (other colours, contrast, haze, compression) shifts
those statistics, and every later layer then reads inputs off their trained range. Replacing the
stored statistics with the target raster's (AdaBN, Li et al. 2016) needs forward passes only: no
labels, no gradients, seconds on a CPU.

How, streaming and deterministic: windows of the prediction's size spread evenly over the raster
(:func:`geounet.grid.spread_windows`, the same raster gives the same windows) are read one at a
time, through the same normalisation as prediction, at the pixel size prediction reads; windows
with any no-data pixel are passed over, so fill values never enter the statistics. Each layer's
statistics are the plain mean over the batches (BatchNorm momentum None), not a running average,
so the result does not depend on the order of windows. The model given is left as it is: a copy
is adapted and used for this raster only.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from rasterio.windows import Window

from ..config import CheckpointInfo
from ..grid import spread_windows
from ..io.raster import has_validity_mask, read_valid_mask
from ..io.stretch import InputStretch
from ..log import logger
from .pipeline import Normaliser
from .settings import RunOptions

ADAPT_BATCH = 4  # windows per forward pass: each pass's batch statistics come from this many windows
CANDIDATES_PER_WINDOW = 4  # windows looked at (validity only) for each one used
MIN_ADAPT_TILE = 128  # smaller windows give the deepest layers too little context to be like prediction


def batchnorm_layers(model: torch.nn.Module) -> list[torch.nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def sample_valid_windows(src, tile: int, count: int):
    """Yield ``(window)`` for up to ``count`` fully valid ``tile`` x ``tile`` windows spread over ``src``."""
    per_side = math.ceil(math.sqrt(count * CANDIDATES_PER_WINDOW))
    masked = has_validity_mask(src)
    found = 0
    for r, c in spread_windows(src.height, src.width, tile, per_side):
        win = Window(c, r, tile, tile)
        if masked and not read_valid_mask(src, win).all():
            continue
        yield win
        found += 1
        if found == count:
            return


def sample_size(src, tile: int, count: int, multiple: int) -> tuple[int, list[Window]]:
    """The window side and the windows to adapt on: ``count`` fully valid windows of ``tile`` px, or,
    where no-data leaves too few of them (an orthophoto's ragged edge), windows of half or a quarter
    the side, four or sixteen times as many, so the sample keeps about the same number of pixels.

    Accepted when the windows found cover at least a quarter of the pixels asked for; the largest
    side that reaches it wins (more context per window, as in prediction).
    """
    best: tuple[int, list[Window]] = (0, [])
    side = min(tile, src.height // multiple * multiple, src.width // multiple * multiple)
    for shrink in (1, 2, 4):
        t = side // shrink // multiple * multiple
        if t < multiple or (shrink > 1 and t < MIN_ADAPT_TILE):
            break
        wins = list(sample_valid_windows(src, t, count * shrink * shrink))
        if len(wins) * t * t >= count * side * side / 4:
            return t, wins
        if len(wins) * t * t > len(best[1]) * best[0] ** 2:
            best = (t, wins)
    return best


def adapted(model: torch.nn.Module, src, info: CheckpointInfo, options: RunOptions,
            device: torch.device, name: str | None = None, stretch: InputStretch | None = None) -> torch.nn.Module:
    """A copy of ``model`` whose BatchNorm statistics are those of ``src``'s windows (see the module doc);
    ``model`` itself when the raster offers no fully valid window or the model has no BatchNorm.
    ``name`` names the raster in the log (``src`` may be a resampling VRT)."""
    if not batchnorm_layers(model):
        return model
    name = name or src.name
    tile, windows = sample_size(src, options.tile, options.adapt_windows, info.model.multiple)
    if not windows:
        logger.warning("%s: no window without no-data to adapt to; using the model as trained", name)
        return model
    prep = info.preprocessing
    normalise = Normaliser(prep, stretch)  # prediction's own: stretched, clipped, scaled, standardised
    net = copy.deepcopy(model)
    layers = batchnorm_layers(net)
    for bn in layers:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative mean over the batches: independent of their order
    net.train()
    with torch.no_grad():
        for k in range(0, len(windows), ADAPT_BATCH):
            x = np.stack([normalise(src.read(list(prep.bands), window=w)) for w in windows[k : k + ADAPT_BATCH]])
            net(torch.from_numpy(x).to(device).contiguous(memory_format=torch.channels_last))  # fp32 statistics
    net.eval()
    logger.info("%s: adapted BatchNorm statistics of %d layers to %d windows of %d px", name, len(layers),
                len(windows), tile)
    return net
