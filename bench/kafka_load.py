"""Kafka for the stream benchmark: a throwaway broker, topics, bulk and paced load, counting.

`broker(...)` runs a real single-node KRaft broker (`tiers.devenv.kafka`) for a `with` block.
`produce_bulk` and `count` are as fast as the Python client goes (batched produce, `consume` in
batches of many records); `paced` sends at a constant rate with each event's send time in its
value and times every result the pipeline writes back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import pathlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from tiers.devenv import kafka

import servers

EVENT_BYTES = 200
"""About this many bytes per event value (JSON), as the design's sizing assumes small events."""
_CONSUME_BATCH = 10_000
_POLL_S = 0.2
_PRODUCE_TIMEOUT_S = 120.0
_DISTINCT_VALUES = 4096
_QUIET = {"log_level": 4}
"""librdkafka's warnings and worse only (no notice when an admin client is closed)."""
_BULK_PRODUCER: dict[str, str | int | bool] = {
    # Throughput: large batches, a short linger, only failed deliveries reported back.
    "linger.ms": 20,
    "batch.size": 1_000_000,
    "batch.num.messages": 10_000,
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "compression.type": "none",
    "delivery.report.only.error": True,
}
_PACED_PRODUCER: dict[str, str | int | bool] = {"linger.ms": 1, "delivery.report.only.error": True}


@contextlib.contextmanager
def broker(workdir: pathlib.Path) -> Iterator[kafka.KafkaBroker]:
    """A broker on free 127.0.0.1 ports with its data under `workdir`, stopped at the end."""
    try:
        started = kafka.start(workdir / "logs", workdir / "kafka")
    except (RuntimeError, TimeoutError, OSError) as error:
        raise servers.ServerFailed(f"kafka: {error}") from None
    try:
        yield started
    finally:
        started.stop()


def broker_server(started: kafka.KafkaBroker) -> servers.Server:
    """The broker as a `servers.Server`, so `servers.cpu_seconds` can read its CPU time."""
    return servers.Server("kafka", started.port, started.process.pid)


def create_topics(bootstrap: str, names: Sequence[str], partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, **_QUIET})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names]
    )
    for future in futures.values():
        future.result(timeout=30)


def event_value(index: int, tag: str, sent_ms: float) -> bytes:
    """One event: JSON with the field the prompt uses (`text`), padded to about EVENT_BYTES."""
    head = f'{{"id":{index},"tag":"{tag}","sent_ms":{sent_ms:.3f},"text":"'
    return (head + _PADDING[: max(8, EVENT_BYTES - len(head) - 2)] + '"}').encode()


_PADDING = ("event payload words for the mock model to echo back " * 8).strip()


@dataclasses.dataclass(frozen=True)
class Produced:
    events: int
    seconds: float
    """From the first `produce` call until `flush` returned: every event acknowledged."""

    @property
    def per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else math.nan


def produce_bulk(bootstrap: str, topic: str, count: int, tag: str) -> Produced:
    """`count` events as fast as one producer sends them; raises if any is not delivered."""
    failures: list[str] = []

    def delivered(error: object, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    producer = Producer({"bootstrap.servers": bootstrap, **_QUIET, **_BULK_PRODUCER})
    # Values made beforehand and reused: the figure is the client's and the broker's, not
    # Python's string formatting. Every key is distinct.
    sent_ms = time.time() * 1000
    values = [event_value(index, tag, sent_ms) for index in range(min(count, _DISTINCT_VALUES))]
    started = time.perf_counter()
    for index in range(count):
        value = values[index % _DISTINCT_VALUES]
        key = str(index).encode()
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.005)
        if index % 10_000 == 0:
            producer.poll(0)
    left = producer.flush(_PRODUCE_TIMEOUT_S)
    seconds = time.perf_counter() - started
    if left or failures:
        raise RuntimeError(
            f"{topic}: {left} events not sent, {len(failures)} failed {failures[:3]}"
        )
    return Produced(count, seconds)


def _consumer(bootstrap: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            **_QUIET,
            # Partitions are assigned, never subscribed: the group is only a required name.
            "group.id": f"bench-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "queued.min.messages": 200_000,
            "fetch.wait.max.ms": 50,
        }
    )


def _partitions(consumer: Consumer, topics: Sequence[str]) -> list[TopicPartition]:
    metadata = consumer.list_topics(timeout=10)
    return [
        TopicPartition(topic, partition)
        for topic in topics
        for partition in sorted(metadata.topics[topic].partitions)
    ]


@dataclasses.dataclass(frozen=True)
class Counted:
    by_topic: dict[str, int]
    started_s: float
    """time.monotonic() when counting began (the consumer was assigned its partitions)."""
    first_s: float
    """time.monotonic() when the first record arrived; NaN if none did."""
    last_s: float
    """time.monotonic() when the last counted record arrived (the expected total reached)."""
    complete: bool

    @property
    def total(self) -> int:
        return sum(self.by_topic.values())


def count(
    bootstrap: str,
    topics: Sequence[str],
    expected: int,
    *,
    first_timeout_s: float,
    stall_timeout_s: float,
    is_alive: Callable[[], bool] = lambda: True,
    on_progress: Callable[[int], None] | None = None,
) -> Counted:
    """Counts records in `topics` from their beginning until `expected` arrived.

    Gives up when none arrived within `first_timeout_s`, when no more arrived for
    `stall_timeout_s`, or when `is_alive()` turns false (the producer of the records died).
    """
    consumer = _consumer(bootstrap)
    try:
        started = time.monotonic()
        assignment = _partitions(consumer, topics)
        for partition in assignment:
            partition.offset = OFFSET_BEGINNING
        consumer.assign(assignment)
        by_topic = dict.fromkeys(topics, 0)
        total, first_s, last_s = 0, math.nan, math.nan
        next_report = started + 5.0
        while total < expected:
            now = time.monotonic()
            waited = now - (started if math.isnan(last_s) else last_s)
            if waited > (first_timeout_s if math.isnan(first_s) else stall_timeout_s):
                break
            if not is_alive():
                break
            if on_progress is not None and now >= next_report:
                on_progress(total)
                next_report = now + 5.0
            messages = consumer.consume(num_messages=_CONSUME_BATCH, timeout=_POLL_S)
            arrived = time.monotonic()
            got = 0
            for message in messages:
                topic = message.topic()
                if message.error() is None and topic is not None:
                    by_topic[topic] += 1
                    got += 1
            if got:
                total += got
                last_s = arrived
                if math.isnan(first_s):
                    first_s = arrived
        return Counted(by_topic, started, first_s, last_s, total >= expected)
    finally:
        consumer.close()


def caught_up(
    bootstrap: str, input_topic: str, result_topics: Sequence[str], *, timeout_s: float
) -> bool:
    """Waits until the result topics hold as many records as the input topic (one result or
    dead letter per event); False if they still do not after `timeout_s`."""
    consumer = _consumer(bootstrap)
    try:
        inputs = _partitions(consumer, [input_topic])
        results = _partitions(consumer, result_topics)
        deadline = time.monotonic() + timeout_s
        while True:
            written = sum(_end_offset(consumer, partition) for partition in results)
            if written >= sum(_end_offset(consumer, partition) for partition in inputs):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)
    finally:
        consumer.close()


def _end_offset(consumer: Consumer, partition: TopicPartition) -> int:
    _, high = consumer.get_watermark_offsets(partition, timeout=10)
    return int(high)


@dataclasses.dataclass(frozen=True)
class Paced:
    rate_per_s: int
    sent: int
    send_seconds: float
    results: int
    dead_letters: int
    end_to_end_ms: list[float]
    """Per result: the bench's receive time minus the event's send time (its `sent_ms`)."""
    in_job_ms: list[float]
    """Per result: the record's `processed_ts - ingest_ts` (the Kafka timestamp, set at send)."""
    stopped_early: bool
    """Sending stopped because more than `max_backlog_s` of sends were waiting for results."""
    caught_up_s: float
    """Seconds from the last send until the last result arrived (NaN if not all arrived)."""

    @property
    def sent_per_s(self) -> float:
        return self.sent / self.send_seconds if self.send_seconds > 0 else math.nan


def paced(
    bootstrap: str,
    input_topic: str,
    result_topics: Sequence[str],
    *,
    rate_per_s: int,
    duration_s: float,
    tag: str,
    max_backlog_s: float,
    drain_timeout_s: float,
    warmup_s: float = 0.0,
) -> Paced:
    """Sends `rate_per_s` events a second for `warmup_s + duration_s` and times the results of
    the events sent after the warm-up (those before it are tagged apart and not timed).

    Open loop: events leave on schedule whether or not results come back, until more than
    `max_backlog_s` seconds' worth of timed sends are without a result (the pipeline fell
    behind). Then it waits, at most `drain_timeout_s`, for the results of everything timed.
    """
    collector = _Collector(bootstrap, result_topics, tag)
    collector.start()
    producer = Producer({"bootstrap.servers": bootstrap, **_QUIET, **_PACED_PRODUCER})
    warmup = round(rate_per_s * warmup_s)
    total = warmup + round(rate_per_s * duration_s)
    max_backlog = max(1, round(rate_per_s * max_backlog_s))
    sent, stopped_early = 0, False
    started = time.perf_counter()
    timed_from = started + warmup_s
    try:
        while sent < total:
            elapsed = time.perf_counter() - started
            due = min(total, int(elapsed * rate_per_s) + 1)
            while sent < due:
                label = tag if sent >= warmup else f"{tag}-warmup"
                value = event_value(sent, label, time.time() * 1000)
                try:
                    producer.produce(input_topic, value, f"{label}-{sent}".encode())
                except BufferError:
                    break
                sent += 1
            producer.poll(0)
            if max(0, sent - warmup) - collector.received() > max_backlog:
                stopped_early = True
                break
            pause = (sent + 1) / rate_per_s - (time.perf_counter() - started)
            if pause > 0:
                time.sleep(min(pause, 0.01))
        send_seconds = max(0.0, time.perf_counter() - timed_from)
        producer.flush(30)
        last_send = time.monotonic()
        timed = max(0, sent - warmup)
        collector.wait_for(timed, timeout_s=drain_timeout_s)
    finally:
        collector.stop()
    caught_up = collector.last_arrival - last_send if collector.received() >= timed else math.nan
    return Paced(
        rate_per_s=rate_per_s,
        sent=timed,
        send_seconds=send_seconds,
        results=len(collector.end_to_end_ms),
        dead_letters=collector.dead_letters,
        end_to_end_ms=collector.end_to_end_ms,
        in_job_ms=collector.in_job_ms,
        stopped_early=stopped_early,
        caught_up_s=max(0.0, caught_up),
    )


class _Collector(threading.Thread):
    """Reads the result topics from their current end and times the results tagged `tag`."""

    def __init__(self, bootstrap: str, topics: Sequence[str], tag: str) -> None:
        super().__init__(name=f"collect-{tag}", daemon=True)
        self._tag = tag
        self._consumer = _consumer(bootstrap)
        # Start at each partition's end as it is now: explicit offsets, so nothing produced
        # between here and the consumer's first fetch is missed.
        assignment = _partitions(self._consumer, topics)
        for partition in assignment:
            partition.offset = _end_offset(self._consumer, partition)
        self._consumer.assign(assignment)
        self._dead_letter_topics = frozenset(topics[1:])
        self._stopping = threading.Event()
        self._changed = threading.Condition()
        self.end_to_end_ms: list[float] = []
        self.in_job_ms: list[float] = []
        self.dead_letters = 0
        self.last_arrival = math.nan

    def received(self) -> int:
        return len(self.end_to_end_ms) + self.dead_letters

    def run(self) -> None:
        try:
            while not self._stopping.is_set():
                messages = self._consumer.consume(num_messages=_CONSUME_BATCH, timeout=_POLL_S)
                now_ms = time.time() * 1000
                if messages:
                    self._tally(messages, now_ms)
        finally:
            self._consumer.close()

    def _tally(self, messages: list[Message], now_ms: float) -> None:
        counted = 0
        for message in messages:
            value = message.value()
            if message.error() is not None or value is None:
                continue
            record = orjson.loads(value)
            if message.topic() in self._dead_letter_topics:
                if f'"tag":"{self._tag}"' in (record.get("value") or ""):
                    self.dead_letters += 1
                    counted += 1
                continue
            event = record.get("input") or {}
            if event.get("tag") != self._tag:
                continue
            self.end_to_end_ms.append(now_ms - float(event["sent_ms"]))
            self.in_job_ms.append(float(record["processed_ts"]) - float(record["ingest_ts"]))
            counted += 1
        if counted:
            with self._changed:
                self.last_arrival = time.monotonic()
                self._changed.notify_all()

    def wait_for(self, expected: int, *, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self.received() < expected and self.is_alive():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._changed.wait(timeout=min(left, 1.0))

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=10)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value below which `fraction` of `values` lie (nearest rank); NaN for none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))
    return ordered[rank]
