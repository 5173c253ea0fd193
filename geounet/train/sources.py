"""Training inputs as :class:`Source` files: rasters with vector labels, or image chips with mask chips
or with one vector file; checked against each other and set to one pixel size.

Only each file's size, bands and pixel size are read here, and the label polygons; pixels are
read window by window later, by :class:`geounet.train.dataset.WindowDataset`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import rasterio

from ..errors import InputError
from ..labels import Labels, labels_for_raster, read_label_polygons, read_labels
from ..io.raster import data_bands, open_raster, pixel_size_m
from ..io.stretch import InputStretch

CHIP_SUFFIXES = (".tif", ".tiff")


@dataclass
class Source:
    """One training image: a raster with vector labels, or an image chip with a mask chip or labels."""

    image: str
    labels: Labels | None = None
    mask: str | None = None
    height: int = 0
    width: int = 0
    count: int = 0
    dtype: str = "uint8"
    pixel_size_m: float = 0.0
    factor: float = 1.0  # source pixels per model pixel (1 = native; 2 = read 2x2 px as one)
    whole: bool = False  # an image chip: one block of its own for the spatial split
    place: str = ""  # what the split and the sampler balance over: the raster, or the chips' folder
    # imagery of another data type than the model's (an --init model): its raw values to the model's range,
    # as predict --input-range auto stretches it (set by geounet.train.init.stretch_sources)
    stretch: InputStretch | None = None


def _describe(path: str, labels_for: Callable[[rasterio.io.DatasetReader], Labels] | None = None) -> Source:
    """The file as a source; ``labels_for(src)`` gives its labels from the same open handle."""
    with open_raster(path) as src:
        return Source(
            image=path,
            place=path,
            labels=labels_for(src) if labels_for is not None else None,
            height=src.height,
            width=src.width,
            count=len(data_bands(src)),
            dtype=src.dtypes[0],
            pixel_size_m=pixel_size_m(src),
        )


def raster_sources(rasters: list[str], labels: list[str]) -> list[Source]:
    """Open and validate (raster, labels) pairs; labels are reprojected to each raster's CRS."""
    if len(rasters) != len(labels):
        raise InputError(f"{len(rasters)} --raster but {len(labels)} --labels: give one labels file per raster")
    out = []
    for r, l in zip(rasters, labels):
        out.append(_describe(r, lambda src, l=l, r=r: read_labels(l, src.crs, src.bounds, raster_path=r)))
    return out


def chip_sources(images_dir: str, masks_dir: str | None = None, labels: str | None = None) -> list[Source]:
    """Every GeoTIFF in ``images_dir`` as a source, with the same-named mask in ``masks_dir``
    or the polygons of the vector file ``labels`` that fall on it.

    With ``labels`` (a mapper's export covering a folder of chips, any CRS), the file is read
    once and each chip gets the polygons overlapping it, reprojected to the chip's CRS and
    rasterized per window like a raster's labels, so a building crossing two chips labels
    both and border and contact targets come from the polygons. A chip that no polygon
    touches is all background (chips without buildings are common); but at least one chip
    must have labels.
    """
    dirs = (images_dir,) if masks_dir is None else (images_dir, masks_dir)
    for d in dirs:
        if not os.path.isdir(d):
            raise InputError("folder not found" if not os.path.exists(d) else "not a folder", d)
    if (masks_dir is None) == (labels is None):
        raise InputError("give the image tiles either a masks folder or a labels file", images_dir)
    images = sorted(p for p in Path(images_dir).iterdir() if p.suffix.lower() in CHIP_SUFFIXES)
    if not images:
        raise InputError("no GeoTIFF tiles (.tif/.tiff) in folder", images_dir)
    if labels is not None:
        return _chips_with_labels(images, labels)
    return _chips_with_masks(images, masks_dir)


def _chips_with_masks(images: list[Path], masks_dir: str) -> list[Source]:
    masks = {p.stem: p for p in Path(masks_dir).iterdir() if p.suffix.lower() in CHIP_SUFFIXES}
    missing = [p.name for p in images if p.stem not in masks]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise InputError(f"no mask for image tile {missing[0]}{more}", masks_dir)
    out = []
    for img in images:
        source = _describe(str(img))
        source.whole, source.place = True, str(img.parent)
        mask = str(masks[img.stem])
        with open_raster(mask, need_crs=False) as m:
            if (m.height, m.width) != (source.height, source.width):
                raise InputError(
                    f"mask is {m.width}x{m.height} px but image {img.name} is {source.width}x{source.height} px",
                    mask,
                )
        source.mask = mask
        out.append(source)
    return out


def _chips_with_labels(images: list[Path], labels: str) -> list[Source]:
    polygons = read_label_polygons(labels)
    out = []
    for img in images:
        source = _describe(str(img), lambda src, img=img: labels_for_raster(
            polygons, labels, src.crs, src.bounds, str(img), required=False))
        source.whole, source.place = True, str(img.parent)
        out.append(source)
    if not any(len(s.labels) for s in out):
        raise InputError(f"no label polygon overlaps any image tile of {images[0].parent}", labels)
    return out


def check_consistent(sources: list[Source], bands: tuple[int, ...] | None) -> tuple[int, ...]:
    """Check that all sources share dtype and bands; return the bands the model will read."""
    first = sources[0]
    if bands is None:
        with open_raster(first.image) as src:
            bands = data_bands(src)
    for s in sources:
        with rasterio.open(s.image) as src:
            bad = [b for b in bands if b < 1 or b > src.count]
            if bad:
                raise InputError(f"raster has {src.count} band(s), cannot read band(s) {bad}", s.image)
        if s.dtype != first.dtype:
            raise InputError(f"dtype {s.dtype} differs from {first.dtype} of {first.image}", s.image)
    return tuple(bands)


def set_pixel_size(sources: list[Source], pixel_size_m: float | None) -> None:
    """Make every source read at ``pixel_size_m`` (resampling on the fly); None keeps native pixels.

    With a pixel-size range this is the range's middle: windows are laid out (and validation
    windows read) at it, training windows at a random size around it (:class:`WindowDataset`).
    """
    for s in sources:
        s.factor = 1.0 if not pixel_size_m else pixel_size_m / s.pixel_size_m
