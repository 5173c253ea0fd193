"""Exceptions raised by the geounet library; the CLI turns them into one-line messages."""

from __future__ import annotations

import os


class GeounetError(Exception):
    """Base class: a problem the user can fix, described in one line."""

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.path = None if path is None else os.fspath(path)
        super().__init__(message)

    def __str__(self) -> str:
        msg = super().__str__()
        return f"{self.path}: {msg}" if self.path else msg


class InputError(GeounetError):
    """An input file (raster, labels, tiles) is missing, unreadable or unusable."""


class CheckpointError(GeounetError):
    """A checkpoint is missing, corrupt, foreign or incompatible with the input."""


class OutputExistsError(GeounetError):
    """An output exists and ``--overwrite`` was not given."""


class ConfigError(GeounetError):
    """Options that do not fit together or do not fit the model."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none), for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
