"""Kafka topics belong to the pipeline that created them (their Kafka topic ids recorded in its
status): a pipeline in another namespace that names the same topics uses them as they are, and
never grows, reconfigures or deletes them. Real Kafka, the operator as its own process."""

from __future__ import annotations

import asyncio
import datetime
import json
import uuid
from collections.abc import Iterator
from typing import Any

import kopf
import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from conftest import Kubectl, wait_for

from tiers import devenv
from tiers.api import kinds
from tiers.operator import kafka_admin, rechecks, stream_handlers, stream_status


@pytest.fixture
def admin(dev_cluster: devenv.DevCluster) -> AdminClient:
    return AdminClient({"bootstrap.servers": dev_cluster.kafka_bootstrap})


@pytest.fixture
def other_namespace(kubectl: Kubectl, namespace: str) -> Iterator[str]:
    name = f"{namespace[:50]}-b"
    kubectl.run("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def pipeline(bootstrap: str, names: dict[str, str], **spec: Any) -> str:
    input_partitions = spec.pop("input_partitions", 3)
    retention = spec.pop("retention", "3600000")
    return json.dumps(
        {
            "apiVersion": "tiers.dev/v1alpha1",
            "kind": "StreamPipeline",
            "metadata": {"name": "summaries"},
            "spec": {
                "kafka": {"bootstrapServers": bootstrap},
                "topics": {
                    "input": {"name": names["in"], "partitions": input_partitions},
                    "output": {
                        "name": names["out"],
                        "partitions": 1,
                        "config": {"retention.ms": retention},
                    },
                    "deadLetter": {"name": names["dlq"], "partitions": 1},
                },
                "model": {
                    "backend": {
                        "name": "mock",
                        "provider": "openai-compatible",
                        "baseURL": "http://127.0.0.1:9/v1",
                        "model": "gpt-4o-mini",
                    },
                    "prompt": "Summarize: {text}",
                },
                "checkpoint": {"volumeSize": "1Gi"},
                **spec,
            },
        }
    )


def topics_ready(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    found = kubectl.get("spipe", "summaries", "-n", namespace)
    conditions = found.get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == "TopicsReady"), {})


def wait_topics(kubectl: Kubectl, namespace: str, status: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        found = topics_ready(kubectl, namespace)
        return found if found.get("status") == status else None

    result: dict[str, Any] = wait_for(reached, timeout_s=60, what=f"TopicsReady={status}")
    return result


def partitions(admin: AdminClient, name: str) -> int | None:
    found = admin.list_topics(timeout=10).topics.get(name)
    return None if found is None else len(found.partitions)


def retention(admin: AdminClient, name: str) -> str:
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    entries = admin.describe_configs([resource])[resource].result(timeout=10)
    return str(entries["retention.ms"].value)


def test_a_pipeline_never_grows_reconfigures_or_deletes_topics_another_pipeline_made(
    kubectl: Kubectl,
    operator: str,
    dev_cluster: devenv.DevCluster,
    admin: AdminClient,
    namespace: str,
    other_namespace: str,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    names = {role: f"{role}-{suffix}" for role in ("in", "out", "dlq")}
    bootstrap = dev_cluster.kafka_bootstrap
    kubectl.apply(pipeline(bootstrap, names), namespace=namespace)
    wait_topics(kubectl, namespace, "True")
    owned = kubectl.get("spipe", "summaries", "-n", namespace)["status"]["topics"]
    assert sorted(topic["name"] for topic in owned) == sorted(names.values())

    # Another team's pipeline names the same topics, wants more partitions and another
    # retention, and would delete its topics with it.
    kubectl.apply(
        pipeline(bootstrap, names, input_partitions=6, retention="60000", deletionPolicy="Delete"),
        namespace=other_namespace,
    )
    refused = wait_topics(kubectl, other_namespace, "False")

    assert refused["reason"] == "TopicNotOwned"
    assert names["in"] in refused["message"] and "did not create it" in refused["message"]
    assert partitions(admin, names["in"]) == 3
    assert retention(admin, names["out"]) == "3600000"
    assert not kubectl.get("spipe", "summaries", "-n", other_namespace)["status"].get("topics")

    kubectl.run("delete", "spipe", "summaries", "-n", other_namespace, "--timeout=60s")
    assert all(partitions(admin, name) is not None for name in names.values())
    events = kubectl.get("events", "-n", other_namespace)["items"]
    kept = [e for e in events if e.get("reason") == "TopicsKept"]
    assert kept and names["out"] in kept[0]["message"]
    # The pipeline that made them still finds them as it left them, its own.
    assert topics_ready(kubectl, namespace)["status"] == "True"


def test_a_pipeline_deletes_only_the_topics_it_created(
    kubectl: Kubectl,
    operator: str,
    dev_cluster: devenv.DevCluster,
    admin: AdminClient,
    namespace: str,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    names = {role: f"{role}-{suffix}" for role in ("in", "out", "dlq")}
    existing = NewTopic(names["out"], num_partitions=1, config={"retention.ms": "3600000"})
    admin.create_topics([existing])[names["out"]].result(timeout=30)

    kubectl.apply(
        pipeline(dev_cluster.kafka_bootstrap, names, deletionPolicy="Delete"), namespace=namespace
    )
    wait_topics(kubectl, namespace, "True")
    owned = kubectl.get("spipe", "summaries", "-n", namespace)["status"]["topics"]
    assert sorted(topic["name"] for topic in owned) == sorted([names["in"], names["dlq"]])

    kubectl.run("delete", "spipe", "summaries", "-n", namespace, "--timeout=60s")

    wait_for(
        lambda: partitions(admin, names["in"]) is None and partitions(admin, names["dlq"]) is None,
        timeout_s=30,
        what="the pipeline's own topics to be deleted",
    )
    assert partitions(admin, names["out"]) == 1


def test_a_topic_kafka_refused_to_create_is_not_claimed_so_one_made_by_hand_stays_foreign(
    kubectl: Kubectl, operator: str, dev_cluster: devenv.DevCluster, admin: AdminClient,
    namespace: str,
) -> None:  # fmt: skip
    """The one broker cannot hold two replicas: Kafka refuses the input topic. Its claim goes,
    so the topic an admin then makes by hand is never taken for the pipeline's own."""
    suffix = uuid.uuid4().hex[:8]
    names = {role: f"{role}-{suffix}" for role in ("in", "out", "dlq")}
    obj = json.loads(pipeline(dev_cluster.kafka_bootstrap, names))
    obj["spec"]["topics"]["input"]["replicationFactor"] = 2
    kubectl.apply(json.dumps(obj), namespace=namespace)
    refused = wait_topics(kubectl, namespace, "False")
    assert refused["reason"] == "KafkaError" and "replication" in refused["message"].lower()

    def recorded() -> set[str]:
        status = kubectl.get("spipe", "summaries", "-n", namespace).get("status") or {}
        return {topic["name"] for topic in status.get("topics") or []}

    wait_for(lambda: recorded() == {names["out"], names["dlq"]}, timeout_s=30,
             what="only the two topics Kafka made recorded")  # fmt: skip
    for future in admin.create_topics([NewTopic(names["in"], num_partitions=1)]).values():
        future.result(10)
    # The next re-check (every 3 s) finds it: someone else's, so never grown to the spec's 3.
    wait_for(
        lambda: "did not create it" in topics_ready(kubectl, namespace).get("message", ""),
        timeout_s=60, what="the hand-made topic reported as not the pipeline's",
    )  # fmt: skip
    assert names["in"] not in recorded() and partitions(admin, names["in"]) == 1


def test_the_topics_a_reconcile_made_beside_the_deletion_are_deleted_with_the_pipeline(
    dev_cluster: devenv.DevCluster, admin: AdminClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The delete handler waits for a reconcile running beside it and deletes the topics that
    reconcile recorded, not only those the deleted object's own body knew (real Kafka, the
    handler in this process)."""
    suffix = uuid.uuid4().hex[:8]
    names = {role: f"{role}-{suffix}" for role in ("in", "out", "dlq")}
    for future in admin.create_topics(
        [NewTopic(n, num_partitions=1) for n in names.values()]
    ).values():
        future.result(10)
    bootstrap = dev_cluster.kafka_bootstrap
    made = asyncio.run(kafka_admin.describe(bootstrap, list(names.values())))
    spec = json.loads(pipeline(bootstrap, names, deletionPolicy="Delete"))["spec"]
    uid = f"uid-{suffix}"
    deleted = {
        "apiVersion": kinds.API_VERSION, "kind": kinds.STREAM_PIPELINE.kind,
        "metadata": {"name": "summaries", "namespace": "default", "uid": uid,
                     "resourceVersion": "5", "deletionTimestamp": "2026-01-01T00:00:00Z"},
        "spec": spec, "status": {},
    }  # fmt: skip
    checks = rechecks.Rechecks(kinds.STREAM_PIPELINE, reconcile=None, interval=60)  # type: ignore[arg-type]
    monkeypatch.setitem(rechecks._by_kind, kinds.STREAM_PIPELINE.kind, checks)
    checks.bodies[uid] = deleted  # type: ignore[assignment]
    owned = {name: topic.topic_id for name, topic in made.items()}

    async def both() -> None:
        async def reconcile() -> None:  # made the topics and recorded them as the user deleted
            async with checks.reconciling(uid):
                await asyncio.sleep(0.3)
                metadata = {**deleted["metadata"], "resourceVersion": "6"}
                records = stream_status.owned_records(owned)
                checks.learn({**deleted, "metadata": metadata, "status": {"topics": records}})

        going = asyncio.create_task(reconcile())
        await asyncio.sleep(0.05)
        await stream_handlers.delete_stream_pipeline(
            body=kopf.Body(deleted),
            runtime=datetime.timedelta(0),  # type: ignore[arg-type]
        )
        await going

    asyncio.run(both())
    wait_for(
        lambda: not set(names.values()) & set(admin.list_topics(timeout=10).topics),
        timeout_s=30, what="the pipeline's topics deleted",
    )  # fmt: skip
