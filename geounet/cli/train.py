"""``geounet train``: parse the options into a :class:`~geounet.train.TrainConfig`, call
:func:`geounet.train.train`, report the best validation score."""

from __future__ import annotations

import click

from ..log import logger
from .options import amp_opt, batch_size_opt, device_opt, overwrite_opt, seed_opt, tile_size_opt


@click.command()
@click.option("--images", type=click.Path(), default=None, help="Folder of GeoTIFF image tiles.")
@click.option("--masks", type=click.Path(), default=None, help="Folder of same-named GeoTIFF mask tiles (non-zero = building); or give the tiles a --labels file.")
@click.option("--raster", "rasters", multiple=True, type=click.Path(), help="Training raster (repeat, paired with --labels).")
@click.option("--labels", "labels", multiple=True, type=click.Path(), help="Vector building polygons for the --raster at the same position; with --images and no --masks, the last --labels covers the tiles.")
@click.option("--val-raster", "val_rasters", multiple=True, type=click.Path(), help="Validation raster (repeat, paired with --val-labels).")
@click.option("--val-labels", "val_labels", multiple=True, type=click.Path(), help="Vector labels for the --val-raster at the same position.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Run folder for best.pt, last.pt, metrics.csv, curves.png.")
@click.option("--width", type=click.IntRange(min=1), default=None, help="Channels of the first U-Net block  [default: 16; with --init: the model's].")
@click.option("--depth", type=click.IntRange(1, 8), default=None, help="Number of down blocks  [default: 4; with --init: the model's].")
@tile_size_opt
@batch_size_opt
@click.option("--epoch-windows", type=click.IntRange(min=1), default=64, show_default=True,
              help="Least training windows an epoch draws (small training sets repeat theirs, each draw augmented anew).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Total epochs of the run  [default: 50; on --resume: the run's own].")
@click.option("--max-minutes", type=click.FloatRange(min=0, min_open=True), default=None, help="Wall-clock budget of the whole run.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Peak learning rate (AdamW, cosine decay)  [default: 2e-3; with --init: 5e-4].")
@click.option("--loss", type=click.Choice(["bce+dice", "bce", "dice"]), default="bce+dice", show_default=True)
@click.option("--separation/--no-separation", default=True, show_default=True,
              help="Also learn building borders and contact zones, so predict can split touching buildings.")
@click.option("--weight-map", is_flag=True,
              help="Weight the building loss with the U-Net paper's map (w0=10, sigma 0.7 m) that stresses "
                   "the background between nearby buildings.")
@click.option("--photometric/--no-photometric", default=True, show_default=True,
              help="Augment colour, light and optics (other cameras); --no-photometric: crops, flips, rotations and scale only.")
@click.option("--mixstyle", type=click.FloatRange(0, 1), default=0.0, show_default=True, metavar="P",
              help="With probability P per batch, mix the windows' feature statistics (MixStyle) after the first "
                   "encoder blocks, so the model learns buildings and not one camera's colours.")
@click.option("--ema", type=float, default=0.0, show_default=True, metavar="DECAY",
              help="Also keep an exponential moving average of the weights (e.g. 0.999: about the last 1,000 "
                   "steps); best.pt then holds the average, best_raw.pt the trained weights.")
@click.option("--place-balance", type=click.Choice(["sqrt", "equal"]), default="sqrt", show_default=True,
              help="Share of each place (raster, or folder of chips) in an epoch: with the square root of its "
                   "windows, or equal.")
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
@click.option("--init", default=None, metavar="MODEL",
              help="Fine-tune: start from a bundled model (default, fine-0.14m) or a checkpoint file instead of "
                   "random weights; its architecture, bands, normalisation and pixel size are kept.")
@click.option("--freeze-encoder", is_flag=True, help="With --init: train only the decoder; the encoder stays as it was.")
@seed_opt
@overwrite_opt
def train(**kwargs) -> None:
    """Train a U-Net on GeoTIFF tiles or on rasters with vector labels."""
    from ..train import TrainConfig, train as run_training

    config = TrainConfig.from_cli(**kwargs)
    result = run_training(config)
    if not result.main:  # under torchrun, rank 0 reports for the run
        return
    if not result.validated:
        logger.info("no validation set: best.pt is the model of the last epoch (%d); checkpoints in %s",
                    result.best_epoch, config.out_dir)
        return
    logger.info(
        "best validation IoU %.4f (epoch %d); checkpoints in %s",
        result.best_iou, result.best_epoch, config.out_dir,
    )
