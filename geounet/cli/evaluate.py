"""``geounet evaluate``: pair the files, call :func:`geounet.evaluate.evaluate`, print a table or JSON."""

from __future__ import annotations

import click


@click.command()
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
    from ..evaluate import evaluate as run_evaluation
    from ..evaluate.report import evaluation_json, evaluation_table

    if len(files) % 2:
        raise click.UsageError("give PRED TRUTH pairs: an even number of files")
    pairs = [(files[i], files[i + 1]) for i in range(0, len(files), 2)]
    results, pooled = run_evaluation(pairs, list(rasters) or None, iou, keep_contained_truth)
    click.echo(evaluation_json(results, pooled, iou) if as_json else evaluation_table(results, pooled))
