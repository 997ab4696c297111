"""Stats in Redis: one hash per subject (an endpoint, a pipeline) per minute, incremented by
every replica or worker and read back by the operator, which sums the minutes of a window.

Keys: `tiers:stats:<subject>:<epoch minute>`, kept for an hour; and for stream pipelines
`tiers:offsets:<subject>`, the next offset to process of each input partition (for lag).
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis

from tiers.runtime.stats import window

KEEP_SECONDS = 3600


def key(subject: str, minute: int) -> str:
    return f"tiers:stats:{subject}:{minute}"


def offsets_key(subject: str) -> str:
    return f"tiers:offsets:{subject}"


def _queue(pipe: Any, subject: str, minute: int, counts: window.Counts) -> None:
    """Queues the increments on a pipeline, sync or async alike (queuing is the same call)."""
    name = key(subject, minute)
    for field, value in counts.to_fields().items():
        pipe.hincrby(name, field, value)
    pipe.expire(name, KEEP_SECONDS)


async def publish(client: aioredis.Redis, subject: str, minute: int, counts: window.Counts) -> None:
    """Adds one replica's counts to the shared minute (atomic per field, one round trip)."""
    if not counts:
        return
    async with client.pipeline(transaction=False) as pipe:
        _queue(pipe, subject, minute, counts)
        await pipe.execute()


def publish_blocking(
    client: redis.Redis,
    subject: str,
    minute: int,
    counts: window.Counts,
    *,
    next_offsets: dict[int, int] | None = None,
) -> None:
    """The same from synchronous code (Spark workers), with the partitions' progress."""
    with client.pipeline(transaction=False) as pipe:
        if counts:
            _queue(pipe, subject, minute, counts)
        if next_offsets:
            pipe.hset(offsets_key(subject), mapping={str(p): o for p, o in next_offsets.items()})
            pipe.expire(offsets_key(subject), KEEP_SECONDS * 24)
        pipe.execute()


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


async def read_offsets(client: aioredis.Redis, subject: str) -> dict[int, int]:
    stored = await client.hgetall(offsets_key(subject))
    return {int(partition): int(offset) for partition, offset in stored.items()}
