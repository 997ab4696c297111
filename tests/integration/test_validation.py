"""The real apiserver rejects invalid objects, with a message that names the field and says what
is allowed. Each case changes one thing in a valid object."""

from __future__ import annotations

import copy
import dataclasses
import json
import pathlib
import re
import uuid
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient
from conftest import Kubectl, wait_for

from tiers import devenv
from tiers.devenv import samples

ROOT = pathlib.Path(__file__).resolve().parents[2]

REMOVE = object()

ENDPOINT = samples.realtime_endpoint("invalid", base_url="http://mockllm:9001/v1")
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
JWT = {"issuer": "https://login.microsoftonline.com/t/v2.0", "audience": "api://tiers",
       "jwksURL": "https://login.microsoftonline.com/t/discovery/v2.0/keys"}  # fmt: skip
DATABRICKS = {
    "host": "https://x.cloud.databricks.com",
    "tokenSecretRef": {"name": "d", "key": "t"},
    "newCluster": {},
}
WORKSPACE_ID = ("/subscriptions/0a1b2c3d-0000-4000-8000-00000000abcd/resourceGroups/data-rg"
                "/providers/Microsoft.Databricks/workspaces/ml-prod")  # fmt: skip
AZURE_DATABRICKS = {
    "workspaceResourceId": WORKSPACE_ID,
    "azure": {"tenantId": "contoso.onmicrosoft.com",
              "clientId": "11111111-2222-4333-8444-555555555555",
              "clientSecretRef": {"name": "sp", "key": "secret"}},
    "tokenSecretRef": {"name": "d", "key": "t"},
    "newCluster": {},
}  # fmt: skip
VOLUME = "dbfs:/Volumes/main/tiers/batches/chat"
DATABRICKS_BATCH = {"engine": "databricks", "storage": {"uri": VOLUME}, "databricks": DATABRICKS}


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
ENTRA = {"tenantId": "contoso.onmicrosoft.com", "clientId": "22222222-3333-4444-8555-666666666666"}
AZURE_ENTRA = {**AZURE, "deployment": "d", "apiVersion": "2024-10-21", "entraID": ENTRA}
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
         "spec.autoscaling.maxReplicas", "maxReplicas must be greater than or equal to minReplicas"),
    Case("jwt-jwks-url-in-clear", changed(ENDPOINT, spec__auth={"jwt": {**JWT, "jwksURL": "http://idp.example/keys"}}),
         "spec.auth.jwt.jwksURL", "must be an https:// URL (http:// only to localhost"),
    Case("jwt-hmac-algorithm", changed(ENDPOINT, spec__auth={"jwt": {**JWT, "algorithms": ["HS256"]}}),
         "spec.auth.jwt.algorithms[0]", 'supported values: "RS256"'),
    Case("auth-with-neither-keys-nor-jwt", changed(ENDPOINT, spec__auth={}),
         "spec.auth", "auth needs apiKeysSecretRef or jwt"),
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
    # Mistakes that need two fields, or a value's content, to be seen (issue 14, item 15).
    Case("base-url-ending-in-the-api-path",
         changed(ENDPOINT, spec__backends__0__baseURL="http://mockllm:9001/v1/chat/completions"),
         "spec.backends[0].baseURL", "baseURL must end before the API path"),
    Case("base-url-without-a-host", changed(ENDPOINT, spec__backends__0__baseURL="http:///v1"),
         "spec.backends[0].baseURL", "should match"),
    Case("base-url-with-credentials",
         changed(ENDPOINT, spec__backends__0__baseURL="http://user:pw@mockllm:9001/v1"),
         "spec.backends[0].baseURL", "should match"),
    Case("deployment-on-a-non-azure-backend", changed(ENDPOINT, spec__backends__0__deployment="d"),
         "spec.backends[0].deployment", "deployment is only for provider azure-openai"),
    Case("entra-id-on-a-non-azure-backend", changed(ENDPOINT, spec__backends__0__entraID=ENTRA),
         "spec.backends[0].entraID", "entraID is only for provider azure-openai"),
    Case("entra-id-and-a-key",
         changed(ENDPOINT, spec__backends=[{**AZURE_ENTRA, "apiKeySecretRef": {"name": "k", "key": "k"}}]),
         "spec.backends[0].entraID", "apiKeySecretRef or entraID, not both"),
    Case("entra-id-client-id-not-a-uuid",
         changed(ENDPOINT, spec__backends=[{**AZURE_ENTRA, "entraID": {**ENTRA, "clientId": "my-app"}}]),
         "spec.backends[0].entraID.clientId", "should match"),
    Case("azure-base-url-naming-the-deployment",
         changed(ENDPOINT, spec__backends=[{**AZURE, "deployment": "d", "apiVersion": "2024-10-21",
                                            "baseURL": "https://r.openai.azure.com/openai/deployments/d"}]),
         "spec.backends[0].baseURL", "the resource's URL"),
    Case("blank-model-name", changed(ENDPOINT, spec__model=" "),
         "spec.model", "should match"),
    Case("cached-input-price-above-input-price",
         changed(ENDPOINT, spec__pricing={"inputPerMTokUSD": "0.15", "cachedInputPerMTokUSD": "0.30",
                                          "outputPerMTokUSD": "0.60"}),
         "spec.pricing.cachedInputPerMTokUSD", "must not be above inputPerMTokUSD"),
    Case("zero-monthly-budget", changed(ENDPOINT, spec__budget={"monthlyUSD": "0"}),
         "spec.budget.monthlyUSD", "must be above 0"),
    Case("semantic-cache-with-the-cache-off",
         changed(ENDPOINT, spec__cache={"enabled": False, "semantic": {"enabled": True}}),
         "spec.cache.semantic.enabled", "needs cache.enabled"),
    Case("max-backoff-below-initial-backoff",
         changed(ENDPOINT, spec__retries={"initialBackoffMs": 1000, "maxBackoffMs": 10}),
         "spec.retries.maxBackoffMs", "must be greater than or equal to initialBackoffMs"),
    Case("blank-embedding-model",
         changed(ENDPOINT, spec__cache={"semantic": {"enabled": True, "embeddingModel": ""}}),
         "spec.cache.semantic.embeddingModel", "at least 1 chars"),
    Case("empty-rate-limits", changed(ENDPOINT, spec__rateLimits={}),
         "spec.rateLimits", "needs requestsPerMinute or tokensPerMinute"),
    Case("file-checkpoint-on-the-spark-operator",
         changed(PIPELINE, spec__engine="spark-operator", spec__checkpoint={"uri": "file:///ckpt"}),
         "spec.checkpoint.uri", "lost when the Spark Operator restarts the driver"),
    Case("webhook-url-with-credentials",
         changed(JOB, spec__notification={"webhookURL": "https://user:pw@hooks.example.com/x"}),
         "spec.notification.webhookURL", "should match"),
    Case("bootstrap-servers-written-as-a-url",
         changed(PIPELINE, spec__kafka={"bootstrapServers": "PLAINTEXT://kafka:9092"}),
         "spec.kafka.bootstrapServers", "not a URL"),
    Case("bootstrap-server-with-an-impossible-port",
         changed(PIPELINE, spec__kafka={"bootstrapServers": "kafka:9092,kafka-2:70000"}),
         "spec.kafka.bootstrapServers", "should match"),
    Case("output-topic-equal-to-input-topic", changed(PIPELINE, spec__topics__output__name="in"),
         "spec.topics.output.name", "must differ from topics.input.name"),
    Case("dead-letter-topic-equal-to-output-topic",
         changed(PIPELINE, spec__topics__deadLetter__name="out"),
         "spec.topics.deadLetter.name", "must differ from topics.input.name and topics.output.name"),
    Case("prompt-without-a-placeholder", changed(PIPELINE, spec__model__prompt="Summarize this."),
         "spec.model.prompt", "needs at least one placeholder"),
    Case("prompt-with-only-escaped-braces",
         changed(PIPELINE, spec__model__prompt="Summarize {{text}}"),
         "spec.model.prompt", "needs at least one placeholder"),
    Case("prompt-with-an-unclosed-brace", changed(PIPELINE, spec__model__prompt="Summarize: {text"),
         "spec.model.prompt", "not a valid template"),
    Case("prompt-with-a-stray-closing-brace",
         changed(JOB, spec__model__prompt="Classify: {body} }"),
         "spec.model.prompt", "not a valid template"),
    Case("prompt-with-a-positional-placeholder",
         changed(PIPELINE, spec__model__prompt="Summarize: {0}"),
         "spec.model.prompt", "not a valid template"),
    Case("zero-size-checkpoint-volume", changed(PIPELINE, spec__checkpoint={"volumeSize": "0Gi"}),
         "spec.checkpoint.volumeSize", "should match"),
    Case("checkpoint-uri-without-a-bucket",
         changed(PIPELINE, spec__checkpoint={"uri": "s3a:///checkpoints"}),
         "spec.checkpoint.uri", "should match"),
    Case("zero-spark-memory", changed(PIPELINE, spec__spark={"memory": "0Gi"}),
         "spec.spark.memory", "should match"),
    Case("blank-spark-image", changed(PIPELINE, spec__spark={"image": " spark"}),
         "spec.spark.image", "should match"),
    Case("cron-minute-out-of-range", changed(JOB, spec__schedule="60 2 * * *"),
         "spec.schedule", "each within its range"),
    Case("cron-month-out-of-range", changed(JOB, spec__schedule="0 2 * 13 *"),
         "spec.schedule", "each within its range"),
    Case("cron-day-of-week-out-of-range", changed(JOB, spec__schedule="0 2 * * 8"),
         "spec.schedule", "each within its range"),
    Case("zero-batch-budget", changed(JOB, spec__budget={"maxUSD": "0.0"}),
         "spec.budget.maxUSD", "must be above 0"),
    Case("zero-executor-memory", changed(JOB, spec__spark={"executorMemory": "0Mi"}),
         "spec.spark.executorMemory", "should match"),
    Case("input-uri-without-a-bucket", changed(JOB, spec__input__uri="s3a:///in/"),
         "spec.input.uri", "should match"),
    Case("blank-id-field", changed(JOB, spec__input__idField=" "),
         "spec.input.idField", "should match"),
    Case("delta-output-at-a-file",
         changed(JOB, spec__output={"uri": "s3a://bucket/out/results.parquet", "format": "delta"}),
         "spec.output", "output.uri of format delta is the Delta table's folder"),
    Case("dbfs-uri-on-the-spark-engine", changed(JOB, spec__input__uri="dbfs:/data/in"),
         "spec", "dbfs:/ URIs need engine databricks"),
    Case("expose-by-both-an-ingress-and-an-http-route",
         changed(ENDPOINT, spec__expose={"host": "chat.example.com", "ingress": {},
                                         "httpRoute": {"parentRefs": [{"name": "public"}]}}),
         "spec.expose", "expose needs exactly one of ingress (an Ingress) or httpRoute"),
    Case("expose-by-neither", changed(ENDPOINT, spec__expose={"host": "chat.example.com"}),
         "spec.expose", "expose needs exactly one of ingress (an Ingress) or httpRoute"),
    Case("push-expose-host-given-as-a-url",
         changed(PIPELINE, spec__push={"expose": {"host": "https://events.example.com",
                                                  "ingress": {}}}),
         "spec.push.expose.host", "should match"),
    Case("databricks-host-with-an-api-path",
         changed(JOB, spec__engine="databricks", spec__databricks={
             **DATABRICKS, "host": "https://x.cloud.databricks.com/api/2.1/jobs"}),
         "spec.databricks.host", "should match"),
    Case("databricks-plain-http-beyond-loopback",
         changed(JOB, spec__engine="databricks", spec__databricks={
             **DATABRICKS, "host": "http://x.cloud.databricks.com"}),
         "spec.databricks.host", "should match"),
    Case("databricks-without-a-cluster",
         changed(JOB, spec__engine="databricks", spec__databricks={
             key: value for key, value in DATABRICKS.items() if key != "newCluster"}),
         "spec.databricks", "exactly one of databricks.newCluster"),
    Case("databricks-with-two-clusters",
         changed(JOB, spec__engine="databricks", spec__databricks={
             **DATABRICKS, "existingClusterId": "0123-456789-abcdef"}),
         "spec.databricks", "exactly one of databricks.newCluster"),
    Case("databricks-workspace-id-of-another-resource-type",
         changed(JOB, spec__engine="databricks", spec__databricks={
             **AZURE_DATABRICKS,
             "workspaceResourceId": WORKSPACE_ID.replace("Microsoft.Databricks/workspaces",
                                                         "Microsoft.Storage/storageAccounts")}),
         "spec.databricks.workspaceResourceId", "should match"),
    Case("databricks-workspace-id-without-a-subscription-id",
         changed(JOB, spec__engine="databricks", spec__databricks={
             **AZURE_DATABRICKS, "workspaceResourceId": WORKSPACE_ID.replace(
                 "0a1b2c3d-0000-4000-8000-00000000abcd", "prod")}),
         "spec.databricks.workspaceResourceId", "should match"),
    Case("databricks-both-host-and-workspace-id",
         changed(JOB, spec__engine="databricks",
                 spec__databricks={**AZURE_DATABRICKS, "host": DATABRICKS["host"]}),
         "spec.databricks", "exactly one of databricks.host"),
    Case("batch-api-spark-engine-with-a-volume-uri",
         changed(ENDPOINT, spec__batch={"storage": {"uri": VOLUME}}),
         "spec.batch", "engine spark keeps the files on storage.claimName"),
    Case("batch-api-databricks-engine-on-a-claim",
         changed(ENDPOINT, spec__batch={**DATABRICKS_BATCH, "storage": {"claimName": "b"}}),
         "spec.batch", "engine databricks in storage.uri (a Unity Catalog volume"),
    Case("batch-api-databricks-engine-without-workspace",
         changed(ENDPOINT, spec__batch={"engine": "databricks", "storage": {"uri": VOLUME}}),
         "spec.batch", "batch.databricks is required with batch.engine databricks"),
    Case("batch-api-databricks-by-host-and-resource-id",
         changed(ENDPOINT, spec__batch={**DATABRICKS_BATCH, "databricks": {
             **AZURE_DATABRICKS, "host": DATABRICKS["host"]}}),
         "spec.batch.databricks", "exactly one of databricks.host (the workspace URL) or "
         "databricks.workspaceResourceId"),
    Case("batch-api-storage-both-claim-and-uri",
         changed(ENDPOINT, spec__batch={**DATABRICKS_BATCH,
                                        "storage": {"uri": VOLUME, "claimName": "b"}}),
         "spec.batch.storage", "exactly one of batch.storage.claimName"),
    Case("batch-api-volume-uri-outside-a-volume",
         changed(ENDPOINT, spec__batch={**DATABRICKS_BATCH, "storage": {"uri": "dbfs:/tmp/b"}}),
         "spec.batch.storage.uri", "should match"),
    Case("batch-api-volume-file-over-five-gib",
         changed(ENDPOINT, spec__batch={**DATABRICKS_BATCH, "maxFileMB": 6000}),
         "spec.batch", "batch.maxFileMB must be at most 5120 with storage.uri"),
    Case("databricks-azure-identity-without-workspace-id",
         changed(JOB, spec__engine="databricks",
                 spec__databricks={**DATABRICKS, "azure": AZURE_DATABRICKS["azure"]}),
         "spec.databricks", "databricks.azure is only for databricks.workspaceResourceId"),
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


@pytest.mark.parametrize(
    ("base", "changes"),
    [
        (PIPELINE, {"spec__model__prompt": "Say {{hi}} to {name}: {text!r:>10} {a.b} {c[0]}"}),
        (PIPELINE, {"spec__kafka": {"bootstrapServers": "k-0.kafka.svc:9092,10.0.0.7:65535"}}),
        (JOB, {"spec__schedule": "*/15 0-6,22-23 ? JAN-MAR mon-fri"}),
        (JOB, {"spec__input__uri": "file:///data/in.jsonl", "spec__output__uri": "gs://b/out/"}),
        (
            JOB,
            {
                "spec__input": {"uri": "s3a://b/tickets", "format": "delta"},
                "spec__output": {"uri": "s3a://b/scored.delta", "format": "delta"},
            },
        ),
        (ENDPOINT, {"spec__backends__0__baseURL": "https://api.example.com/openai/v1"}),
        (ENDPOINT, {"spec__auth": {"jwt": {**JWT, "jwksURL": "http://127.0.0.1:8080/keys"}}}),
        (JOB, {"spec__engine": "databricks", "spec__databricks": AZURE_DATABRICKS}),
        (ENDPOINT, {"spec__backends": [AZURE_ENTRA]}),
        (ENDPOINT, {"spec__batch": DATABRICKS_BATCH}),
        (ENDPOINT, {"spec__batch": {**DATABRICKS_BATCH, "databricks": AZURE_DATABRICKS}}),
    ],
    ids=[
        "template",
        "brokers",
        "cron",
        "uris",
        "delta-tables",
        "base-url",
        "jwt-loopback-jwks",
        "azure-workspace",
        "azure-openai-entra-id",
        "batch-api-on-databricks",
        "batch-api-on-an-azure-workspace",
    ],
)
def test_values_close_to_a_rejected_one_are_accepted(
    base: dict[str, Any], changes: dict[str, Any], kubectl: Kubectl, crds: None, namespace: str
) -> None:
    # The rules above refuse mistakes, not the unusual but correct.
    kubectl.apply(json.dumps(changed(base, **changes)), namespace=namespace)


@pytest.mark.parametrize("base", [ENDPOINT, PIPELINE, JOB], ids=lambda b: b["kind"])
def test_the_valid_bases_are_accepted(
    base: dict[str, Any], kubectl: Kubectl, crds: None, namespace: str
) -> None:
    # Guards the cases above: each fails for its one change, not for a broken base.
    kubectl.apply(json.dumps(base), namespace=namespace)


PROMPT_RULES = (
    "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/model/properties/prompt"
    "/x-kubernetes-validations"
)


def test_a_stored_prompt_the_operator_cannot_render_is_invalid_spec_before_any_topic_is_made(
    kubectl: Kubectl, operator: str, namespace: str, dev_cluster: devenv.DevCluster
) -> None:
    # An object stored before the apiserver checked prompts (an older CRD): the rule is taken
    # out for the time of one create, then the generated CRD is applied again.
    crd = "streampipelines.tiers.dev"
    kubectl.run("patch", "crd", crd, "--type=json",
                "-p", json.dumps([{"op": "remove", "path": PROMPT_RULES}]))  # fmt: skip
    suffix = uuid.uuid4().hex[:8]
    topics = {"input": f"bad-in-{suffix}", "output": f"bad-out-{suffix}",
              "deadLetter": f"bad-dlq-{suffix}"}  # fmt: skip
    try:
        obj = changed(
            PIPELINE,
            spec__kafka={"bootstrapServers": dev_cluster.kafka_bootstrap},
            spec__topics={role: {"name": name} for role, name in topics.items()},
            spec__model__prompt="Summarize: {0}",
        )
        wait_for(
            lambda: (
                kubectl.apply(json.dumps(obj), namespace=namespace, check=False).returncode == 0
            ),
            timeout_s=30,
            what="the apiserver to take the CRD without the prompt's rules",
        )
    finally:
        kubectl.run("apply", "--server-side", "--force-conflicts", "-f",
                    str(ROOT / "crds" / "streampipeline.yaml"))  # fmt: skip

    def ready() -> Any:
        found = kubectl.get("spipe", "invalid", "-n", namespace).get("status", {})
        return next((c for c in found.get("conditions", []) if c["type"] == "Ready"), None)

    condition = wait_for(ready, timeout_s=30, what="the pipeline's Ready condition")
    assert (condition["status"], condition["reason"]) == ("False", "InvalidSpec")
    assert condition["message"].startswith("spec.model.prompt: placeholder {0} is positional")
    admin = AdminClient({"bootstrap.servers": dev_cluster.kafka_bootstrap})
    assert not set(topics.values()) & set(admin.list_topics(timeout=10).topics)
    made = kubectl.get("deployments,configmaps", "-n", namespace)["items"]
    assert [
        o["metadata"]["name"] for o in made if o["metadata"]["name"].startswith("invalid")
    ] == []
