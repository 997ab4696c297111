"""The real apiserver rejects invalid objects, with a message that names the field and says what
is allowed. Each case changes one thing in a valid object."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from typing import Any

import pytest
from conftest import Kubectl

REMOVE = object()

ENDPOINT: dict[str, Any] = {
    "apiVersion": "tiers.dev/v1alpha1",
    "kind": "RealtimeEndpoint",
    "metadata": {"name": "invalid"},
    "spec": {
        "model": "gpt-4o-mini",
        "backends": [
            {"name": "primary", "provider": "openai-compatible", "model": "gpt-4o-mini",
             "baseURL": "http://mockllm:9001/v1"},
        ],
    },
}  # fmt: skip
PIPELINE: dict[str, Any] = {
    "apiVersion": "tiers.dev/v1alpha1",
    "kind": "StreamPipeline",
    "metadata": {"name": "invalid"},
    "spec": {
        "kafka": {"bootstrapServers": "kafka:9092"},
        "topics": {
            "input": {"name": "in", "partitions": 6},
            "output": {"name": "out"},
            "deadLetter": {"name": "dlq"},
        },
        "model": {"endpointRef": {"name": "chat"}, "prompt": "Summarize: {text}"},
        "checkpoint": {"volumeSize": "1Gi"},
    },
}
JOB: dict[str, Any] = {
    "apiVersion": "tiers.dev/v1alpha1",
    "kind": "BatchJob",
    "metadata": {"name": "invalid"},
    "spec": {
        "engine": "spark",
        "input": {"uri": "s3a://bucket/in/"},
        "output": {"uri": "s3a://bucket/out/"},
        "model": {"endpointRef": {"name": "chat"}, "prompt": "Classify: {body}"},
    },
}
DATABRICKS = {"host": "https://x.cloud.databricks.com", "tokenSecretRef": {"name": "d", "key": "t"}}


def changed(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of `base` with dotted paths (`spec.backends.0.provider`) set, or removed."""
    obj = copy.deepcopy(base)
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = obj
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        key: Any = int(last) if last.isdigit() else last
        if value is REMOVE:
            del node[key]
        else:
            node[key] = value
    return obj


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    obj: dict[str, Any]
    field: str
    allowed: str
    existing: dict[str, Any] | None = None
    """For an update: the valid object applied first."""


AZURE = {"name": "azure", "provider": "azure-openai", "model": "gpt-4o-mini",
         "baseURL": "https://r.openai.azure.com"}  # fmt: skip
TWO_BACKENDS = [ENDPOINT["spec"]["backends"][0], dict(ENDPOINT["spec"]["backends"][0])]

CASES = [
    Case("wrong-provider-enum", changed(ENDPOINT, spec__backends__0__provider="anthropic"),
         "spec.backends[0].provider", 'supported values: "openai", "azure-openai", "openai-compatible"'),
    Case("azure-without-deployment-and-api-version", changed(ENDPOINT, spec__backends=[AZURE]),
         "spec.backends[0]", "deployment and apiVersion are required when provider is azure-openai"),
    Case("azure-without-api-version", changed(ENDPOINT, spec__backends=[{**AZURE, "deployment": "d"}]),
         "spec.backends[0]", "deployment and apiVersion are required"),
    Case("compatible-backend-without-base-url", changed(ENDPOINT, spec__backends__0__baseURL=REMOVE),
         "spec.backends[0]", "baseURL is required"),
    Case("unknown-field", changed(ENDPOINT, spec__cacheTTL=60),
         "spec.cacheTTL", "unknown field"),
    Case("float-where-integer-expected", changed(ENDPOINT, spec__replicas=2.5),
         "spec.replicas", "must be of type integer"),
    Case("zero-replicas", changed(ENDPOINT, spec__replicas=0),
         "spec.replicas", "greater than or equal to 1"),
    Case("negative-monthly-budget", changed(ENDPOINT, spec__budget={"monthlyUSD": "-5"}),
         "spec.budget.monthlyUSD", "should match"),
    Case("money-as-a-number", changed(ENDPOINT, spec__budget={"monthlyUSD": 5}),
         "spec.budget.monthlyUSD", "must be of type string"),
    Case("no-backends", changed(ENDPOINT, spec__backends=[]),
         "spec.backends", "should have at least 1 items"),
    Case("missing-model", changed(ENDPOINT, spec__model=REMOVE),
         "spec.model", "Required value"),
    Case("duplicate-backend-names", changed(ENDPOINT, spec__backends=TWO_BACKENDS),
         "spec.backends[1]", "Duplicate value"),
    Case("autoscaling-max-below-min",
         changed(ENDPOINT, spec__autoscaling={"minReplicas": 5, "maxReplicas": 2}),
         "spec.autoscaling", "maxReplicas must be greater than or equal to minReplicas"),
    Case("negative-partitions", changed(PIPELINE, spec__topics__input__partitions=-3),
         "spec.topics.input.partitions", "greater than or equal to 1"),
    Case("partition-decrease-on-update", changed(PIPELINE, spec__topics__input__partitions=3),
         "spec.topics.input.partitions", "partitions may grow but never shrink", existing=PIPELINE),
    Case("topic-rename-on-update", changed(PIPELINE, spec__topics__output__name="out2"),
         "spec.topics.output.name", "topic name is immutable", existing=PIPELINE),
    Case("stream-engine-change-on-update", changed(PIPELINE, spec__engine="spark-operator"),
         "spec.engine", "engine is immutable", existing=changed(PIPELINE, spec__engine="deployment")),
    Case("invalid-topic-name", changed(PIPELINE, spec__topics__input__name="bad topic!"),
         "spec.topics.input.name", "should match"),
    Case("model-call-with-both-targets",
         changed(PIPELINE, spec__model__backend=ENDPOINT["spec"]["backends"][0]),
         "spec.model", "exactly one of endpointRef or backend must be set"),
    Case("chat-with-several-rows-per-request", changed(PIPELINE, spec__model__rowsPerRequest=32),
         "spec.model", "rowsPerRequest above 1 needs route completions or embeddings"),
    Case("unknown-model-route", changed(PIPELINE, spec__model__route="images"),
         "spec.model.route", 'supported values: "chat", "completions", "embeddings"'),
    Case("trigger-interval-too-short", changed(PIPELINE, spec__trigger={"intervalMs": 50}),
         "spec.trigger.intervalMs", "greater than or equal to 100"),
    Case("unknown-deletion-policy", changed(PIPELINE, spec__deletionPolicy="Orphan"),
         "spec.deletionPolicy", 'supported values: "Retain", "Delete"'),
    Case("malformed-cron-schedule", changed(JOB, spec__schedule="every day at 2"),
         "spec.schedule", "schedule must be a cron expression of five fields"),
    Case("cron-with-four-fields", changed(JOB, spec__schedule="0 2 * *"),
         "spec.schedule", "cron expression of five fields"),
    Case("batch-engine-change-on-update",
         changed(JOB, spec__engine="databricks", spec__databricks=DATABRICKS),
         "spec.engine", "engine is immutable", existing=JOB),
    Case("databricks-engine-without-workspace", changed(JOB, spec__engine="databricks"),
         "spec", "databricks is required when engine is databricks"),
    Case("negative-batch-budget", changed(JOB, spec__budget={"maxUSD": "-1"}),
         "spec.budget.maxUSD", "should match"),
    Case("unsupported-input-format", changed(JOB, spec__input__format="xml"),
         "spec.input.format", 'supported values: "jsonl", "parquet", "csv"'),
    Case("unsupported-input-uri-scheme", changed(JOB, spec__input__uri="ftp://host/data"),
         "spec.input.uri", "should match"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_invalid_object_is_rejected_naming_the_field(
    case: Case, kubectl: Kubectl, crds: None, namespace: str
) -> None:
    if case.existing is not None:
        kubectl.apply(json.dumps(case.existing), namespace=namespace)
    result = kubectl.apply(json.dumps(case.obj), namespace=namespace, check=False)
    assert result.returncode != 0, f"accepted: {result.stdout}"
    message = result.stderr
    assert re.search(rf"(^|[\s\"']){re.escape(case.field)}(?=[:\s\"'])", message), message
    assert case.allowed in message, message


def test_there_are_at_least_fifteen_rejection_cases() -> None:
    assert len(CASES) >= 15


@pytest.mark.parametrize("base", [ENDPOINT, PIPELINE, JOB], ids=lambda b: b["kind"])
def test_the_valid_bases_are_accepted(
    base: dict[str, Any], kubectl: Kubectl, crds: None, namespace: str
) -> None:
    # Guards the cases above: each fails for its one change, not for a broken base.
    kubectl.apply(json.dumps(base), namespace=namespace)
