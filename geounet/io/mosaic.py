"""Many adjacent rasters read as one: a GDAL VRT mosaic built in memory (``geounet predict --mosaic``).

:func:`mosaic_vrt` checks that the tiles share one pixel grid (same CRS, pixel size, band count,
data types, north-up, origins a whole number of pixels apart) and writes the XML of a VRT that
places each tile at its pixel offset in the union of their extents; :func:`open_input` opens it
from a ``/vsimem/`` file (nothing on disk, gone when closed). The VRT's mask band is each tile's
own mask (mask band, alpha or nodata; all valid when a tile has none) and 0 where no tile is,
so the gaps between and around tiles are no-data. Reading a window of the VRT touches only the
tiles under it (GDAL keeps a bounded pool of them open), so hundreds of tiles read in the memory
of one.
"""

from __future__ import annotations

import contextlib
import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import rasterio
from rasterio.enums import ColorInterp
from rasterio.io import MemoryFile

from ..errors import InputError
from .raster import open_raster

__all__ = ["Mosaic", "TileGrid", "mosaic_vrt", "open_input"]

_GDAL_TYPES = {
    "uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32", "int32": "Int32",
    "uint64": "UInt64", "int64": "Int64", "float32": "Float32", "float64": "Float64",
}


@dataclass(frozen=True)
class Mosaic:
    """Rasters to read as one (``--mosaic``); named in messages as ``mosaic of N rasters (first, ...)``."""

    tiles: tuple[Path, ...]

    @property
    def name(self) -> str:
        return f"mosaic of {len(self.tiles)} rasters"

    def __str__(self) -> str:
        more = ", ..." if len(self.tiles) > 1 else ""
        return f"{self.name} ({self.tiles[0]}{more})"


@dataclass(frozen=True)
class TileGrid:
    """What a tile must share with the first one, and where it starts on their common pixel grid."""

    path: Path
    crs: object
    res: tuple[float, float]  # (a, e) of the transform: column and row steps in CRS units
    origin: tuple[float, float]  # (c, f): x and y of the tile's top-left corner
    shape: tuple[int, int]  # (height, width)
    dtypes: tuple[str, ...]
    colorinterp: tuple[ColorInterp, ...]
    block: tuple[int, int]  # (rows, columns) of the first band's blocks

    @classmethod
    def of(cls, path: Path, src: rasterio.io.DatasetReader) -> "TileGrid":
        t = src.transform
        if t.b != 0 or t.d != 0:
            raise InputError("raster is rotated (its grid is not north-up); a mosaic needs north-up tiles", path)
        return cls(path, src.crs, (t.a, t.e), (t.c, t.f), (src.height, src.width), tuple(src.dtypes),
                   tuple(src.colorinterp), tuple(src.block_shapes[0]))


def _differs(tile: TileGrid, ref: TileGrid) -> str | None:
    """Why ``tile`` cannot join a mosaic with ``ref`` (one phrase), or None."""
    if tile.crs != ref.crs:
        return f"its CRS {tile.crs.to_string()} differs from {ref.crs.to_string()} of {ref.path}"
    if not all(math.isclose(x, y, rel_tol=1e-9) for x, y in zip(tile.res, ref.res)):
        return f"its pixel size {abs(tile.res[0]):g} x {abs(tile.res[1]):g} differs from " \
               f"{abs(ref.res[0]):g} x {abs(ref.res[1]):g} of {ref.path}"
    if len(tile.dtypes) != len(ref.dtypes):
        return f"it has {len(tile.dtypes)} band(s) where {ref.path} has {len(ref.dtypes)}"
    if tile.dtypes != ref.dtypes:
        return f"its bands are {'/'.join(tile.dtypes)} where {ref.path} has {'/'.join(ref.dtypes)}"
    for k, (o, o0, r) in enumerate(zip(tile.origin, ref.origin, tile.res)):
        steps = (o - o0) / r
        if abs(steps - round(steps)) > 1e-3:
            return f"its {'xy'[k]} origin is {abs(steps - round(steps)):.3f} px off the pixel grid of {ref.path}"
    return None


def _offsets(tiles: Sequence[TileGrid]) -> tuple[list[tuple[int, int]], int, int]:
    """Each tile's ``(row, column)`` in the mosaic, and the mosaic's height and width.

    Formula: ``column = round((c - min c) / a)``, ``row = round((f - f_top) / e)`` with ``f_top``
    the top edge (``max f`` for a north-up grid, ``e < 0``); the size reaches the furthest tile end.
    """
    a, e = tiles[0].res
    cols = [round((t.origin[0] - tiles[0].origin[0]) / a) for t in tiles]
    rows = [round((t.origin[1] - tiles[0].origin[1]) / e) for t in tiles]
    c0, r0 = min(cols), min(rows)
    offs = [(r - r0, c - c0) for r, c in zip(rows, cols)]
    height = max(r + t.shape[0] for (r, _), t in zip(offs, tiles))
    width = max(c + t.shape[1] for (_, c), t in zip(offs, tiles))
    return offs, height, width


def _source(parent: ET.Element, tile: TileGrid, band: str, row: int, col: int) -> None:
    s = ET.SubElement(parent, "SimpleSource")
    ET.SubElement(s, "SourceFilename", relativeToVRT="0").text = os.fspath(tile.path.resolve())
    ET.SubElement(s, "SourceBand").text = band
    h, w = tile.shape
    ET.SubElement(s, "SrcRect", xOff="0", yOff="0", xSize=str(w), ySize=str(h))
    ET.SubElement(s, "DstRect", xOff=str(col), yOff=str(row), xSize=str(w), ySize=str(h))


def mosaic_vrt(paths: Sequence[str | os.PathLike]) -> str:
    """The XML of a VRT placing every raster of ``paths`` on their common grid (see the module docstring).

    Raises :class:`InputError` naming the first tile that does not fit the first one and why.
    """
    if not paths:
        raise InputError("a mosaic needs at least one raster")
    tiles = []
    for p in paths:
        with open_raster(p) as src:
            tiles.append(TileGrid.of(Path(p), src))
    for tile in tiles[1:]:
        why = _differs(tile, tiles[0])
        if why:
            raise InputError(f"cannot join the mosaic: {why}", tile.path)
    offs, height, width = _offsets(tiles)
    ref = tiles[0]
    a, e = ref.res
    x0 = ref.origin[0] - offs[0][1] * a
    y0 = ref.origin[1] - offs[0][0] * e
    root = ET.Element("VRTDataset", rasterXSize=str(width), rasterYSize=str(height))
    ET.SubElement(root, "SRS").text = ref.crs.to_wkt()
    ET.SubElement(root, "GeoTransform").text = ", ".join(repr(float(v)) for v in (x0, a, 0.0, y0, 0.0, e))
    by, bx = ref.block
    for k, dtype in enumerate(ref.dtypes, start=1):
        band = ET.SubElement(root, "VRTRasterBand", dataType=_GDAL_TYPES[dtype], band=str(k),
                             blockXSize=str(min(bx, 1024)), blockYSize=str(min(by, 1024)))
        ET.SubElement(band, "ColorInterp").text = ref.colorinterp[k - 1].name.capitalize()
        for tile, (r, c) in zip(tiles, offs):
            _source(band, tile, str(k), r, c)
    mask = ET.SubElement(ET.SubElement(root, "MaskBand"), "VRTRasterBand", dataType="Byte")
    for tile, (r, c) in zip(tiles, offs):
        _source(mask, tile, "mask,1", r, c)
    return ET.tostring(root, encoding="unicode")


@contextlib.contextmanager
def open_input(source: str | os.PathLike | Mosaic) -> Iterator[rasterio.io.DatasetReader]:
    """Open one raster (:func:`~geounet.io.raster.open_raster`) or a :class:`Mosaic` as one raster."""
    if not isinstance(source, Mosaic):
        with open_raster(source) as src:
            yield src
        return
    xml = mosaic_vrt(source.tiles)
    with MemoryFile(xml.encode(), ext=".vrt") as mem, mem.open() as src:
        yield src
