"""A flush that runs in the background once an interval, and once more on stop.

The gateway keeps two tallies in memory that it adds to Redis about once a second, off the
request path: its stats (`stats.Recorder`) and its spend against a budget (`gateway.budget`).
Both start, repeat and stop the same way; this is that way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

Flush = Callable[[aioredis.Redis], Awaitable[None]]


class Periodic:
    """Calls `flush(client)` every `interval_s` on the running loop, until `stop`."""

    def __init__(self, flush: Flush, interval_s: float) -> None:
        self._flush = flush
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self, client: aioredis.Redis) -> None:
        self._task = asyncio.get_running_loop().create_task(self._forever(client))

    async def stop(self, client: aioredis.Redis) -> None:
        """Cancels the loop, then flushes what was recorded since its last round."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._flush(client)

    async def _forever(self, client: aioredis.Redis) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self._flush(client)
