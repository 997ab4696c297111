"""Finalizers only where there is something outside the cluster to clean up: a StreamPipeline
with `deletionPolicy: Delete` (its topics). Nothing else carries one, a pipeline turned `Retain`
loses it, and one whose Kafka never answers is let go after a bounded time with a Warning Event
that names the topics left behind. Its own operator process, so that the time bound is short,
alone on the control plane where the session's operator never runs (conftest's `own_cluster`);
Kafka is the session's."""

from __future__ import annotations

import json
import os
import pathlib
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Kubectl, http_ok, wait_for

from tiers import devenv
from tiers.devenv import processes, samples

FINALIZER = "tiers.dev/finalizer"
GIVE_UP_S = 5


@pytest.fixture
def operator_here(
    own_cluster: devenv.DevCluster, own_namespace: str, tmp_path: pathlib.Path
) -> Iterator[None]:
    health = processes.free_port()
    started = processes.start(
        "operator-finalizers",
        [
            sys.executable, "-m", "tiers.operator", "--namespace", own_namespace,
            "--no-leader-election",
            "--health-port", str(health),
            "--metrics-port", str(processes.free_port()),
        ],
        log_dir=tmp_path,
        env={
            **os.environ, **own_cluster.env(),
            "TIERS_RECHECK_SECONDS": "2",
            "TIERS_TOPIC_DELETION_TIMEOUT_SECONDS": str(GIVE_UP_S),
        },
    )  # fmt: skip
    try:
        # Started before the test's waits count: a loaded machine takes a while to import it.
        processes.wait_until(
            lambda: http_ok(f"http://127.0.0.1:{health}/healthz"),
            what="waiting for the operator's liveness endpoint", timeout_s=60, watch=started,
        )  # fmt: skip
        yield
    finally:
        processes.stop(started.pid, grace_s=5)


def pipeline(bootstrap: str, suffix: str, **spec: Any) -> str:
    topics = samples.topic_names(suffix=f"-{suffix}")
    return json.dumps(
        samples.stream_pipeline("summaries", bootstrap=bootstrap, topics=topics, **spec)
    )


def finalizers(kubectl: Kubectl, namespace: str, kind: str, name: str) -> list[str]:
    found = kubectl.get(kind, name, "-n", namespace)
    return list(found["metadata"].get("finalizers") or [])


def topics_condition(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    found = kubectl.get("spipe", "summaries", "-n", namespace)
    conditions = found.get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == "TopicsReady"), {})


def test_a_retained_pipeline_carries_no_finalizer_and_is_still_rechecked(
    own_kubectl: Kubectl, dev_cluster: devenv.DevCluster, own_namespace: str, operator_here: None
) -> None:
    kubectl, namespace = own_kubectl, own_namespace
    suffix = uuid.uuid4().hex[:8]
    kubectl.apply(pipeline(dev_cluster.kafka_bootstrap, suffix), namespace=namespace)
    wait_for(
        lambda: topics_condition(kubectl, namespace).get("status") == "True",
        timeout_s=60,
        what="TopicsReady=True",
    )
    assert finalizers(kubectl, namespace, "spipe", "summaries") == []
    # The periodic re-check still runs (it is what puts a deleted child back), with no finalizer.
    kubectl.run("delete", "deployment", "summaries-stream", "-n", namespace)
    wait_for(
        lambda: (
            kubectl.run(
                "get", "deployment", "summaries-stream", "-n", namespace, check=False
            ).returncode
            == 0
        ),
        timeout_s=30,
        what="the re-check to put the deleted job back",
    )
    assert finalizers(kubectl, namespace, "spipe", "summaries") == []


def test_the_delete_policy_adds_the_finalizer_and_retain_takes_it_off(
    own_kubectl: Kubectl, dev_cluster: devenv.DevCluster, own_namespace: str, operator_here: None
) -> None:
    kubectl, namespace = own_kubectl, own_namespace
    suffix = uuid.uuid4().hex[:8]
    manifest = pipeline(dev_cluster.kafka_bootstrap, suffix, deletionPolicy="Delete")
    kubectl.apply(manifest, namespace=namespace)
    wait_for(
        lambda: FINALIZER in finalizers(kubectl, namespace, "spipe", "summaries"),
        timeout_s=30,
        what="the finalizer of a pipeline whose topics go with it",
    )

    kubectl.run(
        "patch", "spipe", "summaries", "-n", namespace, "--type=merge",
        "-p", json.dumps({"spec": {"deletionPolicy": "Retain"}}),
    )  # fmt: skip

    wait_for(
        lambda: finalizers(kubectl, namespace, "spipe", "summaries") == [],
        timeout_s=30,
        what="the finalizer to go once the topics stay",
    )


def test_a_pipeline_whose_kafka_never_answers_is_let_go_with_an_event_naming_its_topics(
    own_kubectl: Kubectl, own_namespace: str, operator_here: None
) -> None:
    kubectl, namespace = own_kubectl, own_namespace
    suffix = uuid.uuid4().hex[:8]
    unreachable = f"127.0.0.1:{processes.free_port()}"
    kubectl.apply(pipeline(unreachable, suffix, deletionPolicy="Delete"), namespace=namespace)
    wait_for(
        lambda: FINALIZER in finalizers(kubectl, namespace, "spipe", "summaries"),
        timeout_s=30,
        what="the finalizer",
    )

    kubectl.run("delete", "spipe", "summaries", "-n", namespace, "--wait=false")

    wait_for(
        lambda: (
            kubectl.run("get", "spipe", "summaries", "-n", namespace, check=False).returncode != 0
        ),
        timeout_s=GIVE_UP_S + 60,
        what="the pipeline to be let go",
    )
    events = kubectl.get("events", "-n", namespace)["items"]
    left = [e for e in events if e.get("reason") == "TopicsLeftBehind"]
    assert left, [e.get("reason") for e in events]
    assert left[0]["type"] == "Warning"
    for role in ("in", "out", "dlq"):
        assert f"{role}-{suffix}" in left[0]["message"]
