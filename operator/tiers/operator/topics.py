"""What to do to Kafka topics so they match a StreamPipeline: pure planning, no I/O.

Partitions may grow, never shrink; the replication factor is fixed once created; configs are
set to what the spec lists (entries the spec does not list are left to the broker's defaults
and to whoever set them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from tiers.api import stream


@dataclasses.dataclass(frozen=True)
class ActualTopic:
    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class Conflict:
    topic: str
    reason: str  # a condition reason: ResourceConflict or NotSupported
    message: str


@dataclasses.dataclass(frozen=True)
class Plan:
    create: tuple[stream.Topic, ...] = ()
    grow: tuple[tuple[str, int], ...] = ()
    """(topic, new partition count)"""
    configure: tuple[tuple[str, Mapping[str, str]], ...] = ()
    """(topic, configs that differ from the spec)"""
    conflicts: tuple[Conflict, ...] = ()

    @property
    def is_noop(self) -> bool:
        return not (self.create or self.grow or self.configure)


def desired_topics(spec: stream.StreamPipelineSpec) -> tuple[tuple[str, stream.Topic], ...]:
    """The three topics with the spec field that declares each (for messages)."""
    return (
        ("spec.topics.input", spec.topics.input),
        ("spec.topics.output", spec.topics.output),
        ("spec.topics.deadLetter", spec.topics.dead_letter),
    )


def plan(spec: stream.StreamPipelineSpec, actual: Mapping[str, ActualTopic]) -> Plan:
    create: list[stream.Topic] = []
    grow: list[tuple[str, int]] = []
    configure: list[tuple[str, Mapping[str, str]]] = []
    conflicts: list[Conflict] = []
    for field, topic in desired_topics(spec):
        existing = actual.get(topic.name)
        if existing is None:
            create.append(topic)
            continue
        if existing.partitions > topic.partitions:
            conflicts.append(
                Conflict(
                    topic.name,
                    "ResourceConflict",
                    f"topic {topic.name} has {existing.partitions} partitions but "
                    f"{field}.partitions asks for {topic.partitions}; partitions never shrink",
                )
            )
        elif existing.partitions < topic.partitions:
            grow.append((topic.name, topic.partitions))
        if existing.replication_factor != topic.replication_factor:
            conflicts.append(
                Conflict(
                    topic.name,
                    "NotSupported",
                    f"topic {topic.name} has replication factor {existing.replication_factor}; "
                    f"{field}.replicationFactor {topic.replication_factor} cannot be applied "
                    "to an existing topic",
                )
            )
        changed = {k: v for k, v in topic.config.items() if existing.config.get(k) != v}
        if changed:
            configure.append((topic.name, changed))
    return Plan(tuple(create), tuple(grow), tuple(configure), tuple(conflicts))


def duplicate_names(spec: stream.StreamPipelineSpec) -> Sequence[str]:
    """Topic names used for more than one role (the input cannot also be the output)."""
    names = [topic.name for _, topic in desired_topics(spec)]
    return sorted({name for name in names if names.count(name) > 1})
