"""Typed settings stored inside every checkpoint, so a checkpoint alone rebuilds its model
and its preprocessing (the pattern of nanoGPT's ``GPTConfig``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np


def _from_dict(cls, data: dict[str, Any]):
    """Build a dataclass from a dict, ignoring unknown keys (newer checkpoints stay readable)."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the U-Net.

    ``width`` is the number of channels of the first encoder block (the seed article
    uses 64; 16 or 32 are practical on CPU); each of the ``depth`` down blocks doubles
    it. Inputs need sides that are multiples of ``2 ** depth``. ``outputs`` names the
    output channels: channel 0 is always the building probability; models trained for
    instance separation add ``border`` and ``contact`` (see :mod:`geounet.train.targets`).
    """

    in_channels: int = 3
    out_channels: int = 1
    width: int = 16
    depth: int = 4
    outputs: tuple[str, ...] = ("building",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "outputs", tuple(self.outputs))
        if len(self.outputs) != self.out_channels:
            raise ValueError(f"outputs {self.outputs} do not match out_channels={self.out_channels}")
        if self.outputs[0] != "building":
            raise ValueError("the first output channel must be 'building'")
        if self.in_channels < 1 or self.out_channels < 1:
            raise ValueError("in_channels and out_channels must be >= 1")
        if self.width < 1:
            raise ValueError("width must be >= 1")
        if not 1 <= self.depth <= 8:
            raise ValueError("depth must be between 1 and 8")

    @property
    def multiple(self) -> int:
        """Input sides must be multiples of this (one halving per down block)."""
        return 2**self.depth

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["outputs"] = list(self.outputs)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        return _from_dict(cls, data)


@dataclass(frozen=True)
class Preprocessing:
    """How raster pixels become model input: ``(clip(raw[bands], 0, scale) / scale - mean) / std``.

    ``bands`` are 1-based raster band indexes in model-channel order. ``scale`` brings
    raw values to [0, 1] (255 for uint8; the 99.9th percentile of the training pixels for
    uint16 and float imagery), and values outside ``[0, scale]`` are clipped
    (:meth:`clip_raw`, the one function training and prediction both use), so photometric
    augmentation works on any dtype; ``mean`` and ``std`` are per-band statistics of the
    training pixels after clipping and scaling.
    ``pixel_size_m`` is the ground sampling distance the model was trained at (with a
    range, its geometric middle: the pixel size validation windows were read at).
    ``pixel_size_range_m`` is ``(smallest, largest)`` when every training window was read at
    a random pixel size in that range (``geounet train --pixel-size-range``): such a model
    reads imagery natively inside the range and resamples it to the nearer end outside.
    """

    bands: tuple[int, ...] = (1, 2, 3)
    scale: float = 255.0
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.25, 0.25, 0.25)
    pixel_size_m: float | None = None
    pixel_size_range_m: tuple[float, float] | None = None
    tile_size: int = 256
    dtype: str = "uint8"

    def __post_init__(self) -> None:
        object.__setattr__(self, "bands", tuple(int(b) for b in self.bands))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if not (len(self.bands) == len(self.mean) == len(self.std)):
            raise ValueError("bands, mean and std must have the same length")
        if any(s <= 0 for s in self.std) or self.scale <= 0:
            raise ValueError("std and scale must be positive")
        if self.pixel_size_range_m is not None:
            lo, hi = (float(v) for v in self.pixel_size_range_m)
            if not 0 < lo <= hi:
                raise ValueError(f"pixel_size_range_m must be 0 < smallest <= largest, got {self.pixel_size_range_m}")
            object.__setattr__(self, "pixel_size_range_m", (lo, hi))

    def clip_raw(self, raw: np.ndarray) -> np.ndarray:
        """Raw pixel values (float) clipped in place to ``[0, scale]``; returns ``raw``.

        Training and prediction both clip here, so the model sees the same values from the same
        pixels: albumentations' photometric transforms clip float images to [0, 1] anyway, so
        without this a uint16 or float raster's brightest 0.1% (and negative reflectances)
        reached the model unclipped at prediction and clipped in training. A no-op for uint8
        (``scale`` 255).
        """
        return np.clip(raw, 0.0, self.scale, out=raw)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bands"], d["mean"], d["std"] = list(self.bands), list(self.mean), list(self.std)
        if self.pixel_size_range_m is not None:
            d["pixel_size_range_m"] = list(self.pixel_size_range_m)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Preprocessing":
        return _from_dict(cls, data)


@dataclass
class CheckpointInfo:
    """Everything a checkpoint says about itself, besides the weights."""

    model: ModelConfig
    preprocessing: Preprocessing
    metrics: dict[str, float] = field(default_factory=dict)
    geounet_version: str = ""
    epoch: int = 0
    path: str | None = None
    init: dict[str, Any] | None = None  # a fine-tuned model: what it started from (train --init)
