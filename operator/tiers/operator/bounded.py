"""Caches keyed by what specs name (hosts, tokens, resource IDs) are bounded: a cluster's users
could otherwise grow them for the operator's life. Worker threads share them: `keep` and `drop`
change a cache under one lock."""

from __future__ import annotations

import threading
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")

_lock = threading.Lock()


def keep(cache: dict[K, V], key: K, value: V, *, limit: int) -> V | None:
    """`cache[key] = value`, the oldest entry dropped first once the cache holds `limit`: the
    entry dropped (for the caller to close), or None."""
    with _lock:
        dropped = None
        if key not in cache and len(cache) >= limit:
            dropped = cache.pop(next(iter(cache)), None)
        cache[key] = value
        return dropped


def drop(cache: dict[K, V], key: K) -> V | None:
    """`cache.pop(key, None)`, beside a `keep` in another thread."""
    with _lock:
        return cache.pop(key, None)
