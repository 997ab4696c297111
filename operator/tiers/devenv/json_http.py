"""The HTTP front that the stand-ins for remote services (`azure`, `databricks`) share: a
request handler that reads a bounded body within a read timeout and answers JSON, and a context
manager that serves a server on a thread of its own. Each stand-in keeps its own routes and its
service's error shape.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

READ_TIMEOUT_S = 30
"""How long a connection may take to send a request line, its headers or its body."""


class BodyRefused(Exception):
    """A request body not read: too large (413) or of no stated length (400)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = READ_TIMEOUT_S
    max_body_bytes = 64 * 1024

    def read_body(self) -> bytes:
        """The request's body, at most `max_body_bytes`; `BodyRefused` before reading any of a
        larger one, or when Content-Length is not a byte count."""
        declared = self.headers.get("Content-Length") or "0"
        if not declared.isdigit():
            self.close_connection = True  # what follows the headers is not a request
            raise BodyRefused(400, "the Content-Length header is not a byte count")
        if int(declared) > self.max_body_bytes:
            self.close_connection = True
            raise BodyRefused(413, "the request body is too large")
        return self.rfile.read(int(declared))

    def answer(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, *_: Any) -> None:
        return


@contextlib.contextmanager
def serving(server: http.server.HTTPServer, name: str) -> Iterator[None]:
    """`server` answering on a daemon thread named `name`; shut down and closed after."""
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
