"""One object per state each Tiers kind can be in, its status written by the operator's own
status functions, and the Argo CD health the checks in examples/argocd/ should give it.

`tiers.devenv.argocd` writes them as the checks' `testdata/` and `health_test.yaml`; being made by
`realtime_status`, `stream_status`, `batch_status` and `reconciliation` themselves, the samples
cannot drift from what the operator writes. The states: no status yet and a generation not
observed (every kind), then each kind's ways of being ready, on its way, broken and suspended.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import pathlib
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from tiers.api import batch, kinds, realtime, stream
from tiers.operator import (
    batch_status,
    images,
    realtime_status,
    reconciliation,
    stream_status,
    verdicts,
)
from tiers.operator.verdicts import Verdict
from tiers.runtime.batch import progress

JSON = dict[str, Any]
NOW = datetime.datetime(2026, 1, 15, 12, 0, tzinfo=datetime.UTC)
"""The samples' clock: fixed, so that regenerating them changes nothing."""


@dataclasses.dataclass(frozen=True)
class Sample:
    """One state of one kind: the object as the operator leaves it, and its Argo CD health."""

    name: str
    obj: JSON
    health: str
    message: str


def _example(kind: kinds.Kind, path: str) -> JSON:
    document: JSON = yaml.safe_load((examples() / path).read_text())
    assert document["kind"] == kind.kind
    return {
        "apiVersion": kinds.API_VERSION,
        "kind": kind.kind,
        "metadata": {"name": document["metadata"]["name"], "namespace": "demo", "generation": 1},
        "spec": document["spec"],
    }


def examples() -> pathlib.Path:
    return pathlib.Path(__file__).resolve().parents[3] / "examples"


def _with(obj: JSON, *, status: JSON | None = None, generation: int = 1, **spec: Any) -> JSON:
    return {
        **obj,
        "metadata": {**obj["metadata"], "generation": generation},
        "spec": {**obj["spec"], **spec},
        **({"status": status} if status is not None else {}),
    }


def _condition(obj: JSON, type_: str) -> JSON:
    found: JSON = next(c for c in obj["status"]["conditions"] if c["type"] == type_)
    return found


def _said(obj: JSON, type_: str) -> str:
    """How the checks word a condition that is not True: its reason, then its message."""
    condition = _condition(obj, type_)
    return f"{condition['reason']}: {condition['message']}"


def _unobserved(obj: JSON) -> list[Sample]:
    """What every kind shows before the operator has written (or caught up with) its status."""
    new = {key: value for key, value in obj.items() if key != "status"}
    generation = obj["metadata"]["generation"] + 1
    behind = _with(obj, generation=generation)
    return [
        Sample("progressing_no_status", new, "Progressing",
               "Waiting for the operator to observe generation 1"),
        Sample("progressing_new_generation", behind, "Progressing",
               f"Waiting for the operator to observe generation {generation}"),
    ]  # fmt: skip


# RealtimeEndpoint


def _endpoint(obj: JSON, observed: realtime_status.Observed, **spec: Any) -> JSON:
    obj = _with(obj, **spec)
    status = realtime_status.desired_status(
        realtime.RealtimeEndpointSpec.model_validate(obj["spec"]), observed, body=obj, now=NOW
    )
    return _with(obj, status=status)


def realtime_samples() -> list[Sample]:
    base = _example(kinds.REALTIME_ENDPOINT, "01-realtime/realtime-endpoint.yaml")
    url = "http://chat-gateway.demo.svc:8080/v1"
    available = {"availableReplicas": 2, "readyReplicas": 2, "desiredReplicas": 2}
    running = realtime_status.Observed(
        gateway=available, redis={"availableReplicas": 1}, managed_redis=True, url=url
    )
    month = realtime_status.MonthSpend("2026-01", decimal.Decimal("120.50"))
    spent = realtime_status.MonthSpend("2026-01", decimal.Decimal("500"))
    no_key = realtime_status.MissingSecret(
        "spec.backends[1].apiKeySecretRef", "azure-openai", "api-key"
    )
    blank_keys = realtime_status.MissingSecret("spec.auth.apiKeysSecretRef", "keys", blank=True)
    conflict = Verdict("False", "ChildConflict", "Deployment chat-gateway exists and is not ours")
    samples = {
        "healthy": (running, "Healthy"),
        "healthy_budget_spent": (dataclasses.replace(running, spend=spent), "Healthy"),
        "progressing_creating": (
            realtime_status.Observed(gateway=None, redis=None, managed_redis=True, url=url),
            "Progressing",
        ),
        "progressing_pods_starting": (
            dataclasses.replace(running, gateway={"availableReplicas": 0, "desiredReplicas": 2}),
            "Progressing",
        ),
        "degraded_secret_not_found": (
            dataclasses.replace(running, missing_secrets=(no_key,)),
            "Degraded",
        ),
        "degraded_no_api_keys": (
            dataclasses.replace(running, missing_secrets=(blank_keys,)),
            "Degraded",
        ),
        "degraded_child_conflict": (dataclasses.replace(running, apply_error=conflict), "Degraded"),
        "progressing_redis_starting": (
            dataclasses.replace(running, redis={"availableReplicas": 0}),
            "Progressing",
        ),
    }
    found = []
    for name, (observed, health) in samples.items():
        observed = dataclasses.replace(observed, spend=observed.spend or month)
        obj = _endpoint(base, observed)
        ready = _condition(obj, "Ready")
        message = ready["message"] if health == "Healthy" else _said(obj, "Ready")
        if name == "healthy_budget_spent":
            message += f"; {_condition(obj, realtime_status.BUDGET_EXCEEDED)['message']}"
        found.append(Sample(name, obj, health, message))
    suspended = _endpoint(base, running, suspend=True)
    invalid = _invalid(kinds.REALTIME_ENDPOINT, base, replicas="two")
    return [
        *found,
        Sample("suspended", suspended, "Suspended", "spec.suspend is true"),
        Sample("degraded_invalid_spec", invalid, "Degraded", _said(invalid, "Ready")),
        *_unobserved(found[0].obj),
    ]


def _invalid(kind: kinds.Kind, obj: JSON, **spec: Any) -> JSON:
    """An object stored before the apiserver checked what the operator refuses (InvalidSpec)."""
    obj = _with(obj, **spec)
    status = reconciliation.desired_status(kind, obj, pending_message="", now=NOW)
    return _with(obj, status=status)


# StreamPipeline


def _pipeline(obj: JSON, topics: Verdict, streaming: Verdict, **spec: Any) -> JSON:
    obj = _with(obj, **spec)
    stream.StreamPipelineSpec.model_validate(obj["spec"])
    observed = stream_status.Observed(topics=topics, streaming=streaming, lag=0)
    return _with(obj, status=stream_status.desired_status(observed, body=obj, now=NOW))


def stream_samples() -> list[Sample]:
    base = _example(kinds.STREAM_PIPELINE, "02-stream/stream-pipeline.yaml")
    topics = Verdict("True", "Ready", "topics events, summaries, events-dlq match the spec")
    running = Verdict("True", "Running", "the streaming job is running")

    def on_spark(state: str, error: str | None = None) -> Verdict:
        app = {"status": {"applicationState": {"state": state, "errorMessage": error}}}
        return stream_status.spark_application_verdict(app)

    samples: dict[str, tuple[Verdict, Verdict, str]] = {
        "healthy": (topics, running, "Healthy"),
        "healthy_spark_operator": (topics, on_spark("RUNNING"), "Healthy"),
        "progressing_creating": (
            topics, Verdict("Unknown", "Creating", "the streaming job is being created"),
            "Progressing",
        ),
        "progressing_job_starting": (
            topics, Verdict("False", "Unavailable", "the streaming job has no running pod"),
            "Progressing",
        ),
        "progressing_spark_submitted": (topics, on_spark("SUBMITTED"), "Progressing"),
        "progressing_waiting_for_kafka": (
            Verdict("Unknown", "WaitingForKafka", "the bootstrap servers are unknown"),
            Verdict("Unknown", "WaitingForKafka", "the bootstrap servers are unknown"),
            "Progressing",
        ),
        "degraded_kafka_unavailable": (
            Verdict("False", "KafkaUnavailable", "Kafka at kafka:9092 did not answer: timed out"),
            running, "Degraded",
        ),
        "degraded_spark_failed": (
            topics, on_spark("FAILED", "driver pod failed: OOMKilled"), "Degraded"
        ),
        "degraded_spark_operator_missing": (
            topics, stream_status.spark_operator_missing("demo"), "Degraded"
        ),
        "degraded_endpoint_not_found": (
            topics,
            Verdict("False", "EndpointNotFound",
                    "RealtimeEndpoint chat, named by spec.model.endpointRef, does not exist"),
            "Degraded",
        ),
    }  # fmt: skip
    found = []
    for name, (topic_verdict, streaming, health) in samples.items():
        obj = _pipeline(base, topic_verdict, streaming)
        ready = _condition(obj, "Ready")
        message = ready["message"] if health == "Healthy" else _said(obj, "Ready")
        found.append(Sample(name, obj, health, message))
    suspended = _pipeline(
        base, topics, Verdict("False", "Suspended", "spec.suspend is true: the job is stopped"),
        suspend=True,
    )  # fmt: skip
    refused = _refused(kinds.STREAM_PIPELINE, base, "registry.example/other/spark:3.5")
    return [
        *found,
        Sample("suspended", suspended, "Suspended", "spec.suspend is true"),
        Sample("degraded_image_not_allowed", refused, "Degraded", _said(refused, "Ready")),
        *_unobserved(found[0].obj),
    ]


def _refused(kind: kinds.Kind, obj: JSON, image: str) -> JSON:
    """A Spark image the operator will not run: refused before anything is made."""
    obj = _with(obj, spark={**obj["spec"].get("spark", {}), "image": image})
    verdict = images.refusal(image, operator_image=reconciliation.IMAGE, patterns=())
    assert verdict is not None
    primary = reconciliation.primary_condition(kind)
    return _with(obj, status=verdicts.stamp(obj, {primary: verdict}, now=NOW))


# BatchJob


def _progress(state: progress.State, *, done: int, failed: int = 0) -> progress.Progress:
    return dataclasses.replace(
        progress.Progress.starting(
            state=state, attempt=1, total=1000, skipped=0, skipped_cost_usd=decimal.Decimal(0),
            now_s=0.0,
        ),
        done=done, failed=failed, cost_usd=decimal.Decimal("0.42"), updated_s=60.0,
    )  # fmt: skip


def _job_status(*conditions: str, active: int = 0) -> JSON:
    return {
        "startTime": "2026-01-15T11:50:00Z",
        "active": active,
        "conditions": [
            {"type": type_, "status": "True", "reason": reason, "message": message}
            for type_, reason, message in (c.split("|") for c in conditions)
        ],
    }


def _run(job: JSON | None, found: progress.Progress | None) -> batch_status.RunView:
    return batch_status.run_view(
        "triage-1", job, found, scheduled_time=None, output_uri="s3a://results/triage/"
    )


def _batch(obj: JSON, observed: batch_status.Observed, **spec: Any) -> JSON:
    obj = _with(obj, **spec)
    parsed = batch.BatchJobSpec.model_validate(obj["spec"])
    status = batch_status.desired_status(observed, spec=parsed, body=obj, now=NOW)
    return _with(obj, status=status)


def batch_samples() -> list[Sample]:
    once = _with(_example(kinds.BATCH_JOB, "03-batch/spark-batch-job.yaml"), schedule=None)
    once["spec"] = {key: value for key, value in once["spec"].items() if value is not None}
    nightly = _example(kinds.BATCH_JOB, "03-batch/spark-batch-job.yaml")
    done = _run(_job_status("Complete|Completed|"), _progress("Succeeded", done=990, failed=10))
    failed = _run(
        _job_status("Failed|BackoffLimitExceeded|Job has reached the specified backoff limit"),
        _progress("Failed", done=400),
    )
    over = _run(
        _job_status("Failed|PodFailurePolicy|container batch exited with exit code 3"), None
    )
    scoring = _run({"active": 1, "startTime": "2026-01-15T11:50:00Z"},
                   _progress("Running", done=400))  # fmt: skip
    pending = _run(None, None)
    next_run = NOW + datetime.timedelta(hours=14)
    scheduled = Verdict("Unknown", "Scheduled", "the first run is due at 2026-01-16T02:00:00Z")
    no_endpoint = Verdict(
        "False", "EndpointNotFound",
        "RealtimeEndpoint chat, named by spec.model.endpointRef, does not exist",
    )  # fmt: skip
    suspended = Verdict("Unknown", "Suspended", "spec.suspend is true: no run goes")
    cases: list[tuple[str, JSON, batch_status.Observed, str, Callable[[JSON], str]]] = [
        ("healthy_succeeded", once, batch_status.Observed([done]), "Healthy", _told),
        ("progressing_pending", once, batch_status.Observed([pending]), "Progressing", _said_s),
        ("progressing_running", once, batch_status.Observed([scoring]), "Progressing", _said_s),
        ("degraded_failed", once, batch_status.Observed([failed]), "Degraded", _said_s),
        ("degraded_over_budget", once, batch_status.Observed([over]), "Degraded", _said_s),
        ("degraded_endpoint_not_found", once, batch_status.Observed([], waiting=no_endpoint),
         "Degraded", _said_s),
        ("healthy_scheduled_first_run", nightly,
         batch_status.Observed([], waiting=scheduled, next_run=next_run), "Healthy", _scheduled),
        ("healthy_scheduled_running", nightly,
         batch_status.Observed([done, dataclasses.replace(scoring, name="triage-2")],
                               next_run=next_run), "Healthy", _scheduled),
        ("healthy_scheduled_succeeded", nightly,
         batch_status.Observed([done], next_run=next_run), "Healthy", _told),
        ("degraded_scheduled_failed", nightly,
         batch_status.Observed([failed], waiting=scheduled, next_run=next_run), "Degraded",
         _said_s),
    ]  # fmt: skip
    found = [
        Sample(name, obj, health, message(obj))
        for name, spec_obj, observed, health, message in cases
        for obj in [_batch(spec_obj, observed)]
    ]
    paused = _batch(nightly, batch_status.Observed([done], waiting=suspended), suspend=True)
    databricks = _example(kinds.BATCH_JOB, "03-batch/databricks-batch-job.yaml")
    pending_release = _with(
        databricks,
        status=reconciliation.desired_status(
            kinds.BATCH_JOB, databricks, pending_message="the Databricks run is not made yet",
            now=NOW,
        ),
    )  # fmt: skip
    refused = _refused(kinds.BATCH_JOB, once, "registry.example/other/spark:3.5")
    return [
        *found,
        Sample("suspended", paused, "Suspended",
               "spec.suspend is true: no run starts until it is false again"),
        Sample("progressing_reconciling", pending_release, "Progressing",
               _said_s(pending_release)),
        Sample("degraded_image_not_allowed", refused, "Degraded", _said_s(refused)),
        *_unobserved(found[0].obj),
    ]  # fmt: skip


def _told(obj: JSON) -> str:
    return str(_condition(obj, "Succeeded")["message"])


def _said_s(obj: JSON) -> str:
    return _said(obj, "Succeeded")


def _scheduled(obj: JSON) -> str:
    return f"on schedule {obj['spec']['schedule']}: {_said_s(obj)}"


SAMPLES: Mapping[kinds.Kind, Callable[[], list[Sample]]] = {
    kinds.REALTIME_ENDPOINT: realtime_samples,
    kinds.STREAM_PIPELINE: stream_samples,
    kinds.BATCH_JOB: batch_samples,
}
