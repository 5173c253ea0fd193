"""A raster whose undeclared no-data is given by a value: ``predict --nodata 0`` for a black collar.

Orthophotos are often exported without a mask, alpha band or nodata value, their corners and edges
filled with 0s (or with 255s): GDAL then reports every pixel valid, and a model draws buildings into
the collar (on Nacala's drone image, two of the seven false positives of a fine-tuned model lie on its
unmasked black edge, docs/predict.md). :class:`ValueMasked` is the raster as it would be with that
no-data declared: a pixel equal to the value **in every data band** is no-data, on top of whatever
the raster declares itself (mask band, alpha or nodata value), so a collar is masked while a dark
pixel of real imagery, 0 in one band only, is not.

Exactness: a pixel's validity depends on its own values only (and the raster's own mask), never on
the window it is read in, so strips and windows read in pieces give the validity of one whole read,
as the streamed pipeline needs; tested in ``tests/test_nodata.py``. Resampled (a
:class:`~geounet.io.raster.ScaledRaster` over this), the values are sampled nearest, as the mask is.

The cost: the validity of a strip is known only from its pixels, so every block of the raster is read
(a raster with a mask is otherwise read only where it has data, docs/benchmarks.md).
"""

from __future__ import annotations

import numpy as np
import rasterio
from rasterio.enums import MaskFlags, Resampling
from rasterio.windows import Window

from .raster import data_bands

__all__ = ["ValueMasked", "with_nodata_value"]


class ValueMasked:
    """``src`` with the pixels equal to ``value`` in every data band marked no-data as well.

    Everything but the validity mask is the source's (attributes are passed through), so the class
    stands wherever a ``DatasetReader`` does in prediction.
    """

    def __init__(self, src: rasterio.io.DatasetReader, value: float):
        self.src, self.value = src, float(value)
        self.value_bands = list(data_bands(src))
        # every band now has a per-dataset mask: has_validity_mask() is True, so readers ask for it
        self.mask_flag_enums = tuple([MaskFlags.per_dataset] for _ in src.indexes)

    def __getattr__(self, name: str):
        return getattr(self.src, name)

    def dataset_mask(self, window: Window | None = None, out_shape: tuple[int, int] | None = None,
                     boundless: bool = False) -> np.ndarray:
        """The source's dataset mask (255 valid, 0 no-data) with the pixels equal to the value in every
        data band set to 0; ``window`` and ``out_shape`` as ``src.dataset_mask`` takes them (nearest)."""
        mask = self.src.dataset_mask(window=window, out_shape=out_shape, boundless=boundless)
        pixels = self.src.read(self.value_bands, window=window, out_shape=(len(self.value_bands), *mask.shape),
                               boundless=boundless, resampling=Resampling.nearest)  # outside: the mask's 0
        mask[(pixels == np.float64(self.value)).all(axis=0)] = 0  # float64: a value outside the type never matches
        return mask


def with_nodata_value(src: rasterio.io.DatasetReader, value: float | None):
    """``src`` itself when ``value`` is None, else ``src`` with that value as no-data (:class:`ValueMasked`)."""
    return src if value is None else ValueMasked(src, value)
