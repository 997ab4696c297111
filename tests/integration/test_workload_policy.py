"""What the operator lets workloads do on the real local control plane: only images the admin
allowed run (spec.spark.image), checked before anything is made."""

from __future__ import annotations

import json
import uuid
from typing import Any

from confluent_kafka.admin import AdminClient
from conftest import Kubectl, wait_for

from tiers import devenv

BACKEND = {
    "name": "mock",
    "provider": "openai-compatible",
    "baseURL": "http://127.0.0.1:9/v1",
    "model": "gpt-4o-mini",
}


def condition(kubectl: Kubectl, kind: str, name: str, namespace: str, type_: str) -> Any:
    obj = kubectl.get(kind, name, "-n", namespace)
    found = obj.get("status", {}).get("conditions", [])
    return next((c for c in found if c["type"] == type_), None)


def stream_pipeline(bootstrap: str, topics: dict[str, str], image: str) -> str:
    return json.dumps(
        {
            "apiVersion": "tiers.dev/v1alpha1",
            "kind": "StreamPipeline",
            "metadata": {"name": "imaged"},
            "spec": {
                "kafka": {"bootstrapServers": bootstrap},
                "topics": {
                    "input": {"name": topics["in"]},
                    "output": {"name": topics["out"]},
                    "deadLetter": {"name": topics["dlq"]},
                },
                "model": {"backend": BACKEND, "prompt": "Summarize: {text}"},
                "checkpoint": {"volumeSize": "1Gi"},
                "spark": {"image": image},
            },
        }
    )


def batch_job(name: str, image: str) -> str:
    return json.dumps(
        {
            "apiVersion": "tiers.dev/v1alpha1",
            "kind": "BatchJob",
            "metadata": {"name": name},
            "spec": {
                "engine": "spark",
                "input": {"uri": "file:///tmp/tiers-none/in.jsonl"},
                "output": {"uri": "file:///tmp/tiers-none/out"},
                "model": {"backend": BACKEND, "prompt": "Classify: {text}"},
                "spark": {"image": image},
            },
        }
    )


def test_a_stream_pipeline_with_an_image_not_allowed_is_refused_before_its_topics_are_made(
    kubectl: Kubectl, operator: str, namespace: str, dev_cluster: devenv.DevCluster
) -> None:
    suffix = uuid.uuid4().hex[:8]
    topics = {role: f"img-{role}-{suffix}" for role in ("in", "out", "dlq")}
    kubectl.apply(
        stream_pipeline(dev_cluster.kafka_bootstrap, topics, "attacker.example/miner:1"),
        namespace=namespace,
    )
    ready = wait_for(
        lambda: condition(kubectl, "spipe", "imaged", namespace, "Ready"),
        timeout_s=30,
        what="the pipeline's Ready condition",
    )
    assert (ready["status"], ready["reason"]) == ("False", "ImageNotAllowed")
    assert "spec.spark.image attacker.example/miner:1" in ready["message"]
    admin = AdminClient({"bootstrap.servers": dev_cluster.kafka_bootstrap})
    assert not set(topics.values()) & set(admin.list_topics(timeout=10).topics)
    made = kubectl.get("deployments,configmaps,persistentvolumeclaims", "-n", namespace)
    assert [o["metadata"]["name"] for o in made["items"] if "imaged" in o["metadata"]["name"]] == []


def test_a_batch_job_runs_an_allowed_image_and_is_refused_any_other(
    kubectl: Kubectl, operator: str, namespace: str
) -> None:
    kubectl.apply(batch_job("refused", "attacker.example/miner:1"), namespace=namespace)
    kubectl.apply(batch_job("allowed", "registry.test/spark/tiers-spark:4.2"), namespace=namespace)
    refused = wait_for(
        lambda: condition(kubectl, "bjob", "refused", namespace, "Succeeded"),
        timeout_s=30,
        what="the refused job's Succeeded condition",
    )
    assert (refused["status"], refused["reason"]) == ("False", "ImageNotAllowed")
    jobs = wait_for(
        lambda: kubectl.get("jobs", "-n", namespace)["items"],
        timeout_s=30,
        what="the allowed job's run",
    )
    assert [job["metadata"]["name"].startswith("allowed") for job in jobs] == [True]
    pod = jobs[0]["spec"]["template"]["spec"]
    assert {c["image"] for c in pod["containers"]} == {"registry.test/spark/tiers-spark:4.2"}
    # Its stats Redis admits its runs (and the operator) only.
    policies = kubectl.get("networkpolicies", "-n", namespace)["items"]
    assert "allowed-batch-stats" in {policy["metadata"]["name"] for policy in policies}


def pods_of(policy: dict[str, Any]) -> list[dict[str, Any]]:
    """The peers a NetworkPolicy's one ingress rule admits."""
    peers: list[dict[str, Any]] = policy["spec"]["ingress"][0]["from"]
    return peers


def endpoint(**spec: Any) -> str:
    return json.dumps(
        {
            "apiVersion": "tiers.dev/v1alpha1",
            "kind": "RealtimeEndpoint",
            "metadata": {"name": "chat"},
            "spec": {"model": "gpt-4o-mini", "backends": [BACKEND], **spec},
        }
    )


def test_the_managed_redis_and_the_push_gateway_get_network_policies_that_admit_their_pods(
    kubectl: Kubectl, operator: str, namespace: str, dev_cluster: devenv.DevCluster
) -> None:
    kubectl.apply(endpoint(cache={"ttlSeconds": 60}), namespace=namespace)
    suffix = uuid.uuid4().hex[:8]
    topics = {role: f"np-{role}-{suffix}" for role in ("in", "out", "dlq")}
    pipeline = json.loads(stream_pipeline(dev_cluster.kafka_bootstrap, topics, image=""))
    pipeline["spec"]["model"] = {"endpointRef": {"name": "chat"}, "prompt": "Summarize: {text}"}
    del pipeline["spec"]["spark"]
    kubectl.apply(json.dumps(pipeline), namespace=namespace)

    def policy(name: str) -> Any:
        found = kubectl.run(
            "get", "networkpolicy", name, "-n", namespace, "-o", "json", "--ignore-not-found",
        ).stdout  # fmt: skip
        return json.loads(found) if found.strip() else None

    redis = wait_for(lambda: policy("chat-redis"), timeout_s=30, what="the Redis's policy")
    assert redis["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "tiers-redis"
    admitted = [
        p["podSelector"]["matchLabels"] for p in pods_of(redis) if "namespaceSelector" not in p
    ]
    assert [peer["app.kubernetes.io/name"] for peer in admitted] == ["tiers-gateway"]
    # ... and the operator, in the namespace it runs in.
    assert {"kubernetes.io/metadata.name": "tiers-system"} in [
        p["namespaceSelector"]["matchLabels"] for p in pods_of(redis) if "namespaceSelector" in p
    ]
    assert redis["metadata"]["ownerReferences"][0]["kind"] == "RealtimeEndpoint"
    push = wait_for(lambda: policy("imaged-push"), timeout_s=60, what="the push gateway's policy")
    assert push["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8086}]
    stats = wait_for(
        lambda: policy("imaged-stream-stats"), timeout_s=60, what="the stats Redis's policy"
    )
    (job,) = [
        p["podSelector"]["matchLabels"] for p in pods_of(stats) if "namespaceSelector" not in p
    ]
    assert job["app.kubernetes.io/name"] == "tiers-stream-job"
    # The job's pods are the ones the stats Redis admits: its selector matches them.
    selector = ",".join(f"{key}={value}" for key, value in job.items())
    pods = wait_for(
        lambda: kubectl.get("pods", "-n", namespace, "-l", selector)["items"],
        timeout_s=60,
        what="the stream job's pod",
    )
    assert all(pod["metadata"]["name"].startswith("imaged-stream-") for pod in pods)
