"""Kafka's admin API for the operator: read, create, grow, configure and delete topics, and
read offsets. confluent-kafka's client is blocking, so every call runs in a worker thread.

Bootstrap servers may come from a Secret, so they never appear in what this module raises or
logs: errors say "Kafka", and librdkafka's own log lines (which name brokers) go through a
logger that puts `<brokers>` in their place (`scrub`)."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicCollection, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

from tiers.api import stream
from tiers.operator import bounded, topics

TIMEOUT_S = 10.0
# How long to wait for brokers to answer at all: an unreachable cluster is reported quickly.
CONNECT_TIMEOUT_S = 3.0
P = ParamSpec("P")
R = TypeVar("R")

KEPT = 32
_admins: dict[str, AdminClient] = {}
_consumers: dict[str, tuple[Consumer, threading.Lock]] = {}
"""One admin client and one offsets consumer per set of brokers (not one per pipeline or per
call), the `KEPT` used last (bootstrap servers come from specs). A consumer is not thread-safe:
its lock serializes its calls. A client dropped is not closed (AdminClient has no close, and
closing a consumer another thread holds would fail its call): librdkafka's handle is destroyed
when the last reference goes, i.e. once the calls in flight on it are done."""
_making = threading.Lock()
"""Held while a client is made: calls run in worker threads, two must not make two clients."""
log = logging.getLogger(__name__)


class AdminError(Exception):
    """Kafka refused an admin request; the message is Kafka's own."""


class KafkaUnavailable(AdminError):
    """The brokers did not answer; reported as a condition, retried by the timer."""

    def __init__(self, cause: str) -> None:
        super().__init__(f"Kafka did not answer: {cause}")
        self.cause = cause


def _kafka_errors(function: Callable[P, R]) -> Callable[P, R]:
    """Turns confluent-kafka's exceptions into AdminError, so callers handle one type; the
    wrapped function's first argument is the bootstrap servers, kept out of the message."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except KafkaException as error:
            text = str(error.args[0] if error.args else error)
            raise AdminError(scrub(text, str(args[0]))) from None
        except TimeoutError:  # a request's answer did not come (`future.result(timeout=...)`)
            raise KafkaUnavailable(f"no answer within {TIMEOUT_S:g} s") from None

    return wrapper


def scrub(text: str, bootstrap: str, *, replacement: str = "<brokers>") -> str:
    """`text` with the bootstrap servers, each host:port and each host of them replaced."""
    parts = {bootstrap}
    for server in bootstrap.split(","):
        parts |= {server.strip(), server.strip().rpartition(":")[0]}
    for part in sorted(parts - {""}, key=len, reverse=True):
        text = text.replace(part, replacement)
    return text


class _ScrubbingLogger:
    """What librdkafka logs to (confluent-kafka calls `log`), at debug level and without the
    brokers' names: by default it would write them to stderr, the operator's log."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap

    def log(self, level: int, message: str, *args: object) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("librdkafka: %s", scrub(message % args, self._bootstrap))


def _client_config(bootstrap: str) -> dict[str, Any]:
    return {"bootstrap.servers": bootstrap, "logger": _ScrubbingLogger(bootstrap)}


def _admin(bootstrap: str) -> AdminClient:
    with _making:
        admin = _admins.pop(bootstrap, None)  # put back last: the one used longest ago goes
        if admin is None:
            admin = AdminClient({**_client_config(bootstrap), "socket.timeout.ms": 10000})
        bounded.keep(_admins, bootstrap, admin, limit=KEPT)
    return admin


async def describe(
    bootstrap: str, names: Sequence[str], *, created: Sequence[str] = ()
) -> dict[str, topics.ActualTopic]:
    """The named topics that exist. Topics `created` just now are waited for (up to `TIMEOUT_S`):
    a broker lists a new topic only once the controller's metadata has reached it, and a topic
    read as missing would never be recorded as the pipeline's own."""
    return await asyncio.to_thread(_describe, bootstrap, names, created)


@_kafka_errors
def _describe(
    bootstrap: str, names: Sequence[str], created: Sequence[str] = ()
) -> dict[str, topics.ActualTopic]:
    admin = _admin(bootstrap)
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        try:
            metadata = admin.list_topics(timeout=CONNECT_TIMEOUT_S)
        except KafkaException as error:
            raise KafkaUnavailable(scrub(str(error), bootstrap)) from None
        if all(name in metadata.topics for name in created) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    present = [name for name in names if name in metadata.topics]
    configs: dict[str, dict[str, str]] = {name: {} for name in present}
    if present:
        resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in present]
        for resource, future in admin.describe_configs(resources).items():
            entries = future.result(timeout=TIMEOUT_S)
            configs[resource.name] = {
                key: entry.value for key, entry in entries.items() if not entry.is_default
            }
    ids = _topic_ids(admin, present)
    return {
        name: topics.ActualTopic(
            name=name,
            partitions=len(metadata.topics[name].partitions),
            replication_factor=len(next(iter(metadata.topics[name].partitions.values())).replicas),
            config=configs[name],
            topic_id=ids[name],
        )
        for name in present
    }


def _topic_ids(admin: AdminClient, names: Sequence[str]) -> dict[str, str]:
    """Kafka's id of each topic: a topic deleted and made again under its name has a new one."""
    if not names:
        return {}
    futures = admin.describe_topics(TopicCollection(list(names)))
    return {
        name: str(future.result(timeout=TIMEOUT_S).topic_id) for name, future in futures.items()
    }


async def apply(bootstrap: str, plan: topics.Plan) -> None:
    await asyncio.to_thread(_apply, bootstrap, plan)


class NotCreated(AdminError):
    """Kafka did not create every topic asked for; `names`: those it answered that it did not
    make (the name is taken, the settings are not allowed), whose claims go; `existing`: those
    of them it refused because the name is taken (by an earlier create of the same claim whose
    answer was lost, or by someone else: `topics.unclaimed` tells)."""

    def __init__(self, message: str, names: Sequence[str], existing: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.names = list(names)
        self.existing = list(existing)


REFUSED_FOR_SURE = frozenset({
    KafkaError.TOPIC_ALREADY_EXISTS, KafkaError.POLICY_VIOLATION,
    KafkaError.INVALID_REPLICATION_FACTOR, KafkaError.INVALID_PARTITIONS,
    KafkaError.INVALID_CONFIG, KafkaError.TOPIC_EXCEPTION,
    KafkaError.INVALID_REPLICA_ASSIGNMENT, KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
})  # fmt: skip
"""CreateTopics errors after which the topic was not made by the request (a timeout is not
one: the controller may make it still)."""


@_kafka_errors
def _apply(bootstrap: str, plan: topics.Plan) -> None:
    admin = _admin(bootstrap)
    creating = admin.create_topics([_new_topic(t) for t in plan.create]) if plan.create else {}
    futures: list[Any] = []
    if plan.grow:
        futures += admin.create_partitions(
            [NewPartitions(name, count) for name, count in plan.grow]
        ).values()
    if plan.configure:
        futures += admin.incremental_alter_configs(
            [_config_resource(name, changed) for name, changed in plan.configure]
        ).values()
    refused, existing, first = [], [], None
    for name, future in creating.items():
        try:
            future.result(timeout=TIMEOUT_S)
        except KafkaException as error:
            cause = error.args[0] if error.args else None
            first = first or str(cause or error)
            if isinstance(cause, KafkaError) and cause.code() in REFUSED_FOR_SURE:
                refused.append(name)
                if cause.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    existing.append(name)
    for future in futures:
        future.result(timeout=TIMEOUT_S)
    if first is not None:
        raise NotCreated(scrub(first, bootstrap), refused, existing)


def _new_topic(topic: stream.Topic) -> NewTopic:
    return NewTopic(
        topic.name,
        num_partitions=topic.partitions,
        replication_factor=topic.replication_factor,
        config=dict(topic.config),
    )


def _config_resource(name: str, changed: Mapping[str, str]) -> ConfigResource:
    return ConfigResource(
        ConfigResource.Type.TOPIC,
        name,
        incremental_configs=[
            ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
            for key, value in changed.items()
        ],
    )


async def delete_owned(bootstrap: str, owned: Mapping[str, str]) -> list[str]:
    """Deletes each topic (name: topic id) that still has the id recorded for it (or is claimed,
    `topics.CLAIMED`); the names of the others, which are someone else's now (or gone), are
    returned and left alone."""
    return await asyncio.to_thread(_delete_owned, bootstrap, owned)


@_kafka_errors
def _delete_owned(bootstrap: str, owned: Mapping[str, str]) -> list[str]:
    admin = _admin(bootstrap)
    try:
        existing = admin.list_topics(timeout=CONNECT_TIMEOUT_S).topics
    except KafkaException as error:
        raise KafkaUnavailable(scrub(str(error), bootstrap)) from None
    ids = _topic_ids(admin, [name for name in owned if name in existing])
    doomed = [name for name, topic_id in ids.items() if topics.owns(owned, name, topic_id)]
    for future in admin.delete_topics(doomed).values() if doomed else ():
        future.result(timeout=TIMEOUT_S)
    return sorted(set(ids) - set(doomed))


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The high watermark of every partition: how many events the topic has taken in."""
    return await asyncio.to_thread(_end_offsets, bootstrap, topic)


def _consumer(bootstrap: str) -> tuple[Consumer, threading.Lock]:
    with _making:
        found = _consumers.pop(bootstrap, None)
        if found is None:
            config = {**_client_config(bootstrap), "group.id": "tiers-operator-offsets"}
            found = (Consumer(config), threading.Lock())
        bounded.keep(_consumers, bootstrap, found, limit=KEPT)
    return found


@_kafka_errors
def _end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer, lock = _consumer(bootstrap)
    with lock:
        metadata = consumer.list_topics(topic, timeout=TIMEOUT_S)
        partitions = metadata.topics[topic].partitions if topic in metadata.topics else {}
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=TIMEOUT_S)[1]
            for p in partitions
        }
