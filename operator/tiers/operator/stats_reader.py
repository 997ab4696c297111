"""Reads the stats the data plane publishes to Redis and summarizes a window for status, and
the month's spend counter the gateways enforce a RealtimeEndpoint's budget with.

A Redis that does not answer gives no summary and no spend (status keeps its last numbers); it
never fails a reconcile. Clients are kept per URL and password with short timeouts.

`target()` finds the Redis of a `StatsStore`: the URL and password it reads from their Secrets
stay in this process's memory, never in a status, an Event or a log line.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time

import redis.asyncio as aioredis
import redis.exceptions

from tiers.operator import kube, realtime_status
from tiers.operator.manifests import stats_store
from tiers.runtime import stats
from tiers.runtime.stats import spend, store

log = logging.getLogger(__name__)

# Where to read stats instead of each endpoint's own Redis: for local mode, where the data plane
# runs as local processes beside a kwok cluster whose Service names do not resolve.
OVERRIDE_ENV = "TIERS_STATS_REDIS_URL"


@dataclasses.dataclass(frozen=True)
class Target:
    """A Redis to read stats from: its URL and password (both possibly a Secret's)."""

    url: str
    password: str | None = None

    def __repr__(self) -> str:
        return "Target(...)"  # never the URL or password, should one reach a log


_clients: dict[Target, aioredis.Redis] = {}


def stats_url(default: str | None) -> str | None:
    """The URL jobs are told to publish to: `default`, or the override (local mode)."""
    return os.environ.get(OVERRIDE_ENV) or default


async def target(store: stats_store.StatsStore, namespace: str) -> Target | None:
    """Where the stats of `store` are read: the override (local mode), else its URL and
    password, read from their Secrets; None when there is none or a Secret is missing."""
    override = os.environ.get(OVERRIDE_ENV)
    if override:
        return Target(override)
    url = store.url
    if store.url_secret is not None:
        url = await kube.secret_value(store.url_secret.name, store.url_secret.key, namespace)
    if not url:
        return None
    password = None
    if store.password_secret is not None:
        ref = store.password_secret
        password = await kube.secret_value(ref.name, ref.key, namespace)
        if password is None:
            return None
    return Target(url.strip(), password)


def redis_client(where: Target) -> aioredis.Redis:
    """The one Redis client of a stats store (bytes in, bytes out), shared by every reader."""
    found = _clients.get(where)
    if found is None:
        found = _clients[where] = aioredis.Redis.from_url(
            where.url, password=where.password, socket_timeout=1, socket_connect_timeout=1
        )
    return found


async def summary(where: Target, subject: str, *, minutes: int) -> stats.Summary | None:
    client = redis_client(where)
    now = time.time()
    try:
        windows = await store.read(client, subject, now_s=now, minutes=minutes)
    except (redis.exceptions.RedisError, OSError) as error:
        log.info("stats of %s unavailable: %s", subject, type(error).__name__)
        return None
    return stats.summarize(windows, seconds=minutes * 60 + now % 60)


async def processed_offsets(where: Target, subject: str) -> dict[int, int] | None:
    """The next offset a stream job will read, per input partition; None if unknown."""
    try:
        return await store.read_offsets(redis_client(where), subject)
    except (redis.exceptions.RedisError, OSError) as error:
        log.info("offsets of %s unavailable: %s", subject, type(error).__name__)
        return None


async def month_spend(where: Target, endpoint: str) -> realtime_status.MonthSpend | None:
    """The endpoint's spend this UTC month, from the counter its gateways add to (no counter
    yet: nothing spent); None if Redis does not answer."""
    now = time.time()
    try:
        micro = await redis_client(where).get(spend.month_key(endpoint, now))
    except (redis.exceptions.RedisError, OSError) as error:
        log.info("budget of %s unavailable: %s", endpoint, type(error).__name__)
        return None
    return realtime_status.MonthSpend(
        month=spend.month_of(now), spent_usd=int(micro or 0) * spend.MICRO_USD
    )
