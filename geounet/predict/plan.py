"""Output planning: which files each input raster writes, which inputs are skipped, and refusing
outputs that cannot be written, all before any model is loaded.

``-o`` names a file (one input) or a folder (each input ``STEM`` writes ``STEM.<format>``, and
``STEM_probs.tif`` in the ``--probs`` folder; a URL's ``STEM`` is the last part of its path, without
the query string: :func:`geounet.paths.source_stem`); in a folder an input whose output exists is
skipped unless ``--overwrite``. Outputs are written under temporary names
(:func:`geounet.io.files.temp_path`) by the writers and renamed only when complete.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, GeounetError
from ..io.files import check_writable
from ..io.vector import FORMATS, check_vector_format
from ..paths import as_source, is_local, source_stem
from .settings import PredictConfig

__all__ = ["RasterJob", "plan_jobs"]


@dataclass
class RasterJob:
    """One input raster (a local Path, or a URL or GDAL path as given) and the files it writes (``skip``: its
    output exists and is kept)."""

    input: Path | str
    output: Path
    probs: Path | None
    skip: bool = False


def _same_file(a: Path, b: Path | str) -> bool:
    if not is_local(b):
        return False
    b = Path(b)
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _format_extension(fmt: str | None) -> str | None:
    """``--format`` as a file extension (``".gpkg"``), or None when not given."""
    if not fmt:
        return None
    ext = "." + fmt.lower().lstrip(".")
    if ext not in FORMATS:
        raise ConfigError(f"unknown --format '{fmt}'; use one of {', '.join(e[1:] for e in FORMATS)}")
    return ext


def _file_job(config: PredictConfig, inp: Path | str, output: Path, probs: Path | None, ext: str | None) -> RasterJob:
    """One input writing the file ``output`` (and the GeoTIFF ``probs``)."""
    if ext and ext != output.suffix.lower():
        raise ConfigError(f"--format {config.fmt} does not match the output extension", output)
    check_vector_format(output)
    if probs is not None and probs.suffix.lower() not in (".tif", ".tiff"):
        raise ConfigError("--probs must name a GeoTIFF (.tif) file", probs)
    return RasterJob(inp, output, probs)


def _folder_jobs(config: PredictConfig, inputs: list[Path | str], output: Path, probs: Path | None,
                 ext: str | None) -> list[RasterJob]:
    """Each input writing ``STEM<ext>`` into the folder ``output`` (and ``STEM_probs.tif`` into ``probs``)."""
    ext = ext or ".geojson"
    if probs is not None and probs.suffix.lower() in (".tif", ".tiff"):
        raise ConfigError("with an output folder, --probs must be a folder too", probs)
    for folder in [output] + ([probs] if probs is not None else []):
        if folder.exists() and not folder.is_dir():
            raise ConfigError("output folder is a file", folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GeounetError(f"cannot create output folder ({exc.strerror or exc})", folder) from None
    jobs, seen = [], {}
    for inp in inputs:
        stem = source_stem(inp)
        if not stem:
            raise ConfigError("cannot name an output after this input (its path has no file name)", inp)
        if stem in seen:
            raise ConfigError(f"inputs {seen[stem]} and {inp} would both write {stem}{ext}", output)
        seen[stem] = inp
        out = output / f"{stem}{ext}"
        pr = probs / f"{stem}_probs.tif" if probs is not None else None
        jobs.append(RasterJob(inp, out, pr, skip=out.exists() and not config.overwrite))
    check_vector_format(output / f"x{ext}")
    return jobs


def plan_jobs(config: PredictConfig) -> list[RasterJob]:
    """Decide each input's outputs, which ones to skip, and refuse outputs that cannot be written."""
    inputs = [as_source(p) for p in config.inputs]
    if not inputs:
        raise ConfigError("no input raster given")
    output = Path(config.output)
    probs = Path(config.probs) if config.probs is not None else None
    ext = _format_extension(config.fmt)
    single_file = output.suffix.lower() in FORMATS
    if single_file and len(inputs) > 1:
        raise ConfigError("with several inputs, -o/--output must be a folder (each input gets its own file)", output)
    if not single_file and output.suffix and not output.is_dir():
        raise ConfigError(f"unsupported output format '{output.suffix}'; use one of {', '.join(FORMATS)}", output)
    if single_file:
        jobs = [_file_job(config, inputs[0], output, probs, ext)]
    else:
        jobs = _folder_jobs(config, inputs, output, probs, ext)
    for job in jobs:
        for out in [job.output, job.probs]:
            if out is None:
                continue
            for inp in inputs:
                if _same_file(out, inp):
                    raise ConfigError("output would overwrite an input raster", out)
        if job.skip:
            continue
        check_writable(job.output, config.overwrite)
        if job.probs is not None:
            check_writable(job.probs, config.overwrite)
    return jobs
