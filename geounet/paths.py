"""Where an input lives: a local path, a URL (``https://``, ``s3://``, ...) or a GDAL virtual path (``/vsi...``).

Inputs are handed to GDAL as the user wrote them, so everything GDAL opens works: local files,
``http://`` and ``https://`` (read with HTTP range requests through ``/vsicurl/``), ``s3://``,
``gs://``, ``az://``, and GDAL's own virtual paths (``/vsicurl/...``, ``/vsizip/archive.zip/a.tif``,
``/vsis3/...``). Only a local path is a :class:`pathlib.Path` (which would turn ``https://`` into
``https:/``); the others stay strings. Output names come from the last part of the path, without a
URL's query string (:func:`source_name`). :func:`remote_reason` turns GDAL's network errors into
a few words ("HTTP 404: not found", "connection refused").
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

__all__ = ["is_local", "as_source", "vsi_path", "source_name", "source_stem", "remote_reason"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# URL schemes and the GDAL virtual file system that reads them
_VSI = {"http": "/vsicurl/", "https": "/vsicurl/", "ftp": "/vsicurl/", "s3": "/vsis3/", "gs": "/vsigs/",
        "az": "/vsiaz/", "oss": "/vsioss/", "swift": "/vsiswift/"}
# prefixes of GDAL virtual paths whose rest is a URL (its query string is not part of the file name)
_VSI_URL = ("/vsicurl/", "/vsicurl_streaming/")


def is_local(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file of the local file system (not a URL, not a ``/vsi...`` path)."""
    s = os.fspath(path)
    return not (s.startswith("/vsi") or _SCHEME.match(s))


def as_source(path: str | os.PathLike) -> Path | str:
    """``path`` as a :class:`Path` when local, else the string as given (a Path would mangle ``//``)."""
    return Path(path) if is_local(path) else os.fspath(path)


def vsi_path(path: str | os.PathLike) -> str:
    """The path GDAL opens for ``path``: a URL as its ``/vsi...`` form (``https://h/a.tif`` -> ``/vsicurl/https://h/a.tif``).

    Schemes GDAL has no file system for (``zip+https://``, ``file://``) are left to the reader.
    """
    s = os.fspath(path)
    m = _SCHEME.match(s)
    if not m or m.group(1).lower() not in _VSI:
        return s
    scheme = m.group(1).lower()
    prefix = _VSI[scheme]
    return prefix + (s if prefix == "/vsicurl/" else s[m.end():])


def source_name(path: str | os.PathLike) -> str:
    """The file name of ``path``: the last part of its path, without a URL's query string or fragment."""
    s = os.fspath(path)
    if is_local(s):
        return Path(s).name
    for prefix in _VSI_URL:
        if s.startswith(prefix):
            s = s[len(prefix):]
    if _SCHEME.match(s):
        s = unquote(urlsplit(s).path)
    return PurePosixPath(s.rstrip("/")).name


def source_stem(path: str | os.PathLike) -> str:
    """:func:`source_name` without its last extension (``https://h/a/img.tif?sig=x`` -> ``img``)."""
    name = source_name(path)
    stem = PurePosixPath(name).stem if name else ""
    return stem or name


_REASONS = (
    (re.compile(r"HTTP response code: 404\b"), "HTTP 404: not found"),
    (re.compile(r"HTTP response code: 40[13]\b"), "HTTP {code}: access denied"),
    (re.compile(r"HTTP response code: (\d{3})"), "HTTP {code} from the server"),
    (re.compile(r"Could not connect to server|Connection refused|Failed to connect", re.I), "connection refused"),
    (re.compile(r"Could not resolve host", re.I), "host not found"),
    (re.compile(r"timed out|Timeout was reached", re.I), "timed out"),
    (re.compile(r"SSL|certificate", re.I), "TLS/SSL error"),
)


def remote_reason(message: str) -> str | None:
    """A few words for a GDAL network error message (None when it is not one)."""
    code = re.search(r"HTTP response code: (\d{3})", message)
    for pattern, words in _REASONS:
        if pattern.search(message):
            return words.format(code=code.group(1) if code else "")
    return None
