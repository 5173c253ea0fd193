"""Where the streamed blocks lie: the columns of a column band, and the rows a stage holds.

Bookkeeping of :class:`~geounet.vectorize.stream.StripVectorizer`, apart so that the
driver reads as its algorithm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ColumnBand:
    """The columns of one column band (``index`` counts from 0, left to right).

    ``[x0, x1)`` are its own columns, ``[cx0, cx1)`` those of the strips it is given (its own
    plus context), ``[wx0, wx1)`` its own widened by ``m2`` on both sides (within the
    raster): stage 1 labels seeds there, so that stage 2 sees every seed within reach of its
    own columns. ``last``: no column band follows.
    """

    index: int
    x0: int
    x1: int
    cx0: int
    cx1: int
    wx0: int
    wx1: int
    last: bool


class RowBuffer:
    """Named 2-D arrays over the same raster rows ``[first_row, end_row)``: rows are appended
    below and released above."""

    def __init__(self, width: int, **dtypes):
        self.first_row = 0
        self._arrays = {name: np.zeros((0, width), dtype) for name, dtype in dtypes.items()}

    @property
    def end_row(self) -> int:
        return self.first_row + len(next(iter(self._arrays.values())))

    def append(self, **new_rows: np.ndarray) -> None:
        for name, new in new_rows.items():
            self._arrays[name] = np.concatenate([self._arrays[name], new])

    def rows(self, row0: int, row1: int) -> dict[str, np.ndarray]:
        """Raster rows ``[row0, row1)`` of every array (views); they must still be held."""
        assert self.first_row <= row0 and row1 <= self.end_row
        return {name: a[row0 - self.first_row : row1 - self.first_row] for name, a in self._arrays.items()}

    def release_before(self, row: int) -> None:
        """Forget the raster rows above ``row``."""
        drop = row - self.first_row
        if drop > 0:
            self._arrays = {name: a[drop:] for name, a in self._arrays.items()}
            self.first_row += drop
