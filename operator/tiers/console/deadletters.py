"""The latest records of a dead-letter topic, read once from its end (no consumer group, no
commits): what the live view lists after a poison event."""

from __future__ import annotations

import json
import time
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from tiers.console import errors

TIMEOUT_S = 5.0


def latest(bootstrap: str, topic: str, *, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` records, newest first, each its JSON value (or its text) with its time."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "tiers-console", "enable.auto.commit": False,
         "socket.timeout.ms": 5000, "session.timeout.ms": 6000}
    )  # fmt: skip
    try:
        try:
            metadata = consumer.list_topics(topic, timeout=TIMEOUT_S)
        except KafkaException as error:
            raise errors.ConsoleError(
                502, "Unreachable", f"Kafka did not answer: {error}"
            ) from None
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            return []
        assigned, wanted = [], 0
        for partition in found.partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=TIMEOUT_S
            )
            start = max(low, high - limit)
            if high > start:
                assigned.append(TopicPartition(topic, partition, start))
                wanted += high - start
        if not assigned:
            return []
        consumer.assign(assigned)
        records: list[dict[str, Any]] = []
        deadline = time.monotonic() + TIMEOUT_S
        while len(records) < wanted and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            records.append(
                _record(message.value(), message.timestamp()[1], message.partition(),
                        message.offset())
            )  # fmt: skip
        records.sort(key=lambda r: (r["timestampMs"], r["partition"], r["offset"]), reverse=True)
        return records[:limit]
    finally:
        consumer.close()


def _record(
    value: bytes | None, timestamp_ms: int, partition: int | None, offset: int | None
) -> dict[str, Any]:
    try:
        parsed: Any = json.loads(value or b"null")
    except ValueError:
        parsed = (value or b"").decode(errors="replace")
    return {"timestampMs": timestamp_ms, "partition": partition, "offset": offset, "value": parsed}
