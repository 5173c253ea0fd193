"""Fine-tuning: what a run started with ``--init`` takes from its checkpoint, and the encoder freeze.

A fine-tuned model must read pixels exactly as the model it starts from, or the weights meet
inputs they were never trained on. So ``--init`` carries over everything that defines the model
and its inputs: width, depth and outputs (the architecture), bands, scale, per-band mean and std
(the normalisation) and the pixel size or pixel-size range the model works at. Options that
contradict the checkpoint are refused with one line rather than silently overridden; an
option the user leaves unset takes the checkpoint's value. ``--pixel-size``/``--pixel-size-range``
may change the working pixel size on purpose (the model's preprocessing then records the new one).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from ..config import CheckpointInfo, Preprocessing
from ..errors import ConfigError
from ..io.raster import open_raster
from ..io.stretch import dtype_fits, input_stretch
from ..log import logger
from ..model.checkpoint import checkpoint_info, model_path, read_checkpoint
from .config import TrainConfig, reference_pixel_size
from .sources import Source


@dataclass(frozen=True)
class InitModel:
    """The checkpoint a fine-tune starts from."""

    ckpt: dict[str, Any]
    info: CheckpointInfo
    source: str  # what the user named: a bundled model's name or a path

    def provenance(self) -> dict[str, Any]:
        """What the fine-tuned checkpoint records about its start (``init`` in the checkpoint)."""
        return {
            "from": self.source,
            "path": self.info.path,
            "epoch": self.info.epoch,
            "geounet_version": self.info.geounet_version,
            "metrics": {k: float(v) for k, v in self.info.metrics.items() if isinstance(v, (int, float))},
            "init": self.ckpt.get("init"),  # the chain goes on when the start was itself a fine-tune
        }


def read_init(cfg: TrainConfig) -> InitModel:
    """Read ``cfg.init`` and fill the options it defines; refuse options that contradict it."""
    path = model_path(cfg.init)
    ckpt = read_checkpoint(path)
    info = checkpoint_info(ckpt, path)
    m, p = info.model, info.preprocessing
    name = f"--init model {cfg.init}"
    for option, given, stored in (("--width", cfg.width, m.width), ("--depth", cfg.depth, m.depth)):
        if given is not None and given != stored:
            raise ConfigError(f"{option} {given} does not match the {name} ({option[2:]} {stored}); leave it out to fine-tune")
    if cfg.bands is not None and tuple(cfg.bands) != p.bands:
        raise ConfigError(f"--bands {','.join(map(str, cfg.bands))} does not match the {name}, which reads bands "
                          f"{','.join(map(str, p.bands))}")
    separated = len(m.outputs) > 1
    if cfg.separation != separated:
        hint = "--separation" if separated else "--no-separation"
        raise ConfigError(f"the {name} has outputs {', '.join(m.outputs)}: train it with {hint}")
    cfg.width, cfg.depth, cfg.bands = m.width, m.depth, p.bands
    if cfg.pixel_size is None and cfg.pixel_size_range is None:
        cfg.pixel_size_range = p.pixel_size_range_m
        cfg.pixel_size = None if p.pixel_size_range_m else p.pixel_size_m
    return InitModel(ckpt, info, str(cfg.init))


def init_preprocessing(init: InitModel, cfg: TrainConfig, in_channels: int) -> Preprocessing:
    """The checkpoint's preprocessing, with the working pixel size this run trains at.

    The training data must give as many bands as the normalisation was made for; training data of
    another sample type is stretched to the model's range (:func:`stretch_sources`).
    """
    p = init.info.preprocessing
    if in_channels != len(p.bands):
        raise ConfigError(f"the --init model {init.source} reads {len(p.bands)} bands, the training data gives {in_channels}")
    return replace(p, pixel_size_m=float(reference_pixel_size(cfg) or p.pixel_size_m),
                   pixel_size_range_m=tuple(cfg.pixel_size_range) if cfg.pixel_size_range else None)


def stretch_sources(sources: list[Source], prep: Preprocessing) -> None:
    """Training images of another data type than the model's (16-bit imagery fine-tuning an 8-bit model)
    get each its own stretch to the model's range, the one ``predict --input-range auto`` gives the
    same raster (:func:`geounet.io.stretch.input_stretch`: each band's 0.1th-99.9th percentiles), so the
    model is fine-tuned on the values it will be given. Images of the model's own type are left as
    they are. (Measured on the image's own pixels; predict measures the raster as it reads it, after
    resampling to the model's pixel size, which moves the percentiles a little.)"""
    if all(dtype_fits(s.dtype, prep.dtype) for s in sources):
        return
    for s in sources:
        with open_raster(s.image) as src:
            s.stretch = input_stretch(src, prep, "auto", s.image)
    logger.info("training images are %s, the model's %s: each stretched per band to its range, as predict "
                "--input-range auto does", sources[0].dtype, prep.dtype)


def encoder_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The U-Net's encoder: its down blocks and the bottleneck (what ``--freeze-encoder`` keeps)."""
    return [*model.downs, model.bottleneck]


def freeze_encoder(model: torch.nn.Module) -> None:
    """Stop gradients into the encoder; :func:`hold_frozen_statistics` keeps its BatchNorm statistics."""
    for module in encoder_modules(model):
        for param in module.parameters():
            param.requires_grad_(False)


def hold_frozen_statistics(model: torch.nn.Module) -> None:
    """Put the frozen encoder in eval mode after ``model.train()``: its BatchNorm layers then use and
    keep their running statistics, so the frozen part is exactly the part the checkpoint had."""
    for module in encoder_modules(model):
        module.eval()
