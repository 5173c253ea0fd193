"""Click options shared by several commands, defined once (as rasterio's ``rio/options.py`` does)."""

from __future__ import annotations

import click

device_opt = click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="Where the model runs; auto picks CUDA when available.",
)
overwrite_opt = click.option(
    "--overwrite", is_flag=True, default=False, help="Replace outputs that already exist."
)
tile_size_opt = click.option(
    "--tile-size",
    type=click.IntRange(min=16),
    default=None,
    help="Window side in pixels; a multiple of 2**depth.",
)
batch_size_opt = click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Windows per batch.")
amp_opt = click.option(
    "--amp/--no-amp", default=True, show_default=True, help="Mixed precision (bf16 on CPU, bf16/fp16 on CUDA)."
)
seed_opt = click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")


def model_opt(required: bool = False):
    return click.option(
        "--model",
        "model_path",
        type=click.Path(dir_okay=False),
        default=None,
        required=required,
        help="Checkpoint (.pt) to use; default: the model bundled with geounet.",
    )
