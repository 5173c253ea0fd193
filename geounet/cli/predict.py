"""``geounet predict``: parse the options into a :class:`~geounet.predict.PredictConfig`, call
:func:`geounet.predict.predict`, print the written paths.

Under ``torchrun`` the command passes its rank (:class:`~geounet.predict.shard.Shard`, from torchrun's
environment) to predict, and before exiting says it is done (:meth:`~geounet.predict.shard.Shard.finish`:
a rank that failed exits only once the others are done, since torchrun stops them all when one exits 1).

Every default and help text of a library setting comes from its field in
:mod:`geounet.predict.settings` (:func:`~geounet.cli.options.from_setting`).
"""

from __future__ import annotations

import sys

import click

from ..errors import GeounetError

from ..predict.settings import PredictConfig, setting_doc
from .options import (amp_opt, batch_size_opt, device_opt, existing_opt, from_setting, model_opt, only_new_opt,
                      overwrite_opt, tile_size_opt)


def _opt(*decls, **kw):
    """A ``geounet predict`` option for the :class:`PredictConfig` setting of the same name."""
    name = next((d for d in decls if not d.startswith("-")), None) or decls[-1].lstrip("-").replace("-", "_")
    return click.option(*decls, **from_setting(PredictConfig, name), **kw)


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(), help=setting_doc(PredictConfig, "output"))
@model_opt()
@_opt("--mosaic", is_flag=True)
@_opt("--probs", type=click.Path())
@_opt("--threshold", type=click.FloatRange(0, 1, min_open=True, max_open=True), show_default=True)
@tile_size_opt
@_opt("--overlap", type=click.IntRange(min=0))
@batch_size_opt
@device_opt
@_opt("--min-area", type=click.FloatRange(min=0), show_default=True)
@_opt("--min-score", type=click.FloatRange(0, 1, max_open=True), show_default=True)
@_opt("--simplify", type=click.FloatRange(min=0), show_default=True)
@_opt("--separate/--no-separate", "separate")
@_opt("--regularize", is_flag=True)
@_opt("--wgs84", is_flag=True)
@_opt("--format", "fmt", type=click.Choice(["geojson", "gpkg", "fgb", "parquet", "osm"]))
@_opt("--pixel-size", show_default=True, metavar="auto|native|METRES")
@_opt("--input-range", show_default=True, metavar="auto|LOW,HIGH|none")
@_opt("--nodata", type=float, metavar="VALUE")
@_opt("--bands", metavar="B1,B2,B3")
@amp_opt
@_opt("--tta", is_flag=True)
@_opt("--adapt/--no-adapt", "adapt", show_default=True)
@_opt("--adapt-windows", type=click.IntRange(min=1), show_default=True)
@existing_opt
@only_new_opt
@_opt("--preview", type=click.Path(dir_okay=True))
@overwrite_opt
def predict(**kwargs) -> None:
    """Find buildings in INPUT rasters and write their footprints in the raster's CRS.

    The raster is read window by window and the probabilities are stitched and
    vectorised strip by strip, so rasters far larger than memory work. With several
    INPUTs, OUTPUT is a folder and each input gets its own file; inputs whose file
    exists are skipped unless --overwrite; an input that fails is reported on one line and
    the others are still done (exit code 1 at the end). With --mosaic, the INPUTs are tiles
    of one area predicted as one raster into the file OUTPUT. Written paths are printed on stdout.

    For mappers: --existing osm.pbf marks each footprint new or mapped (--only-new keeps
    the new ones), -o out.osm writes OpenStreetMap XML for JOSM, --preview out.png a picture.

    Many rasters on several GPUs or machines: torchrun --nproc-per-node N -m geounet predict
    INPUT... -o FOLDER; each process does its share of the inputs (docs/predict.md).
    """
    from ..predict import predict as run_predict
    from ..predict.shard import Shard

    shard = Shard.from_env()  # under torchrun: this process's share of the inputs
    try:
        result = run_predict(PredictConfig.from_cli(**kwargs), shard=shard)
    except GeounetError:
        shard.finish(failed=True)  # exit 1 only once the other ranks are done: torchrun would stop them
        raise
    for path in result.written:
        click.echo(str(path))
    sys.stdout.flush()
    shard.finish(failed=bool(result.failed))
    if result.failed:  # each failure was reported on its own line as it happened
        click.get_current_context().exit(1)
