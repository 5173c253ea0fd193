"""Training data: window sampling over rasters or tiles, the spatial split, statistics, augmentation.

Two input forms end up as the same thing, a list of :class:`Sample` windows on
:class:`Source` files:

* raster + vector labels: the raster is cut into square blocks (``block`` px); inside
  each block, tile-sized windows that are valid enough become samples; whole blocks go
  to training or validation, and labels are rasterized per window on the fly;
* paired tiles: each image tile is its own block, its mask tile gives the target.

Nothing ever reads a whole raster: windows are read one at a time by DataLoader workers.
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import torch
from affine import Affine
from rasterio.enums import Resampling
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from .config import Preprocessing
from .errors import InputError
from .labels import Labels, labels_for_raster, read_label_polygons, read_labels
from .io.raster import coarse_valid_mask, data_bands, open_raster, pixel_size_m, read_window
from .targets import derive_targets, encode_weights, instances_from_mask, weight_map
from .grid import block_grid, spatial_split, training_windows

IGNORE = 255
MIN_BLOCKS = 5
TILE_SUFFIXES = (".tif", ".tiff")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


@dataclass
class Source:
    """One training image: a raster with vector labels, or an image tile with a mask tile."""

    image: str
    labels: Labels | None = None
    mask: str | None = None
    height: int = 0
    width: int = 0
    count: int = 0
    dtype: str = "uint8"
    pixel_size_m: float = 0.0
    factor: float = 1.0  # source pixels per model pixel (1 = native; 2 = read 2x2 px as one)
    whole: bool = False  # an image tile: one block of its own for the spatial split
    place: str = ""  # what the split and the sampler balance over: the raster, or the tiles' folder


@dataclass(frozen=True)
class Sample:
    """A window (col, row, width, height) of a source, and the block it may be jittered within."""

    source: int
    window: tuple[int, int, int, int]
    block: tuple[int, int, int, int]


@dataclass
class SampleSet:
    sources: list[Source]
    train: list[Sample]
    val: list[Sample]


def _win(t: tuple[int, int, int, int]) -> Window:
    return Window(*t)


def _tup(w: Window) -> tuple[int, int, int, int]:
    return (int(w.col_off), int(w.row_off), int(w.width), int(w.height))


def _describe(path: str) -> Source:
    with open_raster(path) as src:
        return Source(
            image=path,
            place=path,
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
        source = _describe(r)
        with open_raster(r) as src:
            source.labels = read_labels(l, src.crs, src.bounds, raster_path=r)
        out.append(source)
    return out


def tile_sources(images_dir: str, masks_dir: str | None = None, labels: str | None = None) -> list[Source]:
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
    images = sorted(p for p in Path(images_dir).iterdir() if p.suffix.lower() in TILE_SUFFIXES)
    if not images:
        raise InputError("no GeoTIFF tiles (.tif/.tiff) in folder", images_dir)
    if labels is not None:
        return _chips_with_labels(images, labels)
    masks = {p.stem: p for p in Path(masks_dir).iterdir() if p.suffix.lower() in TILE_SUFFIXES}
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
        source = _describe(str(img))
        source.whole, source.place = True, str(img.parent)
        with open_raster(str(img)) as src:
            source.labels = labels_for_raster(polygons, labels, src.crs, src.bounds, str(img), required=False)
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


def _candidates(source: Source, index: int, tile: int, block: int, min_valid: float) -> list[list[Sample]]:
    """Samples of one source grouped by block (one group per block that has any).

    ``tile`` and ``block`` are in model pixels; windows are in source pixels.
    """
    tile = max(1, round(tile * source.factor))
    block = max(tile, round(block * source.factor))
    with rasterio.open(source.image) as src:
        coarse, fy, fx = coarse_valid_mask(src)
    blocks = [Window(0, 0, source.width, source.height)] if source.whole else block_grid(source.height, source.width, block)
    groups = []
    for b in blocks:
        wins = training_windows(source.height, source.width, tile, coarse, fy, fx, min_valid=min_valid, within=b)
        if wins:
            groups.append([Sample(index, _tup(w), _tup(b)) for w in wins])
    return groups


def build_samples(
    train_sources: list[Source],
    val_sources: list[Source],
    *,
    tile: int,
    block: int,
    val_fraction: float,
    seed: int,
    min_valid: float = 0.1,
) -> SampleSet:
    """Cut sources into windows and split them spatially into training and validation.

    With explicit validation sources every window of those is validation; otherwise whole
    blocks (or whole tiles) are held out, about ``val_fraction`` of the windows. ``block``
    is halved (down to ``tile``) while fewer than ``MIN_BLOCKS`` blocks hold data, so
    small rasters can still be split.
    """
    sources = train_sources + val_sources
    # Halve the block until there are enough blocks to hold some out (small rasters).
    while True:
        groups = []
        for i, s in enumerate(train_sources):
            groups.extend(_candidates(s, i, tile, block, min_valid))
        if val_sources or len(groups) >= MIN_BLOCKS or block // 2 < tile:
            break
        block //= 2
    if not groups:
        raise InputError(
            f"no {tile}x{tile} window with at least {min_valid:.0%} valid pixels in the training data"
            " (all no-data, or tile size larger than the imaged area)",
            train_sources[0].image if len(train_sources) == 1 else None,
        )
    if val_sources:
        train = [s for g in groups for s in g]
        val = []
        for j, s in enumerate(val_sources, start=len(train_sources)):
            val.extend(x for g in _candidates(s, j, tile, block, min_valid) for x in g)
        if not val:
            raise InputError("no valid window in the validation data", val_sources[0].image)
    else:
        # Each place (raster, or folder of tiles) holds out its own share, so validation
        # covers every camera and town instead of whichever blocks a global draw hits.
        by_place: dict[str, list[list[Sample]]] = {}
        for g in groups:
            by_place.setdefault(sources[g[0].source].place, []).append(g)
        train, val = [], []
        for place_groups in by_place.values():
            tr_idx, val_idx = spatial_split([len(g) for g in place_groups], val_fraction, seed)
            train += [s for i in tr_idx for s in place_groups[i]]
            val += [s for i in val_idx for s in place_groups[i]]
        if val_fraction > 0 and not val:
            raise InputError(
                "too little data for a spatial validation split (one block); "
                "use --val-raster/--val-labels or a smaller --tile-size"
            )
    return SampleSet(sources=sources, train=train, val=val)


def place_weights(samples: SampleSet) -> list[float] | None:
    """Sampling weights that balance places: ``1 / sqrt(windows of the sample's place)``.

    Each place then fills a share of the epoch that grows with the square root of its
    windows, so a large raster (Joplin's 224 windows) does not drown a small one (Nacala's 4),
    and a small one is not repeated so often that the model learns it by heart. None when
    all training windows come from one place (plain shuffling).
    """
    counts: dict[str, int] = {}
    for s in samples.train:
        place = samples.sources[s.source].place
        counts[place] = counts.get(place, 0) + 1
    if len(counts) < 2:
        return None
    return [1.0 / math.sqrt(counts[samples.sources[s.source].place]) for s in samples.train]


def compute_stats(
    sources: list[Source], samples: list[Sample], bands: tuple[int, ...], seed: int, max_windows: int = 48
) -> tuple[float, list[float], list[float]]:
    """(scale, mean, std) of valid training pixels: per band, after dividing by ``scale``.

    ``scale`` is 255 for uint8, else the 99.9th percentile of sampled values, so any dtype
    (uint16, float reflectance) lands near [0, 1] for augmentation and normalisation.
    """
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(samples), size=min(max_windows, len(samples)), replace=False)
    chunks = []
    for i in picks:
        s = samples[int(i)]
        with rasterio.open(sources[s.source].image) as src:
            data, valid = read_window(src, _win(s.window), bands)
        px = data[:, valid]
        if px.shape[1] > 20000:
            px = px[:, rng.choice(px.shape[1], 20000, replace=False)]
        chunks.append(px)
    px = np.concatenate(chunks, axis=1).astype(np.float64)
    if px.shape[1] == 0:
        raise InputError("no valid pixels to compute normalisation statistics from")
    if sources[0].dtype == "uint8":
        scale = 255.0
    else:
        scale = float(np.percentile(px, 99.9)) or 1.0
    px /= scale
    mean = px.mean(axis=1)
    std = np.maximum(px.std(axis=1), 1e-3)
    return scale, mean.tolist(), std.tolist()


def augmentation(tile: int, channels: int, train: bool):
    """The albumentations pipeline: crops, flips, 90-degree rotations and photometric changes for
    training (so the model transfers to other cameras and light); padding only for validation."""
    import albumentations as A
    import cv2

    pad = A.PadIfNeeded(tile, tile, position="top_left", border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=IGNORE)
    if not train:
        return A.Compose([pad])
    # Strong enough for other sensors and light (the model is judged on cameras it never saw):
    # exposure, contrast and gamma; white balance (colour temperature, per-channel gains, hue);
    # tone curves (another sensor's histogram); now and then grey; then one optical or
    # compression artefact (blur, motion, a coarser sensor resampled, sharpening, JPEG) and noise.
    photometric = [
        A.RandomBrightnessContrast(brightness_limit=0.3, contrast_limit=0.35, p=0.8),
        A.RandomGamma(gamma_limit=(65, 155), p=0.4),
        A.RandomToneCurve(scale=0.15, p=0.2),
    ]
    if channels == 3:
        photometric.append(
            A.OneOf(
                [
                    A.HueSaturationValue(hue_shift_limit=15, sat_shift_limit=40, val_shift_limit=0, p=1.0),
                    A.PlanckianJitter(p=1.0),
                    A.MultiplicativeNoise(multiplier=(0.8, 1.2), per_channel=True, elementwise=False, p=1.0),
                ],
                p=0.7,
            )
        )
        photometric.append(A.ToGray(p=0.05))
    photometric.append(
        A.OneOf(
            [
                A.GaussianBlur(blur_limit=(3, 7), p=1.0),
                A.MotionBlur(blur_limit=(3, 7), p=1.0),
                A.Downscale(scale_range=(0.4, 0.8), p=1.0),
                A.Sharpen(p=1.0),
                A.ImageCompression(quality_range=(40, 90), p=1.0),
            ],
            p=0.4,
        )
    )
    photometric.append(A.GaussNoise(std_range=(0.01, 0.05), p=0.2))
    # Scale jitter (+-25%) and small rotations: other cameras and flight heights; no-data fill is ignored.
    geometric = A.Affine(
        scale=(0.8, 1.25), rotate=(-10, 10), border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=IGNORE, p=0.5
    )
    return A.Compose(
        [pad, geometric, A.RandomCrop(tile, tile), A.HorizontalFlip(), A.VerticalFlip(), A.RandomRotate90(),
         *photometric]
    )


class WindowDataset(torch.utils.data.Dataset):
    """Reads sample windows, builds targets (1 yes, 0 no, 255 ignored; one channel per model
    output, see :mod:`geounet.targets`), augments, normalises.

    Training windows are read with a margin of a quarter tile (kept inside their block) and
    randomly cropped back to ``tile``, so each epoch sees shifted windows. Sources with a
    ``factor`` other than 1 are resampled to the model's pixel size as they are read.
    """

    def __init__(
        self,
        sources: list[Source],
        samples: list[Sample],
        prep: Preprocessing,
        train: bool,
        outputs: tuple[str, ...] = ("building",),
        weights: bool = False,
    ):
        self.sources = sources
        self.samples = samples
        self.prep = prep
        self.train = train
        self.outputs = tuple(outputs)
        self.weights = weights
        self.tile = prep.tile_size
        self.transform = augmentation(prep.tile_size, len(prep.bands), train)
        self._mean = np.asarray(prep.mean, dtype=np.float32)
        self._std = np.asarray(prep.std, dtype=np.float32)
        self._handles: dict[str, rasterio.io.DatasetReader] = {}

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state

    def __len__(self) -> int:
        return len(self.samples)

    def _open(self, path: str):
        h = self._handles.get(path)
        if h is None:
            h = self._handles[path] = rasterio.open(path)
        return h

    def _read_window(self, s: Sample, factor: float | None = None) -> Window:
        """The source window to read for sample ``s`` at ``factor`` source pixels per model pixel
        (default: the source's own factor).

        Validation reads the sample's own window. Training reads 1.5 tiles (at ``factor``)
        around the sample's centre, kept inside its block, so the random crop back to one tile
        shifts the window every epoch and never reaches into a validation block.
        """
        if not self.train:
            return _win(s.window)
        if factor is None:
            factor = self.sources[s.source].factor
        c, r, w, h = s.window
        bc, br, bw, bh = s.block
        half = 0.75 * self.tile * factor
        cx, cy = c + w / 2, r + h / 2
        c0, r0 = max(bc, round(cx - half)), max(br, round(cy - half))
        c1, r1 = min(bc + bw, round(cx + half)), min(br + bh, round(cy + half))
        return Window(c0, r0, max(1, c1 - c0), max(1, r1 - r0))

    def _pixel_size(self, source: Source) -> tuple[float, float | None]:
        """(source pixels per model pixel, ground metres per model pixel) for the next window.

        With a pixel-size range, every training window is read at a pixel size drawn
        log-uniformly from the range (so one model sees drone, aerial and satellite scales
        alike); validation windows at the range's middle, like everything without a range.
        """
        if self.train and self.prep.pixel_size_range_m is not None:
            lo, hi = self.prep.pixel_size_range_m
            metres = math.exp(np.random.uniform(math.log(lo), math.log(hi)))
            return metres / source.pixel_size_m, metres
        return source.factor, self.prep.pixel_size_m

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(image (C, H, W) float32, target (outputs [+ 1 weight channel], H, W) uint8)."""
        s = self.samples[i]
        source = self.sources[s.source]
        src = self._open(source.image)
        factor, metres = self._pixel_size(source)
        win = self._read_window(s, factor)
        shape = (int(win.height), int(win.width))
        if factor != 1.0:
            shape = (max(1, round(win.height / factor)), max(1, round(win.width / factor)))
        data, valid = read_window(src, win, self.prep.bands, out_shape=shape)
        ignore = ~valid
        if source.labels is not None:
            tr = window_transform(win, src.transform) @ Affine.scale(win.width / shape[1], win.height / shape[0])
            instances = source.labels.rasterize_instances(tr, shape)
        else:
            m = self._open(source.mask)
            raw = m.read(1, window=win, out_shape=shape, resampling=Resampling.nearest)
            instances = instances_from_mask(raw != 0 if m.nodata is None else (raw != 0) & (raw != m.nodata))
            if m.nodata is not None:
                ignore |= raw == m.nodata
        target = derive_targets(instances, self.outputs, metres)
        if self.weights:
            w = encode_weights(weight_map(instances, metres))
            target = np.concatenate([target, w[..., None]], axis=-1)
        target[ignore] = IGNORE
        image = np.ascontiguousarray(data.transpose(1, 2, 0)) / np.float32(self.prep.scale)
        out = self.transform(image=image.astype(np.float32), mask=target)
        image = (out["image"] - self._mean) / self._std
        mask = np.ascontiguousarray(out["mask"].transpose(2, 0, 1))
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))), torch.from_numpy(mask)


def worker_init(worker_id: int) -> None:
    """Seed numpy, random and the albumentations pipeline of each DataLoader worker from torch's seed,
    which the DataLoader derives from the run's --seed, so runs repeat."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
    info = torch.utils.data.get_worker_info()
    if info is not None:
        info.dataset.transform.set_random_seed(seed)
