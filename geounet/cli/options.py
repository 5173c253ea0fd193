"""Click options shared by several commands, defined once (as rasterio's ``rio/options.py`` does).

An option that is a library setting takes its default and its help from the setting's
dataclass field (:func:`from_setting`), so the value and its doc are written once, in
:mod:`geounet.predict.settings`; ``--device`` and ``--amp`` are predict's settings and train
shares them, as it shares ``--tile-size`` and ``--batch-size`` (whose default, None, leaves the
choice to each command).
"""

from __future__ import annotations

from typing import Any

import click

from ..predict.settings import PredictConfig, setting_doc


def from_setting(config: type, name: str) -> dict[str, Any]:
    """``default`` and ``help`` of a click option: the dataclass field ``name`` of ``config`` (its one definition)."""
    return {"default": getattr(config, name), "help": setting_doc(config, name)}


device_opt = click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    show_default=True,
    **from_setting(PredictConfig, "device"),
)
overwrite_opt = click.option("--overwrite", is_flag=True, **from_setting(PredictConfig, "overwrite"))
tile_size_opt = click.option("--tile-size", type=click.IntRange(min=16), **from_setting(PredictConfig, "tile_size"))
batch_size_opt = click.option("--batch-size", type=click.IntRange(min=1), **from_setting(PredictConfig, "batch_size"))
amp_opt = click.option("--amp/--no-amp", show_default=True, **from_setting(PredictConfig, "amp"))
existing_opt = click.option("--existing", type=click.Path(dir_okay=False), **from_setting(PredictConfig, "existing"))
only_new_opt = click.option("--only-new", is_flag=True, **from_setting(PredictConfig, "only_new"))
seed_opt = click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")


def model_opt(required: bool = False):
    return click.option(
        "--model", "model_path", type=click.Path(dir_okay=False), required=required,
        **from_setting(PredictConfig, "model_path"),
    )
