"""Output planning: which files each input raster writes, which inputs are skipped, and refusing
outputs that cannot be written, all before any model is loaded.

``-o`` names a file (one input) or a folder (each input ``STEM`` writes ``STEM.<format>``, and
``STEM_probs.tif`` in the ``--probs`` folder, ``STEM_preview.png`` in the ``--preview`` folder; a
URL's ``STEM`` is the last part of its path, without the query string: :func:`geounet.paths.source_stem`);
in a folder an input whose output exists is skipped unless ``--overwrite``. With ``--mosaic`` the inputs
are one raster (:class:`~geounet.io.mosaic.Mosaic`) writing one file. Output folders that do not exist
are only checked here (their parent must be writable); predict creates them when the work starts
(:func:`folders_to_create`). Temporary files that a killed run left beside the outputs are swept
first (:func:`geounet.io.files.sweep_stale`). Outputs are written under temporary names
(:func:`geounet.io.files.temp_path`) by the writers and renamed only when complete.

:func:`plan_jobs` is :func:`name_jobs` (every input's outputs, from the command line alone) then
:func:`prepare_jobs` (the files: sweep, skip, writable); a rank of a sharded run
(:mod:`geounet.predict.shard`) prepares only its share, so it never touches the other ranks' files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, GeounetError
from ..io.files import check_creatable, check_writable, sweep_stale
from ..io.mosaic import Mosaic
from ..io.vector import FORMATS, check_vector_format
from ..log import logger
from ..paths import as_source, is_local, source_stem
from .settings import PredictConfig

__all__ = ["RasterJob", "plan_jobs", "name_jobs", "prepare_jobs", "folders_to_create"]


@dataclass
class RasterJob:
    """One input raster (a local Path, or a URL or GDAL path as given; or a mosaic of several) and the files
    it writes (``skip``: its output exists and is kept)."""

    input: Path | str | Mosaic
    output: Path
    probs: Path | None
    skip: bool = False
    preview: Path | None = None


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


def _file_job(config: PredictConfig, inp: Path | str | Mosaic, output: Path, probs: Path | None, ext: str | None,
              preview: Path | None) -> RasterJob:
    """One input writing the file ``output`` (and the GeoTIFF ``probs``, the PNG ``preview``)."""
    if ext and ext != output.suffix.lower():
        raise ConfigError(f"--format {config.fmt} does not match the output extension", output)
    check_vector_format(output)
    if probs is not None and probs.suffix.lower() not in (".tif", ".tiff"):
        raise ConfigError("--probs must name a GeoTIFF (.tif) file", probs)
    if preview is not None and preview.suffix.lower() != ".png":
        raise ConfigError("--preview must name a PNG (.png) file", preview)
    return RasterJob(inp, output, probs, preview=preview)


def _folder_jobs(config: PredictConfig, inputs: list[Path | str], output: Path, probs: Path | None,
                 ext: str | None, preview: Path | None) -> list[RasterJob]:
    """Each input writing ``STEM<ext>`` into the folder ``output`` (and ``STEM_probs.tif`` into ``probs``,
    ``STEM_preview.png`` into ``preview``)."""
    ext = ext or ".geojson"
    if probs is not None and probs.suffix.lower() in (".tif", ".tiff"):
        raise ConfigError("with an output folder, --probs must be a folder too", probs)
    if preview is not None and preview.suffix.lower() == ".png":
        raise ConfigError("with an output folder, --preview must be a folder too", preview)
    for folder in [output] + [f for f in (probs, preview) if f is not None]:
        if folder.exists() and not folder.is_dir():
            raise ConfigError("output folder is a file", folder)
        check_creatable(folder)  # created by predict when the work starts, not here
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
        pv = preview / f"{stem}_preview.png" if preview is not None else None
        jobs.append(RasterJob(inp, out, pr, preview=pv))
    check_vector_format(output / f"x{ext}")
    return jobs


def name_jobs(config: PredictConfig) -> list[RasterJob]:
    """Every input's job in the order of the command line: its outputs named and the settings checked; no file
    is looked at yet (each rank of a sharded run names all of them alike, then prepares its own)."""
    inputs = [as_source(p) for p in config.inputs]
    if not inputs:
        raise ConfigError("no input raster given")
    output = Path(config.output)
    probs = Path(config.probs) if config.probs is not None else None
    preview = Path(config.preview) if config.preview is not None else None
    ext = _format_extension(config.fmt)
    single_file = output.suffix.lower() in FORMATS
    if config.mosaic and not single_file:
        raise ConfigError(f"with --mosaic, -o/--output must name one file ({', '.join(FORMATS)})", output)
    if single_file and len(inputs) > 1 and not config.mosaic:
        raise ConfigError("with several inputs, -o/--output must be a folder (each input gets its own file; "
                          "--mosaic reads them as one raster)", output)
    if not single_file and output.suffix and not output.is_dir():
        raise ConfigError(f"unsupported output format '{output.suffix}'; use one of {', '.join(FORMATS)}", output)
    if single_file:
        source = Mosaic(tuple(inputs)) if config.mosaic else inputs[0]
        return [_file_job(config, source, output, probs, ext, preview)]
    return _folder_jobs(config, inputs, output, probs, ext, preview)


def prepare_jobs(config: PredictConfig, jobs: list[RasterJob]) -> list[RasterJob]:
    """For the jobs ``jobs`` (of :func:`name_jobs`; a rank's share): sweep what killed runs left beside their
    outputs, mark those to skip, and refuse outputs that cannot be written. Other jobs' files are not touched."""
    inputs = [as_source(p) for p in config.inputs]
    single_file = Path(config.output).suffix.lower() in FORMATS
    # before deciding what exists: a killed run may have left temporary files, or an output moved aside
    for stale in sweep_stale([p for j in jobs for p in (j.output, j.probs, j.preview) if p is not None]):
        logger.info("removed %s, a temporary file of a run that was killed", stale)
    if not single_file:
        for job in jobs:
            job.skip = job.output.exists() and not config.overwrite
    for job in jobs:
        for out in [job.output, job.probs, job.preview]:
            if out is None:
                continue
            for inp in inputs:
                if _same_file(out, inp):
                    raise ConfigError("output would overwrite an input raster", out)
        if job.skip:
            continue
        for out in [job.output, job.probs, job.preview]:
            # an output folder still to be created holds no file yet (check_creatable checked its parent)
            if out is not None and (single_file or out.parent.is_dir()):
                check_writable(out, config.overwrite)
    return jobs


def plan_jobs(config: PredictConfig) -> list[RasterJob]:
    """Decide each input's outputs, which ones to skip, and refuse outputs that cannot be written."""
    return prepare_jobs(config, name_jobs(config))


def folders_to_create(jobs: list[RasterJob]) -> list[Path]:
    """The output folders that do not exist yet, outermost first (for :func:`plan_jobs`'s jobs)."""
    folders: list[Path] = []
    for job in jobs:
        for out in (job.output, job.probs, job.preview):
            if out is not None:
                folders += [f for f in check_creatable(out.parent) if f not in folders]
    return folders
