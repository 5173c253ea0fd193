"""Window sampling and the spatial split: sources cut into :class:`Sample` windows, grouped in
blocks, and whole blocks sent to training or validation.

Two input forms end up as the same thing, a list of :class:`Sample` windows on
:class:`~geounet.train.sources.Source` files:

* raster + vector labels: the raster is cut into square blocks (``block`` px); inside
  each block, tile-sized windows that are valid enough become samples; whole blocks go
  to training or validation, and labels are rasterized per window on the fly;
* image chips: each chip is its own block, its mask chip or the labels on it give the target.

Nothing ever reads a whole raster: windows are read one at a time by DataLoader workers.
"""

from __future__ import annotations

from dataclasses import dataclass

import rasterio
from rasterio.windows import Window

from ..errors import InputError
from ..io.raster import coarse_valid_mask
from ..grid import block_grid, spatial_split, training_windows
from .config import PLACE_BALANCES, TrainConfig, reference_pixel_size
from .sources import Source, check_consistent, chip_sources, raster_sources, set_pixel_size

MIN_BLOCKS = 5


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


def load_samples(cfg: TrainConfig) -> tuple[SampleSet, tuple[int, ...]]:
    """Read and check every input ``cfg`` names, and cut them into training and validation windows;
    also returns the bands the model reads. Raises :class:`InputError` for any unusable input."""
    train_sources = []
    if cfg.images is not None:
        chip_labels = cfg.labels[-1] if cfg.masks is None else None
        train_sources += chip_sources(cfg.images, cfg.masks, chip_labels)
    if cfg.rasters:
        train_sources += raster_sources(cfg.rasters, cfg.labels[: len(cfg.rasters)])
    val_sources = raster_sources(cfg.val_rasters, cfg.val_labels) if cfg.val_rasters else []
    bands = check_consistent(train_sources + val_sources, cfg.bands)
    set_pixel_size(train_sources + val_sources, reference_pixel_size(cfg))
    samples = build_samples(
        train_sources, val_sources, tile=cfg.tile_size, block=cfg.block,
        val_fraction=0.0 if val_sources else cfg.val_fraction, seed=cfg.seed,
    )
    return samples, bands


def _as_tuple(w: Window) -> tuple[int, int, int, int]:
    return (int(w.col_off), int(w.row_off), int(w.width), int(w.height))


def _candidates(source: Source, index: int, tile: int, block: int, min_valid: float) -> list[list[Sample]]:
    """Samples of one source grouped by block (one group per block that has any).

    ``tile`` (the window side) and ``block`` are in model pixels; windows are in source pixels.
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
            groups.append([Sample(index, _as_tuple(w), _as_tuple(b)) for w in wins])
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
    """Cut sources into windows of ``tile`` px and split them spatially into training and validation.

    With explicit validation sources every window of those is validation; otherwise whole
    blocks (or whole chips) are held out, about ``val_fraction`` of the windows. ``block``
    is halved (down to ``tile``) while fewer than ``MIN_BLOCKS`` blocks hold data, so
    small rasters can still be split.
    """
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
        train, val = _split_by_place(groups, train_sources, val_fraction, seed)
    return SampleSet(sources=train_sources + val_sources, train=train, val=val)


def _split_by_place(
    groups: list[list[Sample]], sources: list[Source], val_fraction: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """Hold out whole blocks, about ``val_fraction`` of each place's windows.

    Each place (raster, or folder of chips) holds out its own share, so validation covers
    every camera and town instead of whichever blocks a global draw hits.
    """
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
    return train, val


def place_weights(samples: SampleSet, balance: str = "sqrt") -> list[float] | None:
    """Sampling weights that balance places: ``1 / windows ** e`` of the sample's place, ``e`` = 1/2
    for ``balance="sqrt"``, 1 for ``"equal"``.

    A place of ``n`` windows then fills a share of the epoch proportional to ``n ** (1 - e)``: with
    ``sqrt``, a share growing with the square root of its windows, so a large raster (Joplin's 224
    windows) does not drown a small one (Nacala's 4), and a small one is not repeated so often that the
    model learns it by heart; with ``equal``, the same share each. None when all training windows come
    from one place (plain shuffling).
    """
    exponent = PLACE_BALANCES[balance]
    counts: dict[str, int] = {}
    for s in samples.train:
        place = samples.sources[s.source].place
        counts[place] = counts.get(place, 0) + 1
    if len(counts) < 2:
        return None
    return [counts[samples.sources[s.source].place] ** -exponent for s in samples.train]
