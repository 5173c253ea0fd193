"""Output files written atomically: hidden temporary names beside the output, and the writability probe.

Both writers (:class:`geounet.io.vector.VectorWriter` and :class:`geounet.io.probs.ProbsWriter`)
write under :func:`temp_path` and rename onto the output only when complete, so a failure or
Ctrl-C leaves no partial file; the files of one input are renamed all or none
(:func:`replace_together`). :func:`check_writable` and :func:`check_creatable` refuse an output
before any work starts. A temporary name carries the writing process's id and its machine's name
(``.STEM.PID-HOST.TAG.EXT``), so what a killed process (SIGKILL, out of memory) left behind is
recognised and removed by the next run on that machine (:func:`sweep_stale`), and a process on another
machine writing into the same shared folder (``torchrun`` across machines) is never mistaken for a
dead one: process ids mean something only on their own machine.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import socket
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import GeounetError, OutputExistsError

__all__ = ["temp_path", "check_writable", "check_creatable", "replace_together", "sweep_stale", "pid_alive",
           "host_tag"]

TAGS = ("tmp", "spill", "probe", "old")  # what temporary names are for; "old": an output moved aside


@functools.cache
def host_tag() -> str:
    """This machine's name as it goes into temporary names: letters, digits and ``-`` only, at most 40
    characters (a longer name is cut and ends with 8 hex digits of its hash, so names stay distinct)."""
    name = socket.gethostname() or "localhost"
    tag = re.sub(r"[^A-Za-z0-9-]", "-", name)
    if len(tag) > 40:
        tag = tag[:31] + "-" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return tag


def temp_path(path: Path, tag: str = "tmp", suffix: str | None = None) -> Path:
    """A hidden temporary name beside ``path`` (same folder, so the final rename is atomic).

    It ends with ``path``'s extension (or ``suffix``): some GDAL drivers choose what to
    create from it (FlatGeobuf makes a folder for a name without ``.fgb``).
    """
    path = Path(path)
    suffix = path.suffix if suffix is None else suffix
    return path.with_name(f".{path.stem}.{os.getpid()}-{host_tag()}.{tag}{suffix}")


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


def check_creatable(folder: str | os.PathLike) -> list[Path]:
    """The folders to create for ``folder`` (outermost first; none when it exists), refusing a file in the
    way or a parent that cannot be written. Nothing is created here: the caller does it when work starts."""
    folder = Path(folder)
    missing = []
    p = folder
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    if not p.is_dir():
        raise GeounetError("output folder is a file" if p == folder else f"cannot create output folder: {p} is a file",
                           folder)
    if missing and not os.access(p, os.W_OK):
        raise GeounetError(f"cannot create output folder ({p} is not writable)", folder)
    return missing[::-1]


def replace_together(moves: Sequence[tuple[Path, Path]]) -> None:
    """Rename each complete temporary file onto its output: all of them, or none.

    Outputs that exist are moved aside first (temporary names tagged ``old``); if any rename
    fails, the new files are removed and the old ones put back before the error is raised, so
    an input never ends with a new vector file and no ``--probs`` (which a re-run would skip).
    """
    aside: list[tuple[Path, Path]] = []
    placed: list[Path] = []
    try:
        for _, dest in moves:
            if dest.exists():
                old = temp_path(dest, "old")
                os.replace(dest, old)
                aside.append((dest, old))
        for tmp, dest in moves:
            os.replace(tmp, dest)
            placed.append(dest)
    except BaseException:
        for dest in placed:
            _remove_quietly(dest)
        for dest, old in aside:
            try:
                os.replace(old, dest)
            except OSError:
                pass
        raise
    for _, old in aside:
        _remove_quietly(old)


def _remove_quietly(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except OSError:
        pass


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine exists (this one does; another user's counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:  # exists but is another user's, or cannot be asked: leave its files
        return True
    return True


def sweep_stale(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Remove the temporary files of the outputs ``paths`` (see :func:`temp_path`) that dead processes left.

    Only temporary names of these outputs written on this machine whose process id is not alive
    are touched (those of a live process, this one's included, are kept, and so are those of
    another machine, whose processes cannot be asked; a name without a machine, as earlier
    versions wrote, counts as this machine's); an output that a killed process had moved aside
    (tagged ``old``) is put back when nothing has replaced it. Returns what was removed.
    Not on Windows, which has no harmless way to ask whether a process exists. Each folder is
    listed once, however many outputs it holds.
    """
    if os.name == "nt":
        return []
    stems: dict[Path, set[str]] = {}
    for p in map(Path, paths):
        stems.setdefault(p.parent if str(p.parent) else Path("."), set()).add(p.stem)
    removed = []
    for folder, names in stems.items():
        if not folder.is_dir():
            continue
        alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
        pattern = re.compile(rf"^\.({alternatives})\.(\d+)(?:-([A-Za-z0-9-]+))?\.({'|'.join(TAGS)})(.*)$")
        for entry in folder.iterdir():
            m = pattern.match(entry.name)
            if m is None or m.group(3) not in (None, host_tag()) or pid_alive(int(m.group(2))):
                continue
            original = folder / f"{m.group(1)}{m.group(5)}"
            if m.group(4) == "old" and not original.exists():
                os.replace(entry, original)
                continue
            _remove_quietly(entry)
            removed.append(entry)
    return removed
