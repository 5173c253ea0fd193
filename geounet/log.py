"""Logging set-up: everything human-readable goes to stderr; stdout carries only data."""

from __future__ import annotations

import contextlib
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


class _Prefix(logging.Filter):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = f"{self.prefix}{record.msg}"
        return True


@contextlib.contextmanager
def prefixed(prefix: str | None):
    """Within the block, geounet's log lines start with ``prefix`` (``"[rank 1/4] "``: which process of
    several wrote them); nothing changes with None, and the prefix is gone after the block."""
    if not prefix:
        yield
        return
    f = _Prefix(prefix)
    logger.addFilter(f)
    try:
        yield
    finally:
        logger.removeFilter(f)
