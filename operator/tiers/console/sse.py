"""Server-sent events as the console streams them: `event: <name>` and one JSON `data:` line,
with `event: ping` while nothing else is sent, so proxies keep the connection and the page
knows it is live."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import responses

PING_SECONDS = 15.0
HEADERS = {"cache-control": "no-store", "x-accel-buffering": "no"}


def event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def with_pings(
    source: AsyncIterator[bytes], *, ping_seconds: float = PING_SECONDS
) -> AsyncIterator[bytes]:
    """`source`'s chunks, and a ping whenever it is quiet for `ping_seconds`; a failure of the
    source ends the stream with an `event: error` the page can show."""
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(256)

    async def pump() -> None:
        try:
            async for chunk in source:
                await queue.put(chunk)
        except Exception as error:
            await queue.put(event("error", {"message": f"the stream ended: {error}"}))
        await queue.put(None)

    task = asyncio.create_task(pump())
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(queue.get(), ping_seconds)
            except TimeoutError:
                yield event("ping", {})
                continue
            if chunk is None:
                return
            yield chunk
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


def response(source: AsyncIterator[bytes]) -> responses.StreamingResponse:
    return responses.StreamingResponse(
        with_pings(source), media_type="text/event-stream", headers=HEADERS
    )
