"""Stats in Redis: one hash per unit of work (e.g. an endpoint) per minute, incremented by every
replica and read back by the operator, which sums the minutes of a window.

Keys: `tiers:stats:<subject>:<epoch minute>`, kept for an hour.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from tiers.runtime.stats import window

KEEP_SECONDS = 3600


def key(subject: str, minute: int) -> str:
    return f"tiers:stats:{subject}:{minute}"


async def publish(client: aioredis.Redis, subject: str, minute: int, counts: window.Counts) -> None:
    """Adds one replica's counts to the shared minute (atomic per field, one round trip)."""
    fields = counts.to_fields()
    if not fields:
        return
    name = key(subject, minute)
    async with client.pipeline(transaction=False) as pipe:
        for field, value in fields.items():
            pipe.hincrby(name, field, value)
        pipe.expire(name, KEEP_SECONDS)
        await pipe.execute()


async def read(
    client: aioredis.Redis, subject: str, *, now_s: float, minutes: int
) -> list[window.Counts]:
    """The counts of the last `minutes` whole minutes and the current partial one."""
    current = int(now_s // 60)
    async with client.pipeline(transaction=False) as pipe:
        for minute in range(current - minutes, current + 1):
            pipe.hgetall(key(subject, minute))
        replies = await pipe.execute()
    return [
        window.Counts.from_fields({k.decode(): int(v) for k, v in reply.items()})
        for reply in replies
        if reply
    ]
