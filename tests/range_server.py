"""A local HTTP server for files in a folder that answers Range requests and counts the bytes it serves.

Python's ``http.server`` ignores ``Range`` headers (it always sends the whole file), while GDAL's
``/vsicurl/`` reads a remote raster with ``Range: bytes=a-b`` requests, and, with
``GDAL_HTTP_MULTIRANGE=YES``, with several ranges in one request (answered as
``multipart/byteranges``). :class:`RangeServer` answers both, as a static file server such as
nginx does, on ``127.0.0.1``; :attr:`RangeServer.bytes_served` counts the bytes of file content
sent (multipart part headers and HTTP headers are not counted), and :attr:`RangeServer.requests`
records ``(method, path, ranges)`` per request.

The server runs in a child process, not in a thread: rasterio holds Python's GIL while GDAL opens
a dataset, so a server thread of the same process could never answer GDAL's first request. The
counters come from the child over ``GET /_stats`` (JSON; ``/_reset`` zeroes them), requests
that are themselves not counted.

Used by tests/test_remote.py and benchmarks/remote_bytes.py::

    with RangeServer(folder) as server:
        url = server.url("image.tif")
        ...
        print(server.bytes_served)
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = ["RangeServer", "parse_ranges"]

BOUNDARY = "geounet-test-boundary"


def parse_ranges(header: str | None, size: int) -> list[tuple[int, int]] | None:
    """``Range: bytes=...`` as inclusive ``(first, last)`` pairs within a file of ``size`` bytes.

    None when there is no (or no bytes) Range header; an empty list when no range is satisfiable.
    """
    if not header:
        return None
    m = re.fullmatch(r"\s*bytes\s*=\s*(.+)", header)
    if not m:
        return None
    out = []
    for part in m.group(1).split(","):
        first, _, last = part.strip().partition("-")
        if first == "":  # suffix range: the last N bytes
            n = int(last)
            if n > 0:
                out.append((max(0, size - n), size - 1))
            continue
        a = int(first)
        b = size - 1 if last == "" else min(int(last), size - 1)
        if a < size and a <= b:
            out.append((a, b))
    return out


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"  # keep-alive, as GDAL expects of a real server

    def log_message(self, format, *args):  # noqa: A002 - quiet: the tests read the counters instead
        pass

    def _file(self) -> Path | None:
        name = unquote(urlsplit(self.path).path).lstrip("/")
        path = (self.server.root / name).resolve()
        if self.server.root not in path.parents or not path.is_file():
            return None
        return path

    def do_HEAD(self):  # noqa: N802 - http.server's naming
        self._serve(head=True)

    def do_GET(self):  # noqa: N802
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        control = urlsplit(self.path).path
        if control in ("/_stats", "/_reset"):
            self._send(200, self.server.stats(reset=control == "/_reset"), "application/json", head, {})
            return
        path = self._file()
        if path is None:
            self.server.record(self.command, self.path, None, 0)
            self.send_error(404, "Not Found")
            return
        data = path.read_bytes()
        size = len(data)
        ranges = parse_ranges(self.headers.get("Range"), size)
        if ranges is None:
            self._send(200, data, "application/octet-stream", head, {})
            self.server.record(self.command, self.path, None, 0 if head else size)
        elif not ranges:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.server.record(self.command, self.path, [], 0)
        elif len(ranges) == 1:
            a, b = ranges[0]
            self._send(206, data[a : b + 1], "application/octet-stream", head,
                       {"Content-Range": f"bytes {a}-{b}/{size}"})
            self.server.record(self.command, self.path, ranges, 0 if head else b + 1 - a)
        else:
            parts = []
            for a, b in ranges:
                parts.append(f"--{BOUNDARY}\r\nContent-Type: application/octet-stream\r\n"
                             f"Content-Range: bytes {a}-{b}/{size}\r\n\r\n".encode() + data[a : b + 1] + b"\r\n")
            body = b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()
            self._send(206, body, f"multipart/byteranges; boundary={BOUNDARY}", head, {})
            self.server.record(self.command, self.path, ranges, 0 if head else sum(b + 1 - a for a, b in ranges))

    def _send(self, code: int, body: bytes, ctype: str, head: bool, headers: dict[str, str]) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path, port: int = 0):
        super().__init__(("127.0.0.1", port), _Handler)
        self.root = root.resolve()
        self.lock = threading.Lock()
        self.bytes_served = 0
        self.requests: list[tuple[str, str, list[tuple[int, int]] | None]] = []

    def record(self, method: str, path: str, ranges, n: int) -> None:
        with self.lock:
            self.bytes_served += n
            self.requests.append((method, path, ranges))

    def stats(self, reset: bool) -> bytes:
        with self.lock:
            body = json.dumps({"bytes_served": self.bytes_served, "requests": self.requests}).encode()
            if reset:
                self.bytes_served = 0
                self.requests = []
        return body


class RangeServer:
    """Serves the files of ``root`` on ``http://127.0.0.1:PORT/NAME`` (a child process) while the ``with`` block runs."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._proc: subprocess.Popen | None = None
        self.port = 0

    def __enter__(self) -> "RangeServer":
        self._proc = subprocess.Popen([sys.executable, __file__, str(self.root)], stdout=subprocess.PIPE, text=True)
        line = self._proc.stdout.readline()
        if not line.strip().isdigit():
            self._proc.kill()
            raise RuntimeError(f"range server did not start: {line!r}")
        self.port = int(line)
        return self

    def __exit__(self, *exc) -> None:
        self._proc.terminate()
        self._proc.wait(timeout=10)
        self._proc.stdout.close()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def _stats(self, reset: bool = False) -> dict:
        with urllib.request.urlopen(self.url("_reset" if reset else "_stats"), timeout=10) as r:
            return json.loads(r.read())

    @property
    def bytes_served(self) -> int:
        """Bytes of file content served since the start (or the last :meth:`reset`)."""
        return self._stats()["bytes_served"]

    @property
    def requests(self) -> list[tuple[str, str, list | None]]:
        """``(method, path, ranges)`` of each request since the start (or the last :meth:`reset`)."""
        return [tuple(r) for r in self._stats()["requests"]]

    def reset(self) -> None:
        """Zero the counters (e.g. after a warm-up)."""
        self._stats(reset=True)


if __name__ == "__main__":  # the child process: serve sys.argv[1], print the port, run until terminated
    server = _Server(Path(sys.argv[1]))
    print(server.server_address[1], flush=True)
    server.serve_forever()
