"""Streaming sliding-window inference: raster -> windows -> model -> stitched strips -> polygons -> file.

The public API (everything ``from geounet.predict import ...`` gave before this became a package):

* :func:`predict` runs a :class:`PredictConfig` (``geounet predict``) and returns a :class:`PredictResult`;
* :func:`predict_raster` runs any model over one raster with resolved :class:`RunOptions` and
  returns a :class:`RasterResult`;
* :func:`default_tile_size`, :func:`default_overlap`, :func:`default_batch_size`, and the
  checks and resolution steps (:func:`resolve_options`, :func:`vectorize_options`, ...).

Modules, each one job, imported in this order (nothing here imports :mod:`geounet.cli`):

* :mod:`.settings`: every setting once, as a field with its default and doc (light: the CLI
  reads its defaults from it, so it imports neither torch nor GDAL);
* :mod:`.resolve`: checks, option resolution, metres to pixels for the vectoriser;
* :mod:`.plan`: which file each input writes, which inputs are skipped;
* :mod:`.stitch`: blending overlapping windows into rows, exactly;
* :mod:`.pipeline`: the reader and writer threads and their typed messages;
* :mod:`.driver`: :func:`predict_raster` (one raster);
* :mod:`.batch`: :func:`predict` (every input; a batch goes on past an input that fails).

The window and column-band arithmetic is :mod:`geounet.grid`, files are :mod:`geounet.io`.
The names from the modules that import torch, rasterio or the vectoriser are loaded on first
use (PEP 562), so ``import geounet.predict.settings`` (and ``geounet --help``) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .settings import (InferenceSettings, OutputSettings, PolygonSettings, PredictConfig, ReadSettings, RunOptions,
                       SeparationSettings, WindowSettings, default_batch_size, default_overlap, default_tile_size)

if TYPE_CHECKING:
    from .batch import predict
    from .driver import PredictResult, RasterResult, predict_raster
    from .plan import RasterJob, plan_jobs
    from .resolve import (check_model, check_raster, parse_pixel_size, resolve_options, separation_channels,
                          target_pixel_size, vectorize_options)

_LAZY = {
    "predict": "batch", "predict_raster": "driver", "PredictResult": "driver", "RasterResult": "driver",
    "RasterJob": "plan", "plan_jobs": "plan",
    "check_model": "resolve", "check_raster": "resolve", "parse_pixel_size": "resolve", "resolve_options": "resolve",
    "separation_channels": "resolve", "target_pixel_size": "resolve", "vectorize_options": "resolve",
}

__all__ = [
    "PredictConfig", "PredictResult", "RasterResult", "RunOptions", "predict", "predict_raster",
    "default_tile_size", "default_overlap", "default_batch_size",
    "WindowSettings", "PolygonSettings", "SeparationSettings", "ReadSettings", "OutputSettings", "InferenceSettings",
    "RasterJob", "plan_jobs", "check_model", "check_raster", "parse_pixel_size", "resolve_options",
    "separation_channels", "target_pixel_size", "vectorize_options",
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
