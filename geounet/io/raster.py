"""Rasters: opening them with clear errors, resampling on the fly, validity masks, ground pixel size,
the GDAL environment, and GDAL errors translated into one-line errors (:func:`raise_user_error`)."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NoReturn

import numpy as np
import rasterio
from affine import Affine
from pyproj import Geod, Transformer
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import RasterioError, RasterioIOError
from rasterio.windows import Window

from ..errors import GeounetError, InputError
from ..paths import is_local, remote_reason, vsi_path

_GEOD = Geod(ellps="WGS84")


@contextlib.contextmanager
def open_raster(path: str | os.PathLike, *, need_crs: bool = True) -> Iterator[rasterio.io.DatasetReader]:
    """Open ``path`` for reading, raising :class:`InputError` with a one-line reason.

    ``path`` is a local file, a URL or a GDAL virtual path (:mod:`geounet.paths`). Refuses
    missing files, directories, URLs that cannot be fetched (the reason in a few words: not
    found, connection refused), files GDAL cannot read as rasters, and (when ``need_crs``)
    rasters without a CRS or in a local (engineering) CRS, since every output is georeferenced
    and pixel sizes are measured in ground metres.
    """
    p = os.fspath(path)
    if is_local(p):
        if not os.path.exists(p):
            raise InputError("file not found", p)
        if os.path.isdir(p):
            raise InputError("is a directory, not a raster", p)
        if not os.access(p, os.R_OK):
            raise InputError("permission denied", p)
    try:
        src = rasterio.open(vsi_path(p))
    except RasterioIOError as exc:
        raise InputError(_open_failure(str(exc).split("\n")[0], p), p) from None
    with src:
        if need_crs and src.crs is None:
            raise InputError("raster has no CRS (georeference it first, e.g. gdal_edit.py -a_srs)", p)
        if need_crs and not (src.crs.is_geographic or src.crs.is_projected):
            raise InputError(
                "raster's CRS is a local (engineering) one, not tied to the earth, so ground metres are unknown "
                "(georeference it in a geographic or projected CRS first, e.g. gdal_edit.py -a_srs)", p)
        if src.count < 1:
            raise InputError("raster has no bands", p)
        yield src


def _open_failure(msg: str, path: str) -> str:
    """Why GDAL could not open ``path``, in a few words."""
    if "not recognized as" in msg or "not recognised as" in msg:
        return "not a raster GDAL can read"
    reason = remote_reason(msg)
    if reason:
        return f"cannot fetch ({reason})"
    if not is_local(path) and ("No such file" in msg or "does not exist" in msg):
        return "not found"
    return msg


def data_bands(src: rasterio.io.DatasetReader) -> tuple[int, ...]:
    """1-based indexes of the bands that carry image data (alpha bands are masks, not data)."""
    bands = tuple(i for i, ci in zip(src.indexes, src.colorinterp) if ci != ColorInterp.alpha)
    return bands or tuple(src.indexes)


def has_validity_mask(src: rasterio.io.DatasetReader) -> bool:
    """Whether the raster marks any pixels invalid (mask band, alpha band or nodata value)."""
    return any(MaskFlags.all_valid not in flags for flags in src.mask_flag_enums)


def read_valid_mask(
    src: rasterio.io.DatasetReader,
    window: Window | None = None,
    *,
    boundless: bool = False,
    out_shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """Boolean validity of ``window``: True where the raster has data.

    Uses GDAL's dataset mask, which merges per-dataset mask bands, alpha and nodata.
    Boundless reads mark pixels outside the raster invalid. ``out_shape`` resamples
    (nearest neighbour) to another grid.
    """
    if not has_validity_mask(src) and not boundless:
        if out_shape is not None:
            h, w = out_shape
        else:
            h, w = (src.height, src.width) if window is None else (int(window.height), int(window.width))
        return np.ones((h, w), dtype=bool)
    return src.dataset_mask(window=window, boundless=boundless, out_shape=out_shape) > 0


def coarse_valid_mask(src: rasterio.io.DatasetReader, max_side: int = 2048) -> tuple[np.ndarray, float, float]:
    """Validity mask decimated so neither side exceeds ``max_side``, without reading the full mask into memory.

    Returns ``(mask, fy, fx)`` where one coarse cell covers ``fy`` x ``fx`` raster pixels.
    """
    f = max(1, math.ceil(max(src.height, src.width) / max_side))
    shape = (max(1, math.ceil(src.height / f)), max(1, math.ceil(src.width / f)))
    if not has_validity_mask(src):
        mask = np.ones(shape, dtype=bool)
    else:
        mask = src.dataset_mask(out_shape=shape) > 0
    return mask, src.height / shape[0], src.width / shape[1]


def pixel_size_m(src: rasterio.io.DatasetReader) -> float:
    """Ground pixel size in metres at the raster centre (mean of x and y).

    Measured as geodesic distances on the WGS84 ellipsoid between the centre pixel and its
    neighbours, so it is right for degrees (EPSG:4326), for web-mercator (whose map metres
    are not ground metres: they shrink by cos(latitude)), and for CRSs in feet.
    """
    if src.crs is None:
        raise InputError("raster has no CRS, so its pixel size in metres is unknown", src.name)
    return ground_pixel_size(src.crs, src.transform, src.width, src.height)


def ground_pixel_size(crs, transform, width: int, height: int) -> float:
    """Ground size in metres of one pixel at the centre of a grid (see :func:`pixel_size_m`)."""
    dx, dy = ground_pixel_xy(crs, transform, width, height)
    return float((dx + dy) / 2.0)


def ground_pixel_xy(crs, transform, width: int, height: int) -> tuple[float, float]:
    """Ground metres of one column step and of one row step at the centre of a grid (they differ in degrees)."""
    cx, cy = width / 2.0, height / 2.0
    pts = [transform @ (cx, cy), transform @ (cx + 1, cy), transform @ (cx, cy + 1)]
    if crs.is_geographic:
        lonlat = pts
    else:
        to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        lonlat = [to_ll.transform(x, y) for x, y in pts]
    (lon0, lat0), (lon1, lat1), (lon2, lat2) = lonlat
    _, _, dx = _GEOD.inv(lon0, lat0, lon1, lat1)
    _, _, dy = _GEOD.inv(lon0, lat0, lon2, lat2)
    return float(abs(dx)), float(abs(dy))


def check_bands(src: rasterio.io.DatasetReader, bands: Sequence[int], path: str | None = None) -> None:
    """Raise :class:`InputError` unless every band index in ``bands`` exists in ``src``."""
    missing = [b for b in bands if b < 1 or b > src.count]
    if missing:
        raise InputError(
            f"raster has {src.count} band(s) but the model reads band(s) {list(bands)}",
            path or src.name,
        )


# How imagery is read at another pixel size, in training (read_window) and in prediction (ScaledRaster)
# alike, so a model sees resampled imagery the way it was trained on it; validity masks are nearest.
IMAGE_RESAMPLING = Resampling.bilinear
MAX_BLOCK_ROWS = 2048  # taller blocks (striped files of one strip) are read row-window by row-window
MAX_BLOCK_CACHE_MB = 128  # beyond this, a resampled read decodes some source blocks twice rather than hold more


def read_window(
    src: rasterio.io.DatasetReader,
    window: Window,
    bands: Sequence[int],
    *,
    boundless: bool = False,
    out_shape: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read ``bands`` of ``window`` as float32 (C, H, W) plus its boolean validity (H, W).

    With ``out_shape`` (H, W) the window is resampled to that grid: bilinear for the
    image, nearest for the validity mask.
    """
    shape = None if out_shape is None else (len(bands), *out_shape)
    data = src.read(
        list(bands), window=window, boundless=boundless, fill_value=0, out_dtype="float32",
        out_shape=shape, resampling=IMAGE_RESAMPLING,
    )
    valid = read_valid_mask(src, window, boundless=boundless, out_shape=out_shape)
    return data, valid


class ScaledRaster:
    """``src`` seen on a grid of ``width`` x ``height`` pixels over the same extent: each pixel covers
    ``fx`` x ``fy`` source pixels (``fx = src.width / width``), in the source's own CRS and pixel axes.

    Reads go straight to GDAL's RasterIO with a floating-point source window and an output shape
    (bilinear for the image, nearest for the validity mask), which is what a ``WarpedVRT`` of the same
    grid computes, without the warper: the warped VRT re-derived each 128-row block of its own from the
    source, which cost 6x the reading of the same pixels this way (r5000 at 0.2 m: 1.6 s against 0.25 s).
    It is also how training reads a window at another pixel size (:func:`read_window` with ``out_shape``),
    so prediction now resamples imagery exactly as the model saw it in training.

    Exactness: a pixel's value depends only on where it lies, not on the window it is read in (GDAL's
    kernel reads past a window's edge wherever the raster goes on), so strips and windows read in
    pieces give the pixels of one whole read, as the streamed pipeline needs: tested in
    ``tests/test_predict.py``. Against a bilinear ``WarpedVRT`` of the same grid, pixels differ by at
    most 1 of 255 levels, in about one pixel in a million (real Banepa imagery at 0.132 -> 0.2 m).

    Everything that does not depend on the grid (CRS, bands, data types, colour interpretation, mask
    flags, nodata, name) is the source's; nothing else is passed through, so a use this class does not
    know fails loudly instead of reading the source's grid.
    """

    _SAME = ("crs", "count", "dtypes", "indexes", "colorinterp", "nodata", "nodatavals", "mask_flag_enums",
             "name", "descriptions", "closed", "driver", "files")

    def __init__(self, src: rasterio.io.DatasetReader, width: int, height: int):
        self.src, self.width, self.height = src, int(width), int(height)
        self.fx, self.fy = src.width / self.width, src.height / self.height
        self.transform = src.transform @ Affine.scale(self.fx, self.fy)
        bh, bw = src.block_shapes[0] if src.block_shapes else (1, src.width)
        # the source's blocks on this grid (reads aligned to them decode each source block about once)
        self.block_shapes = [(max(1, round(bh / self.fy)), max(1, round(bw / self.fx)))] * src.count

    def __getattr__(self, name: str):
        if name in ScaledRaster._SAME:
            return getattr(self.src, name)
        raise AttributeError(f"{type(self).__name__} has no {name!r}")

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    @property
    def bounds(self):
        return self.src.bounds

    def _source_window(self, window: Window | None) -> tuple[Window, tuple[int, int]]:
        """The source window under ``window`` of this grid (floating point), and ``window``'s shape."""
        if window is None:
            window = Window(0, 0, self.width, self.height)
        w = Window(window.col_off * self.fx, window.row_off * self.fy, window.width * self.fx,
                   window.height * self.fy)
        return w, (int(round(window.height)), int(round(window.width)))

    def read(self, indexes=None, window: Window | None = None, out_dtype=None, **kw) -> np.ndarray:
        """Bands of ``window`` of this grid: bilinear from the source (``src.read``'s other options refused)."""
        if kw:
            raise TypeError(f"{type(self).__name__}.read does not take {sorted(kw)}")
        src_window, shape = self._source_window(window)
        if indexes is None:
            indexes = list(self.src.indexes)
        out_shape = (len(indexes), *shape) if not isinstance(indexes, int) else shape
        return self.src.read(indexes, window=src_window, out_shape=out_shape, out_dtype=out_dtype,
                             resampling=IMAGE_RESAMPLING)

    def dataset_mask(self, window: Window | None = None, out_shape: tuple[int, int] | None = None,
                     boundless: bool = False) -> np.ndarray:
        """GDAL's dataset mask of ``window`` of this grid (nearest), as ``src.dataset_mask`` gives it."""
        if boundless:
            raise TypeError(f"{type(self).__name__}.dataset_mask does not read boundless")
        src_window, shape = self._source_window(window)
        return self.src.dataset_mask(window=src_window, out_shape=out_shape or shape)


def block_cache_mb(src, columns: int, least: int) -> int:
    """MB of GDAL block cache with which reading ``src`` in strips ``columns`` wide (of its own grid) decodes
    each source block once; at least ``least``.

    A resampled read (:class:`ScaledRaster`, read by :class:`~geounet.predict.strips.StripBuffer` one
    block-row of its grid at a time) touches two source block-rows, and the next one touches the second
    again (the bilinear kernel and the rounding of the grid reach across the block border). GDAL's cache
    drops the least recently used blocks first, and the two block-rows of a read were used interleaved,
    block-column by block-column, so a cache of two block-rows drops blocks of the shared one before they
    are read again: 32 MB under a 5,632 px band at 0.2 m of 0.132 m imagery with 512 px blocks decoded
    them twice (0.9 s more reading on an 8,500 px raster). Three block-rows hold the shared one until it
    is used. Formula::

        3 * (ceil(columns * fx / bw) + 2) * bw * bh * bytes_per_pixel / 2**20    (rounded up)

    ``fx`` source pixels per grid pixel, ``bh x bw`` the source blocks, ``+ 2`` for the partial block
    columns at both ends, ``bytes_per_pixel`` for every band of the file (a pixel-interleaved block,
    JPEG's, decodes them all) plus one for a per-dataset mask. A native read buffers whole block-rows
    itself and decodes each block once whatever the cache: ``least``. So do blocks taller than
    :data:`MAX_BLOCK_ROWS` (a file of one strip), which are read row-window by row-window. The result is
    capped at :data:`MAX_BLOCK_CACHE_MB` (or ``least`` if larger): a band of imagery so fine that three of
    its block-rows exceed the cap (5 cm drone imagery read at 0.2 m with 512 px blocks needs about 70 MB
    under a 3,584 px band, 1 cm imagery about 335 MB) decodes part of its shared block-rows twice rather
    than hold more memory.
    """
    if not isinstance(src, ScaledRaster) or not src.src.block_shapes:
        return int(least)
    bh, bw = src.src.block_shapes[0]
    if bh > MAX_BLOCK_ROWS:
        return int(least)
    per_pixel = src.count * np.dtype(src.dtypes[0]).itemsize
    if any(MaskFlags.per_dataset in flags for flags in src.mask_flag_enums):
        per_pixel += 1
    need = 3 * (math.ceil(columns * src.fx / bw) + 2) * bw * bh * per_pixel
    return max(int(least), min(MAX_BLOCK_CACHE_MB, math.ceil(need / 2**20)))


@contextlib.contextmanager
def resampled(src: rasterio.io.DatasetReader, pixel_size: float | None = None):
    """``src`` resampled on the fly to ``pixel_size`` metres (``src`` itself when None or within 1%).

    The pixel is scaled by ``f = pixel_size / native ground pixel`` in the raster's own CRS
    (:class:`ScaledRaster`: bilinear image, nearest validity), so the model sees imagery at the
    scale it was trained at. Same extent, whole pixels: ``round(width / f)`` x ``round(height / f)``
    pixels, so the pixel is ``f`` times larger up to the rounding of the sides.
    """
    f = pixel_size / pixel_size_m(src) if pixel_size else 1.0
    if abs(f - 1.0) < 0.01:
        yield src
        return
    yield ScaledRaster(src, max(1, round(src.width / f)), max(1, round(src.height / f)))


# How remote rasters are read (``/vsicurl/``: https, s3, ...); each can be overridden in the environment.
REMOTE_OPTIONS = {
    # Blocks of a window are fetched one range after another through /vsicurl/'s region cache, which
    # keeps them for the next read of the same bytes. The default (parallel requests, one per range)
    # bypasses that cache: a WarpedVRT (--pixel-size) then fetched 12.7x the file (docs/benchmarks.md).
    "GDAL_HTTP_MULTIRANGE": "SERIAL",
    # No directory listing of the URL's folder on open (a request, and a whole index page on some
    # servers); side-car files (.msk, .ovr) are still looked for, one HEAD request each.
    "GDAL_DISABLE_READDIR_ON_OPEN": "TRUE",
    # An unreachable host fails within seconds; a stalled transfer after a minute; transient
    # server errors (429, 502-504) are retried with back-off.
    "GDAL_HTTP_CONNECTTIMEOUT": "10",
    "GDAL_HTTP_LOW_SPEED_TIME": "60",
    "GDAL_HTTP_LOW_SPEED_LIMIT": "1",
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "1",
}


def gdal_env(cache_mb: int | None = None, *, internal_mask: bool = False) -> rasterio.Env:
    """The GDAL environment geounet reads and writes in: :data:`REMOTE_OPTIONS` (those not set in the
    process environment), a block cache of ``cache_mb`` MB (None: GDAL's default) and, for writers,
    internal TIFF masks.

    rasterio keeps its environment per thread (a thread without one gets a temporary default
    environment for each file it opens), so the CLI opens one for the whole command and every
    thread of predict that reads or writes opens its own. The options hold only inside it: a
    Python caller's GDAL settings are never changed for good.
    """
    options = {k: v for k, v in REMOTE_OPTIONS.items() if k not in os.environ}
    if cache_mb is not None:
        # rasterio hands an integer GDAL_CACHEMAX to GDALSetCacheMax64, which counts bytes (GDAL's own
        # "64 means MB" rule is for the text option only): 64 here was a 64-byte cache until 2026-11-30,
        # which made every resampled read decode its source blocks again (3.4x slower)
        options["GDAL_CACHEMAX"] = int(cache_mb) * 2**20
    if internal_mask:
        options["GDAL_TIFF_INTERNAL_MASK"] = True
    return rasterio.Env(**options)


def gdal_reason(exc: BaseException) -> str:
    """The most specific line of a rasterio error chain ("Read failed" -> the GDAL block error)."""
    seen, reason = set(), ""
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        text = str(exc.args[-1] if exc.args and not isinstance(exc, RasterioError) else exc).strip()
        if text:
            reason = text.splitlines()[0]
        exc = exc.__cause__ or exc.__context__
    return reason[:200]


def raise_user_error(exc: BaseException, path: Path, what: str) -> NoReturn:
    """Raise ``exc`` again, as a one-line :class:`GeounetError` about ``path`` when it is a GDAL or OS error.

    ``what`` completes "cannot ...": ``"read raster"``, ``"write output"``. geounet's own
    errors and Ctrl-C pass unchanged, and so does anything else (a bug keeps its traceback).
    """
    if isinstance(exc, (GeounetError, KeyboardInterrupt)):
        raise exc
    if isinstance(exc, RasterioError):
        reason = gdal_reason(exc)
        raise InputError(f"cannot {what} ({remote_reason(reason) or reason or type(exc).__name__})", path) from None
    if isinstance(exc, OSError):
        raise GeounetError(f"cannot {what} ({exc.strerror or exc})", getattr(exc, "filename", None) or path) from None
    raise exc
