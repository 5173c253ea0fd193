"""``--preview``: a picture of a raster, downsampled, with the footprints drawn, for a quick look.

The picture's longest side is ``size`` pixels (a smaller raster keeps its own size). While
the raster is predicted, each batch of footprints is burnt into an outline layer of that size
(:meth:`PreviewWriter.add`: new footprints yellow, mapped ones cyan); :meth:`PreviewWriter.render`
then reads the raster strip by strip at the picture's size (decimated reads: GDAL takes an
overview when the file has one), stretches it to 8 bits (uint8 as is; other types from the 2nd
to the 98th percentile of each band), hatches no-data in two greys, draws the outlines, and
writes the PNG under a temporary name; :meth:`PreviewWriter.commit` renames it onto ``path``.
Memory: a few bytes per picture pixel, whatever the raster's size.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.enums import Resampling
from rasterio.features import rasterize
from rasterio.windows import Window

from .files import temp_path
from .raster import read_valid_mask

__all__ = ["PreviewWriter", "preview_shape", "NODATA_COLOURS", "OUTLINE_COLOURS"]

NODATA_COLOURS = np.array([[96, 96, 96], [160, 160, 160]], np.uint8)  # a diagonal hatch, 4 px stripes
OUTLINE_COLOURS = {1: (255, 230, 0), 2: (0, 210, 255)}  # new (or all, without --existing), mapped
STRIP_ROWS = 256  # picture rows read at a time


def preview_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """``(rows, columns)`` of the picture of a ``height`` x ``width`` raster: longest side ``size`` at most."""
    scale = min(1.0, size / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


class PreviewWriter:
    """The picture of the raster ``raster`` (read with its ``bands``) with footprints in its CRS."""

    def __init__(self, path: str | os.PathLike, raster: str | os.PathLike, bands, size: int):
        self.path, self.raster = Path(path), Path(raster)
        self.bands = list(bands)[:3]
        with rasterio.open(self.raster) as src:
            self.height, self.width = src.height, src.width
            self.transform = src.transform
        self.shape = preview_shape(self.height, self.width, size)
        ph, pw = self.shape
        self.picture_transform = self.transform @ Affine.scale(self.width / pw, self.height / ph)
        self.outlines = np.zeros(self.shape, np.uint8)
        self.tmp = temp_path(self.path, "tmp", ".png")

    def add(self, geoms: np.ndarray, mapped: np.ndarray | None = None) -> None:
        """Draw the outlines of ``geoms`` (raster CRS); ``mapped[k]``: footprint k matches a mapped building."""
        if not len(geoms):
            return
        kind = np.where(mapped, 2, 1) if mapped is not None else np.ones(len(geoms), np.uint8)
        lines = shapely.boundary(np.asarray(geoms, dtype=object))
        rasterize(zip(lines, kind.tolist()), out=self.outlines, transform=self.picture_transform, all_touched=True)

    def _read(self, src, rows: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Picture rows ``[a, b)``: the bands (C, n, w) and validity (n, w), decimated from the raster."""
        a, b = rows
        fy = self.height / self.shape[0]
        win = Window(0, a * fy, self.width, (b - a) * fy)
        out_shape = (b - a, self.shape[1])
        data = src.read(self.bands, window=win, out_shape=(len(self.bands), *out_shape),
                        resampling=Resampling.average)
        return data, read_valid_mask(src, win, out_shape=out_shape)

    def render(self) -> None:
        """Read the raster at the picture's size, compose, write the PNG under its temporary name."""
        import matplotlib.image

        ph, pw = self.shape
        data = np.zeros((len(self.bands), ph, pw), np.float64)
        valid = np.zeros((ph, pw), bool)
        with rasterio.open(self.raster) as src:
            dtype = src.dtypes[self.bands[0] - 1]
            for a in range(0, ph, STRIP_ROWS):
                b = min(ph, a + STRIP_ROWS)
                data[:, a:b], valid[a:b] = self._read(src, (a, b))
        rgb = _to_8bit(data, valid, dtype)
        if rgb.shape[0] == 1:
            rgb = np.repeat(rgb, 3, axis=0)
        picture = np.ascontiguousarray(rgb.transpose(1, 2, 0))
        r, c = np.indices(self.shape)
        hatch = ((r + c) // 4) % 2
        picture[~valid] = NODATA_COLOURS[hatch[~valid]]
        for value, colour in OUTLINE_COLOURS.items():
            picture[self.outlines == value] = colour
        matplotlib.image.imsave(self.tmp, picture, format="png")

    def commit(self) -> Path:
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        self.tmp.unlink(missing_ok=True)


def _to_8bit(data: np.ndarray, valid: np.ndarray, dtype: str) -> np.ndarray:
    """Bands to uint8: uint8 as it is; others stretched from their 2nd to their 98th percentile (valid pixels)."""
    if dtype == "uint8":
        return np.clip(np.rint(data), 0, 255).astype(np.uint8)
    out = np.zeros(data.shape, np.uint8)
    for k, band in enumerate(data):
        values = band[valid]
        if not values.size:
            continue
        lo, hi = np.percentile(values, (2, 98))
        out[k] = np.clip(np.rint((band - lo) / max(hi - lo, 1e-12) * 255), 0, 255).astype(np.uint8)
    return out
