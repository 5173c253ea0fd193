"""Probability strips to building polygons, block by block, without ever holding the whole mask.

The result is identical to vectorising the whole raster at once; the algorithm and that
argument are in :mod:`.stream`. The modules, in the order a strip meets them:

- :mod:`.stream`: :class:`StripVectorizer`, the streaming driver (strips, cores, column bands);
- :mod:`.stages`: steps 1-6 as pure functions (threshold, sieve, seeds, growth, instances, polygons);
- :mod:`.merge`: step 7, union-find over the pieces, the seams between cores and column bands;
- :mod:`.finish`: step 8 (simplify or square, no-data, CRS, ground area, min-area), and squaring;
- :mod:`.options`: :class:`VectorizeOptions`; :mod:`.blocks`: where a column band and a stage's rows lie.

They import nothing from the rest of geounet (never predict, cli or train).
"""

from __future__ import annotations

from .finish import GroundArea, dominant_angle, regularize, to_crs_coords
from .options import VectorizeOptions
from .stages import CUT_CHANNELS, grow_seeds, seed_score
from .stream import StripVectorizer

__all__ = [
    "CUT_CHANNELS",
    "GroundArea",
    "StripVectorizer",
    "VectorizeOptions",
    "dominant_angle",
    "grow_seeds",
    "regularize",
    "seed_score",
    "to_crs_coords",
]
