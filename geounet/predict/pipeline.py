"""The reader and writer threads of a predict run, and the typed messages they exchange with the main thread.

Three threads work at once so the model is never kept waiting:

* a **reader** (:class:`Reader`) reads strips of rows of each column band from the raster
  the driver opened, aligned to the file's blocks so every compressed block is read and
  decoded once (:class:`~geounet.predict.strips.StripBuffer`): the validity mask of the strip
  first, then the pixels of the windows that have data only; it skips windows that are entirely
  no-data, normalises the rest with the checkpoint's bands and statistics straight into
  channels-last (and, on CUDA, pinned) batch tensors, and queues them
  (:class:`WindowBatch`, :class:`WindowSkipped`, :class:`RowValidity`, then
  :class:`ReadDone` or :class:`ReadFailed`);
* the **main thread** (:mod:`geounet.predict.driver`) runs the model and blends the windows
  into a :class:`~geounet.predict.stitch.StripStitcher`, which releases rows as soon as no
  later window can touch them; those rows are multiplied by the validity mask (no-data gets
  probability 0), rounded to the 256 levels ``--probs`` stores (so the polygons are the same
  with or without it, and ``geounet vectorize`` repeats them; a quarter of the float32 rows'
  memory while they wait in the queue) and queued as :class:`FinalRows`, then :class:`WriteDone`;
* a **writer** (:class:`Writer`) writes the final rows to ``--probs``
  (:class:`~geounet.io.probs.ProbsWriter`) and feeds them to the
  :class:`~geounet.vectorize.StripVectorizer`, whose finished buildings go to a
  :class:`~geounet.io.vector.VectorWriter`.

Nothing holds more than a few strips of rows, so memory depends on the width of a column
band and the window size, not on the raster's height. Every queue is bounded; :func:`put`
is the one way into them: it waits while a queue is full and gives up with :class:`Stop`
once the run is being torn down, or raises the error of the thread at the other end.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import torch

from ..config import CheckpointInfo, Preprocessing
from ..grid import ColumnBand
from ..io.probs import ProbsWriter
from ..io.raster import gdal_env, raise_user_error
from ..io.stretch import InputStretch
from ..log import logger
from ..vectorize import StripVectorizer
from .stitch import StripStitcher
from .strips import StripBuffer

__all__ = [
    "Stop", "put", "WindowBatch", "WindowSkipped", "RowValidity", "ReadDone", "ReadFailed", "FinalRows",
    "WriteDone", "Reader", "Writer", "join_thread", "WINDOW_QUEUE", "STRIP_QUEUE",
]

WINDOW_QUEUE = 4  # batches in flight between the reader and the model
STRIP_QUEUE = 4  # final strips in flight to the writer, as uint8 levels (three channels: 3/4 of one float32)
JOIN_WARN_S = 30.0  # a thread slower than this to stop after teardown began is waited for with a warning


class Stop(Exception):
    """Raised inside a thread when the pipeline is being torn down."""


def join_thread(thread: threading.Thread) -> None:
    """Wait for ``thread`` (a :class:`Reader` or :class:`Writer`) to end, saying so when it takes long.

    Once ``stop`` is set they end within a read or write of a strip; the files they use (the open
    raster, the temporary outputs) are closed only after that, never under them.
    """
    if thread.ident is None:  # never started
        return
    thread.join(timeout=JOIN_WARN_S)
    if thread.is_alive():
        logger.warning("waiting for the %s thread to finish its current strip", thread.name.removeprefix("geounet-"))
        thread.join()


def put(q: queue.Queue, item, stop: threading.Event, peer: Writer | None = None) -> None:
    """Queue ``item``, waiting while ``q`` is full; :class:`Stop` once ``stop`` is set.

    With ``peer`` (the thread that empties ``q``), its error is raised here as soon as it
    has one (see :meth:`Writer.check`), so the caller never waits on a dead consumer.
    """
    while True:
        if stop.is_set():
            raise Stop
        if peer is not None:
            peer.check()
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


# reader -> main thread


@dataclass(frozen=True)
class WindowBatch:
    """Normalised windows of column band ``column_band``: ``batch[k]`` is window ``ids[k]`` = (window-row, window-column)."""

    column_band: int
    ids: list[tuple[int, int]]
    batch: torch.Tensor  # (B, C, H, W), channels-last memory


@dataclass(frozen=True)
class WindowSkipped:
    """A window that is entirely no-data: not run, only counted by the stitcher."""

    column_band: int
    window_row: int
    window_col: int


@dataclass(frozen=True)
class RowValidity:
    """Validity of the rows that ``window_row`` releases, over the columns the band stitches; sent before
    the window-row's windows."""

    column_band: int
    window_row: int
    valid: np.ndarray  # (rows, band width) bool


@dataclass(frozen=True)
class ReadDone:
    """Every window of every column band has been queued."""


@dataclass(frozen=True)
class ReadFailed:
    """The reader stopped on ``error``; the main thread raises it."""

    error: BaseException


# main thread -> writer


@dataclass(frozen=True)
class FinalRows:
    """Final probabilities of raster rows ``[row0, row0 + n)`` over the context columns of ``column_band``,
    as ``--probs`` stores them (:func:`~geounet.io.probs.quantize`)."""

    column_band: int
    row0: int
    stored: np.ndarray  # uint8 levels, (n, width), or (C, n, width) with several model outputs
    valid: np.ndarray  # (n, width) bool


@dataclass(frozen=True)
class WriteDone:
    """No more rows: finish the vectoriser and close the files."""


class Normaliser:
    """Raw window pixels (bands, rows, cols) to the model's input as prediction feeds it: with a
    ``stretch`` (imagery of another data type, :mod:`geounet.io.stretch`) first ``(x - low) * scale / (high - low)``
    per band; clipped to ``[0, scale]`` as in training (:meth:`~geounet.config.Preprocessing.clip_raw`),
    then ``x * mul + add`` with ``mul = 1 / (scale * std)`` and ``add = -mean / std`` per band; float32, a
    new array."""

    def __init__(self, prep: Preprocessing, stretch: InputStretch | None = None):
        self.prep = prep
        std = np.asarray(prep.std, np.float32)
        self.mul = (1.0 / (np.float32(prep.scale) * std))[:, None, None].astype(np.float32)
        self.add = (-np.asarray(prep.mean, np.float32) / std)[:, None, None].astype(np.float32)
        self.stretch = stretch

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        x = raw.astype(np.float32) if self.stretch is None else self.stretch.apply(raw, self.prep.scale)
        x = self.prep.clip_raw(x)
        x *= self.mul
        x += self.add
        return x


class Reader(threading.Thread):
    """Reads strips, cuts windows, normalises them into batches; see the module docstring.

    ``src`` is opened by the caller and used by this thread alone until it ends.
    """

    def __init__(self, src: rasterio.io.DatasetReader, stitchers: list[StripStitcher], info: CheckpointInfo,
                 batch_size: int, pin: bool, out: queue.Queue, stop: threading.Event, gdal_cache_mb: int,
                 stretch: InputStretch | None = None, handed: list[frozenset[int]] | None = None):
        super().__init__(name="geounet-reader", daemon=True)
        self.src, self.stitchers, self.batch_size, self.pin = src, stitchers, batch_size, pin
        # per column band, the window-columns whose outputs the band before hands over: not read, not queued
        self.handed = handed or [frozenset()] * len(stitchers)
        self.out, self.stop, self.gdal_cache_mb = out, stop, gdal_cache_mb
        self.raster_bands = list(info.preprocessing.bands)
        self.normalise = Normaliser(info.preprocessing, stretch)
        self.th, self.tw = stitchers[0].rows.size, stitchers[0].cols.size  # multiples of 2**depth

    def run(self) -> None:
        try:
            with gdal_env(self.gdal_cache_mb):
                for k, stitcher in enumerate(self.stitchers):
                    self._read_column_band(k, stitcher)
            put(self.out, ReadDone(), self.stop)
        except Stop:
            pass
        except BaseException as exc:  # handed to the main thread, which raises it
            try:
                put(self.out, ReadFailed(exc), self.stop)
            except Stop:
                pass

    def _new_batch(self) -> torch.Tensor:
        t = torch.empty((self.batch_size, self.th, self.tw, len(self.raster_bands)), dtype=torch.float32,
                        pin_memory=self.pin)
        return t.permute(0, 3, 1, 2)  # NCHW view of NHWC memory: channels-last

    def _read_column_band(self, k: int, st: StripStitcher) -> None:
        """Column band ``k``: read its columns strip by strip (validity first, then the pixels of the windows
        that have data: :class:`~geounet.predict.strips.StripBuffer`) and queue its windows."""
        H = self.src.height
        rc0, rc1 = st.read_span()  # raster columns this column band reads
        vx0, vx1 = st.x0 - rc0, st.x1 - rc0  # the band's own columns in the buffer
        buf = StripBuffer(self.src, self.raster_bands, rc0, rc1)
        row_axis, col_axis = st.rows, st.cols
        own = [j for j in st.col_ids if j not in self.handed[k]]  # the windows this band runs or skips itself
        spans = {j: col_axis.clip(j)[:2] for j in own}
        for i in range(len(row_axis.offsets)):
            if self.stop.is_set():
                raise Stop
            r0, r1, _ = row_axis.clip(i)  # raster rows this window-row covers
            buf.advance(r0, r1)
            valid = buf.valid[: r1 - r0]
            nxt = row_axis.offsets[i + 1] if i + 1 < len(row_axis.offsets) else H
            put(self.out, RowValidity(k, i, buf.valid[: nxt - r0, vx0:vx1].copy()), self.stop)
            run = [j for j in own if valid[:, spans[j][0] - rc0 : spans[j][1] - rc0].any()]
            raw = buf.read_pixels([spans[j] for j in run])
            self._queue_window_row(k, st, i, raw[:, : r1 - r0], own, set(run), rc0)

    def _queue_window_row(self, k: int, st: StripStitcher, i: int, raw: np.ndarray, own: list[int], run: set[int],
                          rc0: int) -> None:
        """Queue the windows ``own`` of window-row ``i``: ``raw`` holds its rows from raster column ``rc0``; the
        windows of ``run`` have data, the others are skipped."""
        row_axis, col_axis = st.rows, st.cols
        r, (r0, r1, _) = row_axis.offsets[i], row_axis.clip(i)
        pad_rows = (r0 - r, r + self.th - r1)
        batch, ids = None, []
        for j in own:
            c0, c1, _ = col_axis.clip(j)
            c = col_axis.offsets[j]
            if j not in run:
                put(self.out, WindowSkipped(k, i, j), self.stop)
                continue
            x = self.normalise(raw[:, :, c0 - rc0 : c1 - rc0])
            if raw.dtype.kind == "f":  # no-data NaN would spread through every convolution: the mean instead
                np.nan_to_num(x, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
            pad_cols = (c0 - c, c + self.tw - c1)
            if any(pad_rows) or any(pad_cols):  # window reaches past the raster: mirror its pixels
                x = np.pad(x, ((0, 0), pad_rows, pad_cols), mode="symmetric")
            if batch is None:
                batch = self._new_batch()
            batch[len(ids)].copy_(torch.from_numpy(x))
            ids.append((i, j))
            if len(ids) == self.batch_size:
                put(self.out, WindowBatch(k, ids, batch), self.stop)
                batch, ids = None, []
        if ids:  # batches never span window-rows, so rows complete in order
            put(self.out, WindowBatch(k, ids, batch[: len(ids)]), self.stop)


class Writer(threading.Thread):
    """Consumes final strips: probabilities GeoTIFF and vectoriser.

    ``column_bands[k]`` gives the output columns of column band ``k`` and the context
    columns its strips span; strips of one column band come top to bottom, bands in order.
    """

    def __init__(self, inbox: queue.Queue, stop: threading.Event, vectorizer: StripVectorizer,
                 probs: ProbsWriter | None, column_bands: list[ColumnBand], output: Path, gdal_cache_mb: int):
        super().__init__(name="geounet-writer", daemon=True)
        self.inbox, self.stop, self.vec, self.probs = inbox, stop, vectorizer, probs
        self.column_bands, self.output, self.gdal_cache_mb = column_bands, output, gdal_cache_mb
        self.error: BaseException | None = None

    def raise_error(self) -> None:
        """Raise this thread's error (as a one-line error about the output), if it has one."""
        if self.error is not None:
            raise_user_error(self.error, self.output, "write output")

    def check(self) -> None:
        """:meth:`raise_error`, and refuse to wait on a writer that has stopped."""
        self.raise_error()
        if not self.is_alive():
            raise RuntimeError("writer thread stopped")

    def run(self) -> None:
        try:
            with gdal_env(self.gdal_cache_mb, internal_mask=True):
                if self.probs is not None:
                    self.probs.open()
                current = -1
                while True:
                    try:
                        msg = self.inbox.get(timeout=0.1)
                    except queue.Empty:
                        if self.stop.is_set():
                            return
                        continue
                    if isinstance(msg, WriteDone):
                        break
                    if msg.column_band != current:
                        current = msg.column_band
                        self._begin_column_band(current)
                    self._write(msg)
                self.vec.finish()
                if self.probs is not None:
                    self.probs.close()
        except BaseException as exc:  # raised again by the main thread
            self.error = exc

    def _begin_column_band(self, k: int) -> None:
        x0, x1, cx0, cx1 = self.column_bands[k]
        self.vec.begin_band(x0, x1, cx0, cx1, last=k == len(self.column_bands) - 1)
        if self.probs is not None:
            if k:
                self.probs.end_column_band()
            self.probs.begin_column_band(x0, x1)

    def _write(self, msg: FinalRows) -> None:
        """Vectorise the rows as ``--probs`` stores them (quantised), so ``geounet vectorize`` of it is exact."""
        cb = self.column_bands[msg.column_band]
        stored = msg.stored
        if self.probs is not None:
            own = slice(cb.x0 - cb.cx0, cb.x1 - cb.cx0)
            self.probs.write_rows(msg.row0, stored[..., own], msg.valid[:, own])
        self.vec.add_rows(msg.row0, stored, msg.valid)  # levels: the vectoriser reads them as dequantize does
