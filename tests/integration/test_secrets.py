"""No Secret's value leaves its Secret: one object of each kind with every secret-bearing field
set (and Kafka unreachable, so that failures are reported too), then every ConfigMap, status,
Event and child in the namespace, and the operator's log, are searched for every value of every
Secret in the namespace, those the operator generated included."""

from __future__ import annotations

import base64
import json
import pathlib
import uuid
from typing import Any

import yaml
from conftest import Kubectl, wait_for


def create_secret(kubectl: Kubectl, namespace: str, name: str, **values: str) -> None:
    literals = [f"--from-literal={key}={value}" for key, value in values.items()]
    kubectl.run("create", "secret", "generic", name, "-n", namespace, *literals)


def backend(secret: str) -> dict[str, Any]:
    return {
        "name": "primary", "provider": "openai-compatible", "baseURL": "http://127.0.0.1:9/v1",
        "model": "gpt-4o-mini", "apiKeySecretRef": {"name": secret, "key": "api-key"},
    }  # fmt: skip


def manifests(data: pathlib.Path) -> list[dict[str, Any]]:
    endpoint = {
        "apiVersion": "tiers.dev/v1alpha1", "kind": "RealtimeEndpoint",
        "metadata": {"name": "chat"},
        "spec": {
            "model": "gpt-4o-mini",
            "backends": [backend("endpoint-backend")],
            "cache": {"redisURLSecretRef": {"name": "cache", "key": "url"}},
            "auth": {"apiKeysSecretRef": {"name": "callers"}},
        },
    }  # fmt: skip
    pipeline_spec = {
        "kafka": {"bootstrapSecretRef": {"name": "kafka", "key": "bootstrap"}},
        "topics": {"input": {"name": "in"}, "output": {"name": "out"},
                   "deadLetter": {"name": "dlq"}},
        "checkpoint": {"volumeSize": "1Gi"},
    }  # fmt: skip
    direct = {
        "apiVersion": "tiers.dev/v1alpha1", "kind": "StreamPipeline",
        "metadata": {"name": "direct"},
        "spec": {**pipeline_spec,
                 "model": {"backend": backend("pipeline-backend"), "prompt": "Sum up: {text}"},
                 "push": {"auth": {"apiKeysSecretRef": {"name": "push-callers"}}}},
    }  # fmt: skip
    via_endpoint = {
        "apiVersion": "tiers.dev/v1alpha1", "kind": "StreamPipeline",
        "metadata": {"name": "via-endpoint"},
        "spec": {**pipeline_spec,
                 "model": {"endpointRef": {"name": "chat"}, "prompt": "Sum up: {text}"}},
    }  # fmt: skip
    batch_spec = {
        "input": {"uri": f"file://{data}/in.jsonl"},
        "output": {"uri": f"file://{data}/out"},
        "model": {"backend": backend("batch-backend"), "prompt": "Classify: {text}"},
    }
    on_spark = {
        "apiVersion": "tiers.dev/v1alpha1", "kind": "BatchJob", "metadata": {"name": "spark"},
        "spec": {**batch_spec, "engine": "spark",
                 "notification": {"webhookURL": "http://127.0.0.1:9/hook",
                                  "signingSecretRef": {"name": "signing", "key": "secret"}}},
    }  # fmt: skip
    on_databricks = {
        "apiVersion": "tiers.dev/v1alpha1", "kind": "BatchJob",
        "metadata": {"name": "databricks"},
        "spec": {**batch_spec, "engine": "databricks",
                 "databricks": {"host": "https://adb-0.invalid", "newCluster": {},
                                "tokenSecretRef": {"name": "databricks", "key": "token"}}},
    }  # fmt: skip
    return [endpoint, direct, via_endpoint, on_spark, on_databricks]


def conditions(kubectl: Kubectl, namespace: str, kind: str, name: str) -> dict[str, Any]:
    found = kubectl.get(kind, name, "-n", namespace).get("status", {}).get("conditions", [])
    return {c["type"]: c for c in found}


def secret_names(kubectl: Kubectl, namespace: str) -> set[str]:
    return {s["metadata"]["name"] for s in kubectl.get("secrets", "-n", namespace)["items"]}


def secret_values(kubectl: Kubectl, namespace: str) -> set[str]:
    values = set()
    for secret in kubectl.get("secrets", "-n", namespace)["items"]:
        for encoded in (secret.get("data") or {}).values():
            value = base64.b64decode(encoded).decode(errors="replace")
            values |= {value, value.strip()}
    return {value for value in values if len(value) >= 8}


def test_no_secret_value_reaches_a_configmap_status_event_child_or_the_log(
    kubectl: Kubectl, operator_log: pathlib.Path, namespace: str, tmp_path: pathlib.Path
) -> None:
    canary = f"leak-canary-{uuid.uuid4().hex[:12]}"
    create_secret(kubectl, namespace, "endpoint-backend", **{"api-key": f"{canary}-endpoint-key"})
    create_secret(kubectl, namespace, "cache", url=f"redis://:{canary}-pw@{canary}.invalid:6379/0")
    create_secret(kubectl, namespace, "callers", alice=f"{canary}-caller")
    create_secret(kubectl, namespace, "kafka", bootstrap=f"{canary}-broker.invalid:9092")
    create_secret(kubectl, namespace, "pipeline-backend", **{"api-key": f"{canary}-pipeline-key"})
    create_secret(kubectl, namespace, "push-callers", browser=f"{canary}-push-caller")
    create_secret(kubectl, namespace, "batch-backend", **{"api-key": f"{canary}-batch-key"})
    create_secret(kubectl, namespace, "signing", secret=f"{canary}-signing")
    create_secret(kubectl, namespace, "databricks", token=f"{canary}-databricks")
    kubectl.apply(yaml.safe_dump_all(manifests(tmp_path)), namespace=namespace)

    wait_for(
        lambda: (
            conditions(kubectl, namespace, "spipe", "direct").get("TopicsReady", {}).get("reason")
            == "KafkaUnavailable"
        ),
        timeout_s=60,
        what="the pipeline reporting that Kafka does not answer",
    )
    wait_for(
        lambda: "Ready" in conditions(kubectl, namespace, "rte", "chat"),
        timeout_s=30,
        what="the endpoint's conditions",
    )
    for name in ("spark", "databricks"):
        wait_for(
            lambda name=name: "Succeeded" in conditions(kubectl, namespace, "bjob", name),
            timeout_s=30,
            what=f"BatchJob {name}'s conditions",
        )
    wait_for(
        lambda: secret_names(kubectl, namespace).issuperset(
            {"via-endpoint-stream-key", "chat-client-keys", "direct-stream-stats"}
        ),
        timeout_s=30,
        what="the Secrets the operator generates",
    )
    message = conditions(kubectl, namespace, "spipe", "direct")["TopicsReady"]["message"]
    assert "the brokers from Secret kafka" in message, message

    values = secret_values(kubectl, namespace)
    assert any(canary in value for value in values)
    kinds = (
        "configmaps,events,deployments,jobs,services,realtimeendpoints,streampipelines,batchjobs"
    )
    places = {
        "the namespace's objects": json.dumps(kubectl.get(kinds, "-n", namespace)),
        "the operator's log": operator_log.read_text(errors="replace"),
    }
    leaks = [
        (where, value[:24]) for where, text in places.items() for value in values if value in text
    ]
    assert leaks == []
