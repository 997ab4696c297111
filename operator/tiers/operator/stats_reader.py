"""Reads the stats the data plane publishes to Redis and summarizes a window for status, and
the month's spend counter the gateways enforce a RealtimeEndpoint's budget with.

A Redis that does not answer gives no summary and no spend (status keeps its last numbers); it
never fails a reconcile. Clients are kept per URL with short timeouts.
"""

from __future__ import annotations

import logging
import os
import time

import redis.asyncio as aioredis
import redis.exceptions

from tiers.operator import realtime_status
from tiers.runtime import stats
from tiers.runtime.stats import spend, store

log = logging.getLogger(__name__)

# Where to read stats instead of each endpoint's own Redis: for local mode, where the data plane
# runs as local processes beside a kwok cluster whose Service names do not resolve.
OVERRIDE_ENV = "TIERS_STATS_REDIS_URL"

_clients: dict[str, aioredis.Redis] = {}


def stats_url(default: str | None) -> str | None:
    return os.environ.get(OVERRIDE_ENV) or default


def _client(url: str) -> aioredis.Redis:
    client = _clients.get(url)
    if client is None:
        client = _clients[url] = aioredis.Redis.from_url(
            url, socket_timeout=1, socket_connect_timeout=1
        )
    return client


async def summary(url: str, subject: str, *, minutes: int) -> stats.Summary | None:
    client = _client(url)
    now = time.time()
    try:
        windows = await store.read(client, subject, now_s=now, minutes=minutes)
    except (redis.exceptions.RedisError, OSError) as error:
        log.info("stats of %s unavailable: %s", subject, type(error).__name__)
        return None
    return stats.summarize(windows, seconds=minutes * 60 + now % 60)


async def processed_offsets(url: str, subject: str) -> dict[int, int] | None:
    """The next offset a stream job will read, per input partition; None if unknown."""
    try:
        return await store.read_offsets(_client(url), subject)
    except (redis.exceptions.RedisError, OSError) as error:
        log.info("offsets of %s unavailable: %s", subject, type(error).__name__)
        return None


async def month_spend(url: str, endpoint: str) -> realtime_status.MonthSpend | None:
    """The endpoint's spend this UTC month, from the counter its gateways add to (no counter
    yet: nothing spent); None if Redis does not answer."""
    now = time.time()
    try:
        micro = await _client(url).get(spend.month_key(endpoint, now))
    except (redis.exceptions.RedisError, OSError) as error:
        log.info("budget of %s unavailable: %s", endpoint, type(error).__name__)
        return None
    return realtime_status.MonthSpend(
        month=spend.month_of(now), spent_usd=int(micro or 0) * spend.MICRO_USD
    )
