"""Where a job publishes its stats, with no secret in its config: the Redis URL, and the name of
the variable that holds the password.

The operator renders these into the stream and batch jobs' configs and gives the pods the
variable from a Secret (`secretKeyRef`); the jobs resolve it here when they connect
(`connect_blocking`, the one client both jobs publish through).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple

import redis

# A job's stats are best effort: Redis not answering costs a publish at most this long, never a run.
TIMEOUT_S = 2


class RedisAddress(NamedTuple):
    url: str
    password: str | None


def resolve(
    url: str | None, *, password_env: str | None = None, environ: Mapping[str, str] = os.environ
) -> RedisAddress | None:
    """`url` with the password in `password_env` (None when unset or blank); None without a URL
    (the job then publishes nothing)."""
    if url is None:
        return None
    password = environ.get(password_env, "") if password_env is not None else ""
    return RedisAddress(url, password.strip() or None)


def connect_blocking(
    url: str | None, *, password_env: str | None = None, environ: Mapping[str, str] = os.environ
) -> redis.Redis | None:
    """A blocking client for the stream and batch jobs' stats (short timeouts); None without a
    URL. Connects lazily: an unreachable Redis shows on the first command, not here."""
    target = resolve(url, password_env=password_env, environ=environ)
    if target is None:
        return None
    return redis.Redis.from_url(
        target.url,
        password=target.password,
        socket_timeout=TIMEOUT_S,
        socket_connect_timeout=TIMEOUT_S,
    )
