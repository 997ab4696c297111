"""Where a job publishes its stats, with no secret in its config: the Redis URL, and the name of
the variable that holds the password.

The operator renders these into the stream and batch jobs' configs and gives the pods the
variable from a Secret (`secretKeyRef`); the jobs resolve it here when they connect.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple


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
