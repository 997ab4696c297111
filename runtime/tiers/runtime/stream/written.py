"""A stream task's stats, counted in the driver once the task has written its results.

An event's latency is what its consumer sees: from its Kafka timestamp to its result in the
output (or dead-letter) topic. The Python worker that scores a batch hands the rows back before
they are written: the JVM still has to take them, the Kafka sink's producer to send them, the
broker to append them (seconds under load). The sink flushes its producer before its task ends,
so when a task ends every result it wrote can be read. Spark merges a task's accumulator
additions into the driver's value at that moment, once, and only for a task that succeeded; so
the workers add what they counted (`Tally`: events, dead letters, tokens, cost, the partitions'
next offsets, and the events' timestamps) and the driver (`Publisher`) times each event to the
moment its task's additions arrive, then publishes the counts to Redis once a second.

Why this measure: it never reads earlier than the result could be read, and it is late by at
most the rest of its task's write after that result's; it costs the workers less than timing
them did (a Counter of timestamps, and no Redis round trip per batch), the driver a dictionary
update per distinct millisecond of timestamps in a task, and Kafka nothing (reading the output
back to time it would be a second consumer of every result). A micro-batch's commit would be
later still (its slowest task, then the offsets).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import redis

from tiers.runtime.stats import address, histogram, store, window
from tiers.runtime.stream import config

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Tally:
    """What tasks scored, not yet timed: counts without latency, and the events' timestamps."""

    counts: window.Counts = dataclasses.field(default_factory=window.Counts)
    timestamps_ms: Counter[int] = dataclasses.field(default_factory=Counter)
    """Events by their Kafka timestamp (epoch ms)."""
    next_offsets: dict[int, int] = dataclasses.field(default_factory=dict)
    """The next offset to process of each input partition the tasks read."""

    def add(self, other: Tally) -> None:
        self.counts.add(other.counts)
        self.timestamps_ms.update(other.timestamps_ms)
        for partition, offset in other.next_offsets.items():
            self.next_offsets[partition] = max(self.next_offsets.get(partition, 0), offset)

    def timed(self, now_ms: float) -> window.Counts:
        """The counts with each event's latency: from its timestamp to `now_ms`."""
        counts = window.Counts()
        counts.add(self.counts)
        for timestamp, events in self.timestamps_ms.items():
            counts.latency[histogram.bucket_of(now_ms - timestamp)] += events
        return counts


class TallyParam:
    """A Spark `AccumulatorParam` over `Tally` (duck-typed: pyspark is not imported).

    On a worker it adds up a task's batches. In the driver, where `on_written` is set, each
    addition is a task that has just ended, its results written: it goes to `on_written` then,
    and the driver's own value stays empty. Workers get the parameter without it (`__reduce__`).
    """

    def __init__(self, on_written: Callable[[Tally], None] | None = None) -> None:
        self._on_written = on_written

    def __reduce__(self) -> tuple[type[TallyParam], tuple[()]]:
        return (TallyParam, ())

    def zero(self, value: Tally) -> Tally:
        return Tally()

    def addInPlace(self, total: Tally, more: Tally) -> Tally:
        if self._on_written is None:
            total.add(more)
            return total
        try:
            self._on_written(more)
        except Exception:  # stats are best effort: an error here must not fail Spark's merge
            log.exception("stats of a finished task dropped")
        return total


class Publisher:
    """The driver's side: times what finished tasks wrote, publishes it once a second.

    `written` runs on Spark's scheduler thread (the accumulator's merge, which that thread waits
    for): it only updates the pending counts, under a lock; a thread of its own talks to Redis.
    """

    def __init__(
        self,
        settings: config.StreamJobConfig,
        *,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = address.connect_blocking(
            settings.stats_redis_url, password_env=settings.stats_redis_password_env
        )
        self._subject = settings.pipeline
        self._interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._counts = window.Counts()
        self._offsets: dict[int, int] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tiers-stream-stats", daemon=True)

    def accumulator(self, spark: Any) -> Any:
        """The accumulator tasks add their `Tally` to; None without a stats Redis (nothing to
        count for)."""
        if self._client is None:
            return None
        return spark.sparkContext.accumulator(Tally(), TallyParam(self.written))

    def written(self, tally: Tally) -> None:
        counts = tally.timed(self._clock() * 1000)
        with self._lock:
            self._counts.add(counts)
            for partition, offset in tally.next_offsets.items():
                self._offsets[partition] = max(self._offsets.get(partition, 0), offset)

    def start(self) -> None:
        if self._client is not None:
            self._thread.start()

    def stop(self) -> None:
        """Stops the thread and publishes what is left."""
        if self._thread.is_alive():
            self._stopping.set()
            self._thread.join()
        self.flush()

    def flush(self) -> None:
        with self._lock:
            counts, self._counts = self._counts, window.Counts()
            offsets, self._offsets = self._offsets, {}
        if self._client is None or not (counts or offsets):
            return
        minute = int(self._clock() // 60)
        try:
            store.publish_blocking(
                self._client, self._subject, minute, counts, next_offsets=offsets
            )
        except (redis.RedisError, OSError) as error:
            log.warning("stats not published: %s", type(error).__name__)

    def _loop(self) -> None:
        while not self._stopping.wait(self._interval_s):
            self.flush()
