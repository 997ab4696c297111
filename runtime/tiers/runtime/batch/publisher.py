"""Publishes a run's progress (a hash, `progress.key`) and its stats (the per-minute windows
every tier shares) to Redis, where the operator reads them. No Redis configured: nothing is
sent; Redis not answering: a warning, and the run goes on."""

from __future__ import annotations

import logging
import time
from typing import Any

import redis

from tiers.runtime.batch import config, progress
from tiers.runtime.stats import address, store, window

log = logging.getLogger(__name__)


class Publisher:
    def __init__(self, settings: config.BatchJobConfig) -> None:
        self._client = address.connect_blocking(
            settings.stats_redis_url, password_env=settings.stats_redis_password_env
        )
        self._subject = settings.job
        self._key = progress.key(settings.job, settings.run)
        self._sent: dict[str, int] = {}
        self._warned = False

    def publish(
        self,
        current: progress.Progress,
        *,
        counts: window.Counts | None = None,
        final: bool = False,
    ) -> None:
        """The progress as it is now; `counts` are the attempt's totals so far, of which the
        part not yet sent goes into this minute's stats window."""
        if self._client is None:
            return
        try:
            with self._client.pipeline(transaction=False) as pipe:
                fields: dict[Any, Any] = dict(progress.to_fields(current))
                pipe.hset(self._key, mapping=fields)
                pipe.expire(self._key, progress.KEEP_SECONDS)
                pipe.execute()
            if counts is not None:
                self._publish_stats(counts)
        except (redis.RedisError, OSError) as error:
            if not self._warned or final:
                log.warning("progress not published: %s: %s", type(error).__name__, error)
                self._warned = True

    def _publish_stats(self, counts: window.Counts) -> None:
        assert self._client is not None
        totals = counts.to_fields()
        delta = {name: value - self._sent.get(name, 0) for name, value in totals.items()}
        delta = {name: value for name, value in delta.items() if value}
        if delta:
            store.publish_blocking(
                self._client, self._subject, int(time.time() // 60),
                window.Counts.from_fields(delta),
            )  # fmt: skip
        self._sent = totals

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
