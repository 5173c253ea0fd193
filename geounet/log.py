"""Logging set-up: everything human-readable goes to stderr; stdout carries only data."""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger("geounet")


def configure(verbosity: int) -> None:
    """``verbosity``: -1 quiet (warnings and errors), 0 normal, 1+ debug."""
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def progress_enabled() -> bool:
    """Progress bars only when not quiet."""
    return logger.getEffectiveLevel() <= logging.INFO
