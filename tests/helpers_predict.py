"""Helpers for the predict/stitch/vectorize tests: small georeferenced rasters, tiny checkpoints, toy models."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import rasterio
import torch
from affine import Affine
from torch import nn

from geounet.model.checkpoint import checkpoint_dict, save_checkpoint
from geounet.config import CheckpointInfo, ModelConfig, Preprocessing
from geounet.model import build_model

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# (crs, origin x, origin y, pixel size in CRS units): about 0.2-0.3 m ground pixels in each
CRS_CASES = {
    "EPSG:4326": ("EPSG:4326", 85.52, 27.63, 2.0e-6),  # degrees, Banepa
    "EPSG:3857": ("EPSG:3857", 261600.0, 6250000.0, 0.3),  # web-mercator, Paris (map metres = 1.5 ground m)
    "EPSG:32633": ("EPSG:32633", 500000.0, 4000000.0, 0.2),  # UTM 33N
    "EPSG:2263": ("EPSG:2263", 990000.0, 210000.0, 0.75),  # NY Long Island, US survey feet
}


def write_raster(path, img: np.ndarray, *, crs="EPSG:32633", transform=None, valid=None, nodata=None,
                 block: int = 64, dtype=None) -> Path:
    """A tiled GeoTIFF from ``img`` (C, H, W); ``valid`` (H, W bool) becomes an internal mask."""
    count, h, w = img.shape
    if transform is None:
        transform = Affine(0.2, 0, 500000.0, 0, -0.2, 4000000.0)
    profile = dict(driver="GTiff", height=h, width=w, count=count, dtype=dtype or img.dtype, transform=transform)
    if h >= block and w >= block:
        profile.update(tiled=True, blockxsize=block, blockysize=block)
    if crs is not None:
        profile["crs"] = crs
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(img.astype(profile["dtype"]))
            if valid is not None:
                dst.write_mask(valid.astype(np.uint8) * 255)
    return Path(path)


def crs_raster(path, img: np.ndarray, crs_key: str, valid=None) -> Path:
    crs, x0, y0, res = CRS_CASES[crs_key]
    return write_raster(path, img, crs=crs, transform=Affine(res, 0, x0, 0, -res, y0), valid=valid)


def scene(size=(256, 256), rects=((40, 40, 90, 100), (150, 120, 200, 230)), seed=0) -> np.ndarray:
    """uint8 RGB: dark noisy ground with bright rectangles ``(r0, c0, r1, c1)``."""
    rng = np.random.default_rng(seed)
    h, w = size
    img = rng.normal(60, 10, size=(3, h, w))
    for r0, c0, r1, c1 in rects:
        r1, c1 = min(r1, h), min(c1, w)
        if r1 > r0 and c1 > c0:
            img[:, r0:r1, c0:c1] = rng.normal(200, 10, size=(3, r1 - r0, c1 - c0))
    return img.clip(0, 255).astype(np.uint8)


def random_scene(size=(384, 384), n=25, seed=0):
    rng = np.random.default_rng(seed)
    h, w = size
    rects = []
    for _ in range(n):
        rh, rw = rng.integers(8, 40, size=2)
        r, c = rng.integers(0, h - rh), rng.integers(0, w - rw)
        rects.append((int(r), int(c), int(r + rh), int(c + rw)))
    return scene(size, rects, seed), rects


def prep(tile=64, bands=(1, 2, 3), dtype="uint8", scale=255.0) -> Preprocessing:
    n = len(bands)
    return Preprocessing(bands=bands, scale=scale, mean=(0.3,) * n, std=(0.3,) * n, pixel_size_m=0.2,
                         tile_size=tile, dtype=dtype)


def constant_unet(logit: float, width=4, depth=2, in_channels=3) -> nn.Module:
    """A real UNet whose weights are zero and whose head bias is ``logit``: a constant model."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(in_channels=in_channels, width=width, depth=depth))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.head.bias.fill_(logit)
    return model.eval()


def save_unet(path, model: nn.Module, preprocessing: Preprocessing | None = None) -> Path:
    preprocessing = preprocessing or prep()
    save_checkpoint(path, checkpoint_dict(model, model.config, preprocessing))
    return Path(path)


def constant_checkpoint(path, logit: float = 3.0, **kw) -> Path:
    return save_unet(path, constant_unet(logit), kw.get("preprocessing"))


class BrightModel(nn.Module):
    """A toy building detector: blurred brightness through zero-padded convolutions.

    It has the weakness that matters for stitching, edge effects: near a window edge the
    zero padding darkens the blur, so a window's border pixels are predicted worse than
    its centre, as with a U-Net. Receptive field: 25 x 25 pixels.
    """

    def __init__(self, layers: int = 4, k: int = 7, gain: float = 12.0, level: float = 0.5):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(1, 1, k, padding=k // 2, bias=False) for _ in range(layers))
        with torch.no_grad():
            for c in self.convs:
                c.weight.fill_(1.0 / (k * k))
        self.gain, self.level = gain, level

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # undo the helpers' normalisation (mean 0.3, std 0.3) to get brightness in [0, 1]
        y = (x * 0.3 + 0.3).mean(dim=1, keepdim=True)
        for c in self.convs:
            y = c(y)
        return self.gain * (y - self.level)


class Counting(nn.Module):
    """Wraps a model and counts the windows it sees."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.windows = 0

    def forward(self, x):
        self.windows += x.shape[0]
        return self.inner(x)


class Recording(nn.Module):
    """Wraps a model and keeps a copy of every batch it is given (copies of the module, as --adapt
    makes, record into the same list)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inputs: list[torch.Tensor] = []
        self.inner, self.record = inner, self.inputs.append  # a builtin method: deepcopy keeps it

    def forward(self, x):
        self.record(x.detach().clone())
        return self.inner(x)


class Interrupting(nn.Module):
    """Raises KeyboardInterrupt (as Ctrl-C would) on its ``after``-th call."""

    def __init__(self, inner: nn.Module, after: int = 2):
        super().__init__()
        self.inner, self.after, self.calls = inner, after, 0

    def forward(self, x):
        self.calls += 1
        if self.calls >= self.after:
            raise KeyboardInterrupt
        return self.inner(x)


def toy_info(model_cfg: ModelConfig | None = None, tile=64, **kw) -> CheckpointInfo:
    return CheckpointInfo(model=model_cfg or ModelConfig(width=4, depth=2), preprocessing=prep(tile=tile, **kw))


def files_in(folder) -> set[str]:
    return {p.name for p in Path(folder).iterdir()}


def feed_strips(vec, probs: np.ndarray, valid: np.ndarray, bands, strips, margin: int) -> None:
    """Feed a StripVectorizer column band by band and strip by strip (strip heights cycle through ``strips``);
    ``probs`` is (H, W) or (C, H, W)."""
    h, w = valid.shape
    for k, (x0, x1) in enumerate(bands):
        cx0, cx1 = max(0, x0 - margin), min(w, x1 + margin)
        vec.begin_band(x0, x1, cx0, cx1, last=k == len(bands) - 1)
        r, i = 0, 0
        while r < h:
            n = min(strips[i % len(strips)], h - r)
            vec.add_rows(r, probs[..., r : r + n, cx0:cx1], valid[r : r + n, cx0:cx1])
            r, i = r + n, i + 1
