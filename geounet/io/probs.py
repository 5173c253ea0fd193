"""The ``--probs`` GeoTIFF: probabilities as a tiled DEFLATE GeoTIFF, uint8 0-255 (scale 1/255).

One raster band per carried model output (band 1 building, then border and contact when
separating), the source CRS and transform, no-data in an internal mask. Rows arrive column
band by column band (see :mod:`geounet.grid`), top to bottom within each, and are written
whole GeoTIFF block-rows at a time, so every compressed block is written once; column-band
borders fall on multiples of the block size. The file is written under a temporary name (:attr:`ProbsWriter.tmp`),
which predict renames onto ``path`` together with the vector file
(:func:`geounet.io.files.replace_together`: both files or neither).

The file holds exactly what predict vectorises: predict rounds its probabilities to these
256 levels (:func:`quantize`) and vectorises :func:`dequantize` of them, so ``geounet
vectorize`` of the file (:class:`ProbsReader`) gives predict's polygons bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from .files import temp_path

__all__ = ["ProbsWriter", "ProbsReader", "quantize", "dequantize"]

LEVELS = 255  # probability p is stored as round(p * 255)
_DESCRIPTION = " probability x 255"


def quantize(probs: np.ndarray, overwrite: bool = False) -> np.ndarray:
    """Probabilities (0-1) as stored: uint8 ``round(p * 255)``. ``overwrite``: compute in the memory of
    ``probs`` (float32; its values are lost) instead of two temporaries of its size: the same levels."""
    if overwrite and probs.dtype == np.float32:
        probs *= np.float32(LEVELS)
        return np.rint(probs, out=probs).astype(np.uint8)
    return np.rint(probs * np.float32(LEVELS)).astype(np.uint8)


def dequantize(stored: np.ndarray) -> np.ndarray:
    """Stored uint8 levels back to float32 probabilities: what predict and vectorize both vectorise."""
    return stored.astype(np.float32) / np.float32(LEVELS)


class ProbsReader:
    """A ``--probs`` GeoTIFF opened for reading: its channel names (from the band descriptions),
    and rows of a column range as the stored uint8 levels with their validity.

    ``src`` is an open rasterio dataset; InputError if its bands are not predict's.
    """

    def __init__(self, src, path):
        from ..errors import InputError

        descriptions = [d or "" for d in src.descriptions]
        if src.dtypes[0] != "uint8" or not all(d.endswith(_DESCRIPTION) for d in descriptions):
            raise InputError("not a geounet --probs file (uint8 bands named '<output> probability x 255')", path)
        self.src = src
        self.channels = tuple(d[: -len(_DESCRIPTION)] for d in descriptions)
        if self.channels[0] != "building":
            raise InputError(f"first band is {self.channels[0]!r} probability, not building", path)

    def read(self, rows: tuple[int, int], cols: tuple[int, int], channels: tuple[str, ...]):
        """``(levels (C, n, w) uint8, valid (n, w) bool)`` of raster rows and columns ``[a, b)``: the
        probabilities as stored (:func:`dequantize` gives them as float32)."""
        from rasterio.windows import Window

        from .raster import read_valid_mask

        win = Window(cols[0], rows[0], cols[1] - cols[0], rows[1] - rows[0])
        bands = [self.channels.index(c) + 1 for c in channels]
        return self.src.read(bands, window=win), read_valid_mask(self.src, win)


class ProbsWriter:
    """Writes probability rows to a temporary GeoTIFF (:attr:`tmp`); the caller renames it onto ``path``.

    ``block`` is the side of the GeoTIFF's square blocks; ``with_mask`` writes the validity
    of every pixel as an internal mask (the caller's GDAL environment must set
    ``GDAL_TIFF_INTERNAL_MASK``, see :func:`geounet.io.raster.gdal_env`).
    """

    def __init__(self, path: Path, *, width: int, height: int, crs, transform, with_mask: bool,
                 channels: tuple[str, ...] = ("building",), block: int = 256):
        self.path = path
        self.tmp = temp_path(path, "tmp", ".tif")
        self.with_mask = with_mask
        self.channels = tuple(channels)
        self.block = block
        self.width, self.height = width, height
        self.profile = dict(
            driver="GTiff", width=width, height=height, count=len(self.channels), dtype="uint8",
            crs=crs, transform=transform, tiled=True, blockxsize=block,
            blockysize=block, compress="deflate", predictor=2, BIGTIFF="IF_SAFER",
        )
        self.dst = None
        self.begin_column_band(0, self.width)

    def open(self) -> None:
        self.dst = rasterio.open(self.tmp, "w", **self.profile)
        self.dst.scales = (1.0 / 255.0,) * len(self.channels)
        for k, name in enumerate(self.channels, start=1):
            self.dst.set_band_description(k, f"{name}{_DESCRIPTION}")

    def begin_column_band(self, x0: int, x1: int) -> None:
        """Columns ``[x0, x1)`` come next (column-band borders on multiples of the block size)."""
        self.x0, self.x1 = x0, x1
        self._p = np.zeros((len(self.channels), 0, x1 - x0), np.uint8)
        self._v = np.zeros((0, x1 - x0), np.uint8)
        self._row = 0  # first raster row held in the buffer

    def end_column_band(self) -> None:
        self._flush(final=True)

    def write_rows(self, row0: int, stored: np.ndarray, valid: np.ndarray) -> None:
        """``stored``: :func:`quantize` d probabilities, ``(n, w)`` or ``(C, n, w)`` with one model output per band."""
        stored = stored if stored.ndim == 3 else stored[None]
        self._p = np.concatenate([self._p, stored], axis=1)
        self._v = np.concatenate([self._v, valid.astype(np.uint8) * 255])
        self._flush(final=False)

    def _flush(self, final: bool) -> None:
        n = self._p.shape[1]
        take = n if final else (n // self.block) * self.block
        if take == 0:
            return
        win = Window(self.x0, self._row, self.x1 - self.x0, take)
        self.dst.write(self._p[:, :take], window=win)
        if self.with_mask:
            self.dst.write_mask(self._v[:take], window=win)
        self._p, self._v = self._p[:, take:], self._v[take:]
        self._row += take

    def close(self) -> None:
        self._flush(final=True)
        self.dst.close()
        self.dst = None

    def abort(self) -> None:
        if self.dst is not None:
            try:
                self.dst.close()
            except Exception:  # noqa: BLE001 - best effort while cleaning up
                pass
            self.dst = None
        for p in (self.tmp, Path(f"{self.tmp}.msk"), Path(f"{self.tmp}.aux.xml")):
            try:
                p.unlink()
            except FileNotFoundError:
                pass
