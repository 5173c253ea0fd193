"""Every setting of ``geounet predict``, each defined once: a dataclass field with its default and its doc.

One frozen dataclass per concern:

* :class:`WindowSettings`: how a raster is cut into windows and column bands;
* :class:`PolygonSettings`: probabilities to building polygons (threshold, sieve, simplify, area);
* :class:`SeparationSettings`: splitting touching buildings (seeds and their growth);
* :class:`ReadSettings`: reading the raster (pixel size, GDAL cache);
* :class:`OutputSettings`: what is written and how;
* :class:`ExistingSettings`: comparing the footprints with buildings already mapped (``--existing``);
* :class:`InferenceSettings`: how the model runs.

:class:`VectorizeConfig` (``geounet vectorize``: a ``--probs`` file to footprints) inherits the
concerns it shares with predict, so its defaults are predict's.

:class:`PredictConfig` (what a caller asks for: inputs, outputs, model, device and every
concern's settings; ``None`` means "the default for this model or device") and
:class:`RunOptions` (the same resolved for one run, see
:func:`geounet.predict.resolve.resolve_options`) inherit all the concerns, so each field, its
default and its doc exist once, and both keep their flat keyword arguments
(``RunOptions(tile=512, overlap=128, batch_size=1, reach_m=2.5)``). The CLI reads its option
defaults and help from these fields (:func:`setting_doc`), and the benchmarks tune with
``dataclasses.replace(options, reach_m=...)``, not by patching module globals.

Lengths and areas are in ground metres; :func:`geounet.predict.resolve.vectorize_options`
converts them to pixels of each raster (with the helpers of :mod:`geounet.grid`). The values of
the separation settings were tuned on two held-out areas (docs/separation.md).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch and the checkpoint types are not needed to read the settings (the CLI imports this)
    import torch

    from ..config import CheckpointInfo

__all__ = [
    "WindowSettings", "PolygonSettings", "SeparationSettings", "ReadSettings", "OutputSettings",
    "ExistingSettings", "InferenceSettings", "PredictConfig", "RunOptions", "VectorizeConfig", "default_tile_size",
    "default_overlap", "default_batch_size", "setting_doc",
]


def setting(default: Any, doc: str) -> Any:
    """A dataclass field holding a setting's default and its documentation."""
    return field(default=default, metadata={"doc": doc})


def setting_doc(cls: type, name: str) -> str:
    """The documentation of setting ``name`` of dataclass ``cls`` (also the CLI option's help)."""
    return next(f for f in fields(cls) if f.name == name).metadata["doc"]


@dataclass(frozen=True, kw_only=True)
class WindowSettings:
    """How a raster is cut into windows (the model's input) and column bands (the memory bound)."""

    min_tile: int = setting(
        512, "The default window side is at least this many pixels: less overlap overhead per pixel than "
             "smaller windows at about the same model speed per pixel. 768 px windows (with the overlap capped "
             "at max_overlap) make predict about 17% faster still but need about 200 MB more memory, which "
             "would take a 5,000 px raster over 1 GB (docs/benchmarks.md).")
    max_overlap: int = setting(
        128, "The default overlap is a quarter of the window, at most this many pixels: the seams' quality "
             "depends on the cross-fade's width in pixels (the model's reach), not on the window's size "
             "(docs/benchmarks.md, 'Seams versus overlap').")
    band_width: int = setting(
        3584, "Rasters wider than this many pixels (of the grid the model reads) go through in column bands "
              "whose strips, the vectoriser's context columns included, are at most this wide, so memory "
              "does not grow with the width either. A band's context columns and the windows straddling "
              "its border are handed to the next band through temporary files, so every window runs once, "
              "as with one band. At 3,584 px a 20,000 px raster at 0.132 m (13,200 px at the default model's "
              "0.2 m) peaks within 5% of a 5,000 px raster (one band of 3,300 px): about 770 MB; 5,632 px "
              "bands take about 5% less time and 90-100 MB more memory (docs/benchmarks.md).")


@dataclass(frozen=True, kw_only=True)
class PolygonSettings:
    """Probabilities to building polygons (see :mod:`geounet.vectorize`)."""

    threshold: float = setting(0.5, "Probability at or above which a pixel is building.")
    min_area: float = setting(
        8.0, "Drop buildings smaller than this many square metres (ground area); 2 keeps small sheds "
             "(docs/separation.md).")
    min_score: float = setting(
        0.65, "Drop buildings whose score (mean building probability over the building) is below this: "
              "on places the models never saw, buildings under 0.65 are nearly all false or partial "
              "(docs/model.md, 'A building's score'); 0 keeps every building the threshold draws.")
    simplify: float = setting(0.2, "Simplify outlines with this tolerance in metres (0: keep pixel edges).")
    regularize: bool = setting(False, "Square building outlines: dominant orientation, right-angled corners.")
    regularize_m: float = setting(
        0.5, "Tolerance of regularize in metres: outline detail smaller than this is squared away.")
    speck_m2: float = setting(
        1.0, "Regions (buildings or holes) smaller than this many square metres are sieved away before "
             "polygonising.")
    sieve_max_px: int = setting(
        256, "The sieve's size in pixels is at most this (at least 2): a streamed sieve needs as many rows "
             "of context.")


@dataclass(frozen=True, kw_only=True)
class SeparationSettings:
    """Splitting touching buildings (docs/separation.md).

    Seeds are confident interiors, ``p_building * (1 - p_border) * (1 - p_contact) >=`` the
    seed threshold, at least ``seed_min_m2`` large; they grow back over the building mask for
    at most ``reach_m`` (a bounded reach keeps the streamed result exact). With a
    building-only model, seeds are ``p_building >= plain_seed_threshold`` eroded by
    ``plain_erode_m`` (the contact band a separation model would predict).
    """

    separate: bool | None = setting(
        None, "Split touching buildings into one polygon each, on seeds from confident interiors "
              "[default: on when the model has border and contact outputs].")
    seed_threshold: float | None = setting(
        None, "Seed threshold; None: score_seed_threshold, or plain_seed_threshold for a building-only model.")
    score_seed_threshold: float = setting(
        0.5, "Seeds of a model with border and contact outputs: p_building * (1 - p_border) * (1 - p_contact) "
             "at or above this.")
    plain_seed_threshold: float = setting(
        0.95, "Seeds of a building-only model: p_building at or above this, eroded by plain_erode_m.")
    plain_erode_m: float = setting(
        0.45, "Erosion of a building-only model's seeds in metres (the contact band a separation model "
              "would predict).")
    seed_min_m2: float = setting(
        16.0, "Seeds smaller than this many square metres (at most seed_min_max_px pixels) are dropped "
              "(docs/separation.md: chosen on places the models never saw).")
    reach_m: float = setting(
        3.0, "Seeds grow back over the building mask for at most this many metres (a bounded reach keeps "
             "the streamed result exact).")
    seed_min_max_px: int = setting(
        256, "The seed-size filter's size in pixels is at most this: like the sieve, it needs as many rows "
             "of context.")
    max_reach_px: int = setting(
        100, "The reach in pixels is at most this: keeps the context of a column band (2 * reach) below "
             "the 256 px column-band alignment.")


@dataclass(frozen=True, kw_only=True)
class ReadSettings:
    """Reading the raster."""

    pixel_size: str | float | None = setting(
        "auto", "Resample on the fly to this ground pixel size; auto: the model's, when the raster's is "
                "over 20% off.")
    input_range: str = setting(
        "auto", "Imagery of another data type than the model's (e.g. 16-bit satellite scenes for the 8-bit "
                "default model): auto stretches each band between its 0.1th and 99.9th percentiles of valid pixels, "
                "sampled over the raster; LOW,HIGH maps those raw values to the model's range for every band "
                "and raster (the same for every tile of a mosaic); none refuses such a raster.")
    nodata: float | None = setting(
        None, "Also treat pixels equal to this value in every band as no-data, for rasters whose no-data is not "
              "declared (e.g. 0 for a black collar around an orthophoto): no building is drawn there. The "
              "raster's own mask, alpha band or nodata value still count; every block of the raster is read.")
    gdal_cache_mb: int = setting(
        32, "GDAL block cache in MB while predicting, at least: raised for each resampled raster (--pixel-size) "
            "to what its reads need to decode each source block once (three block-rows of the source under a "
            "column band, geounet.io.raster.block_cache_mb); native reads decode each block once without it.")


@dataclass(frozen=True, kw_only=True)
class OutputSettings:
    """What is written, and how."""

    wgs84: bool = setting(
        False, "Write longitude/latitude (EPSG:4326, RFC 7946 GeoJSON) instead of the raster's CRS.")
    overwrite: bool = setting(False, "Replace outputs that already exist.")
    probs_block: int = setting(
        256, "Block side in pixels of the --probs GeoTIFF; column-band borders fall on its multiples.")
    preview_size: int = setting(2000, "Longest side in pixels of the --preview picture (smaller rasters keep theirs).")


@dataclass(frozen=True, kw_only=True)
class ExistingSettings:
    """Comparing the footprints with buildings already mapped (``--existing``), e.g. an OpenStreetMap extract."""

    existing: str | os.PathLike | None = setting(
        None, "Buildings already mapped (.gpkg, .geojson, .osm.pbf, .osm; any CRS): each footprint gets "
              "status 'mapped' when it matches one of them, else 'new'.")
    only_new: bool = setting(False, "With --existing: write only the new footprints (the mapper's to-do list).")
    match_iou: float = setting(0.5, "A footprint is mapped when its IoU with an existing building is at least this.")
    match_cover: float = setting(
        0.5, "A footprint is also mapped when at least this share of its area lies inside one existing building.")


@dataclass(frozen=True, kw_only=True)
class InferenceSettings:
    """How the model runs."""

    amp: bool = setting(True, "Mixed precision (bf16 on CPU, bf16/fp16 on CUDA).")
    adapt: bool = setting(
        False, "Test-time adaptation: re-estimate the model's BatchNorm statistics on windows spread over "
               "each raster before predicting it (forward passes only; helps on cameras the model never saw, "
               "but a raster's result then depends on its extent).")
    adapt_windows: int = setting(16, "Windows sampled over each raster for --adapt.")


@dataclass(frozen=True)
class PredictConfig(WindowSettings, PolygonSettings, SeparationSettings, ReadSettings, OutputSettings,
                    ExistingSettings, InferenceSettings):
    """Everything ``geounet predict`` needs; ``None`` means "the default for this model/device".

    Besides the fields below, every setting of the concerns it inherits (keyword only).
    """

    inputs: Sequence[str | os.PathLike] = field(metadata={"doc": "Input rasters."})
    output: str | os.PathLike = field(
        metadata={"doc": "Vector file (.geojson, .gpkg, .fgb, .parquet, or .osm: OpenStreetMap XML for JOSM); "
                         "with several inputs, a folder."})
    model_path: str | os.PathLike | None = setting(
        None, "Checkpoint (.pt) to use, or the name of a bundled model (fine-0.14m); default: the "
              "default model bundled with geounet.")
    mosaic: bool = setting(
        False, "Read the INPUT rasters as one (adjacent tiles of one pixel grid: same CRS, pixel size, bands "
               "and data types; gaps are no-data): one output file, a building across a tile border is one "
               "polygon.")
    probs: str | os.PathLike | None = setting(
        None, "Also write building probabilities (GeoTIFF, 0-255); a folder with several inputs.")
    tile_size: int | None = setting(None, "Window side in pixels; a multiple of 2**depth.")
    overlap: int | None = setting(
        None, "Pixels shared by neighbouring windows, blended smoothly (default: tile size / 4).")
    batch_size: int | None = setting(None, "Windows per batch.")
    device: str = setting("auto", "Where the model runs; auto picks CUDA when available.")
    bands: str | Sequence[int] | None = setting(
        None, "Raster bands for the model's channels, in order, e.g. 3,2,1 for imagery stored blue, green, red "
              "(default: the bands the model was trained on, 1,2,3 for the bundled models).")
    fmt: str | None = setting(None, "File format when OUTPUT is a folder (default: geojson).")
    tta: bool = setting(
        False, "Test-time augmentation: average the 8 flips and 90-degree rotations (8x slower).")
    progress: bool | None = setting(None, "Progress bars; default: when logging is not quiet.")
    preview: str | os.PathLike | None = setting(
        None, "Also write a picture (.png) of the raster, downsampled, with the footprints drawn and no-data "
              "hatched grey; a folder with several inputs.")

    @classmethod
    def from_cli(cls, **kw) -> "PredictConfig":
        """Build from the ``geounet predict`` options (other keys are ignored; an empty --pixel-size is the default)."""
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in kw.items() if k in names}
        kw["inputs"] = tuple(kw["inputs"])
        kw["pixel_size"] = kw.get("pixel_size") or cls.pixel_size
        return cls(**kw)


@dataclass(frozen=True)
class RunOptions(WindowSettings, PolygonSettings, SeparationSettings, ReadSettings, OutputSettings,
                 ExistingSettings, InferenceSettings):
    """Resolved settings for one raster: window size, overlap and batch size are given.

    ``separate=None`` and ``seed_threshold=None`` still mean "the default for the model"
    (see :func:`geounet.predict.resolve.separation_channels`).
    """

    tile: int = field(metadata={"doc": "Window side in pixels, a multiple of 2**depth."})
    overlap: int = field(metadata={"doc": "Pixels shared by neighbouring windows, a multiple of 2**depth."})
    batch_size: int = field(metadata={"doc": "Windows per batch."})
    progress: bool = setting(False, "Show a progress bar.")


@dataclass(frozen=True)
class VectorizeConfig(WindowSettings, PolygonSettings, SeparationSettings, OutputSettings, ExistingSettings):
    """Everything ``geounet vectorize`` needs: a ``--probs`` file to footprints, with predict's settings."""

    input: str | os.PathLike = field(metadata={"doc": "A --probs GeoTIFF written by geounet predict."})
    output: str | os.PathLike = field(metadata={"doc": "Vector file (.geojson, .gpkg, .fgb, .parquet, .osm)."})
    separate: bool | None = field(default=None, kw_only=True, metadata={"doc": (
        "Split touching buildings into one polygon each [default: on when the file has border and contact "
        "bands, as predict does with a model that has those outputs].")})
    progress: bool | None = setting(None, "Progress bar; default: when logging is not quiet.")

    @classmethod
    def from_cli(cls, **kw) -> "VectorizeConfig":
        """Build from the ``geounet vectorize`` options (other keys are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in kw.items() if k in names})


def default_tile_size(info: CheckpointInfo, min_tile: int = WindowSettings.min_tile) -> int:
    """``max(training tile, min_tile)`` rounded up to a multiple of ``2**depth`` (see docs/benchmarks.md)."""
    m = info.model.multiple
    t = max(int(info.preprocessing.tile_size), min_tile)
    return int(math.ceil(t / m) * m)


def default_overlap(tile: int, multiple: int = 1, max_overlap: int = WindowSettings.max_overlap) -> int:
    """A quarter of the window, at most ``max_overlap``, on the model's lattice: 128 px at 512 px windows and
    above, 64 at 256 (see docs/benchmarks.md)."""
    return min(tile // 4, max_overlap) // multiple * multiple


def default_batch_size(device: torch.device) -> int:
    """Windows per batch: 8 on CUDA (keeps the GPU busy), 1 on CPU (no faster per window in batches)."""
    return 8 if device.type == "cuda" else 1
