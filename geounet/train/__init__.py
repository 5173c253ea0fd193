"""Training a U-Net on GeoTIFFs (``geounet train``).

Modules, in the order a run uses them (imports flow down this list, never up):

* :mod:`.config`: :class:`TrainConfig`, the one definition of every training setting, its default
  and its meaning; :class:`TrainResult`.
* :mod:`.sources`: the input files as sources (rasters with vector labels, image chips with
  mask chips or with one vector file), checked and set to one pixel size.
* :mod:`.samples`: window sampling and the spatial split (whole blocks, per place).
* :mod:`.targets`: building / border / contact targets in ground metres, the ``IGNORE`` value
  and the U-Net weight map; :mod:`.losses`: losses and pixel counts on logits.
* :mod:`.dataset`: normalisation statistics, augmentation, the window dataset and its loader.
* :mod:`.ddp`: distributed set-up and collectives; :mod:`.rundir`: the run folder, last.pt's
  training state (all of resume) and metrics.csv; :mod:`.plot`: curves.png.
* :mod:`.loop`: the loop itself, set-up then step / validate / checkpoint, top to bottom.

Words: a *window* is the square of pixels the model sees, ``tile_size`` pixels on a side
(``--tile-size``, the name the CLI and the checkpoint's preprocessing keep); a *chip* is one
image file of an ``--images`` folder (the CLI's and the error messages' "image tile"); a *block*
is a square of a raster that the spatial split keeps whole (not a GeoTIFF's internal block);
a *record* is one epoch's line of metrics.csv; a *place* is a raster, or a folder of chips.

Where this differs from the planned layout, and why: reading and checking the input files
(:mod:`.sources`) is a module of its own, so :mod:`.samples` holds only the window arithmetic
and the split; the normalisation statistics sit in :mod:`.dataset`, beside the reading and
normalising they feed; the confusion counts sit with the losses, since both read logits against
targets with ``IGNORE`` pixels. The label reading (:mod:`geounet.labels`) stays outside this
package because evaluation reads vector files, checks polygons and drops contained duplicates
with it; the precision / recall / IoU / F1 ratios live in :mod:`geounet.metrics`, shared with
evaluation.
"""

from __future__ import annotations

from .config import DEFAULT_EPOCHS, TrainConfig, TrainResult, parse_bands, reference_pixel_size
from .loop import lr_at, train
from .rundir import CSV_FIELDS, RUN_FILES

__all__ = [
    "CSV_FIELDS", "DEFAULT_EPOCHS", "RUN_FILES", "TrainConfig", "TrainResult", "lr_at", "parse_bands",
    "reference_pixel_size", "train",
]
