"""Streaming sliding-window inference: raster -> windows -> model -> stitched strips -> polygons -> file.

Three threads work at once so the model is never kept waiting:

* a **reader** opens its own handle on the raster and reads full-width strips of rows,
  aligned to the file's block rows so every compressed block is decoded once; it reads
  the validity mask alongside, skips windows that are entirely no-data, normalises the
  rest with the checkpoint's bands and statistics straight into channels-last (and, on
  CUDA, pinned) batch tensors, and queues them;
* the **main thread** runs the model (``torch.inference_mode``, autocast, channels-last,
  non-blocking copies on CUDA) and blends the windows into a :class:`~geounet.stitch.StripStitcher`,
  which releases rows as soon as no later window can touch them; those rows are
  multiplied by the validity mask (no-data gets probability 0);
* a **writer** writes the final rows to ``--probs`` (tiled, compressed GeoTIFF with the
  source CRS and transform, written whole block-rows at a time) and feeds them to the
  :class:`~geounet.vectorize.StripVectorizer`, whose finished buildings go to a
  :class:`~geounet.io.vector.VectorWriter`.

Nothing holds more than a few strips of rows, so memory depends on the raster's width and
the window size, not on its height. Every output is written under a temporary name in its
own folder and renamed only when complete; on any error or Ctrl-C the temporary files are
removed and existing outputs are left as they were.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.windows import Window
from tqdm import tqdm

from .config import CheckpointInfo
from .device import autocast, resolve_device
from .errors import CheckpointError, ConfigError, GeounetError, InputError
from .log import logger, progress_enabled
from .io.files import check_writable
from .io.probs import ProbsWriter
from .io.raster import (check_bands, ground_pixel_xy, has_validity_mask, open_raster, pixel_size_m, raise_user_error,
                        read_valid_mask, resampled)
from .io.vector import FORMATS, VectorWriter, check_vector_format
from .stitch import StripStitcher
from .model.tta import DihedralTTA
from .grid import column_bands, lattice_phase
from .vectorize import StripVectorizer, VectorizeOptions

__all__ = [
    "PredictConfig",
    "PredictResult",
    "RasterResult",
    "RunOptions",
    "predict",
    "predict_raster",
    "default_tile_size",
    "default_overlap",
]

DEFAULT_THRESHOLD = 0.5
DEFAULT_MIN_AREA_M2 = 2.0
DEFAULT_SIMPLIFY_M = 0.2
SPECK_M2 = 1.0  # regions (buildings or holes) smaller than this are sieved away before polygonising
SIEVE_MAX_PX = 256
# Instance separation (docs/separation.md): seeds are confident interiors, p_building *
# (1 - p_border) * (1 - p_contact) >= the seed threshold, at least SEED_MIN_M2 large; they
# grow back over the building mask for at most REACH_M (a bounded reach keeps the streamed
# result exact). With a building-only model, seeds are p_building >= PLAIN_SEED_THRESHOLD
# eroded by PLAIN_ERODE_M (the contact band a separation model would predict). Values tuned
# on two held-out areas (docs/separation.md).
DEFAULT_SEED_THRESHOLD = 0.5
SEED_MIN_M2 = 4.0
REACH_M = 3.0
PLAIN_SEED_THRESHOLD = 0.95
PLAIN_ERODE_M = 0.45
SEED_MIN_MAX_PX = 256  # like the sieve: the seed-size filter needs this many rows of context
MAX_REACH_PX = 100  # keeps the context of a band (2 * reach) below the 256 px band alignment
REGULARIZE_M = 0.5  # --regularize tolerance: outline detail smaller than this is squared away
MIN_TILE = 512  # windows at least this big: less overlap overhead per pixel, same speed per pixel
PROBS_BLOCK = 256
GDAL_CACHE_MB = 64
# Rasters wider than this go through in column bands at most this wide, so memory does not grow
# with the width either (a 20,000 px raster then needs about what a 5,000 px one does); windows
# reaching over a band border run for both bands: 57 window-columns instead of 52 at 20,000 px.
BAND_WIDTH = 6144


def default_tile_size(info: CheckpointInfo) -> int:
    """``max(training tile, 512)`` rounded up to a multiple of ``2**depth`` (see docs/benchmarks.md)."""
    m = info.model.multiple
    t = max(int(info.preprocessing.tile_size), MIN_TILE)
    return int(math.ceil(t / m) * m)


def default_overlap(tile: int, multiple: int = 1) -> int:
    """A quarter of the window on the model's lattice: a 128 px cross-fade at 512 (see docs/benchmarks.md)."""
    return (tile // 4) // multiple * multiple


def default_batch_size(device: torch.device) -> int:
    return 8 if device.type == "cuda" else 1


@dataclass
class PredictConfig:
    """Everything ``geounet predict`` needs; ``None`` means "the default for this model/device"."""

    inputs: Sequence[str | os.PathLike]
    output: str | os.PathLike
    model_path: str | os.PathLike | None = None
    probs: str | os.PathLike | None = None
    threshold: float = DEFAULT_THRESHOLD
    tile_size: int | None = None
    overlap: int | None = None
    batch_size: int | None = None
    device: str = "auto"
    min_area: float = DEFAULT_MIN_AREA_M2
    simplify: float = DEFAULT_SIMPLIFY_M
    wgs84: bool = False
    fmt: str | None = None  # output format when OUTPUT is a folder: geojson, gpkg, fgb, parquet
    amp: bool = True
    tta: bool = False
    overwrite: bool = False
    progress: bool | None = None  # default: when logging is not quiet
    pixel_size: str | float | None = "auto"  # "auto" (the model's, when 20% off), "native", or metres
    separate: bool | None = None  # split touching buildings; default: when the model has border and contact outputs
    regularize: bool = False  # square building outlines
    seed_threshold: float | None = None  # seed score threshold (default: DEFAULT_SEED_THRESHOLD, or
    # PLAIN_SEED_THRESHOLD for building-only models)

    @classmethod
    def from_cli(cls, **kw) -> "PredictConfig":
        return cls(
            inputs=tuple(kw["inputs"]),
            output=kw["output"],
            model_path=kw.get("model_path"),
            probs=kw.get("probs"),
            threshold=kw.get("threshold", DEFAULT_THRESHOLD),
            tile_size=kw.get("tile_size"),
            overlap=kw.get("overlap"),
            batch_size=kw.get("batch_size"),
            device=kw.get("device", "auto"),
            min_area=kw.get("min_area", DEFAULT_MIN_AREA_M2),
            simplify=kw.get("simplify", DEFAULT_SIMPLIFY_M),
            wgs84=kw.get("wgs84", False),
            fmt=kw.get("fmt"),
            amp=kw.get("amp", True),
            tta=kw.get("tta", False),
            overwrite=kw.get("overwrite", False),
            pixel_size=kw.get("pixel_size") or "auto",
            separate=kw.get("separate"),
            regularize=kw.get("regularize", False),
        )


@dataclass(frozen=True)
class RunOptions:
    """Resolved settings for one raster (no ``None`` left)."""

    tile: int
    overlap: int
    batch_size: int
    threshold: float = DEFAULT_THRESHOLD
    min_area: float = DEFAULT_MIN_AREA_M2
    simplify: float = DEFAULT_SIMPLIFY_M
    wgs84: bool = False
    amp: bool = True
    overwrite: bool = False
    progress: bool = False
    pixel_size: str | float | None = "auto"  # "auto", "native" or metres (see target_pixel_size)
    band_width: int = BAND_WIDTH  # rasters wider than this are done in column bands (memory bound)
    separate: bool | None = None  # None: when the model has border and contact outputs
    regularize: bool = False
    seed_threshold: float | None = None  # None: the default for the model (see separation_channels)


@dataclass
class RasterResult:
    input: Path
    output: Path
    probs: Path | None = None
    skipped: bool = False
    n_polygons: int = 0
    windows: int = 0
    windows_run: int = 0
    pixels: int = 0
    seconds: float = 0.0
    model_seconds: float = 0.0


@dataclass
class PredictResult:
    rasters: list[RasterResult] = field(default_factory=list)

    @property
    def written(self) -> list[Path]:
        return [r.output for r in self.rasters if not r.skipped]

    @property
    def skipped(self) -> list[Path]:
        return [r.input for r in self.rasters if r.skipped]


# --------------------------------------------------------------------------------------
# checks and planning


def resolve_options(config: PredictConfig, info: CheckpointInfo, device: torch.device) -> RunOptions:
    """Fill in the defaults and refuse a tile size or overlap that does not fit the model."""
    m = info.model.multiple
    tile = int(config.tile_size) if config.tile_size is not None else default_tile_size(info)
    if tile < m or tile % m:
        raise ConfigError(f"--tile-size {tile} must be a positive multiple of {m} (2**depth of this model)", info.path)
    overlap = int(config.overlap) if config.overlap is not None else default_overlap(tile, m)
    if not 0 <= overlap < tile or overlap % m:
        raise ConfigError(
            f"--overlap {overlap} must be a multiple of {m} (2**depth of this model) from 0 to below the tile size {tile}",
            info.path,
        )
    if not 0.0 < config.threshold < 1.0:
        raise ConfigError(f"--threshold {config.threshold} must be between 0 and 1")
    if config.min_area < 0 or config.simplify < 0:
        raise ConfigError("--min-area and --simplify must not be negative")
    if config.seed_threshold is not None and not 0.0 < config.seed_threshold < 1.0:
        raise ConfigError(f"seed threshold {config.seed_threshold} must be between 0 and 1")
    batch = int(config.batch_size) if config.batch_size else default_batch_size(device)
    progress = progress_enabled() if config.progress is None else bool(config.progress)
    return RunOptions(
        tile=tile, overlap=overlap, batch_size=batch, threshold=float(config.threshold),
        min_area=float(config.min_area), simplify=float(config.simplify), wgs84=bool(config.wgs84),
        amp=bool(config.amp), overwrite=bool(config.overwrite), progress=progress,
        pixel_size=_pixel_size_setting(config.pixel_size),
        separate=None if config.separate is None else bool(config.separate), regularize=bool(config.regularize),
        seed_threshold=None if config.seed_threshold is None else float(config.seed_threshold),
    )


def _pixel_size_setting(value) -> str | float:
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
    outputs = tuple(getattr(info.model, "outputs", ("building",)))
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


def _dtype_fits(raster_dtype: str, model_dtype: str) -> bool:
    if raster_dtype == model_dtype:
        return True
    floats = {"float32", "float64"}
    return raster_dtype in floats and model_dtype in floats


def check_raster(src, info: CheckpointInfo, path) -> None:
    """Refuse a raster whose bands or data type the checkpoint cannot use (its CRS is checked on open)."""
    prep = info.preprocessing
    check_bands(src, prep.bands, os.fspath(path))
    dtypes = {src.dtypes[b - 1] for b in prep.bands}
    bad = [d for d in sorted(dtypes) if not _dtype_fits(d, prep.dtype)]
    if bad:
        raise InputError(
            f"raster is {bad[0]} but the model was trained on {prep.dtype} imagery "
            f"(divided by {prep.scale:g}); convert it to {prep.dtype} first",
            path,
        )


@dataclass
class _Job:
    input: Path
    output: Path
    probs: Path | None
    skip: bool = False


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def plan_jobs(config: PredictConfig) -> list[_Job]:
    """Decide each input's outputs, which ones to skip, and refuse outputs that cannot be written."""
    inputs = [Path(p) for p in config.inputs]
    if not inputs:
        raise ConfigError("no input raster given")
    output = Path(config.output)
    probs = Path(config.probs) if config.probs is not None else None
    ext = None
    if config.fmt:
        ext = "." + config.fmt.lower().lstrip(".")
        if ext not in FORMATS:
            raise ConfigError(f"unknown --format '{config.fmt}'; use one of {', '.join(e[1:] for e in FORMATS)}")
    single_file = output.suffix.lower() in FORMATS
    if single_file and len(inputs) > 1:
        raise ConfigError("with several inputs, -o/--output must be a folder (each input gets its own file)", output)
    if not single_file and output.suffix and not output.is_dir():
        raise ConfigError(f"unsupported output format '{output.suffix}'; use one of {', '.join(FORMATS)}", output)
    jobs: list[_Job] = []
    if single_file:
        if ext and ext != output.suffix.lower():
            raise ConfigError(f"--format {config.fmt} does not match the output extension", output)
        check_vector_format(output)
        if probs is not None and probs.suffix.lower() not in (".tif", ".tiff"):
            raise ConfigError("--probs must name a GeoTIFF (.tif) file", probs)
        jobs.append(_Job(inputs[0], output, probs))
    else:
        ext = ext or ".geojson"
        if probs is not None and probs.suffix.lower() in (".tif", ".tiff"):
            raise ConfigError("with an output folder, --probs must be a folder too", probs)
        for folder in [output] + ([probs] if probs is not None else []):
            if folder.exists() and not folder.is_dir():
                raise ConfigError("output folder is a file", folder)
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise GeounetError(f"cannot create output folder ({exc.strerror or exc})", folder) from None
        seen: dict[str, Path] = {}
        for inp in inputs:
            stem = inp.stem
            if stem in seen:
                raise ConfigError(f"inputs {seen[stem]} and {inp} would both write {stem}{ext}", output)
            seen[stem] = inp
            out = output / f"{stem}{ext}"
            pr = probs / f"{stem}_probs.tif" if probs is not None else None
            jobs.append(_Job(inp, out, pr, skip=out.exists() and not config.overwrite))
        check_vector_format(output / f"x{ext}")
    for job in jobs:
        for out in [job.output, job.probs]:
            if out is None:
                continue
            for inp in inputs:
                if _same_file(out, inp):
                    raise ConfigError("output would overwrite an input raster", out)
        if job.skip:
            continue
        check_writable(job.output, config.overwrite)
        if job.probs is not None:
            check_writable(job.probs, config.overwrite)
    return jobs


@contextlib.contextmanager
def open_input(path, pixel_size: float | None = None):
    """Open a raster (see :func:`geounet.io.raster.open_raster`), resampled on the fly to ``pixel_size`` metres."""
    with open_raster(path) as src, resampled(src, pixel_size) as out:
        yield out


def target_pixel_size(setting, native_m: float, model_m: float | None) -> float | None:
    """The ground pixel size to predict at, or None for the raster's own pixels.

    ``"auto"``: the model's pixel size when the raster's differs from it by more than 20%;
    ``"native"``: never resample; a number: that many metres.
    """
    if setting in (None, "native"):
        return None
    if setting == "auto":
        if model_m and abs(native_m / model_m - 1.0) > 0.2:
            return float(model_m)
        return None
    value = float(setting)
    return None if abs(native_m / value - 1.0) < 0.01 else value


# --------------------------------------------------------------------------------------
# the pipeline


class _Stop(Exception):
    """Raised inside a worker thread when the pipeline is being torn down."""


def _put(q: queue.Queue, item, stop: threading.Event) -> None:
    while True:
        if stop.is_set():
            raise _Stop
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


class _Reader(threading.Thread):
    """Reads strips, cuts windows, normalises them into batches; see the module docstring."""

    def __init__(self, path: Path, stitchers: list[StripStitcher], info: CheckpointInfo, batch: int, pin: bool,
                 out: queue.Queue, stop: threading.Event, pixel_size: float | None = None):
        super().__init__(name="geounet-reader", daemon=True)
        self.path, self.stitchers, self.info, self.batch, self.pin = path, stitchers, info, batch, pin
        self.pixel_size = pixel_size
        self.out, self.stop = out, stop
        prep = info.preprocessing
        std = np.asarray(prep.std, np.float32)
        self.mul = (1.0 / (np.float32(prep.scale) * std))[:, None, None].astype(np.float32)
        self.add = (-np.asarray(prep.mean, np.float32) / std)[:, None, None].astype(np.float32)
        self.th, self.tw = stitchers[0].rows.size, stitchers[0].cols.size  # multiples of 2**depth

    def run(self) -> None:
        try:
            with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), open_input(self.path, self.pixel_size) as src:
                for k, st in enumerate(self.stitchers):
                    self._loop(src, k, st)
            _put(self.out, ("end",), self.stop)
        except _Stop:
            pass
        except BaseException as exc:  # handed to the main thread, which raises it
            try:
                _put(self.out, ("error", exc), self.stop)
            except _Stop:
                pass

    def _new_batch(self) -> torch.Tensor:
        c = len(self.info.preprocessing.bands)
        t = torch.empty((self.batch, self.th, self.tw, c), dtype=torch.float32, pin_memory=self.pin)
        return t.permute(0, 3, 1, 2)  # NCHW view of NHWC memory: channels-last

    def _loop(self, src, k: int, st: StripStitcher) -> None:
        """Band ``k``: read its columns strip by strip and queue its windows."""
        bands = list(self.info.preprocessing.bands)
        H = src.height
        th, tw = self.th, self.tw
        has_mask = has_validity_mask(src)
        bh = src.block_shapes[0][0] if src.block_shapes else 1
        if bh > 2048:
            bh = 1
        rc0, rc1 = st.read_span()  # raster columns this band reads
        width = rc1 - rc0
        vx0, vx1 = st.x0 - rc0, st.x1 - rc0  # the band's columns in the buffer
        raw = np.empty((len(bands), 0, width), dtype=src.dtypes[bands[0] - 1])
        valid = np.empty((0, width), dtype=bool)
        buf0 = 0  # raster row of buffer row 0
        rows, cols = st.rows, st.cols
        for i, r in enumerate(rows.offsets):
            if self.stop.is_set():
                raise _Stop
            r0, r1, _ = rows.clip(i)  # raster rows this window-row covers
            if r0 > buf0:  # drop rows no window needs any more
                raw, valid, buf0 = raw[:, r0 - buf0 :], valid[r0 - buf0 :], r0
            end = buf0 + raw.shape[1]
            if end < r1:  # read whole block-rows, so each compressed block is decoded once
                stop_row = min(H, max(r1, math.ceil(r1 / bh) * bh))
                win = Window(rc0, end, width, stop_row - end)
                new = src.read(bands, window=win)
                newv = read_valid_mask(src, win) if has_mask else np.ones((stop_row - end, width), dtype=bool)
                raw = np.concatenate([raw, new], axis=1)
                valid = np.concatenate([valid, newv], axis=0)
            nxt = rows.offsets[i + 1] if i + 1 < len(rows.offsets) else H
            _put(self.out, ("valid", k, i, valid[: nxt - r0, vx0:vx1].copy()), self.stop)
            pad_rows = (r0 - r, r + th - r1)
            batch, ids = None, []
            for j in st.col_ids:
                c0, c1, _ = cols.clip(j)
                c = cols.offsets[j]
                if not valid[: r1 - r0, c0 - rc0 : c1 - rc0].any():
                    _put(self.out, ("skip", k, i, j), self.stop)
                    continue
                x = raw[:, : r1 - r0, c0 - rc0 : c1 - rc0].astype(np.float32)
                x *= self.mul
                x += self.add
                pad_cols = (c0 - c, c + tw - c1)
                if any(pad_rows) or any(pad_cols):  # window reaches past the raster: mirror its pixels
                    x = np.pad(x, ((0, 0), pad_rows, pad_cols), mode="symmetric")
                if batch is None:
                    batch = self._new_batch()
                batch[len(ids)].copy_(torch.from_numpy(x))
                ids.append((i, j))
                if len(ids) == self.batch:
                    _put(self.out, ("batch", k, ids, batch), self.stop)
                    batch, ids = None, []
            if ids:  # batches never span window-rows, so rows complete in order
                _put(self.out, ("batch", k, ids, batch[: len(ids)]), self.stop)


class _Writer(threading.Thread):
    """Consumes final strips: probabilities GeoTIFF and vectoriser."""

    def __init__(self, inbox: queue.Queue, stop: threading.Event, vectorizer: StripVectorizer,
                 probs: ProbsWriter | None, bands: list[tuple[int, int, int, int]]):
        super().__init__(name="geounet-writer", daemon=True)
        self.inbox, self.stop, self.vec, self.probs = inbox, stop, vectorizer, probs
        self.bands = bands  # (x0, x1, cx0, cx1): output columns and the context columns around them
        self.error: BaseException | None = None
        self.done = False

    def run(self) -> None:
        try:
            with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB, GDAL_TIFF_INTERNAL_MASK=True):
                if self.probs is not None:
                    self.probs.open()
                band = -1
                while True:
                    try:
                        item = self.inbox.get(timeout=0.1)
                    except queue.Empty:
                        if self.stop.is_set():
                            return
                        continue
                    if item is None:
                        break
                    k, row0, p, v = item
                    if k != band:
                        band = k
                        x0, x1, cx0, cx1 = self.bands[k]
                        self.vec.begin_band(x0, x1, cx0, cx1, last=k == len(self.bands) - 1)
                        if self.probs is not None:
                            if k:
                                self.probs.end_column_band()
                            self.probs.begin_column_band(x0, x1)
                    if self.probs is not None:
                        self.probs.write_rows(row0, p[..., x0 - cx0 : x1 - cx0], v[:, x0 - cx0 : x1 - cx0])
                    self.vec.add_rows(row0, p, v)
                self.vec.finish()
                if self.probs is not None:
                    self.probs.close()
            self.done = True
        except BaseException as exc:  # raised again by the main thread
            self.error = exc


def _send(q: queue.Queue, item, writer: _Writer, output: Path) -> None:
    while True:
        if writer.error is not None:
            raise_user_error(writer.error, output, "write output")
        if not writer.is_alive():
            raise RuntimeError("writer thread stopped")
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def vectorize_options(src, options: RunOptions, channels: tuple[str, ...] = ("building",),
                      separate: bool = False) -> VectorizeOptions:
    """Per-raster pixel settings: sieve, simplify, seed and reach sizes in pixels of this raster."""
    px = pixel_size_m(src)
    gx, gy = ground_pixel_xy(src.crs, src.transform, src.width, src.height)
    sieve_px = int(min(SIEVE_MAX_PX, max(2, round(SPECK_M2 / (px * px)))))
    plain = separate and len(channels) == 1  # building-only model: eroded seeds
    seed_threshold = options.seed_threshold
    if seed_threshold is None:
        seed_threshold = PLAIN_SEED_THRESHOLD if plain else DEFAULT_SEED_THRESHOLD
    return VectorizeOptions(
        threshold=options.threshold, sieve_px=sieve_px, simplify_px=options.simplify / px,
        min_area_m2=options.min_area, channels=tuple(channels), separate=separate,
        seed_threshold=float(seed_threshold),
        seed_min_px=int(min(SEED_MIN_MAX_PX, max(1, round(SEED_MIN_M2 / (px * px))))) if separate else 0,
        seed_erode_px=int(max(1, round(PLAIN_ERODE_M / px))) if plain else 0,
        reach_px=int(min(MAX_REACH_PX, max(1, math.ceil(REACH_M / px)))) if separate else 0,
        regularize_m=REGULARIZE_M if options.regularize else 0.0, pixel_m=(gx, gy),
    )


def predict_raster(
    model: torch.nn.Module,
    info: CheckpointInfo,
    input_path: str | os.PathLike,
    output: str | os.PathLike,
    options: RunOptions,
    *,
    probs: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
) -> RasterResult:
    """Run ``model`` over one raster and write its buildings to ``output`` (and probabilities to ``probs``).

    ``model`` maps a (B, C, H, W) float batch to (B, K, H, W) logits; ``info`` gives its
    bands, normalisation and output names (``info.model.outputs``: building, and border and
    contact for models trained with separation targets). Outputs are checked (exist/writable) by the caller,
    :func:`predict`; here they are only ever created through temporary files.
    """
    t_start = time.perf_counter()
    device = torch.device(device)
    input_path, output = Path(input_path), Path(output)
    probs = Path(probs) if probs is not None else None
    model_px = info.preprocessing.pixel_size_m
    with open_raster(input_path) as src:
        check_raster(src, info, input_path)
        native_px = pixel_size_m(src)
    target_px = target_pixel_size(options.pixel_size, native_px, model_px)
    if target_px:
        logger.info("%s: resampling %.3f m pixels to %.3f m%s", input_path, native_px, target_px,
                    " (the model's)" if target_px == model_px else "")
    elif model_px and not (1 / 1.5 <= native_px / model_px <= 1.5):
        logger.warning(
            "%s: pixels are %.3f m but the model was trained at %.3f m; results may be poor "
            "(use --pixel-size auto)", input_path, native_px, model_px,
        )
    separate, channels, out_idx = separation_channels(info, options.separate)
    with open_input(input_path, target_px) as src:
        H, W = src.height, src.width
        profile = {"width": W, "height": H, "crs": src.crs, "transform": src.transform}
        with_mask = has_validity_mask(src)
        vopt = vectorize_options(src, options, channels, separate)
        crs, transform = src.crs, src.transform
    if separate:
        logger.info(
            "%s: separating touching buildings on %s (seeds %s >= %.2f, at least %d px; reach %d px)",
            input_path, ", ".join(channels) if len(channels) > 1 else "building probability alone",
            "score" if len(channels) > 1 else f"eroded by {vopt.seed_erode_px} px, probability",
            vopt.seed_threshold, vopt.seed_min_px, vopt.reach_px,
        )

    m = info.model.multiple
    if transform.b == 0 and transform.d == 0:
        phase = (lattice_phase(transform.f, transform.e, m), lattice_phase(transform.c, transform.a, m))
    else:  # rotated grid: no CRS-anchored lattice, start at the raster's corner
        phase = (0, 0)
    # column bands bound the memory by their width; each gets context columns for the sieve
    band_specs = []
    for x0, x1 in column_bands(W, options.band_width, PROBS_BLOCK):
        band_specs.append((x0, x1, max(0, x0 - vopt.margin), min(W, x1 + vopt.margin)))
    nch = len(channels) if len(channels) > 1 else None  # one channel: plain (rows, cols) strips
    stitchers = [
        StripStitcher(H, W, options.tile, options.overlap, phase=phase, multiple=m, cols=(cx0, cx1), channels=nch)
        for _, _, cx0, cx1 in band_specs
    ]
    n_windows = sum(st.n_windows for st in stitchers)
    vec_writer = VectorWriter(output, crs, wgs84=options.wgs84)
    stop = threading.Event()

    def emit(geoms, area, score):
        if stop.is_set():  # torn down: never write into temporary files that are being removed
            raise _Stop
        vec_writer.write(geoms, area, score)

    vectorizer = StripVectorizer(H, W, transform, crs, vopt, emit)
    prob_writer = (ProbsWriter(probs, **profile, with_mask=with_mask, channels=channels, block=PROBS_BLOCK)
                   if probs is not None else None)
    windows_q: queue.Queue = queue.Queue(maxsize=4)
    # strips of several channels (separation) are 3x larger: fewer of them in flight bounds the memory alike
    strips_q: queue.Queue = queue.Queue(maxsize=4 if nch is None else 2)
    pin = device.type == "cuda"
    reader = _Reader(input_path, stitchers, info, options.batch_size, pin, windows_q, stop, target_px)
    writer = _Writer(strips_q, stop, vectorizer, prob_writer, band_specs)
    result = RasterResult(input=input_path, output=output, probs=probs, windows=n_windows, pixels=H * W)
    bar = tqdm(total=n_windows, desc=input_path.name, unit="win", file=sys.stderr,
               disable=not options.progress, leave=False, dynamic_ncols=True)
    committed = False
    model_time = 0.0
    try:
        writer.start()
        reader.start()
        valid_rows: dict[tuple[int, int], np.ndarray] = {}
        band = 0
        with torch.inference_mode():
            while True:
                try:
                    msg = windows_q.get(timeout=0.5)
                except queue.Empty:
                    if writer.error is not None:
                        raise_user_error(writer.error, output, "write output")
                    if not reader.is_alive():
                        raise RuntimeError("reader thread stopped without a result")
                    continue
                kind = msg[0]
                if kind in ("batch", "skip", "valid") and msg[1] != band:
                    if not stitchers[band].finished:
                        raise RuntimeError("band ended before all its rows were released")
                    band = msg[1]
                stitcher = stitchers[band]
                if kind == "batch":
                    ids, batch = msg[2], msg[3]
                    t0 = time.perf_counter()
                    x = batch.to(device, non_blocking=True)
                    with autocast(device, enabled=options.amp):
                        logits = model(x)
                    if logits.shape[1] <= max(out_idx):
                        raise CheckpointError(
                            f"model gives {logits.shape[1]} output channel(s), its checkpoint names {len(info.model.outputs)}",
                            info.path,
                        )
                    p = torch.sigmoid(logits[:, out_idx if nch else 0].float()).cpu().numpy()
                    model_time += time.perf_counter() - t0
                    for k, (i, j) in enumerate(ids):
                        stitcher.add(i, j, p[k])
                    result.windows_run += len(ids)
                    bar.update(len(ids))
                elif kind == "skip":
                    stitcher.skip(msg[2], msg[3])
                    bar.update(1)
                elif kind == "valid":
                    valid_rows[(band, msg[2])] = msg[3]
                elif kind == "end":
                    break
                elif kind == "error":
                    raise_user_error(msg[1], input_path, "read raster")
                for i, row0, rows in stitcher.pop_final():
                    v = valid_rows.pop((band, i))
                    rows *= v
                    _send(strips_q, (band, row0, rows, v), writer, output)
        if not all(st.finished for st in stitchers):
            raise RuntimeError("not every window was predicted")
        _send(strips_q, None, writer, output)
        writer.join()
        if writer.error is not None:
            raise_user_error(writer.error, output, "write output")
        try:
            vec_writer.commit()
            if prob_writer is not None:
                prob_writer.commit()
        except BaseException as exc:
            raise_user_error(exc, output, "write output")
        committed = True
    finally:
        bar.close()
        stop.set()
        for q in (windows_q, strips_q):
            try:
                while True:
                    q.get_nowait()
            except queue.Empty:
                pass
        reader.join(timeout=30)
        writer.join(timeout=30)
        if not committed:
            vec_writer.abort()
            if prob_writer is not None:
                prob_writer.abort()
    result.n_polygons = vectorizer.n_polygons
    result.model_seconds = model_time
    result.seconds = time.perf_counter() - t_start
    return result


def predict(config: PredictConfig, *, model: tuple[torch.nn.Module, CheckpointInfo] | None = None) -> PredictResult:
    """Predict building footprints for every input of ``config``; see ``geounet predict --help``.

    ``model`` (a module and its :class:`CheckpointInfo`) replaces loading ``config.model_path``.
    """
    from .model.checkpoint import load_model

    jobs = plan_jobs(config)
    result = PredictResult()
    todo = [j for j in jobs if not j.skip]
    for j in jobs:
        if j.skip:
            logger.info("skipping %s: %s exists (use --overwrite to redo it)", j.input, j.output)
            result.rasters.append(RasterResult(input=j.input, output=j.output, probs=j.probs, skipped=True))
    if not todo:
        return result
    device = resolve_device(config.device)
    if model is None:
        net, info = load_model(config.model_path, device)
    else:
        net, info = model
        net = net.to(device).eval()
    check_model(info)
    if config.tta:
        net = DihedralTTA(net)
    options = resolve_options(config, info, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    try:
        net = net.to(memory_format=torch.channels_last)
    except Exception:  # noqa: BLE001 - any module works, channels-last is only a speed-up
        pass
    for j in todo:  # refuse unusable inputs before spending time on any of them
        with open_raster(j.input) as src:
            check_raster(src, info, j.input)
    logger.info(
        "model %s (width %d, depth %d); windows %d px, overlap %d, batch %d on %s%s",
        info.path or "(given)", info.model.width, info.model.depth, options.tile, options.overlap,
        options.batch_size, device, ", autocast" if options.amp else "",
    )
    if config.tta:
        logger.info("test-time augmentation: 8 views per window")
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
        for j in todo:
            r = predict_raster(net, info, j.input, j.output, options, probs=j.probs, device=device)
            mpx = r.pixels / 1e6
            logger.info(
                "%s: %d buildings -> %s (%.1f Mpx in %.1f s, %.2f Mpx/s; %d of %d windows run; model %.0f%% of the time)",
                j.input, r.n_polygons, j.output, mpx, r.seconds, mpx / max(r.seconds, 1e-9),
                r.windows_run, r.windows, 100.0 * r.model_seconds / max(r.seconds, 1e-9),
            )
            result.rasters.append(r)
    return result
