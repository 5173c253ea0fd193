"""How probabilities become polygons: :class:`VectorizeOptions`, read by every step.

Its own module so that the steps (:mod:`.stages`, :mod:`.finish`) and the driver
(:mod:`.stream`) can all import it without importing each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .square import MAX_SHIFT


@dataclass(frozen=True)
class VectorizeOptions:
    """How probabilities become polygons; ``*_px`` in pixels, ``*_m`` in ground metres, ``min_area_m2`` in m^2;
    ``min_score``: buildings whose score (mean building probability) is below it are dropped.

    ``channels`` names the probability channels given to :meth:`StripVectorizer.add_rows`
    (the first is always ``building``). ``separate`` splits touching buildings on seeds
    (:mod:`geounet.vectorize.stream`, steps 3-5); ``pixel_m`` is the ground size of a pixel
    along x and y, which squaring (``regularize_m`` > 0, its tolerance) needs.
    """

    threshold: float = 0.5
    sieve_px: int = 0
    simplify_px: float = 0.0
    min_area_m2: float = 0.0
    min_score: float = 0.0
    channels: tuple[str, ...] = ("building",)
    separate: bool = False
    seed_threshold: float = 0.5
    seed_min_px: int = 0
    seed_erode_px: int = 0
    reach_px: int = 0
    regularize_m: float = 0.0
    pixel_m: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(self.channels))
        if not self.channels or self.channels[0] != "building":
            raise ValueError("the first probability channel must be 'building'")
        if self.separate and self.reach_px < 1:
            raise ValueError("separating buildings needs reach_px >= 1")
        if self.regularize_m > 0 and min(self.pixel_m) <= 0:
            raise ValueError("regularizing needs the ground pixel size (pixel_m)")

    @property
    def seed_margin(self) -> int:
        """``m1``: context rows (and columns) stage 1 needs around a core.

        The sum of the reaches of its steps (sieve, seed erosion, seed-size filter), each of
        which needs its own reach of context in which its input is already exact.
        """
        extra = self.seed_erode_px + self.seed_min_px if self.separate else 0
        return max(1, int(self.sieve_px) + int(extra))

    @property
    def mask_margin(self) -> int:
        """``m1a``: the part of ``m1`` the building mask needs (the sieve's reach), in rows of probabilities.

        Stage 1 runs in two passes (:mod:`geounet.vectorize.stream`): the mask of each core
        once, with this much context, then the seeds from held mask rows, with the rest of
        ``m1`` (:attr:`seed_reach`) as context; so each mask row is sieved once.
        """
        return int(self.sieve_px)

    @property
    def seed_reach(self) -> int:
        """``m1b = m1 - m1a``: rows of mask context the seeds need (erosion plus seed-size filter)."""
        return self.seed_margin - self.mask_margin

    @property
    def regularize_reach_px(self) -> int:
        """How far (pixels) a squared outline may move from the pixel outline and still be used."""
        if self.regularize_m <= 0:
            return 0
        # squaring keeps within MAX_SHIFT tolerances of the simplified outline, itself within simplify_px
        return math.ceil(MAX_SHIFT * self.regularize_m / min(self.pixel_m) + self.simplify_px) + 1

    @property
    def nodata_reach(self) -> int:
        """How far (pixels) no-data can be and still meet a simplified or squared building."""
        r = math.ceil(self.simplify_px) + 1 if self.simplify_px > 0 else 0
        return max(r, self.regularize_reach_px)

    @property
    def instance_margin(self) -> int:
        """``m2``: rows (and columns) of stage-1 output stage 2 needs around a core.

        At least the growth's reach (its labels are exact given that much context) and one
        more than the no-data reach (the no-data near a piece is gathered from this context).
        """
        return max(1, self.reach_px if self.separate else 0, self.nodata_reach + 1)

    @property
    def margin(self) -> int:
        """Context rows above and below a core (and columns beside a column band) the caller must provide."""
        return self.seed_margin + self.instance_margin
