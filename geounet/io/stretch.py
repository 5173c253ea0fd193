"""Imagery of another data type than the model's (``predict --input-range``): 11-, 12- or 16-bit satellite
scenes, or float reflectances, for a model trained on 8-bit imagery.

A model divides raw values by its ``scale`` (255 for 8-bit training data), so a uint16 raster read as it
is would be almost all white (or, with 11-bit values in 16 bits, nothing like its training imagery).
Such a raster is brought to the model's range first, per band, linearly:

    stretched = (raw - low[b]) * scale / (high[b] - low[b]),  then clipped to [0, scale] as always

- ``auto`` (the default) applies only when the raster's data type is not the model's, and takes ``low``
  and ``high`` as the 0.1th and 99.9th percentiles of each band's valid pixels, sampled in windows spread
  over the raster (:func:`geounet.grid.spread_windows`; no-data never counts): the band's whole range
  but for a few outliers (hot pixels, glints). Chosen by measurement (docs/model.md, "16-bit imagery"):
  8-bit orthophotos, which the model learnt from, use most of their range without clipping, and the
  stronger stretches GIS viewers show (QGIS's 2-98% "cumulative count cut") cost the held-out models
  up to 0.10 object F1. Deterministic for a raster; but a raster's result then depends on its extent (a
  tile of a mosaic may get another stretch than the whole), as with ``--adapt``.
- ``LOW,HIGH`` stretches every band of every raster between those raw values (e.g. ``0,2047`` for
  11-bit imagery): the same mapping for every tile of a mosaic, whatever its data type.
- ``none`` refuses a raster whose data type is not the model's (the behaviour before this option).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

from ..config import Preprocessing
from ..errors import ConfigError, InputError
from ..grid import spread_windows
from .raster import has_validity_mask, read_valid_mask

PERCENTILES = (0.1, 99.9)  # auto: the low and high ends of each band's valid pixels
SAMPLE_WINDOWS_PER_SIDE = 6  # auto: up to 36 windows spread over the raster
SAMPLE_TILE = 256  # auto: their side in pixels (36 x 256 x 256 = 2.4 Mpx per band at most)


def parse_input_range(value) -> str | tuple[float, float]:
    """``"auto"``, ``"none"`` or ``(low, high)`` from the setting's text (``"LOW,HIGH"``) or a pair."""
    if isinstance(value, (tuple, list)):
        parts = list(value)
    else:
        text = str(value if value is not None else "auto").strip().lower()
        if text in ("auto", "none"):
            return text
        parts = text.split(",")
    try:
        low, high = (float(p) for p in parts)
    except (TypeError, ValueError):
        raise ConfigError(f"--input-range {value!r}: expected auto, none or LOW,HIGH (two numbers)") from None
    if not (np.isfinite(low) and np.isfinite(high) and high > low):
        raise ConfigError(f"--input-range {value!r}: HIGH must be a number above LOW")
    return low, high


def dtype_fits(raster_dtype: str, model_dtype: str) -> bool:
    """Whether a raster of ``raster_dtype`` can be read as the model's training imagery was, unchanged."""
    if raster_dtype == model_dtype:
        return True
    floats = {"float32", "float64"}
    return raster_dtype in floats and model_dtype in floats


@dataclass(frozen=True)
class InputStretch:
    """Per model channel: raw ``low`` becomes 0 and raw ``high`` the model's ``scale``."""

    low: tuple[float, ...]
    high: tuple[float, ...]

    def gains(self, scale: float) -> np.ndarray:
        return (np.float32(scale) / (np.asarray(self.high, np.float32) - np.asarray(self.low, np.float32)))

    def apply(self, raw: np.ndarray, scale: float) -> np.ndarray:
        """``(raw - low) * scale / (high - low)`` per band of ``raw`` (bands, rows, cols), as float32 (a new
        array); clipping to ``[0, scale]`` is left to :meth:`~geounet.config.Preprocessing.clip_raw`."""
        x = raw.astype(np.float32)
        x -= np.asarray(self.low, np.float32)[:, None, None]
        x *= self.gains(scale)[:, None, None]
        return x

    def describe(self) -> str:
        return ", ".join(f"{lo:g}-{hi:g}" for lo, hi in zip(self.low, self.high))


def _sample_percentiles(src, bands: list[int], name: str) -> InputStretch:
    tile = min(SAMPLE_TILE, src.height, src.width)
    masked = has_validity_mask(src)
    values: list[list[np.ndarray]] = [[] for _ in bands]
    for r, c in spread_windows(src.height, src.width, tile, SAMPLE_WINDOWS_PER_SIDE):
        win = Window(c, r, tile, tile)
        raw = src.read(bands, window=win)
        valid = read_valid_mask(src, win) if masked else None
        for k in range(len(bands)):
            v = raw[k] if valid is None else raw[k][valid]
            v = v[np.isfinite(v)] if v.dtype.kind == "f" else v
            values[k].append(v.ravel())
    low, high = [], []
    for k, b in enumerate(bands):
        v = np.concatenate(values[k]) if values[k] else np.empty(0)
        if v.size == 0:
            raise InputError("no valid pixels to measure its value range on (--input-range auto); "
                             "give --input-range LOW,HIGH", name)
        lo, hi = (float(p) for p in np.percentile(v, PERCENTILES))
        if hi <= lo:  # a flat band: any positive width maps it to one level
            hi = lo + 1.0
        low.append(lo)
        high.append(hi)
    return InputStretch(tuple(low), tuple(high))


def _other_dtypes(src, prep: Preprocessing) -> list[str]:
    """The data types of the bands the model reads that are not the model's (sorted; empty: none)."""
    return sorted({src.dtypes[b - 1] for b in prep.bands if not dtype_fits(src.dtypes[b - 1], prep.dtype)})


def check_data_type(src, prep: Preprocessing, setting, name: str) -> None:
    """Refuse, with ``setting`` ``none``, a raster whose bands are not of the model's data type."""
    bad = _other_dtypes(src, prep) if parse_input_range(setting) == "none" else []
    if bad:
        raise InputError(f"raster is {bad[0]} but the model was trained on {prep.dtype} imagery (divided by "
                         f"{prep.scale:g}); convert it, or give --input-range auto or LOW,HIGH", name)


def input_stretch(src, prep: Preprocessing, setting, name: str) -> InputStretch | None:
    """The stretch for raster ``src`` (opened; as predict reads it) and a model's ``prep``, or None.

    None when ``setting`` is ``auto`` and the raster's bands are of the model's data type. A raster of
    another type is refused with ``none`` (:func:`check_data_type`).
    """
    setting = parse_input_range(setting)
    bands = list(prep.bands)
    if isinstance(setting, tuple):
        return InputStretch((setting[0],) * len(bands), (setting[1],) * len(bands))
    if not _other_dtypes(src, prep):
        return None
    check_data_type(src, prep, setting, name)
    return _sample_percentiles(src, bands, name)
