"""What ``geounet train`` is asked to do: :class:`TrainConfig`, the one definition of every training
setting, its default and its meaning (the ``geounet train`` options mirror these fields; a test
checks that their defaults agree)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..errors import ConfigError

DEFAULT_EPOCHS = 50
DEFAULT_WORKERS = 1
DEFAULT_WIDTH = 16
DEFAULT_DEPTH = 4
DEFAULT_LR = 2e-3
FINETUNE_LR = 5e-4  # a quarter of the from-scratch peak: moves a trained model without undoing it
LOSSES = ("bce", "dice", "bce+dice")
PLACE_BALANCES = {"sqrt": 0.5, "equal": 1.0}  # --place-balance: the exponent e of a place's windows in 1 / n ** e


@dataclass
class TrainConfig:
    """Everything ``geounet train`` was asked to do; stored in ``last.pt`` so ``--resume`` can continue.

    Sizes in pixels are model pixels (at ``pixel_size``, or native without one).
    """

    out_dir: str
    """Run folder for best.pt, last.pt, metrics.csv and curves.png."""
    images: str | None = None
    """Folder of GeoTIFF image chips, each a small image of its own (``--images``)."""
    masks: str | None = None
    """Folder of same-named GeoTIFF mask chips (non-zero = building); or give the chips a labels file."""
    rasters: list[str] = field(default_factory=list)
    """Training rasters, paired in order with ``labels``."""
    labels: list[str] = field(default_factory=list)
    """Vector building polygons, one file per raster in order; with ``images`` and no ``masks``, the last
    file covers the chips."""
    val_rasters: list[str] = field(default_factory=list)
    """Validation rasters (paired with ``val_labels``); without them whole blocks are held out."""
    val_labels: list[str] = field(default_factory=list)
    """Vector labels of the ``val_rasters``, in order."""
    width: int | None = None
    """Channels of the first U-Net block (doubled by each down block); None: ``DEFAULT_WIDTH``, or the
    ``init`` model's."""
    depth: int | None = None
    """Number of down blocks; None: ``DEFAULT_DEPTH``, or the ``init`` model's."""
    tile_size: int = 256
    """Side of the square window the model sees, a multiple of ``2 ** depth``."""
    block_size: int | None = None
    """Side of the squares the spatial split holds out whole (default: 4 tile sizes, see :attr:`block`)."""
    batch_size: int = 4
    """Windows per batch."""
    epoch_windows: int = 64
    """An epoch draws at least this many training windows: a small training set (a few blocks of a
    town to fine-tune on) repeats its windows, each draw with its own jitter and augmentation, so
    validation and checkpoints once an epoch do not take most of a short run's time. Not under DDP
    (there every rank draws its share of each window once)."""
    epochs: int | None = None
    """Total epochs of the run; None: ``DEFAULT_EPOCHS``, or on ``resume`` the run's own."""
    max_minutes: float | None = None
    """Wall-clock budget of the whole run; the learning rate schedule follows it (see ``lr_at``)."""
    lr: float | None = None
    """Peak learning rate (AdamW; warm-up, then cosine decay); None: ``DEFAULT_LR`` from scratch,
    ``FINETUNE_LR`` with ``init``."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    loss: str = "bce+dice"
    """``bce``, ``dice`` or ``bce+dice`` (see :func:`geounet.train.losses.segmentation_loss`)."""
    separation: bool = True
    """Also learn building borders and contact zones, so predict can split touching buildings."""
    weight_map: bool = False
    """Weight the building loss with the U-Net paper's map that stresses the background between buildings."""
    photometric: bool = True
    """Augment colour, light and optics (brightness, contrast, gamma, tone curves, white balance, grey,
    blur, coarser sensors, JPEG, noise: :func:`geounet.train.dataset.augmentation`); off: geometric only."""
    mixstyle: float = 0.0
    """Probability per batch of mixing the windows' feature statistics after the first encoder blocks
    (:mod:`.mixstyle`: styles of other cameras made from the places in the data); 0: off."""
    place_balance: str = "sqrt"
    """How an epoch's draws are shared between places (each raster, or a folder of chips):
    ``sqrt``, in proportion to the square root of each place's windows (a large raster does not drown a
    small one, a small one is not learnt by heart); ``equal``, the same share each
    (:func:`geounet.train.samples.place_weights`)."""
    ema: float = 0.0
    """Decay per step of an exponential moving average of the weights (:mod:`.ema`; 0.999 averages about
    the last 1,000 steps); the average is validated and saved as best.pt, the trained weights as
    best_raw.pt; 0: off."""
    pixel_size: float | None = None
    """Read every input at this ground pixel size in metres (resampled on the fly); None: native."""
    pixel_size_range: tuple[float, float] | None = None
    """(MIN, MAX) metres: every training window at a random pixel size in the range (multi-scale)."""
    bands: tuple[int, ...] | None = None
    """1-based bands to read, in model-channel order; None: all non-alpha bands."""
    device: str = "auto"
    """``auto``, ``cpu`` or ``cuda``."""
    amp: bool = True
    """Mixed precision (bf16 on CPU, bf16/fp16 on CUDA)."""
    val_fraction: float = 0.2
    """Share of each place's windows held out (in whole blocks) when no validation rasters are given."""
    workers: int | None = None
    """DataLoader worker processes; None: not given (``DEFAULT_WORKERS``, or on ``resume`` the run's own)."""
    resume: bool = False
    """Continue the run in ``out_dir`` from its last.pt."""
    init: str | None = None
    """Start from this checkpoint (a bundled model's name such as ``default``, or a path) instead of
    random weights: architecture, bands, normalisation and pixel size come from it (see :mod:`.init`)."""
    freeze_encoder: bool = False
    """With ``init``: keep the encoder's weights and BatchNorm statistics as they are; train the decoder."""
    seed: int = 0
    """Random seed: the same seed repeats the run."""
    overwrite: bool = False
    """Replace the run files of an existing run folder (only once the inputs have been read and checked)."""

    @classmethod
    def from_cli(cls, **kw: Any) -> "TrainConfig":
        """Build from the Click command's keyword arguments (unset options keep their defaults)."""
        kw = {k: v for k, v in kw.items() if v is not None}
        for key in ("rasters", "labels", "val_rasters", "val_labels"):
            kw[key] = list(kw.get(key, ()))
        if isinstance(kw.get("bands"), str):
            kw["bands"] = parse_bands(kw["bands"])
        if kw.get("pixel_size_range"):
            kw["pixel_size_range"] = tuple(float(v) for v in kw["pixel_size_range"])
        else:
            kw.pop("pixel_size_range", None)
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bands"] = list(self.bands) if self.bands else None
        d["pixel_size_range"] = list(self.pixel_size_range) if self.pixel_size_range else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Rebuild from :meth:`to_dict` (as stored in last.pt); unknown keys are ignored."""
        names = {f.name for f in fields(cls)}
        cfg = cls(**{k: v for k, v in d.items() if k in names})
        cfg.bands = tuple(cfg.bands) if cfg.bands else None
        cfg.pixel_size_range = tuple(cfg.pixel_size_range) if cfg.pixel_size_range else None
        return cfg

    def fill_defaults(self) -> None:
        """Give the options left unset (None) their defaults, once ``init`` has filled its own."""
        self.width = self.width or DEFAULT_WIDTH
        self.depth = self.depth or DEFAULT_DEPTH
        self.lr = self.lr or (FINETUNE_LR if self.init else DEFAULT_LR)
        self.epochs = self.epochs or DEFAULT_EPOCHS

    @property
    def block(self) -> int:
        return self.block_size or 4 * self.tile_size

    @property
    def loader_workers(self) -> int:
        return DEFAULT_WORKERS if self.workers is None else self.workers

    def validate(self) -> None:
        """Check option combinations before any file is read or written.

        Training data: a folder of image chips (``--images`` with a ``--masks`` folder or a
        ``--labels`` file covering the chips), ``--raster``/``--labels`` pairs, or both. With
        both, ``--labels`` pair with ``--raster`` in order and the chips' labels file comes last.
        """
        if self.masks is not None and self.images is None:
            raise ConfigError("--masks goes with --images")
        chips = self.images is not None
        chip_labels = int(chips and self.masks is None)
        if not chips and not self.rasters:
            raise ConfigError("no training data: give --images DIR with --masks DIR or --labels FILE, or --raster R.tif --labels L.geojson")
        if len(self.labels) != len(self.rasters) + chip_labels:
            if chips and self.masks is None and len(self.labels) == len(self.rasters):
                raise ConfigError("--images needs --masks DIR or a --labels file (given after the --raster labels)")
            raise ConfigError(f"{len(self.rasters)} --raster but {len(self.labels) - chip_labels} --labels: give one labels file per raster")
        if len(self.val_rasters) != len(self.val_labels):
            raise ConfigError("--val-raster and --val-labels must come in pairs")
        if self.val_rasters and not self.rasters:
            raise ConfigError("--val-raster/--val-labels go with --raster/--labels training data")
        if self.freeze_encoder and not self.init:
            raise ConfigError("--freeze-encoder needs --init: a random encoder is not worth keeping")
        if not 0 <= self.mixstyle <= 1:
            raise ConfigError(f"--mixstyle is a probability between 0 and 1, got {self.mixstyle}")
        if not 0 <= self.ema < 1:
            raise ConfigError(f"--ema is a decay per step from 0 (off) to below 1, e.g. 0.999, got {self.ema}")
        if self.place_balance not in PLACE_BALANCES:
            raise ConfigError(f"--place-balance is one of {', '.join(PLACE_BALANCES)}, got {self.place_balance!r}")
        if self.pixel_size and self.pixel_size_range:
            raise ConfigError("give --pixel-size or --pixel-size-range, not both")
        if self.pixel_size_range is not None:
            lo, hi = self.pixel_size_range
            if not 0 < lo <= hi:
                raise ConfigError(f"--pixel-size-range needs 0 < MIN <= MAX, got {lo} {hi}")
        m = 2 ** (self.depth or DEFAULT_DEPTH)
        if self.tile_size % m:
            raise ConfigError(f"--tile-size {self.tile_size} is not a multiple of 2**depth = {m}")
        if self.loss not in LOSSES:
            raise ConfigError(f"unknown loss '{self.loss}'")


@dataclass
class TrainResult:
    best_iou: float  # NaN without validation
    best_epoch: int  # the epoch best.pt holds: without validation, the last
    epochs_done: int
    history: list[dict[str, float]]
    validated: bool = True  # False when the run had no validation windows (best.pt is the last model)
    main: bool = True  # this process is rank 0 of a DDP run (or the only one): the one that reports


def parse_bands(text: str) -> tuple[int, ...]:
    """``"1,2,3"`` -> ``(1, 2, 3)``."""
    try:
        bands = tuple(int(b) for b in text.replace(" ", "").split(",") if b)
    except ValueError:
        raise ConfigError(f"--bands must be comma-separated band numbers, got '{text}'") from None
    if not bands or any(b < 1 for b in bands):
        raise ConfigError(f"--bands must be band numbers starting at 1, got '{text}'")
    return bands


def reference_pixel_size(cfg: TrainConfig) -> float | None:
    """The pixel size windows are laid out at: ``--pixel-size``, the geometric middle of
    ``--pixel-size-range``, or None (native)."""
    if cfg.pixel_size_range:
        lo, hi = cfg.pixel_size_range
        return math.sqrt(lo * hi)
    return cfg.pixel_size
