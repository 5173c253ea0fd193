"""The ``--probs`` GeoTIFF: probabilities as a tiled DEFLATE GeoTIFF, uint8 0-255 (scale 1/255).

One raster band per carried model output (band 1 building, then border and contact when
separating), the source CRS and transform, no-data in an internal mask. Rows arrive column
band by column band (see :mod:`geounet.grid`), top to bottom within each, and are written
whole GeoTIFF block-rows at a time, so every compressed block is written once; column-band
borders fall on multiples of the block size. The file is written under a temporary name and
renamed onto ``path`` by :meth:`ProbsWriter.commit`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from .files import temp_path

__all__ = ["ProbsWriter"]


class ProbsWriter:
    """Writes probability rows to a temporary GeoTIFF, then renames it onto ``path`` on :meth:`commit`.

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
            self.dst.set_band_description(k, f"{name} probability x 255")

    def begin_column_band(self, x0: int, x1: int) -> None:
        """Columns ``[x0, x1)`` come next (column-band borders on multiples of the block size)."""
        self.x0, self.x1 = x0, x1
        self._p = np.zeros((len(self.channels), 0, x1 - x0), np.uint8)
        self._v = np.zeros((0, x1 - x0), np.uint8)
        self._row = 0  # first raster row held in the buffer

    def end_column_band(self) -> None:
        self._flush(final=True)

    def write_rows(self, row0: int, probs: np.ndarray, valid: np.ndarray) -> None:
        """``probs``: ``(n, w)``, or ``(C, n, w)`` with one model output per raster band."""
        probs = probs if probs.ndim == 3 else probs[None]
        self._p = np.concatenate([self._p, np.rint(probs * 255.0).astype(np.uint8)], axis=1)
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

    def commit(self) -> Path:
        """Rename the complete temporary file onto :attr:`path` (after :meth:`close`)."""
        os.replace(self.tmp, self.path)
        return self.path

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
