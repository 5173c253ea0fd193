"""Probability strips to building polygons, block by block, without ever holding the whole mask.

The algorithm and why the streamed result equals a whole-raster computation are in
:mod:`geounet.vectorize.stream`; squaring outlines (``regularize``) is in
:mod:`geounet.vectorize.finish`.
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
