"""Output files written atomically: hidden temporary names beside the output, and the writability probe.

Both writers (:class:`geounet.io.vector.VectorWriter` and :class:`geounet.io.probs.ProbsWriter`)
write under :func:`temp_path` and rename onto the output only when complete, so a failure or
Ctrl-C leaves no partial file; :func:`check_writable` refuses an output before any work starts.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import GeounetError, OutputExistsError

__all__ = ["temp_path", "check_writable"]


def temp_path(path: Path, tag: str = "tmp", suffix: str | None = None) -> Path:
    """A hidden temporary name beside ``path`` (same folder, so the final rename is atomic).

    It ends with ``path``'s extension (or ``suffix``): some GDAL drivers choose what to
    create from it (FlatGeobuf makes a folder for a name without ``.fgb``).
    """
    path = Path(path)
    suffix = path.suffix if suffix is None else suffix
    return path.with_name(f".{path.stem}.{os.getpid()}.{tag}{suffix}")


def check_writable(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse an existing output (unless ``overwrite``) and an output folder that cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise GeounetError("is a directory; give a file name for the output", path)
    if path.exists() and not overwrite:
        raise OutputExistsError("output exists; use --overwrite to replace it", path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise GeounetError("cannot write output: its folder does not exist", path)
    probe = temp_path(path, "probe", "")
    try:
        with open(probe, "wb"):
            pass
    except OSError as exc:
        raise GeounetError(f"cannot write output ({exc.strerror or exc})", path) from None
    finally:
        try:
            probe.unlink()
        except OSError:
            pass
    return path
