"""What to do to Kafka topics so they match a StreamPipeline: pure planning, no I/O.

Partitions may grow, never shrink; the replication factor is fixed once created; configs are
set to what the spec lists (entries the spec does not list are left to the broker's defaults
and to whoever set them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from tiers.api import stream

CLAIMED = ""
"""The id recorded for a topic the pipeline is about to create, before Kafka has given it one.
A claimed topic found to exist is taken as the pipeline's own: only someone who made a topic of
that very name in the moments between the claim and the request could be wrong-footed."""


@dataclasses.dataclass(frozen=True)
class ActualTopic:
    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str]
    topic_id: str = ""
    """Kafka's id of the topic (a topic made again under the same name gets a new one)."""


@dataclasses.dataclass(frozen=True)
class Conflict:
    topic: str
    reason: str  # a condition reason: ResourceConflict, NotSupported or TopicNotOwned
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


def plan(
    spec: stream.StreamPipelineSpec,
    actual: Mapping[str, ActualTopic],
    owned: Mapping[str, str] | None = None,
) -> Plan:
    """What to do to the topics; `owned` maps each topic this pipeline made to its Kafka id. A
    topic that exists and is not owned (someone else's, or made again by someone else) is used
    as it is: a change the spec asks of it is a `TopicNotOwned` conflict, never applied."""
    owned = owned or {}
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
            if is_owned(existing, owned):
                grow.append((topic.name, topic.partitions))
            else:
                conflicts.append(
                    _not_owned(
                        topic.name,
                        f"has {existing.partitions} partitions where {field}.partitions asks "
                        f"for {topic.partitions}",
                    )
                )
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
        if changed and is_owned(existing, owned):
            configure.append((topic.name, changed))
        elif changed:
            conflicts.append(
                _not_owned(
                    topic.name, f"differs from {field}.config in {', '.join(sorted(changed))}"
                )
            )
    return Plan(tuple(create), tuple(grow), tuple(configure), tuple(conflicts))


def duplicate_names(spec: stream.StreamPipelineSpec) -> Sequence[str]:
    """Topic names used for more than one role (the input cannot also be the output)."""
    names = [topic.name for _, topic in desired_topics(spec)]
    return sorted({name for name in names if names.count(name) > 1})


def is_owned(topic: ActualTopic, owned: Mapping[str, str]) -> bool:
    """Whether this pipeline made the topic: the id it recorded is the topic's id now, or it
    claimed the topic before making it and has recorded no id since."""
    return owns(owned, topic.name, topic.topic_id)


def owns(owned: Mapping[str, str], name: str, topic_id: str) -> bool:
    """`is_owned` for the topic `name` whose Kafka id is `topic_id`."""
    recorded = owned.get(name)
    return recorded == CLAIMED or (bool(topic_id) and recorded == topic_id)


def claimed(owned: Mapping[str, str], plan: Plan) -> dict[str, str]:
    """`owned` with a claim on each topic the plan creates: recorded before the request, so that
    an operator stopped before it records the new topics' ids still knows it made them."""
    return {**owned, **{topic.name: CLAIMED for topic in plan.create}}


def unclaimed(
    owned: Mapping[str, str],
    refused: Sequence[str],
    *,
    existing: Sequence[str] = (),
    claimed_before: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """`owned` without the claims on the topics Kafka refused to create: none of them is the
    pipeline's, and a claim kept would take a topic made later under that name (by hand, by
    another team) for its own. One refused as `existing` that an earlier reconcile had claimed
    already (`claimed_before`: the record before this one claimed) stays claimed: that
    reconcile's create may have made it after all, its answer lost (a timeout), before the
    topic could be described."""
    kept = {name for name in existing if (claimed_before or {}).get(name) == CLAIMED}
    return {
        name: id_
        for name, id_ in owned.items()
        if id_ != CLAIMED or name not in refused or name in kept
    }


def ownership(
    spec: stream.StreamPipelineSpec,
    actual: Mapping[str, ActualTopic],
    *,
    owned: Mapping[str, str],
    created: Sequence[str],
) -> dict[str, str]:
    """The topics (name: id) the pipeline owns after a reconcile: those it created now, and those
    it owned before that still carry the id it recorded. What the spec no longer names is
    dropped (and so never deleted by it)."""
    result = {}
    for _, topic in desired_topics(spec):
        existing = actual.get(topic.name)
        if existing is None or not existing.topic_id:
            if owned.get(topic.name) == CLAIMED:
                result[topic.name] = CLAIMED  # not made, or not seen yet: the claim stays
            continue
        if topic.name in created or is_owned(existing, owned):
            result[topic.name] = existing.topic_id
    return result


def _not_owned(name: str, difference: str) -> Conflict:
    return Conflict(
        name,
        "TopicNotOwned",
        f"topic {name} {difference}, but this pipeline did not create it (another pipeline or "
        "team did): it is used as it is, never changed or deleted by this pipeline",
    )
