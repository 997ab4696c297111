"""The operator turns a StreamPipeline into Kafka topics (real Kafka) and a streaming job, and
reports on both; `deletionPolicy` decides what happens to the topics on delete. With `engine:
spark-operator` the job is a SparkApplication, checked against the Spark Operator's real CRD (no
Spark Operator controller runs here: the tests write its status as it would)."""

from __future__ import annotations

import base64
import json
import pathlib
import statistics
import time
import uuid
from decimal import Decimal
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from conftest import (
    Collector,
    Kubectl,
    Processes,
    child_events,
    remove_spark_operator_crd,
    wait_for,
)

from tiers import api, devenv
from tiers.devenv import dataplane, processes
from tiers.operator import reconciliation
from tiers.operator.manifests import labels, spark_application, stream_children


@pytest.fixture
def admin(dev_cluster: devenv.DevCluster) -> AdminClient:
    return AdminClient({"bootstrap.servers": dev_cluster.kafka_bootstrap})


@pytest.fixture
def names() -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return {role: f"{role}-{suffix}" for role in ("in", "out", "dlq")}


def pipeline(bootstrap: str, names: dict[str, str], **spec: Any) -> str:
    obj = {
        "apiVersion": "tiers.dev/v1alpha1",
        "kind": "StreamPipeline",
        "metadata": {"name": "summaries"},
        "spec": {
            "kafka": {"bootstrapServers": bootstrap},
            "topics": {
                "input": {"name": names["in"], "partitions": 3},
                "output": {
                    "name": names["out"],
                    "partitions": 3,
                    "config": {"retention.ms": "3600000"},
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
    return json.dumps(obj)


def partitions(admin: AdminClient, topic: str) -> int | None:
    found = admin.list_topics(timeout=10).topics.get(topic)
    return None if found is None else len(found.partitions)


def condition(kubectl: Kubectl, namespace: str, type_: str) -> dict[str, Any]:
    obj = kubectl.get("spipe", "summaries", "-n", namespace)
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_), {})


def test_topics_are_created_and_the_job_deployed(
    kubectl: Kubectl,
    operator: str,
    namespace: str,
    dev_cluster: devenv.DevCluster,
    admin: AdminClient,
    names: dict[str, str],
) -> None:
    kubectl.apply(pipeline(dev_cluster.kafka_bootstrap, names), namespace=namespace)
    wait_for(
        lambda: condition(kubectl, namespace, "Ready").get("status") == "True",
        timeout_s=40,
        what="Ready",
    )
    assert [partitions(admin, names[r]) for r in ("in", "out", "dlq")] == [3, 3, 1]
    for kind, name in [("configmap", "summaries-stream"), ("persistentvolumeclaim", "summaries-stream"),
                       ("deployment", "summaries-stream"), ("deployment", "summaries-push"), ("service", "summaries-push")]:  # fmt: skip
        assert (
            kubectl.get(kind, name, "-n", namespace)["metadata"]["ownerReferences"][0]["kind"]
            == "StreamPipeline"
        )
    config = json.loads(
        kubectl.get("configmap", "summaries-stream", "-n", namespace)["data"]["stream.json"]
    )
    assert (config["input_topic"], config["output_topic"], config["dead_letter_topic"]) == (
        names["in"],
        names["out"],
        names["dlq"],
    )
    assert config["trigger_interval_ms"] == 500

    # Each child the operator made is in an Event on the pipeline (posted in the background).
    expected = {("ChildCreated", "ConfigMap summaries-stream"),
                ("ChildCreated", "Deployment summaries-push")}  # fmt: skip
    wait_for(
        lambda: expected <= child_events(kubectl, namespace, "StreamPipeline"),
        timeout_s=60, what=f"events {expected}",
    )  # fmt: skip


def test_status_agrees_with_the_latency_and_cost_its_consumer_measured(
    kubectl: Kubectl,
    operator: str,
    namespace: str,
    dev_cluster: devenv.DevCluster,
    names: dict[str, str],
    services: Processes,
    tmp_path: pathlib.Path,
) -> None:
    """Known events, each stamped with the time the test sent it (in the event and as its Kafka
    timestamp), through the job the operator rendered; a consumer of the output topic times each
    result end to end and prices it from its usage at gpt-4o-mini's published price (not tiers'
    price table). Status must agree: the event count exactly, p95 within 6%, cost within 1%."""
    mock = services.start("mockllm", "tiers.runtime.mockllm", "--latency-ms", "100",
                          "--jitter-ms", "200", "--seed", "7")  # fmt: skip
    model = {
        "backend": {"name": "mock", "provider": "openai-compatible", "baseURL": f"{mock}/v1",
                    "model": "gpt-4o-mini"},
        "prompt": "Summarize: {text}",
    }  # fmt: skip
    kubectl.apply(pipeline(dev_cluster.kafka_bootstrap, names, model=model), namespace=namespace)
    wait_for(lambda: condition(kubectl, namespace, "Ready").get("status") == "True",
             timeout_s=40, what="Ready")  # fmt: skip
    results = Collector(dev_cluster.kafka_bootstrap, names["out"])
    _, started = dataplane.start_stream(
        [str(dev_cluster.kubectl), f"--kubeconfig={dev_cluster.kubeconfig}"],
        namespace=namespace, pipeline="summaries", endpoint_urls={},
        redis_url=dev_cluster.redis_url, work_dir=tmp_path / "stream",
    )  # fmt: skip
    services.logs.extend(process.log for process in started)
    producer = Producer({"bootstrap.servers": dev_cluster.kafka_bootstrap, "linger.ms": 0})

    def send(keys: list[str], pause_s: float) -> None:
        for key in keys:
            sent_ms = int(time.time() * 1000)
            value = json.dumps({"text": f"review {key}", "sent_ms": sent_ms})
            producer.produce(names["in"], key=key, value=value, timestamp=sent_ms)
            producer.poll(0)
            time.sleep(pause_s)  # paced, as traffic arrives: micro-batches of every size
        assert producer.flush(10) == 0

    # A first few events meet a job still warming up (its first Kafka writes take seconds on a
    # busy machine); they count, but as fewer than 5% of events they stay above the p95.
    warm_up, measured = [f"w{i}" for i in range(3)], [f"e{i}" for i in range(150)]
    events = len(warm_up) + len(measured)
    try:
        send(warm_up, 0)
        wait_for(lambda: len(results.keys()) >= len(warm_up), timeout_s=180, what="warm-up")
        send(measured, 0.03)
        wait_for(lambda: len(results.keys()) >= events, timeout_s=180, what="every result")

        seen: list[dict[str, Any]] = [{}]

        def reported() -> dict[str, Any] | None:
            seen[0] = kubectl.get("spipe", "summaries", "-n", namespace).get("status", {})
            return seen[0] if seen[0].get("throughput", {}).get("events", 0) >= events else None

        try:
            status = wait_for(reported, timeout_s=120, what="the events in status")
        except AssertionError as error:
            raise AssertionError(f"{error}: {seen[0]}") from None
    finally:
        for process in reversed(started):
            processes.stop(process.pid)
        results.close()
    received = dict(zip((r["key"] for r in results.records), results.arrived_ms, strict=False))
    records = {record["key"]: record for record in results.records}
    assert len(results.records) == events, "each event scored once"
    latencies_ms = [received[key] - record["input"]["sent_ms"] for key, record in records.items()]
    p95 = statistics.quantiles(latencies_ms, n=100)[94]
    # gpt-4o-mini: $0.15 per million prompt tokens, $0.60 per million completion tokens.
    paid = sum(
        (r["tokens_in"] * Decimal("0.15") + r["tokens_out"] * Decimal("0.60")) / 10**6
        for r in records.values()
    )
    # Status times each event to its write (its task's end), as the consumer sees it; timed to
    # its scoring instead (`processed_ts`), the Kafka sink's write would be missing.
    scored = statistics.quantiles(
        [r["processed_ts"] - r["ingest_ts"] for r in records.values()], n=100
    )[94]
    sink = statistics.median(received[key] - r["processed_ts"] for key, r in records.items())
    print(f"stream: {events} events; p95 {p95:.0f} ms measured, {status['latency']['p95Ms']} ms in "
          f"status ({scored:.0f} ms to scoring, the sink's write a median {sink:.0f} ms more); "
          f"cost {paid} paid, {status['cost']['totalUSD']} in status")  # fmt: skip
    assert status["throughput"]["events"] == events
    assert status["throughput"]["deadLettered"] == 0
    assert status["latency"]["window"] == status["cost"]["window"] == "5m"
    assert status["latency"]["stale"] is False and status["cost"]["stale"] is False
    # Within the histogram's bound (4.4%) and the rest of a task's write after the result's.
    assert status["latency"]["p95Ms"] == pytest.approx(p95, rel=0.06), status["latency"]
    assert Decimal(status["cost"]["totalUSD"]) == pytest.approx(paid, rel=Decimal("0.01"))
    assert Decimal(status["cost"]["perEventUSD"]) == pytest.approx(
        paid / events, rel=Decimal("0.01")
    )


def test_partitions_grow_when_the_spec_grows(
    kubectl: Kubectl,
    operator: str,
    namespace: str,
    dev_cluster: devenv.DevCluster,
    admin: AdminClient,
    names: dict[str, str],
) -> None:
    kubectl.apply(pipeline(dev_cluster.kafka_bootstrap, names), namespace=namespace)
    wait_for(lambda: partitions(admin, names["in"]) == 3, timeout_s=30, what="the input topic")
    patch = {"spec": {"topics": {"input": {"name": names["in"], "partitions": 8}}}}
    kubectl.run(
        "patch", "spipe", "summaries", "-n", namespace, "--type=merge", "-p", json.dumps(patch)
    )
    wait_for(lambda: partitions(admin, names["in"]) == 8, timeout_s=30, what="8 partitions")


def test_an_existing_topic_with_more_partitions_is_a_reported_conflict(
    kubectl: Kubectl,
    operator: str,
    namespace: str,
    dev_cluster: devenv.DevCluster,
    admin: AdminClient,
    names: dict[str, str],
) -> None:
    admin.create_topics([NewTopic(names["in"], num_partitions=12, replication_factor=1)])[
        names["in"]
    ].result(10)
    kubectl.apply(pipeline(dev_cluster.kafka_bootstrap, names), namespace=namespace)
    topics = wait_for(
        lambda: (c := condition(kubectl, namespace, "TopicsReady")).get("status") == "False" and c,
        timeout_s=30,
        what="TopicsReady=False",
    )
    assert topics["reason"] == "ResourceConflict"
    assert (
        "spec.topics.input.partitions" in topics["message"] and "never shrink" in topics["message"]
    )
    assert partitions(admin, names["in"]) == 12


def test_a_missing_realtime_endpoint_is_reported(
    kubectl: Kubectl,
    operator: str,
    namespace: str,
    dev_cluster: devenv.DevCluster,
    names: dict[str, str],
) -> None:
    model = {"endpointRef": {"name": "nope"}, "prompt": "Summarize: {text}"}
    kubectl.apply(pipeline(dev_cluster.kafka_bootstrap, names, model=model), namespace=namespace)
    streaming = wait_for(
        lambda: (
            (c := condition(kubectl, namespace, "StreamingReady")).get("status") == "False" and c
        ),
        timeout_s=30,
        what="StreamingReady=False",
    )
    assert (
        streaming["reason"] == "EndpointNotFound"
        and "spec.model.endpointRef" in streaming["message"]
    )


def test_a_missing_or_blank_push_key_secret_is_reported(
    kubectl: Kubectl,
    operator: str,
    namespace: str,
    dev_cluster: devenv.DevCluster,
    names: dict[str, str],
) -> None:
    push = {"auth": {"apiKeysSecretRef": {"name": "push-keys"}}}
    kubectl.apply(pipeline(dev_cluster.kafka_bootstrap, names, push=push), namespace=namespace)

    def streaming_reason(reason: str) -> dict[str, Any] | None:
        found = condition(kubectl, namespace, "StreamingReady")
        return found if found.get("reason") == reason else None

    missing = wait_for(lambda: streaming_reason("SecretNotFound"), timeout_s=40, what="missing")
    assert missing["status"] == "False" and "spec.push.auth.apiKeysSecretRef" in missing["message"]
    kubectl.run("create", "secret", "generic", "push-keys", "-n", namespace, "--from-literal=a= ")
    blank = wait_for(lambda: streaming_reason("NoAPIKeys"), timeout_s=40, what="blank keys")
    assert "401" in blank["message"]
    kubectl.run(
        "patch", "secret", "push-keys", "-n", namespace, "--type=merge",
        "-p", '{"stringData": {"a": "sk-push"}}',
    )  # fmt: skip
    wait_for(
        lambda: condition(kubectl, namespace, "Ready").get("status") == "True",
        timeout_s=60,
        what="Ready once a key is there",
    )
    pod = kubectl.get("deployment", "summaries-push", "-n", namespace)["spec"]["template"]["spec"]
    assert [v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v] == ["push-keys"]


@pytest.mark.parametrize(("policy", "kept"), [("Retain", True), ("Delete", False)])
def test_deletion_policy_decides_whether_topics_outlive_the_pipeline(
    kubectl: Kubectl, operator: str, namespace: str, dev_cluster: devenv.DevCluster, admin: AdminClient,
    names: dict[str, str], policy: str, kept: bool,
) -> None:  # fmt: skip
    kubectl.apply(
        pipeline(dev_cluster.kafka_bootstrap, names, deletionPolicy=policy), namespace=namespace
    )
    wait_for(lambda: partitions(admin, names["dlq"]) == 1, timeout_s=30, what="the topics")
    kubectl.run("delete", "spipe", "summaries", "-n", namespace, "--timeout=30s")
    if kept:
        assert all(partitions(admin, names[r]) is not None for r in ("in", "out", "dlq"))
    else:
        wait_for(
            lambda: all(partitions(admin, names[r]) is None for r in ("in", "out", "dlq")),
            timeout_s=30,
            what="the topics to be deleted",
        )


SPARK_CRD = spark_application.CRD_NAME


def stats_password(kubectl: Kubectl, namespace: str) -> str:
    """The password the operator generated for the pipeline's stats Redis (its digest is part of
    the driver's config hash)."""
    secret = kubectl.get("secret", "summaries-stream-stats", "-n", namespace)
    return base64.b64decode(secret["data"]["password"]).decode()


def set_application_state(kubectl: Kubectl, namespace: str, state: dict[str, str]) -> None:
    """What the Spark Operator does: writes the state through the status subresource (whose
    schema requires `driverInfo`)."""
    status = {"applicationState": state, "driverInfo": {"podName": "summaries-stream-driver"}}
    kubectl.run(
        "patch", "sparkapplication", "summaries-stream", "-n", namespace, "--subresource=status",
        "--type=merge", "-p", json.dumps({"status": status}),
    )  # fmt: skip


def test_with_the_spark_operator_the_job_is_a_spark_application_that_reports_its_state(
    kubectl: Kubectl, operator: str, namespace: str, dev_cluster: devenv.DevCluster,
    names: dict[str, str], spark_operator_crd: None,
) -> None:  # fmt: skip
    manifest = pipeline(dev_cluster.kafka_bootstrap, names, engine="spark-operator")
    kubectl.apply(manifest, namespace=namespace)
    stored = wait_for(
        lambda: kubectl.run("get", "sparkapplication", "summaries-stream", "-n", namespace,
                            "-o", "json", "--ignore-not-found").stdout,
        timeout_s=40,
        what="the SparkApplication",
    )  # fmt: skip
    app = json.loads(stored)
    owner = kubectl.get("spipe", "summaries", "-n", namespace)
    rendered = stream_children.desired_children(
        labels.Owner(api.API_VERSION, api.STREAM_PIPELINE.kind, "summaries", namespace,
                     owner["metadata"]["uid"]),
        api.StreamPipelineSpec.model_validate(json.loads(manifest)["spec"]),
        image=reconciliation.IMAGE,
        stats_redis_url=dev_cluster.redis_url, endpoint_model=None,
        stats_password=stats_password(kubectl, namespace),
    )[-1]  # fmt: skip
    # The Spark Operator's schema kept every field the operator set: nothing unknown was pruned.
    assert app["spec"] == rendered["spec"]
    assert (app["spec"]["type"], app["spec"]["mode"]) == ("Python", "cluster")
    assert app["spec"]["restartPolicy"]["type"] == "Always"
    assert app["metadata"]["ownerReferences"][0]["kind"] == "StreamPipeline"
    assert kubectl.run("get", "deployment", "summaries-stream", "-n", namespace,
                       "--ignore-not-found", "-o", "name").stdout.strip() == ""  # fmt: skip
    assert kubectl.get("deployment", "summaries-push", "-n", namespace)["spec"]["replicas"] == 1

    set_application_state(kubectl, namespace, {"state": "SUBMITTED"})
    starting = wait_for(
        lambda: (
            "submitted" in (c := condition(kubectl, namespace, "StreamingReady")).get("message", "")
            and c
        ),
        timeout_s=30,
        what="StreamingReady to say the application is submitted",
    )
    assert (starting["status"], starting["reason"]) == ("False", "Starting")
    set_application_state(kubectl, namespace, {"state": "RUNNING"})
    wait_for(
        lambda: condition(kubectl, namespace, "Ready").get("status") == "True",
        timeout_s=30,
        what="Ready=True once the driver runs",
    )
    set_application_state(
        kubectl, namespace, {"state": "FAILED", "errorMessage": "driver container OOMKilled"}
    )
    failed = wait_for(
        lambda: (
            (c := condition(kubectl, namespace, "StreamingReady")).get("status") == "False" and c
        ),
        timeout_s=30,
        what="StreamingReady=False after the failure",
    )
    assert failed["reason"] == "Failed" and "driver container OOMKilled" in failed["message"]


def test_without_the_spark_operator_the_pipeline_says_what_to_install_and_runs_no_deployment(
    kubectl: Kubectl, operator: str, namespace: str, dev_cluster: devenv.DevCluster,
    names: dict[str, str],
) -> None:  # fmt: skip
    remove_spark_operator_crd(kubectl)
    kubectl.apply(
        pipeline(dev_cluster.kafka_bootstrap, names, engine="spark-operator"), namespace=namespace
    )
    streaming = wait_for(
        lambda: (
            (c := condition(kubectl, namespace, "StreamingReady")).get("status") == "False" and c
        ),
        timeout_s=40,
        what="StreamingReady=False",
    )
    assert streaming["reason"] == "SparkOperatorMissing"
    assert SPARK_CRD in streaming["message"] and "Helm chart" in streaming["message"]
    assert condition(kubectl, namespace, "Ready")["reason"] == "SparkOperatorMissing"
    deployments = kubectl.get("deployments", "-n", namespace)["items"]
    names = sorted(d["metadata"]["name"] for d in deployments)
    assert names == ["summaries-push", "summaries-stream-stats"], "no job Deployment"
