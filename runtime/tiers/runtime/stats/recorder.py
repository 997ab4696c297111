"""The in-process side: record each unit of work in memory, flush to Redis once a second.

Recording costs a few dictionary updates; the flush runs on the event loop in the background
and never blocks a request. Stats are best effort: counts of a failed flush are dropped.
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis
import redis.exceptions

from tiers.runtime import periodic
from tiers.runtime.stats import store, window

log = logging.getLogger(__name__)


class Recorder:
    def __init__(self, subject: str, *, interval_s: float = 1.0) -> None:
        self.subject = subject
        self._minute = int(time.time() // 60)
        self.current = window.Counts()
        self._pending: list[tuple[int, window.Counts]] = []
        self._flushing = periodic.Periodic(self.flush, interval_s)

    def counts(self) -> window.Counts:
        """The counts to add to, rolled over at each minute boundary."""
        minute = int(time.time() // 60)
        if minute != self._minute:
            self._pending.append((self._minute, self.current))
            self._minute, self.current = minute, window.Counts()
        return self.current

    def start(self, client: aioredis.Redis) -> None:
        self._flushing.start(client)

    async def stop(self, client: aioredis.Redis) -> None:
        await self._flushing.stop(client)

    async def flush(self, client: aioredis.Redis) -> None:
        self.counts()
        batches, self._pending = [*self._pending, (self._minute, self.current)], []
        self.current = window.Counts()
        for minute, counts in batches:
            try:
                await store.publish(client, self.subject, minute, counts)
            except (redis.exceptions.RedisError, OSError) as error:
                log.debug("stats flush dropped: %s", type(error).__name__)
