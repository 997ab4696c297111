"""The response cache: an in-process LRU (L1) in front of Redis (shared by replicas).

Entries are whole non-streamed responses (JSON bytes); a streamed miss is assembled into one
before it is stored, and a streamed hit is replayed from it. Keys cover the tenant, the route,
the model, every sampling parameter and the whole message list, so two requests share an entry
only when a backend would have been asked the very same thing. Redis errors bypass the cache.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import time

import orjson

from tiers.runtime.gateway import availability, config, rediswire, requests


def cache_key(endpoint: str, tenant: str, request: requests.ModelRequest) -> str:
    material = orjson.dumps(request.cache_material(), option=orjson.OPT_SORT_KEYS)
    digest = hashlib.blake2b(material, digest_size=20).hexdigest()
    return f"tiers:cache:{endpoint}:{tenant}:{request.route}:{digest}"


class L1Cache:
    """A bounded LRU with a per-entry expiry; single-threaded (one event loop)."""

    def __init__(self, max_entries: int, ttl_seconds: float) -> None:
        self._entries: collections.OrderedDict[str, tuple[float, bytes]] = collections.OrderedDict()
        self._max = max_entries
        self._ttl = ttl_seconds

    def get(self, key: str, now: float) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires < now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: str, value: bytes, now: float, ttl_seconds: float | None = None) -> None:
        ttl = self._ttl if ttl_seconds is None else min(self._ttl, ttl_seconds)
        self._entries[key] = (now + ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class ResponseCache:
    def __init__(
        self,
        settings: config.CacheConfig,
        redis_client: rediswire.Client | None,
        redis_availability: availability.Availability,
    ) -> None:
        self.enabled = settings.enabled
        self._settings = settings
        self._redis = redis_client
        self._redis_availability = redis_availability
        self._l1 = L1Cache(settings.l1_max_entries, settings.l1_ttl_seconds)
        self._writes: set[asyncio.Task[None]] = set()

    @property
    def shared(self) -> bool:
        """Whether entries are also kept in Redis (so a lookup may ask it)."""
        return self._redis is not None

    def local(self, key: str) -> bytes | None:
        """The in-process (L1) entry, without asking Redis."""
        return self._l1.get(key, time.monotonic())

    async def get(self, key: str) -> tuple[bytes | None, str]:
        """The cached response and where it came from: "l1", "redis", "miss" or "bypass"."""
        value = self.local(key)
        if value is not None:
            return value, "l1"
        if self._redis is None:
            return None, "miss"
        try:
            stored = await self._redis.call("GET", key)
        except rediswire.Error as error:
            self._redis_availability.failed(error, "serving from backends")
            return None, "bypass"
        self._redis_availability.succeeded()
        return self.adopt(key, stored)

    def adopt(self, key: str, stored: object) -> tuple[bytes | None, str]:
        """The outcome of a Redis GET of `key` made elsewhere (in the rate limiter's round trip):
        a value found is kept in L1 too."""
        if not isinstance(stored, bytes):
            return None, "miss"
        self._l1.put(key, stored, time.monotonic())
        return stored, "redis"

    def put(self, key: str, value: bytes) -> None:
        """Stores a response: in L1 at once, in Redis in the background, so the client does not
        wait for the write (a replica asking meanwhile simply misses once)."""
        self._l1.put(key, value, time.monotonic())
        if self._redis is not None:
            task = asyncio.get_running_loop().create_task(self._store(key, value))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

    async def _store(self, key: str, value: bytes) -> None:
        assert self._redis is not None
        try:
            await self._redis.call("SET", key, value, "EX", self._settings.ttl_seconds)
        except rediswire.Error as error:
            self._redis_availability.failed(error, "serving from backends")
