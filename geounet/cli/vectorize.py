"""``geounet vectorize``: parse the options into a :class:`~geounet.predict.settings.VectorizeConfig`, call
:func:`geounet.predict.from_probs.vectorize_probs`, print the written path.

Every default and help text comes from the setting's field, the same field predict's option
reads (:func:`~geounet.cli.options.from_setting`), so the two commands' defaults are one.
"""

from __future__ import annotations

import click

from ..predict.settings import VectorizeConfig, setting_doc
from .options import existing_opt, from_setting, only_new_opt, overwrite_opt


def _opt(*decls, **kw):
    name = next((d for d in decls if not d.startswith("-")), None) or decls[-1].lstrip("-").replace("-", "_")
    return click.option(*decls, **from_setting(VectorizeConfig, name), **kw)


@click.command()
@click.argument("input", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help=setting_doc(VectorizeConfig, "output"))
@_opt("--threshold", type=click.FloatRange(0, 1, min_open=True, max_open=True), show_default=True)
@_opt("--separate/--no-separate", "separate")
@_opt("--min-area", type=click.FloatRange(min=0), show_default=True)
@_opt("--min-score", type=click.FloatRange(0, 1, max_open=True), show_default=True)
@_opt("--simplify", type=click.FloatRange(min=0), show_default=True)
@_opt("--regularize", is_flag=True)
@_opt("--wgs84", is_flag=True)
@existing_opt
@only_new_opt
@overwrite_opt
def vectorize(**kwargs) -> None:
    """Turn a --probs GeoTIFF of geounet predict into footprints, without the model.

    The same steps as predict, with the same defaults: the same options give predict's
    polygons exactly, and another --threshold (or --min-area, --simplify, ...) gives the
    footprints predict would have given with it, in seconds. Streamed strip by strip.
    The written path is printed on stdout.
    """
    from ..predict.from_probs import vectorize_probs

    result = vectorize_probs(VectorizeConfig.from_cli(**kwargs))
    click.echo(str(result.output))
