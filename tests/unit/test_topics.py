"""Planning Kafka topic changes for a StreamPipeline, without a broker."""

from __future__ import annotations

from tiers.api import stream
from tiers.operator import stream_status, topics


def spec(input_partitions: int = 6, **input_config: str) -> stream.StreamPipelineSpec:
    return stream.StreamPipelineSpec.model_validate(
        {
            "kafka": {"bootstrapServers": "k:9092"},
            "topics": {
                "input": {"name": "in", "partitions": input_partitions, "config": input_config},
                "output": {"name": "out"},
                "deadLetter": {"name": "dlq", "partitions": 1},
            },
            "model": {"endpointRef": {"name": "chat"}, "prompt": "{text}"},
            "checkpoint": {"volumeSize": "1Gi"},
        }
    )


def actual(name: str, partitions: int, replication: int = 1, **config: str) -> topics.ActualTopic:
    return topics.ActualTopic(name, partitions, replication, config, topic_id=f"id-{name}")


OURS = {"in": "id-in", "out": "id-out", "dlq": "id-dlq"}
"""The ids recorded when this pipeline created the three topics."""


def test_missing_topics_are_created() -> None:
    plan = topics.plan(spec(), {"out": actual("out", 6)})
    assert [t.name for t in plan.create] == ["in", "dlq"]
    assert plan.grow == () and plan.conflicts == ()


def test_partitions_grow_to_the_spec() -> None:
    present = {"in": actual("in", 3), "out": actual("out", 6), "dlq": actual("dlq", 1)}
    assert topics.plan(spec(), present, OURS).grow == (("in", 6),)


def test_a_topic_with_more_partitions_is_a_conflict_never_a_shrink() -> None:
    present = {"in": actual("in", 12), "out": actual("out", 6), "dlq": actual("dlq", 1)}
    plan = topics.plan(spec(), present)
    assert plan.grow == () and plan.is_noop
    (conflict,) = plan.conflicts
    assert conflict.reason == "ResourceConflict"
    assert "spec.topics.input.partitions" in conflict.message and "never shrink" in conflict.message


def test_a_different_replication_factor_is_not_supported() -> None:
    present = {
        "in": actual("in", 6, replication=3),
        "out": actual("out", 6),
        "dlq": actual("dlq", 1),
    }
    (conflict,) = topics.plan(spec(), present).conflicts
    assert conflict.reason == "NotSupported"


def test_only_configs_that_differ_are_set() -> None:
    present = {
        "in": actual("in", 6, **{"retention.ms": "1000", "cleanup.policy": "delete"}),
        "out": actual("out", 6),
        "dlq": actual("dlq", 1),
    }
    desired = spec(**{"retention.ms": "5000", "cleanup.policy": "delete"})
    assert topics.plan(desired, present, OURS).configure == (("in", {"retention.ms": "5000"}),)


def test_a_topic_someone_else_made_is_never_grown_or_reconfigured() -> None:
    present = {
        "in": actual("in", 3, **{"retention.ms": "1000"}),
        "out": actual("out", 6),
        "dlq": actual("dlq", 1),
    }
    plan = topics.plan(spec(**{"retention.ms": "5000"}), present, {"out": "id-out"})
    assert plan.is_noop
    assert [(c.topic, c.reason) for c in plan.conflicts] == [
        ("in", "TopicNotOwned"),
        ("in", "TopicNotOwned"),
    ]
    assert "spec.topics.input.partitions" in plan.conflicts[0].message
    assert "retention.ms" in plan.conflicts[1].message


def test_a_topic_made_again_by_someone_else_under_its_name_is_not_owned_any_more() -> None:
    present = {"in": actual("in", 3), "out": actual("out", 6), "dlq": actual("dlq", 1)}
    plan = topics.plan(spec(), present, {**OURS, "in": "id-of-the-topic-that-was-deleted"})
    assert plan.grow == ()
    assert [c.reason for c in plan.conflicts] == ["TopicNotOwned"]


def test_ownership_keeps_what_was_created_and_what_still_has_its_id() -> None:
    present = {"in": actual("in", 6), "out": actual("out", 6), "dlq": actual("dlq", 1)}
    owned = topics.ownership(spec(), present, owned={"out": "id-out"}, created=["dlq"])
    assert owned == {"out": "id-out", "dlq": "id-dlq"}


def test_the_topics_a_plan_creates_are_claimed_before_they_are_made() -> None:
    plan = topics.plan(spec(), {"out": actual("out", 6)}, {"out": "id-out"})
    assert topics.claimed({"out": "id-out"}, plan) == {
        "out": "id-out", "in": topics.CLAIMED, "dlq": topics.CLAIMED,
    }  # fmt: skip
    assert stream_status.owned_records(topics.claimed({}, plan))[0] == {"name": "dlq"}


def test_a_topic_made_by_a_reconcile_killed_before_it_recorded_the_id_is_still_owned() -> None:
    present = {"in": actual("in", 3), "out": actual("out", 6), "dlq": actual("dlq", 1)}
    claims = {"in": topics.CLAIMED, "out": topics.CLAIMED, "dlq": topics.CLAIMED}
    plan = topics.plan(spec(**{"retention.ms": "5000"}), present, claims)
    assert plan.grow == (("in", 6),) and plan.configure == (("in", {"retention.ms": "5000"}),)
    assert plan.conflicts == ()
    assert topics.ownership(spec(), present, owned=claims, created=[]) == OURS


def test_a_claim_on_a_topic_not_seen_yet_is_kept() -> None:
    present = {"out": actual("out", 6), "dlq": actual("dlq", 1)}
    owned = topics.ownership(spec(), present, owned={"in": topics.CLAIMED}, created=["dlq"])
    assert owned == {"in": topics.CLAIMED, "dlq": "id-dlq"}


def test_the_claim_on_a_topic_kafka_refused_to_create_goes_and_the_others_stay() -> None:
    claims = {"in": topics.CLAIMED, "out": "id-out", "dlq": topics.CLAIMED}
    assert topics.unclaimed(claims, ["in", "out"]) == {"out": "id-out", "dlq": topics.CLAIMED}


def test_a_claim_an_earlier_reconcile_made_stays_when_kafka_says_the_topic_exists() -> None:
    # The earlier create timed out but made the topic; this one's describe did not see it yet.
    before = {"in": topics.CLAIMED}
    claims = {"in": topics.CLAIMED, "out": topics.CLAIMED}
    kept = topics.unclaimed(claims, ["in", "out"], existing=["in", "out"], claimed_before=before)
    assert kept == {"in": topics.CLAIMED}, "a name taken since this reconcile's describe is not"
    refused = topics.unclaimed(claims, ["in"], existing=[], claimed_before=before)
    assert refused == {"out": topics.CLAIMED}, "refused for its settings: never made"


def test_a_matching_cluster_needs_nothing() -> None:
    present = {"in": actual("in", 6), "out": actual("out", 6), "dlq": actual("dlq", 1)}
    assert topics.plan(spec(), present).is_noop


def test_one_name_in_two_roles_is_found() -> None:
    same = spec().model_copy(
        update={"topics": stream.Topics.model_validate(
            {"input": {"name": "x"}, "output": {"name": "x"}, "deadLetter": {"name": "dlq"}}
        )}
    )  # fmt: skip
    assert topics.duplicate_names(same) == ["x"]
