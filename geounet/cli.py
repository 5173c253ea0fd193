"""The ``geounet`` command line: thin commands that parse options, build a config, call the library.

Library errors (:class:`geounet.errors.GeounetError`) become one-line messages on stderr
and exit code 1; Ctrl-C exits 130. No traceback reaches the user.
"""

from __future__ import annotations

import sys

import click

from . import __version__
from .errors import GeounetError
from .log import configure, logger
from .options import amp_opt, batch_size_opt, device_opt, model_opt, overwrite_opt, seed_opt, tile_size_opt


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except GeounetError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="geounet")
@click.option("-v", "--verbose", count=True, help="More log output (repeatable).")
@click.option("-q", "--quiet", count=True, help="Less log output: warnings and errors only, no progress bars.")
def cli(verbose: int, quiet: int) -> None:
    """Find buildings in aerial GeoTIFFs with a U-Net."""
    configure(verbose - quiet)


@cli.command()
@click.option("--images", type=click.Path(), default=None, help="Folder of GeoTIFF image tiles.")
@click.option("--masks", type=click.Path(), default=None, help="Folder of same-named GeoTIFF mask tiles (non-zero = building); or give the tiles a --labels file.")
@click.option("--raster", "rasters", multiple=True, type=click.Path(), help="Training raster (repeat, paired with --labels).")
@click.option("--labels", "labels", multiple=True, type=click.Path(), help="Vector building polygons for the --raster at the same position; with --images and no --masks, the last --labels covers the tiles.")
@click.option("--val-raster", "val_rasters", multiple=True, type=click.Path(), help="Validation raster (repeat, paired with --val-labels).")
@click.option("--val-labels", "val_labels", multiple=True, type=click.Path(), help="Vector labels for the --val-raster at the same position.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Run folder for best.pt, last.pt, metrics.csv, curves.png.")
@click.option("--width", type=click.IntRange(min=1), default=16, show_default=True, help="Channels of the first U-Net block.")
@click.option("--depth", type=click.IntRange(1, 8), default=4, show_default=True, help="Number of down blocks.")
@tile_size_opt
@batch_size_opt
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Total epochs of the run  [default: 50; on --resume: the run's own].")
@click.option("--max-minutes", type=click.FloatRange(min=0, min_open=True), default=None, help="Wall-clock budget of the whole run.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=2e-3, show_default=True, help="Peak learning rate (AdamW, cosine decay).")
@click.option("--loss", type=click.Choice(["bce+dice", "bce", "dice"]), default="bce+dice", show_default=True)
@click.option("--separation/--no-separation", default=True, show_default=True,
              help="Also learn building borders and contact zones, so predict can split touching buildings.")
@click.option("--weight-map", is_flag=True,
              help="Weight the building loss with the U-Net paper's map (w0=10, sigma 0.7 m) that stresses "
                   "the background between nearby buildings.")
@click.option("--pixel-size", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Resample all inputs to this ground pixel size in metres (default: native).")
@click.option("--pixel-size-range", type=click.Tuple([click.FloatRange(min=0, min_open=True)] * 2), default=None,
              metavar="MIN MAX",
              help="Read every training window at a random ground pixel size between MIN and MAX metres, so "
                   "one model works across drone, aerial and satellite imagery; predict then reads imagery "
                   "natively inside the range.")
@click.option("--bands", default=None, help="Comma-separated 1-based bands to read, e.g. 1,2,3 (default: all non-alpha bands).")
@device_opt
@amp_opt
@click.option("--val-fraction", type=click.FloatRange(0, 0.9), default=0.2, show_default=True, help="Share of spatial blocks held out for validation.")
@click.option("--workers", type=click.IntRange(min=0), default=None, help="DataLoader worker processes (default: 1).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt.")
@seed_opt
@overwrite_opt
def train(**kwargs) -> None:
    """Train a U-Net on GeoTIFF tiles or on rasters with vector labels."""
    from .train import TrainConfig, train as run_training

    config = TrainConfig.from_cli(**kwargs)
    result = run_training(config)
    logger.info(
        "best validation IoU %.4f (epoch %d); checkpoints in %s",
        result.best_iou, result.best_epoch, config.out_dir,
    )


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Vector file (.geojson, .gpkg, .fgb, .parquet); with several inputs, a folder.")
@model_opt()
@click.option("--probs", type=click.Path(), default=None,
              help="Also write building probabilities (GeoTIFF, 0-255); a folder with several inputs.")
@click.option("--threshold", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.5,
              show_default=True, help="Probability at or above which a pixel is building.")
@tile_size_opt
@click.option("--overlap", type=click.IntRange(min=0), default=None,
              help="Pixels shared by neighbouring windows, blended smoothly (default: tile size / 4).")
@batch_size_opt
@device_opt
@click.option("--min-area", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="Drop buildings smaller than this many square metres (ground area).")
@click.option("--simplify", type=click.FloatRange(min=0), default=0.2, show_default=True,
              help="Simplify outlines with this tolerance in metres (0: keep pixel edges).")
@click.option("--separate/--no-separate", default=None,
              help="Split touching buildings into one polygon each, on seeds from confident interiors "
                   "[default: on when the model has border and contact outputs].")
@click.option("--regularize", is_flag=True, default=False,
              help="Square building outlines: dominant orientation, right-angled corners.")
@click.option("--wgs84", is_flag=True, default=False,
              help="Write longitude/latitude (EPSG:4326, RFC 7946 GeoJSON) instead of the raster's CRS.")
@click.option("--format", "fmt", type=click.Choice(["geojson", "gpkg", "fgb", "parquet"]), default=None,
              help="File format when OUTPUT is a folder (default: geojson).")
@click.option("--pixel-size", default="auto", show_default=True, metavar="auto|native|METRES",
              help="Resample on the fly to this ground pixel size; auto: the model's, when the raster's is over 20% off.")
@amp_opt
@click.option("--tta", is_flag=True, default=False,
              help="Test-time augmentation: average the 8 flips and 90-degree rotations (8x slower).")
@overwrite_opt
def predict(**kwargs) -> None:
    """Find buildings in INPUT rasters and write their footprints in the raster's CRS.

    The raster is read window by window and the probabilities are stitched and
    vectorised strip by strip, so rasters far larger than memory work. With several
    INPUTs, OUTPUT is a folder and each input gets its own file; inputs whose file
    exists are skipped unless --overwrite. Written paths are printed on stdout.
    """
    from .predict import PredictConfig, predict as run_predict

    config = PredictConfig.from_cli(**kwargs)
    result = run_predict(config)
    for path in result.written:
        click.echo(str(path))


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--raster", "rasters", multiple=True, type=click.Path(),
              help="Raster of the pair at the same position: adds pixel IoU/precision/recall inside its valid area.")
@click.option("--iou", type=click.FloatRange(0, 1, min_open=True), default=0.5, show_default=True,
              help="IoU at which a predicted and a true footprint match.")
@click.option("--keep-contained-truth", is_flag=True,
              help="Count true footprints lying inside a larger true footprint (duplicates, clipped copies) "
                   "as buildings of their own; by default they are not counted.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def evaluate(files: tuple[str, ...], rasters: tuple[str, ...], iou: float, keep_contained_truth: bool,
             as_json: bool) -> None:
    """Score footprints: PRED TRUTH [PRED TRUTH ...] (object F1 at --iou, pixel scores with --raster)."""
    from .evaluate import evaluate as run_evaluation
    from .evaluate.report import evaluation_json, evaluation_table

    if len(files) % 2:
        raise click.UsageError("give PRED TRUTH pairs: an even number of files")
    pairs = [(files[i], files[i + 1]) for i in range(0, len(files), 2)]
    results, pooled = run_evaluation(pairs, list(rasters) or None, iou, keep_contained_truth)
    click.echo(evaluation_json(results, pooled, iou) if as_json else evaluation_table(results, pooled))


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="geounet")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
