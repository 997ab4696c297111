"""The gateway's ASGI input and output: read a header and a body, send JSON, send an OpenAI-style
error, stream events. The ASGI types themselves are `tiers.runtime.asgi`'s."""

from __future__ import annotations

from tiers.runtime import asgi
from tiers.runtime.gateway import errors

JSON = b"application/json"
EVENT_STREAM = b"text/event-stream"


def header(scope: asgi.Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def read_body(receive: asgi.Receive, *, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise errors.GatewayError(413, f"The body is larger than {limit} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def send_bytes(
    send: asgi.Send,
    status: int,
    body: bytes,
    *,
    content_type: bytes = JSON,
    headers: asgi.Headers = (),
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_error(
    send: asgi.Send, error: errors.GatewayError, *, headers: asgi.Headers = ()
) -> None:
    await send_bytes(send, error.status, error.body(), headers=[*error.headers, *headers])


async def start_stream(send: asgi.Send, *, headers: asgi.Headers = ()) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", EVENT_STREAM),
                (b"cache-control", b"no-cache"),
                *headers,
            ],
        }
    )


async def send_chunk(send: asgi.Send, data: bytes, *, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": more})
