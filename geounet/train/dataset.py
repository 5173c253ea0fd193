"""Windows as model input: normalisation statistics, augmentation, :class:`WindowDataset` and its
DataLoader (each worker seeded from the run's ``--seed``, so runs repeat)."""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass

import numpy as np
import rasterio
import torch
from affine import Affine
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from ..config import Preprocessing
from ..errors import InputError
from ..io.raster import gdal_reason, read_window
from .config import TrainConfig
from .ddp import Dist
from .samples import Sample
from .sources import Source
from .targets import IGNORE, derive_targets, encode_weights, instances_from_mask, weight_map


def _import_albumentations():
    """albumentations, imported without its check for a newer release over the network (it would print
    to stdout), and the process's environment left as it was."""
    before = os.environ.get("NO_ALBUMENTATIONS_UPDATE")
    os.environ["NO_ALBUMENTATIONS_UPDATE"] = "1"
    try:
        import albumentations
    finally:
        if before is None:
            del os.environ["NO_ALBUMENTATIONS_UPDATE"]
        else:
            os.environ["NO_ALBUMENTATIONS_UPDATE"] = before
    return albumentations


# at import: a DataLoader worker that is spawned (not forked) imports this module before it unpickles
# the dataset's albumentations pipeline
A = _import_albumentations()


@dataclass(frozen=True)
class Unreadable:
    """A window that could not be read (a corrupt block met mid-training), as :class:`WindowDataset`
    returns it instead of raising: it reaches the training loop as data, from DataLoader worker
    processes too, where :func:`batches` raises its one-line :class:`InputError` (a worker's
    exception would arrive as a traceback in text)."""

    message: str
    path: str

    def error(self) -> InputError:
        return InputError(self.message, self.path)


def unreadable(path: str, window: Window, exc: BaseException) -> Unreadable:
    """The :class:`Unreadable` for a failed read of ``window`` of ``path``."""
    c, r, w, h = (int(round(v)) for v in (window.col_off, window.row_off, window.width, window.height))
    return Unreadable(
        f"cannot read the window at column {c}, row {r} ({w} x {h} px): "
        f"{gdal_reason(exc) or type(exc).__name__}", str(path))


def collate(items: list) -> object:
    """The DataLoader's batches: torch's default, or the first :class:`Unreadable` among ``items``."""
    for item in items:
        if isinstance(item, Unreadable):
            return item
    return torch.utils.data.default_collate(items)


def batches(loader):
    """``(images, targets)`` of ``loader`` (any iterable of :func:`collate`'s batches); an
    :class:`Unreadable` window raises its :class:`InputError`."""
    for batch in loader:
        if isinstance(batch, Unreadable):
            raise batch.error()
        yield batch


def compute_stats(
    sources: list[Source], samples: list[Sample], bands: tuple[int, ...], seed: int, max_windows: int = 48
) -> tuple[float, list[float], list[float]]:
    """(scale, mean, std) of valid training pixels: per band, after dividing by ``scale``.

    ``scale`` is 255 for uint8, else the 99.9th percentile of sampled values, so any dtype
    (uint16, float reflectance) lands in [0, 1] for augmentation and normalisation; the
    statistics are of the values clipped to [0, scale], as the model sees them
    (:meth:`~geounet.config.Preprocessing.clip_raw`).
    """
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(samples), size=min(max_windows, len(samples)), replace=False)
    chunks = []
    for i in picks:
        s = samples[int(i)]
        with rasterio.open(sources[s.source].image) as src:
            try:
                data, valid = read_window(src, Window(*s.window), bands)
            except (RasterioError, OSError) as exc:
                raise unreadable(src.name, Window(*s.window), exc).error() from None
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
    px = np.clip(px, 0.0, scale) / scale
    mean = px.mean(axis=1)
    std = np.maximum(px.std(axis=1), 1e-3)
    return scale, mean.tolist(), std.tolist()


def augmentation(tile_size: int, channels: int, train: bool, photometric: bool = True):
    """The albumentations pipeline: crops, flips, 90-degree rotations and (``photometric``) changes of
    colour, light and optics for training (so the model transfers to other cameras and light); padding
    only for validation."""
    import cv2

    pad = A.PadIfNeeded(tile_size, tile_size, position="top_left", border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=IGNORE)
    if not train:
        return A.Compose([pad])
    # Scale jitter (+-25%) and small rotations: other cameras and flight heights; no-data fill is ignored.
    geometric = A.Affine(
        scale=(0.8, 1.25), rotate=(-10, 10), border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=IGNORE, p=0.5
    )
    return A.Compose(
        [pad, geometric, A.RandomCrop(tile_size, tile_size), A.HorizontalFlip(), A.VerticalFlip(), A.RandomRotate90(),
         *(colour_augmentation(channels) if photometric else [])]
    )


def colour_augmentation(channels: int) -> list:
    """The photometric part of :func:`augmentation`, strong enough for other sensors and light (the model
    is judged on cameras it never saw): exposure, contrast and gamma; white balance (colour temperature,
    per-channel gains, hue); tone curves (another sensor's histogram); now and then grey; then one optical
    or compression artefact (blur, motion, a coarser sensor resampled, sharpening, JPEG) and noise."""
    colour = [
        A.RandomBrightnessContrast(brightness_limit=0.3, contrast_limit=0.35, p=0.8),
        A.RandomGamma(gamma_limit=(65, 155), p=0.4),
        A.RandomToneCurve(scale=0.15, p=0.2),
    ]
    if channels == 3:
        colour.append(
            A.OneOf(
                [
                    A.HueSaturationValue(hue_shift_limit=15, sat_shift_limit=40, val_shift_limit=0, p=1.0),
                    A.PlanckianJitter(p=1.0),
                    A.MultiplicativeNoise(multiplier=(0.8, 1.2), per_channel=True, elementwise=False, p=1.0),
                ],
                p=0.7,
            )
        )
        colour.append(A.ToGray(p=0.05))
    colour.append(
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
    colour.append(A.GaussNoise(std_range=(0.01, 0.05), p=0.2))
    return colour


class WindowDataset(torch.utils.data.Dataset):
    """Reads sample windows, builds targets (1 yes, 0 no, ``IGNORE`` ignored; one channel per model
    output, see :mod:`geounet.train.targets`), augments, normalises.

    Training windows are read with a margin of a quarter tile (kept inside their block) and
    randomly cropped back to the tile size, so each epoch sees shifted windows. Sources with a
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
        seed: int = 0,
        photometric: bool = True,
    ):
        self.sources = sources
        self.samples = samples
        self.prep = prep
        self.train = train
        self.outputs = tuple(outputs)
        self.weights = weights
        self.tile_size = prep.tile_size
        self.transform = augmentation(prep.tile_size, len(prep.bands), train, photometric)
        self._mean = np.asarray(prep.mean, dtype=np.float32)
        self._std = np.asarray(prep.std, dtype=np.float32)
        self._handles: dict[str, rasterio.io.DatasetReader] = {}
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Seed this dataset's own randomness (the pixel-size draw and the augmentation), so a run
        repeats with its --seed, with DataLoader workers (each reseeded by :func:`worker_init`) or
        without, and the process's global random state is left alone."""
        self._rng = np.random.default_rng(seed)
        self.transform.set_random_seed(seed)

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
            return Window(*s.window)
        if factor is None:
            factor = self.sources[s.source].factor
        c, r, w, h = s.window
        bc, br, bw, bh = s.block
        half = 0.75 * self.tile_size * factor
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
            metres = math.exp(self._rng.uniform(math.log(lo), math.log(hi)))
            return metres / source.pixel_size_m, metres
        return source.factor, self.prep.pixel_size_m

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor] | Unreadable:
        """(image (C, H, W) float32, target (outputs [+ 1 weight channel], H, W) uint8), or
        :class:`Unreadable` when a file fails to read the window (see :func:`batches`)."""
        s = self.samples[i]
        source = self.sources[s.source]
        factor, metres = self._pixel_size(source)
        win = self._read_window(s, factor)
        shape = (int(win.height), int(win.width))
        if factor != 1.0:
            shape = (max(1, round(win.height / factor)), max(1, round(win.width / factor)))
            if not self.train:
                # a validation window is at most one tile (padded if smaller, never cropped): the
                # sample's window, round(tile * factor) source pixels, can come back a pixel or two
                # larger than the tile after resampling, which the U-Net refuses
                shape = (min(shape[0], self.tile_size), min(shape[1], self.tile_size))
        path = source.image
        try:
            src = self._open(path)
            data, valid = read_window(src, win, self.prep.bands, out_shape=shape)
            ignore = ~valid
            if source.labels is not None:
                tr = window_transform(win, src.transform) @ Affine.scale(win.width / shape[1], win.height / shape[0])
                instances = source.labels.rasterize_instances(tr, shape)
            else:
                path = source.mask
                m = self._open(path)
                raw = m.read(1, window=win, out_shape=shape, resampling=Resampling.nearest)
                instances = instances_from_mask(raw != 0 if m.nodata is None else (raw != 0) & (raw != m.nodata))
                if m.nodata is not None:
                    ignore |= raw == m.nodata
        except (RasterioError, OSError) as exc:
            return unreadable(path, win, exc)
        target = derive_targets(instances, self.outputs, metres)
        if self.weights:
            w = encode_weights(weight_map(instances, metres))
            target = np.concatenate([target, w[..., None]], axis=-1)
        target[ignore] = IGNORE
        if source.stretch is not None:  # another data type than the model's: as predict stretches it
            data = source.stretch.apply(data, self.prep.scale)
        image = np.ascontiguousarray(self.prep.clip_raw(data).transpose(1, 2, 0)) / np.float32(self.prep.scale)
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
        info.dataset.reseed(seed)


def make_loader(ds: WindowDataset, cfg: TrainConfig, d: Dist, train: bool, device: torch.device, seed: int,
                weights: list[float] | None = None) -> torch.utils.data.DataLoader:
    """Training: shuffled (each rank its share under DDP, or drawn by ``weights`` with replacement);
    validation: in order. ``seed`` fixes the order and the workers' seeds."""
    workers = cfg.loader_workers
    sampler = None
    g = torch.Generator()
    g.manual_seed(seed + (0 if train else 7919))
    if train and d.enabled:
        sampler = torch.utils.data.distributed.DistributedSampler(
            ds, num_replicas=d.world, rank=d.rank, shuffle=True, seed=seed
        )
    elif train and weights is not None:
        sampler = torch.utils.data.WeightedRandomSampler(weights, num_samples=max(len(ds), cfg.epoch_windows),
                                                         replacement=True, generator=g)
    elif train:  # every window once per pass, passes repeated up to cfg.epoch_windows draws
        sampler = torch.utils.data.RandomSampler(ds, num_samples=max(len(ds), cfg.epoch_windows), generator=g)
    return torch.utils.data.DataLoader(
        ds,
        batch_size=cfg.batch_size,
        shuffle=False,
        sampler=sampler,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=device.type == "cuda",
        worker_init_fn=worker_init,
        collate_fn=collate,
        generator=g,
        drop_last=False,
    )
