"""Checks and option resolution: from a :class:`PredictConfig` and a model to the numbers one run uses.

* :func:`check_model` and :func:`check_raster` refuse a checkpoint or a raster predict cannot use;
* :func:`resolve_options` fills in the defaults that depend on the model or the device and
  refuses values that do not fit them (:class:`RunOptions`);
* :func:`separation_channels` decides whether to split touching buildings and which model
  outputs to carry;
* :func:`target_pixel_size` decides the pixel size to predict at;
* :func:`vectorize_options` turns the settings in metres into pixels of one raster.
"""

from __future__ import annotations

import os
from dataclasses import fields, replace

import rasterio
import torch
from rasterio.enums import ColorInterp

from ..config import CheckpointInfo
from ..errors import CheckpointError, ConfigError
from ..grid import area_px, length_px
from ..io.raster import check_bands, ground_pixel_xy, pixel_size_m
from ..io.stretch import check_data_type, parse_input_range
from ..log import logger, progress_enabled
from ..vectorize import VectorizeOptions
from .settings import PredictConfig, RunOptions, VectorizeConfig, default_batch_size, default_overlap, default_tile_size

__all__ = ["check_model", "check_raster", "resolve_options", "parse_pixel_size", "separation_channels", "channels_for",
           "check_polygon_settings",
           "target_pixel_size", "vectorize_options"]

_RESOLVED = {"tile", "overlap", "batch_size", "progress"}  # RunOptions fields that resolve_options computes


def resolve_options(config: PredictConfig, info: CheckpointInfo, device: torch.device) -> RunOptions:
    """Fill in the defaults and refuse a tile size or overlap that does not fit the model."""
    m = info.model.multiple
    tile = int(config.tile_size) if config.tile_size is not None else default_tile_size(info, config.min_tile)
    if tile < m or tile % m:
        raise ConfigError(f"--tile-size {tile} must be a positive multiple of {m} (2**depth of this model)", info.path)
    overlap = int(config.overlap) if config.overlap is not None else default_overlap(tile, m, config.max_overlap)
    if not 0 <= overlap < tile or overlap % m:
        raise ConfigError(
            f"--overlap {overlap} must be a multiple of {m} (2**depth of this model) from 0 to below the tile size {tile}",
            info.path,
        )
    check_polygon_settings(config)
    batch = int(config.batch_size) if config.batch_size else default_batch_size(device)
    progress = progress_enabled() if config.progress is None else bool(config.progress)
    settings = {f.name: getattr(config, f.name) for f in fields(RunOptions) if f.name not in _RESOLVED}
    settings.update(
        threshold=float(config.threshold), min_area=float(config.min_area), min_score=float(config.min_score),
        simplify=float(config.simplify),
        wgs84=bool(config.wgs84), amp=bool(config.amp), overwrite=bool(config.overwrite),
        pixel_size=parse_pixel_size(config.pixel_size), input_range=parse_input_range(config.input_range),
        separate=None if config.separate is None else bool(config.separate), regularize=bool(config.regularize),
        seed_threshold=None if config.seed_threshold is None else float(config.seed_threshold),
    )
    return RunOptions(tile=tile, overlap=overlap, batch_size=batch, progress=progress, **settings)


def check_polygon_settings(config: PredictConfig | VectorizeConfig) -> None:
    """Refuse vectorising settings out of range (the CLI's option types check them too)."""
    if not 0.0 < config.threshold < 1.0:
        raise ConfigError(f"--threshold {config.threshold} must be between 0 and 1")
    if config.min_area < 0 or config.simplify < 0:
        raise ConfigError("--min-area and --simplify must not be negative")
    if not 0.0 <= config.min_score < 1.0:
        raise ConfigError(f"--min-score {config.min_score} must be from 0 to below 1")
    if config.seed_threshold is not None and not 0.0 < config.seed_threshold < 1.0:
        raise ConfigError(f"seed threshold {config.seed_threshold} must be between 0 and 1")
    if not (0.0 < config.match_iou <= 1.0 and 0.0 < config.match_cover <= 1.0):
        raise ConfigError("match_iou and match_cover must be in (0, 1]")
    if config.only_new and config.existing is None:
        raise ConfigError("--only-new needs --existing (the buildings already mapped)")


def parse_pixel_size(value) -> str | float:
    """``"auto"``, ``"native"`` or a positive size in metres, from a setting as given (None: auto)."""
    if value is None:
        return "auto"
    if isinstance(value, str) and value.strip().lower() in ("auto", "native"):
        return value.strip().lower()
    try:
        metres = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"--pixel-size must be auto, native or a size in metres, not {value!r}") from None
    if not metres > 0:
        raise ConfigError(f"--pixel-size must be positive, not {value!r}")
    return metres


def separation_channels(info: CheckpointInfo, separate: bool | None) -> tuple[bool, tuple[str, ...], list[int]]:
    """``(separate, names, indexes)``: whether to split touching buildings, and the model outputs to carry.

    ``separate=None`` separates when the model has ``border`` and ``contact`` outputs. Those
    channels are carried (stitched, written to ``--probs``, vectorised) only when separating;
    a building-only model separates on its building probability alone (eroded seeds).
    """
    return channels_for(tuple(getattr(info.model, "outputs", ("building",))), separate)


def channels_for(outputs: tuple[str, ...], separate: bool | None) -> tuple[bool, tuple[str, ...], list[int]]:
    """:func:`separation_channels` for the channels ``outputs`` (a model's, or the bands of a ``--probs`` file)."""
    cuts = [n for n in ("border", "contact") if n in outputs]
    if separate is None:
        separate = len(cuts) == 2
    names = ("building", *cuts) if separate else ("building",)
    return bool(separate), names, [outputs.index(n) for n in names]


def check_model(info: CheckpointInfo) -> None:
    """The model's first output channel is the building logit (border/contact channels serve --separate)."""
    outputs = getattr(info.model, "outputs", ("building",))
    if not outputs or outputs[0] != "building":
        raise CheckpointError(f"model's first output is {outputs[0] if outputs else None!r}, not 'building'", info.path)
    if len(info.preprocessing.bands) != info.model.in_channels:
        raise CheckpointError(
            f"checkpoint reads {len(info.preprocessing.bands)} band(s) but its model takes {info.model.in_channels} channel(s)",
            info.path,
        )


def with_bands(info: CheckpointInfo, bands) -> CheckpointInfo:
    """``info`` reading raster ``bands`` (``--bands``: text ``"3,2,1"`` or indexes) for the model's channels,
    in order; ``info`` itself when ``bands`` is None. Refuses a count other than the model's channels."""
    if bands is None or (isinstance(bands, str) and not bands.strip()):
        return info
    try:
        picked = tuple(int(b) for b in (bands.split(",") if isinstance(bands, str) else bands))
    except (TypeError, ValueError):
        raise ConfigError(f"--bands {bands!r}: expected band numbers separated by commas, e.g. 3,2,1") from None
    n = info.model.in_channels
    if len(picked) != n or min(picked) < 1:
        raise ConfigError(f"--bands {bands!r}: the model takes {n} channel(s), give {n} band number(s) from 1")
    return replace(info, preprocessing=replace(info.preprocessing, bands=picked))


def warn_colour_order(src, bands: tuple[int, ...], path) -> None:
    """Warn when the model reads exactly the bands the raster labels red, green and blue, in another order
    (a blue-green-red file): the model's channels are not named, so it cannot be fixed silently."""
    ci = {c: i for i, c in zip(src.indexes, src.colorinterp)}
    rgb = tuple(ci.get(c) for c in (ColorInterp.red, ColorInterp.green, ColorInterp.blue))
    if None in rgb or set(rgb) != set(bands[:3]) or rgb == bands[:3]:
        return
    names = {rgb[0]: "red", rgb[1]: "green", rgb[2]: "blue"}
    logger.warning("%s: the model reads bands %s, which this raster labels %s; give --bands %s if the model "
                   "expects red, green, blue (the bundled ones do)", path, ",".join(map(str, bands[:3])),
                   ", ".join(names[b] for b in bands[:3]), ",".join(map(str, rgb + bands[3:])))


def check_raster(src: rasterio.io.DatasetReader, info: CheckpointInfo, path, input_range="auto") -> None:
    """Refuse a raster whose bands the checkpoint cannot use, or whose data type is not the model's with
    ``input_range`` ``none`` (:mod:`geounet.io.stretch`; its CRS is checked on open)."""
    prep = info.preprocessing
    check_bands(src, prep.bands, os.fspath(path))
    check_data_type(src, prep, input_range, path)


def target_pixel_size(setting, native_m: float, model_m: float | None,
                      model_range: tuple[float, float] | None = None) -> float | None:
    """The ground pixel size to predict at, or None for the raster's own pixels.

    ``"auto"``: for a model trained across a pixel-size range, the raster's own pixels when
    they lie inside the range (5% tolerance), else the nearer end of the range; for a model
    trained at one pixel size, that size when the raster's differs from it by more than 20%.
    ``"native"``: never resample; a number: that many metres.
    """
    if setting in (None, "native"):
        return None
    if setting == "auto":
        if model_range:
            lo, hi = model_range
            if native_m < lo / 1.05:
                return float(lo)
            if native_m > hi * 1.05:
                return float(hi)
            return None
        if model_m and abs(native_m / model_m - 1.0) > 0.2:
            return float(model_m)
        return None
    value = float(setting)
    return None if abs(native_m / value - 1.0) < 0.01 else value


def vectorize_options(src, options: RunOptions | VectorizeConfig, channels: tuple[str, ...] = ("building",),
                      separate: bool = False) -> VectorizeOptions:
    """Per-raster pixel settings: sieve, simplify, seed and reach sizes in pixels of this raster.

    ``src`` is the raster as the model sees it (resampled, if it is; or the ``--probs`` file
    ``geounet vectorize`` reads, on the same grid): its ground pixel size
    ``px`` (mean of x and y) converts areas (``/ px**2``, rounded) and lengths (``/ px``;
    the reach rounded up, so the growth reaches at least ``reach_m``), each kept within the
    bounds of :class:`~geounet.predict.settings.PolygonSettings` and
    :class:`~geounet.predict.settings.SeparationSettings`.
    """
    px = pixel_size_m(src)
    gx, gy = ground_pixel_xy(src.crs, src.transform, src.width, src.height)
    plain = separate and len(channels) == 1  # building-only model: eroded seeds
    seed_threshold = options.seed_threshold
    if seed_threshold is None:
        seed_threshold = options.plain_seed_threshold if plain else options.score_seed_threshold
    return VectorizeOptions(
        threshold=options.threshold, sieve_px=area_px(options.speck_m2, px, least=2, most=options.sieve_max_px),
        simplify_px=options.simplify / px, min_area_m2=options.min_area,
        min_score=options.min_score, channels=tuple(channels), separate=separate,
        seed_threshold=float(seed_threshold),
        seed_min_px=area_px(options.seed_min_m2, px, least=1, most=options.seed_min_max_px) if separate else 0,
        seed_erode_px=length_px(options.plain_erode_m, px, least=1) if plain else 0,
        reach_px=length_px(options.reach_m, px, least=1, most=options.max_reach_px, up=True) if separate else 0,
        regularize_m=options.regularize_m if options.regularize else 0.0, pixel_m=(gx, gy),
    )
