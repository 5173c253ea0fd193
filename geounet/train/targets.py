"""Training targets that carry the gaps between buildings (the SpaceNet-4 winners' approach).

From a raster of building instances (one id per footprint) three channels are derived, each
pixel 1 (yes), 0 (no) or ``IGNORE`` (no-data: counts for nothing in the loss and the scores):

* ``building``: any building pixel;
* ``border``: building pixels within ``border_m`` metres of another label (background or
  another building), i.e. the outline band of each footprint;
* ``contact``: pixels within ``contact_m`` metres of two different buildings: the narrow
  gaps and shared walls that a plain mask fills in and that merge neighbours into blobs.

At prediction time confident building pixels away from borders and contacts become seeds
that split the thresholded building mask into separate buildings.
Distances are in ground metres, converted to pixels at the training pixel size, so the
targets mean the same thing at 0.1 m and at 0.5 m.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

IGNORE = 255  # target value of pixels that count for nothing: no-data, padding, augmentation fill
OUTPUTS_PLAIN = ("building",)
OUTPUTS_SEPARATION = ("building", "border", "contact")
BORDER_M = 0.3
CONTACT_M = 0.45


def radius_px(metres: float, pixel_size_m: float | None, minimum: int = 1) -> int:
    """``metres`` as a whole number of pixels (at least ``minimum``)."""
    if not pixel_size_m:
        return minimum
    return max(minimum, int(round(metres / pixel_size_m)))


def derive_targets(instances: np.ndarray, outputs: tuple[str, ...], pixel_size_m: float | None) -> np.ndarray:
    """(H, W, C) uint8 targets, channel order as ``outputs``, from an int instance raster (0 = background)."""
    building = instances > 0
    channels = []
    for name in outputs:
        if name == "building":
            channels.append(building)
        elif name == "border":
            r = radius_px(BORDER_M, pixel_size_m)
            size = 2 * r + 1
            hi = ndimage.maximum_filter(instances, size=size)
            lo = ndimage.minimum_filter(instances, size=size)
            channels.append(building & (hi != lo))
        elif name == "contact":
            r = radius_px(CONTACT_M, pixel_size_m, minimum=2)
            size = 2 * r + 1
            big = np.iinfo(np.int32).max
            hi = ndimage.maximum_filter(instances, size=size)
            lo = ndimage.minimum_filter(np.where(building, instances, big), size=size)
            channels.append((lo != big) & (hi != lo))
        else:
            raise ValueError(f"unknown output channel '{name}'")
    return np.stack(channels, axis=-1).astype(np.uint8)


def instances_from_mask(mask: np.ndarray) -> np.ndarray:
    """Instance ids from a binary mask by 4-connected components (for mask tiles, which carry no ids)."""
    labels, _ = ndimage.label(mask > 0)
    return labels.astype(np.int32)


# Ronneberger et al. 2015 (U-Net), eq. 2: w = w_c + w0 * exp(-(d1 + d2)^2 / (2 sigma^2)), with d1, d2
# the distances to the nearest and second-nearest object. The paper's w0 = 10 and sigma = 5 px; sigma
# is held in ground metres here (5 px at the shared data's 0.13-0.15 m) so the weighted band is the
# same width of ground at any pixel size.
WEIGHT_W0 = 10.0
WEIGHT_SIGMA_M = 0.7
WEIGHT_SCALE = 10  # weights travel as uint8 (w * 10) beside the targets, through the same augmentation


def weight_map(instances: np.ndarray, pixel_size_m: float | None, w0: float = WEIGHT_W0,
               sigma_m: float = WEIGHT_SIGMA_M) -> np.ndarray:
    """Per-pixel loss weights (float32, >= 1) that stress the background between nearby buildings.

    Only background pixels get the extra weight (``w_c`` = 1 everywhere: Dice already balances
    the classes). The exponential is below 1% of ``w0`` once ``d1 + d2`` exceeds 3 sigma, so
    each building's distance map is computed only in its bounding box grown by 3 sigma.
    """
    sigma = float(radius_px(sigma_m, pixel_size_m, minimum=1)) if pixel_size_m else 5.0
    reach = int(np.ceil(3 * sigma))
    h, w = instances.shape
    d1 = np.full((h, w), np.inf, np.float32)
    d2 = np.full((h, w), np.inf, np.float32)
    ids, compact = np.unique(instances, return_inverse=True)
    # Ids 1..n for the buildings (0 stays background) so find_objects gets a short, dense list.
    compact = compact.reshape(instances.shape) + (0 if ids[0] == 0 else 1)
    for k, sl in enumerate(ndimage.find_objects(compact), start=1):
        if sl is None:
            continue
        ys = slice(max(0, sl[0].start - reach), min(h, sl[0].stop + reach))
        xs = slice(max(0, sl[1].start - reach), min(w, sl[1].stop + reach))
        dist = ndimage.distance_transform_edt(compact[ys, xs] != k).astype(np.float32)
        a, b = d1[ys, xs], d2[ys, xs]
        b[:] = np.minimum(b, np.maximum(a, dist))
        a[:] = np.minimum(a, dist)
    out = np.ones((h, w), np.float32)
    gap = (instances == 0) & np.isfinite(d2)
    out[gap] += w0 * np.exp(-((d1[gap] + d2[gap]) ** 2) / (2 * sigma**2))
    return out


def encode_weights(weights: np.ndarray) -> np.ndarray:
    """Weights as uint8 (``round(w * WEIGHT_SCALE)``), to ride along with the uint8 targets."""
    return np.clip(np.rint(weights * WEIGHT_SCALE), 0, 254).astype(np.uint8)
