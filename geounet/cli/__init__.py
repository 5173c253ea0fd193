"""The ``geounet`` command line: thin commands that parse options, build a config, call the library.

The group (:func:`cli`) does what every command needs: library errors
(:class:`geounet.errors.GeounetError`) become one-line messages on stderr and exit code 1
(a command's bad options one line and exit code 2),
Ctrl-C exits 130, no traceback reaches the user; ``-v``/``-q`` set the log level; and the
command runs inside one GDAL environment (:func:`geounet.io.raster.gdal_env`: GDAL's defaults
and the options for reading rasters over HTTP), so the library never starts and stops one for
each file it opens. predict narrows GDAL's block cache for its run itself
(:attr:`geounet.predict.settings.ReadSettings.gdal_cache_mb`), as it must when called as a library.

One module per command (:mod:`.predict`, :mod:`.vectorize`, :mod:`.train`, :mod:`.evaluate`), each importing its
library only when it runs, so ``geounet --help`` stays fast; options several commands share
are :mod:`.options`. Nothing in the library imports this package.
"""

from __future__ import annotations

import atexit
import gc
import sys

import click

from .. import __version__
from ..errors import GeounetError
from ..log import configure
from .evaluate import evaluate
from .predict import predict
from .train import train
from .vectorize import vectorize


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except GeounetError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(1)
        except click.UsageError as exc:  # a bad option of a command: one line too (click adds usage and a hint)
            click.echo(f"Error: {exc.format_message()}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="geounet")
@click.option("-v", "--verbose", count=True, help="More log output (repeatable).")
@click.option("-q", "--quiet", count=True, help="Less log output: warnings and errors only, no progress bars.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: int) -> None:
    """Find buildings in aerial GeoTIFFs with a U-Net."""
    from ..io.raster import gdal_env  # here, not at the top: --help and --version need no GDAL

    configure(verbose - quiet)
    ctx.with_resource(gdal_env())


for _command in (train, predict, vectorize, evaluate):
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point (and ``python -m geounet``)."""
    # The process ends with the command: its last act would be the interpreter's final garbage
    # collection over every object the imports made (torch, GDAL, pandas), about 0.5 s per command on
    # the 2-core CPU, 6% of predicting a 5,000 px raster (docs/benchmarks.md). Freezing them at exit
    # skips that sweep; every output is closed and renamed by then, and memory goes back with the process.
    atexit.register(gc.freeze)
    cli.main(prog_name="geounet")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
