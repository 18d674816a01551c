"""A local HTTP server for test stand-ins: stdlib ``ThreadingHTTPServer`` on 127.0.0.1,
serving in a daemon thread for the duration of a ``with`` block."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class LocalHTTPServer:
    """Subclasses build their handler class, then call ``super().__init__(handler, path)``."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], path: str = "/") -> None:
        self._path = path
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self._path}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
