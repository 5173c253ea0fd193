"""Training targets that carry the gaps between buildings (the SpaceNet-4 winners' approach).

From a raster of building instances (one id per footprint) three channels are derived:

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
