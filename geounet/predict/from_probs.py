"""``geounet vectorize``: a ``--probs`` GeoTIFF to footprints, with exactly the steps predict runs.

predict vectorises its probabilities as ``--probs`` stores them (:func:`geounet.io.probs.quantize`),
so reading the file back (:class:`geounet.io.probs.ProbsReader`) gives the vectoriser the same
numbers. The settings are predict's fields (:class:`~.settings.VectorizeConfig`), turned into
pixels of the file's grid by the same :func:`~.resolve.vectorize_options`, and the file is fed to
the same :class:`~geounet.vectorize.StripVectorizer` in the same column bands
(:func:`geounet.grid.column_bands_with_context`), strip by strip (the file's block rows), so
memory is a few strips whatever the file's size. The vectoriser's result does not depend on
the strips it is fed (:mod:`geounet.vectorize.stream`): the footprints are predict's, bit for bit.
Only the model is skipped: trying another threshold takes seconds.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ..errors import ConfigError
from ..grid import column_bands_with_context
from ..io.files import check_writable
from ..io.probs import ProbsReader
from ..io.raster import gdal_env, open_raster, raise_user_error
from ..io.vector import check_vector_format
from ..log import logger, progress_enabled
from ..vectorize import StripVectorizer
from .existing import ExistingBuildings
from .footprints import open_sink
from .resolve import channels_for, check_polygon_settings, vectorize_options
from .settings import VectorizeConfig

__all__ = ["VectorizeResult", "vectorize_probs"]


@dataclass
class VectorizeResult:
    """What :func:`vectorize_probs` wrote."""

    input: Path
    output: Path
    n_polygons: int = 0  # found; with only_new, n_new of them are written
    n_new: int = 0
    n_mapped: int = 0
    seconds: float = 0.0


def _check(config: VectorizeConfig) -> tuple[Path, Path]:
    check_polygon_settings(config)
    inp, out = Path(config.input), Path(config.output)
    check_vector_format(out)
    if out.exists() and inp.exists() and out.resolve() == inp.resolve():
        raise ConfigError("output would overwrite the input", out)
    check_writable(out, config.overwrite)
    return inp, out


def vectorize_probs(config: VectorizeConfig) -> VectorizeResult:
    """Footprints of the ``--probs`` file ``config.input`` written to ``config.output``; see ``geounet vectorize --help``."""
    t0 = time.perf_counter()
    inp, out = _check(config)
    existing = None if config.existing is None else ExistingBuildings.over_rasters(
        config.existing, [inp], config.match_iou, config.match_cover)
    with gdal_env(64), open_raster(inp) as src:
        probs = ProbsReader(src, inp)
        separate, channels, _ = channels_for(probs.channels, config.separate)
        vopt = vectorize_options(src, config, channels, separate)
        sink = open_sink(out, src, inp, config, existing)
        vectorizer = StripVectorizer(src.height, src.width, src.transform, src.crs, vopt, sink.write, levels=True)
        bands = column_bands_with_context(src.width, config.band_width, config.probs_block, vopt.margin)
        strip = max(src.block_shapes[0][0], 1)
        committed = False
        try:
            _feed(probs, vectorizer, bands, strip, channels, src.height, config)
            sink.commit()
            committed = True
        except BaseException as exc:
            raise_user_error(exc, inp, "read or write")
        finally:
            if not committed:
                sink.abort()
    result = VectorizeResult(inp, out, vectorizer.n_polygons, sink.n_new, sink.n_mapped, time.perf_counter() - t0)
    logger.info("%s: %d buildings%s -> %s (%.1f s)", inp, result.n_polygons,
                f" ({result.n_new} new, {result.n_mapped} mapped)" if existing else "", out, result.seconds)
    return result


def _feed(probs: ProbsReader, vectorizer: StripVectorizer, bands, strip: int, channels, height: int,
          config: VectorizeConfig) -> None:
    """Every column band of the file, top to bottom in strips of ``strip`` rows, into ``vectorizer``."""
    show = progress_enabled() if config.progress is None else bool(config.progress)
    with tqdm(total=len(bands) * height, desc=Path(config.input).name, unit="row", file=sys.stderr,
              disable=not show, leave=False, dynamic_ncols=True) as bar:
        for k, (x0, x1, cx0, cx1) in enumerate(bands):
            vectorizer.begin_band(x0, x1, cx0, cx1, last=k == len(bands) - 1)
            for r0 in range(0, height, strip):
                r1 = min(height, r0 + strip)
                p, valid = probs.read((r0, r1), (cx0, cx1), channels)
                vectorizer.add_rows(r0, p, valid)
                bar.update(r1 - r0)
        vectorizer.finish()
