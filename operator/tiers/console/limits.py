"""Bounds on every request the console accepts: body size and the time between body chunks.

A body larger than its route's bound is refused with 413 (from Content-Length before reading,
or while reading a chunked one), and a body that stops arriving for `READ_TIMEOUT_S` with 408;
both reach the page as the console's JSON errors. Uploads (`UPLOAD_PATH`) have their own,
larger bound. Uvicorn bounds the rest (keep-alive, concurrency, header size): see `server`.
"""

from __future__ import annotations

import asyncio
import json
import re

from starlette import types

from tiers.console import errors

MAX_BODY_BYTES = 4 * 1024 * 1024
READ_TIMEOUT_S = 30.0
UPLOAD_PATH = re.compile(r"^/api/v1/batch/[^/]+/[^/]+/input$")


class Limits:
    def __init__(
        self,
        app: types.ASGIApp,
        *,
        max_upload_bytes: int,
        max_body_bytes: int = MAX_BODY_BYTES,
        read_timeout_s: float = READ_TIMEOUT_S,
    ) -> None:
        self.app = app
        self.max_upload_bytes = max_upload_bytes
        self.max_body_bytes = max_body_bytes
        self.read_timeout_s = read_timeout_s

    async def __call__(self, scope: types.Scope, receive: types.Receive, send: types.Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = bool(UPLOAD_PATH.match(scope["path"]))
        limit = self.max_upload_bytes if upload else self.max_body_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _refuse(send, 413, "TooLarge", _too_large(limit))
            return
        received = 0

        async def bounded() -> types.Message:
            nonlocal received
            try:
                message = await asyncio.wait_for(receive(), self.read_timeout_s)
            except TimeoutError:
                raise errors.ConsoleError(
                    408,
                    "Timeout",
                    f"the request body stopped arriving for {self.read_timeout_s:.0f} s",
                ) from None
            received += len(message.get("body", b""))
            if received > limit:
                raise errors.ConsoleError(413, "TooLarge", _too_large(limit))
            return message

        await self.app(scope, bounded, send)


def _too_large(limit: int) -> str:
    return f"the request body is over the console's limit of {limit:,} bytes"


async def _refuse(send: types.Send, status: int, reason: str, message: str) -> None:
    body = json.dumps({"error": {"message": message, "reason": reason}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})
