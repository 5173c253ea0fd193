"""The driver: :func:`predict_raster` (one raster; :func:`geounet.predict.batch.predict` runs a whole
:class:`PredictConfig` with it).

:func:`predict_raster` opens the raster once: it checks it, decides the pixel size to predict
at (resampling on the fly when that differs), lays out the windows and column bands
(:class:`_Layout`) and hands the open raster to the reader thread of the pipeline
(:mod:`geounet.predict.pipeline`), while the main thread runs the model (BatchNorm folded,
``torch.inference_mode``, autocast, channels-last, non-blocking copies on CUDA) and stitches (:class:`_Run`).

Every output is written under a temporary name in its own folder and renamed only when
complete, the vector file, ``--probs`` and ``--preview`` together (all or none); on any error or
Ctrl-C the temporary files are removed and existing outputs are left as they were. Footprints go to
a :class:`~geounet.predict.footprints.FootprintSink` (vector file, status against ``--existing``,
``--preview`` picture).
"""

from __future__ import annotations

import os
import queue
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
import torch
from affine import Affine
from tqdm import tqdm

from ..config import CheckpointInfo
from ..device import autocast, private_rng
from ..errors import CheckpointError
from ..grid import ColumnBand, column_bands_with_context, stitched_columns, window_origin
from ..io.files import replace_together
from ..io.mosaic import Mosaic, open_input
from ..io.nodata import with_nodata_value
from ..io.probs import ProbsWriter, quantize
from ..io.raster import block_cache_mb, has_validity_mask, pixel_size_m, raise_user_error, resampled
from ..io.stretch import InputStretch, input_stretch
from ..log import logger
from ..model import checkpoint
from ..model.inference import inference_model
from ..model.tta import DihedralTTA
from ..paths import as_source, source_name
from ..vectorize import StripVectorizer, VectorizeOptions
from .pipeline import (STRIP_QUEUE, WINDOW_QUEUE, FinalRows, ReadDone, ReadFailed, Reader, Stop, WindowBatch,
                       WindowSkipped, WriteDone, Writer, join_thread, put)
from .adapt import adapted
from .existing import ExistingBuildings
from .footprints import FootprintSink, open_sink
from .resolve import (check_model, check_raster, separation_channels, target_pixel_size,
                      vectorize_options, warn_colour_order)
from .settings import PredictConfig, RunOptions
from .spill import BandHandover
from .stitch import StripStitcher

__all__ = ["PredictResult", "RasterResult", "predict_raster"]


@dataclass
class RasterResult:
    """What :func:`predict_raster` did with one raster (``skipped``: its output existed and was kept;
    ``error``: the one-line reason it failed, in a batch of several inputs, where the others go on)."""

    input: Path | str | Mosaic  # a local Path, a URL or GDAL path as given, or tiles read as one
    output: Path
    probs: Path | None = None
    preview: Path | None = None
    skipped: bool = False
    error: str | None = None
    n_polygons: int = 0  # found; with --only-new, n_new of them are written
    n_new: int = 0  # with --existing: footprints matching no existing building
    n_mapped: int = 0  # with --existing: footprints matching one
    windows: int = 0
    windows_run: int = 0
    pixels: int = 0
    seconds: float = 0.0
    model_seconds: float = 0.0


@dataclass
class PredictResult:
    """What :func:`predict` did: one :class:`RasterResult` per input, in order."""

    rasters: list[RasterResult] = field(default_factory=list)

    @property
    def written(self) -> list[Path]:
        return [r.output for r in self.rasters if not r.skipped and r.error is None]

    @property
    def skipped(self) -> list[Path]:
        return [r.input for r in self.rasters if r.skipped]

    @property
    def failed(self) -> list[RasterResult]:
        return [r for r in self.rasters if r.error is not None]


@dataclass
class _Layout:
    """One raster as the model sees it: its grid, the model outputs carried, its column bands and their stitchers."""

    height: int
    width: int
    crs: rasterio.crs.CRS
    transform: Affine
    with_mask: bool
    separate: bool
    channels: tuple[str, ...]  # model outputs carried: building (and border, contact when separating)
    out_idx: list[int]  # their indexes among the model's outputs
    n_channels: int | None  # channels of the stitched strips; None for one: plain (rows, cols) strips
    vopt: VectorizeOptions
    column_bands: list[ColumnBand]
    stitchers: list[StripStitcher]  # one per column band


def _layout(src, info: CheckpointInfo, options: RunOptions) -> _Layout:
    """Lay out ``src`` (the raster as the model sees it): outputs carried, vectoriser pixels, column bands, windows."""
    separate, channels, out_idx = separation_channels(info, options.separate)
    vopt = vectorize_options(src, options, channels, separate)
    H, W, m = src.height, src.width, info.model.multiple
    first = window_origin(src.transform)  # windows on a lattice anchored at the CRS origin
    # column bands bound the memory by their width; each gets context columns for the sieve, the
    # left ones stitched by the band before and handed over (spill.py), so their windows run once
    col_bands = column_bands_with_context(W, options.band_width, options.probs_block, vopt.margin)
    nch = len(channels) if len(channels) > 1 else None
    stitchers = [
        StripStitcher(H, W, options.tile, options.overlap, first=first, multiple=m, cols=cols, channels=nch)
        for cols in stitched_columns(col_bands)
    ]
    return _Layout(H, W, src.crs, src.transform, has_validity_mask(src), separate, channels, out_idx, nch, vopt,
                   col_bands, stitchers)


def _pixel_size_for(src, info: CheckpointInfo, options: RunOptions, path: Path | str) -> float | None:
    """The pixel size to predict ``src`` at (None: its own), with a log line about it."""
    model_px, model_range = info.preprocessing.pixel_size_m, info.preprocessing.pixel_size_range_m
    native_px = pixel_size_m(src)
    target_px = target_pixel_size(options.pixel_size, native_px, model_px, model_range)
    if target_px:
        logger.info("%s: resampling %.3f m pixels to %.3f m%s", path, native_px, target_px,
                    " (the model's)" if target_px == model_px or model_range else "")
    elif model_range and not (model_range[0] / 1.5 <= native_px <= model_range[1] * 1.5):
        logger.warning(
            "%s: pixels are %.3f m but the model was trained at %.3f-%.3f m; results may be poor "
            "(use --pixel-size auto)", path, native_px, *model_range,
        )
    elif model_px and not model_range and not (1 / 1.5 <= native_px / model_px <= 1.5):
        logger.warning(
            "%s: pixels are %.3f m but the model was trained at %.3f m; results may be poor "
            "(use --pixel-size auto)", path, native_px, model_px,
        )
    return target_px


def _log_separation(path: Path | str, layout: _Layout) -> None:
    if not layout.separate:
        return
    channels, vopt = layout.channels, layout.vopt
    logger.info(
        "%s: separating touching buildings on %s (seeds %s >= %.2f, at least %d px; reach %d px)",
        path, ", ".join(channels) if len(channels) > 1 else "building probability alone",
        "score" if len(channels) > 1 else f"eroded by {vopt.seed_erode_px} px, probability",
        vopt.seed_threshold, vopt.seed_min_px, vopt.reach_px,
    )


def predict_raster(
    model: torch.nn.Module,
    info: CheckpointInfo,
    input_path: str | os.PathLike | Mosaic,
    output: str | os.PathLike,
    options: RunOptions,
    *,
    probs: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
    existing: ExistingBuildings | None = None,
    preview: str | os.PathLike | None = None,
) -> RasterResult:
    """Run ``model`` over one raster (or a :class:`~geounet.io.mosaic.Mosaic` of tiles read as one) and write
    its buildings to ``output`` (and probabilities to ``probs``).

    ``model`` maps a (B, C, H, W) float batch to (B, K, H, W) logits; ``info`` gives its
    bands, normalisation and output names (``info.model.outputs``: building, and border and
    contact for models trained with separation targets). Outputs are checked (exist/writable) by the caller,
    :func:`predict`; here they are only ever created through temporary files. ``existing``: buildings
    already mapped (each footprint's ``status``); ``preview``: a PNG picture to write. What runs is a copy of
    ``model`` with its BatchNorm folded (:func:`~geounet.model.inference_model`, after ``options.adapt``): ``model``
    is never changed, and state that a module keeps while it runs lands on the copy.
    """
    t_start = time.perf_counter()
    device = torch.device(device)
    input_path = input_path if isinstance(input_path, Mosaic) else as_source(input_path)
    output = Path(output)
    probs = Path(probs) if probs is not None else None
    with open_input(input_path) as raster:
        raster = with_nodata_value(raster, options.nodata)
        check_raster(raster, info, str(input_path), options.input_range)
        warn_colour_order(raster, info.preprocessing.bands, str(input_path))  # here, not in the batch's early check
        target_px = _pixel_size_for(raster, info, options, input_path)
        sink = open_sink(output, raster, input_path, options, existing, preview, info.preprocessing.bands)
        with resampled(raster, target_px) as src:
            layout = _layout(src, info, options)
            _log_separation(input_path, layout)
            stretch = input_stretch(src, info.preprocessing, options.input_range, str(input_path))
            if stretch is not None:
                logger.info("%s: raw values stretched to the model's range, per band: %s", input_path,
                            stretch.describe())
            if options.adapt:  # before folding: adapting re-estimates the BatchNorm statistics that folding fixes
                model = adapted(model, src, info, options, device, str(input_path), stretch)
            model = inference_model(model)  # BatchNorm folded into the convolutions (a copy)
            result = _Run(model, info, src, layout, options, device, input_path, sink, probs, stretch).run()
    result.seconds = time.perf_counter() - t_start
    return result


class _Run:
    """One raster's pipeline: the reader and writer threads around the model loop of the main thread."""

    def __init__(self, model: torch.nn.Module, info: CheckpointInfo, src, layout: _Layout, options: RunOptions,
                 device: torch.device, input_path: Path | str | Mosaic, sink: FootprintSink, probs: Path | None,
                 stretch: InputStretch | None = None):
        self.model, self.info, self.layout, self.options, self.device = model, info, layout, options, device
        self.input_path, self.sink, self.output = input_path, sink, (output := sink.output)
        self.stop = threading.Event()
        self.vectorizer = StripVectorizer(layout.height, layout.width, layout.transform, layout.crs, layout.vopt,
                                          self._emit, levels=True)
        self.prob_writer = None if probs is None else ProbsWriter(
            probs, width=layout.width, height=layout.height, crs=layout.crs, transform=layout.transform,
            with_mask=layout.with_mask, channels=layout.channels, block=options.probs_block)
        self.windows_q: queue.Queue = queue.Queue(maxsize=WINDOW_QUEUE)
        self.strips_q: queue.Queue = queue.Queue(maxsize=STRIP_QUEUE)
        # what a column band hands to the next: final rows of context columns, windows both touch (spill.py)
        self.handover = BandHandover(layout.column_bands, layout.stitchers)
        # GDAL's cache is the process's: reader and writer ask for the same size
        read_width = max(c1 - c0 for c0, c1 in (st.read_span() for st in layout.stitchers))
        cache_mb = block_cache_mb(src, read_width, options.gdal_cache_mb)
        self.reader = Reader(src, layout.stitchers, info, options.batch_size, device.type == "cuda", self.windows_q,
                             self.stop, cache_mb, stretch, self.handover.handed)
        self.writer = Writer(self.strips_q, self.stop, self.vectorizer, self.prob_writer, layout.column_bands, output,
                             cache_mb)
        n_windows = sum(self.handover.n_windows(k) for k in range(len(layout.stitchers)))  # each run once
        self.result = RasterResult(input=input_path, output=output, probs=probs, windows=n_windows,
                                   pixels=layout.height * layout.width, preview=sink.preview_path)
        self.bar = tqdm(total=n_windows, desc=input_path.name if isinstance(input_path, Mosaic) else source_name(input_path),
                        unit="win", file=sys.stderr,
                        disable=not options.progress, leave=False, dynamic_ncols=True)
        self.model_time = 0.0

    def _emit(self, geoms, area, score) -> None:
        if self.stop.is_set():  # torn down: never write into temporary files that are being removed
            raise Stop
        self.sink.write(geoms, area, score)

    def run(self) -> RasterResult:
        committed = False
        try:
            self.writer.start()
            self.reader.start()
            with torch.inference_mode():
                self._consume()
            self._commit()
            committed = True
        finally:
            self._teardown(committed)
        self.result.n_polygons = self.vectorizer.n_polygons
        self.result.n_new, self.result.n_mapped = self.sink.n_new, self.sink.n_mapped
        self.result.model_seconds = self.model_time
        return self.result

    def _next_message(self):
        while True:
            try:
                return self.windows_q.get(timeout=0.5)
            except queue.Empty:
                self.writer.raise_error()
                if not self.reader.is_alive():
                    raise RuntimeError("reader thread stopped without a result")

    def _consume(self) -> None:
        """Run the model on the reader's windows and send the rows they complete to the writer."""
        stitchers = self.layout.stitchers
        valid_rows: dict[tuple[int, int], np.ndarray] = {}
        current = 0  # the column band being stitched
        self._spill(self.handover.begin, 0)
        while True:
            msg = self._next_message()
            if isinstance(msg, ReadDone):
                break
            if isinstance(msg, ReadFailed):
                raise_user_error(msg.error, str(self.input_path), "read raster")
            if msg.column_band != current:
                if not stitchers[current].finished:
                    raise RuntimeError("band ended before all its rows were released")
                current = msg.column_band
                self._spill(self.handover.begin, current)
            stitcher = stitchers[current]
            if isinstance(msg, WindowBatch):
                self._predict(stitcher, msg)
            elif isinstance(msg, WindowSkipped):
                stitcher.skip(msg.window_row, msg.window_col)
                self._spill(self.handover.window_done, msg.window_col, None)
                self.bar.update(1)
            else:  # the row's validity comes before its windows: first the windows the band before ran
                valid_rows[(current, msg.window_row)] = msg.valid
                for j, p in self._spill(self.handover.windows_for_row):
                    stitcher.add(msg.window_row, j, p) if p is not None else stitcher.skip(msg.window_row, j)
                    self._spill(self.handover.window_done, j, p)  # a window three bands touch goes on
            for i, row0, probs in stitcher.pop_final():
                v = valid_rows.pop((current, i))
                probs *= v
                levels = quantize(probs, overwrite=True)  # probs is not used again: no float32 temporaries
                levels, v = self._spill(self.handover.rows, levels, v)
                put(self.strips_q, FinalRows(current, row0, levels, v), self.stop, peer=self.writer)
        if not all(st.finished for st in stitchers):
            raise RuntimeError("not every window was predicted")

    def _spill(self, fn, *args):
        """``fn(*args)`` of the hand-over between column bands, whose temporary files may fill the disk."""
        try:
            return fn(*args)
        except OSError as exc:
            raise_user_error(exc, Path(tempfile.gettempdir()), "write or read temporary files")

    def _predict(self, stitcher: StripStitcher, msg: WindowBatch) -> None:
        out_idx = self.layout.out_idx
        t0 = time.perf_counter()
        x = msg.batch.to(self.device, non_blocking=True)
        with autocast(self.device, enabled=self.options.amp):
            logits = self.model(x)
        if logits.shape[1] <= max(out_idx):
            raise CheckpointError(
                f"model gives {logits.shape[1]} output channel(s), its checkpoint names {len(self.info.model.outputs)}",
                self.info.path,
            )
        p = torch.sigmoid(logits[:, out_idx if self.layout.n_channels else 0].float()).cpu().numpy()
        self.model_time += time.perf_counter() - t0
        for k, (i, j) in enumerate(msg.ids):
            stitcher.add(i, j, p[k])
            self._spill(self.handover.window_done, j, p[k])
        self.result.windows_run += len(msg.ids)
        self.bar.update(len(msg.ids))

    def _commit(self) -> None:
        put(self.strips_q, WriteDone(), self.stop, peer=self.writer)
        self.writer.join()
        self.writer.raise_error()
        try:  # all files or none: a vector file alone would make a re-run skip this input
            moves = self.sink.finish()
            if self.prob_writer is not None:
                moves.insert(0, (self.prob_writer.tmp, self.prob_writer.path))
            replace_together(moves)
        except BaseException as exc:
            raise_user_error(exc, self.output, "write output")
        self.sink.abort()  # what the conversion left (the spill); the outputs are in place

    def _teardown(self, committed: bool) -> None:
        self.bar.close()
        self.stop.set()
        self.handover.close()
        for q in (self.windows_q, self.strips_q):
            try:
                while True:
                    q.get_nowait()
            except queue.Empty:
                pass
        for thread in (self.reader, self.writer):
            join_thread(thread)
        if not committed:  # only now: the writer's files are never closed under it
            self.sink.abort()
            if self.prob_writer is not None:
                self.prob_writer.abort()


def _load_model(config: PredictConfig, model: tuple[torch.nn.Module, CheckpointInfo] | None,
                device: torch.device) -> tuple[torch.nn.Module, CheckpointInfo]:
    """The model to run (loaded from ``config.model_path`` unless given), on ``device``, checked, channels-last."""
    if model is None:
        with private_rng():  # building the model draws initial weights: the caller's generator is left alone
            net, info = checkpoint.load_model(config.model_path, device)
    else:
        net, info = model
        net = net.to(device).eval()
    check_model(info)
    if config.tta:
        net = DihedralTTA(net)
    return net, info
