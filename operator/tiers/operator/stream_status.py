"""The status a StreamPipeline should show, from what the operator observed: pure.

Conditions: `TopicsReady` (the three Kafka topics match the spec), `StreamingReady` (the Spark
job and the push gateway run: the job's Deployment, or its SparkApplication's state), and `Ready`
when both are True. Lag comes from Kafka offsets;
throughput, end-to-end latency and cost per event from the job's stats window.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any

from tiers.api import common
from tiers.operator import verdicts
from tiers.operator.manifests import spark_application
from tiers.runtime import stats

_SPARK_STATES: Mapping[str, tuple[common.ConditionStatus, str, str]] = {
    "RUNNING": ("True", "Running", "the SparkApplication's driver runs"),
    "": ("False", "Starting", "the Spark Operator has not submitted the SparkApplication yet"),
    "SUBMITTED": ("False", "Starting", "the SparkApplication is submitted, its driver starting"),
    "PENDING_RERUN": ("False", "Starting", "the SparkApplication waits to be submitted again"),
    "INVALIDATING": ("False", "Starting", "the SparkApplication changed and is resubmitted"),
    "RESUMING": ("False", "Starting", "the SparkApplication is resuming"),
    "SUSPENDING": ("False", "Suspended", "the SparkApplication is being suspended"),
    "SUSPENDED": ("False", "Suspended", "the SparkApplication is suspended"),
    "SUCCEEDING": ("False", "Completed", "the streaming job ended; it is restarted"),
    "COMPLETED": ("False", "Completed", "the streaming job ended; it is restarted"),
    "FAILING": ("False", "Failed", "the SparkApplication is failing"),
    "FAILED": ("False", "Failed", "the SparkApplication failed"),
    "SUBMISSION_FAILED": ("False", "SubmissionFailed", "spark-submit failed"),
}


def spark_operator_missing(namespace: str) -> verdicts.Verdict:
    """StreamingReady when `engine: spark-operator` meets a cluster without the Spark Operator's
    CRD: no fallback to a Deployment, since the user chose the engine (and it is immutable)."""
    return verdicts.Verdict(
        "False",
        "SparkOperatorMissing",
        f"spec.engine is spark-operator, but the cluster serves no {spark_application.CRD_NAME} "
        "(v1beta2): install the Kubeflow Spark Operator with its Helm chart (chart "
        f"spark-operator, release spark-operator, --set 'spark.jobNamespaces={{{namespace}}}'); "
        "engine is immutable, so to run without it recreate the pipeline with engine: deployment",
    )


def spark_application_verdict(app: Mapping[str, Any] | None) -> verdicts.Verdict:
    """StreamingReady for `engine: spark-operator`, from the SparkApplication's
    `status.applicationState` as the Spark Operator writes it (None: not created yet)."""
    if app is None:
        return verdicts.Verdict("Unknown", "Creating", "the SparkApplication is being created")
    state = (app.get("status") or {}).get("applicationState") or {}
    name = str(state.get("state") or "")
    known = _SPARK_STATES.get(name)
    if known is None:
        return verdicts.Verdict("Unknown", "Unknown", f"the SparkApplication is in state {name}")
    status, reason, message = known
    error = state.get("errorMessage")
    if error and status != "True":
        message = f"{message}: {error}"
    return verdicts.Verdict(status, reason, message)


@dataclasses.dataclass(frozen=True)
class Observed:
    topics: verdicts.Verdict
    streaming: verdicts.Verdict
    lag: int | None = None
    summary: stats.Summary | None = None
    owned_topics: Mapping[str, str] | None = None
    """The topics the pipeline created (name: Kafka topic id); None when Kafka was not read."""
    stats_unavailable: bool = False
    """The stats store did not answer: status keeps its last figures and marks them stale."""
    push: Mapping[str, Any] | None = None
    """The push gateway's `Address` (`serving_tls.status_address`)."""


def desired_status(
    observed: Observed, *, body: Mapping[str, Any], now: datetime.datetime
) -> dict[str, Any]:
    dependencies = {"TopicsReady": observed.topics, "StreamingReady": observed.streaming}
    ready = verdicts.ready(dependencies, ready_message="topics in place, the streaming job runs")
    status = verdicts.stamp(body, {**dependencies, "Ready": ready}, now=now)
    if observed.lag is not None:
        status["lag"] = observed.lag
    if observed.push is not None:
        status["push"] = dict(observed.push)
    if observed.owned_topics is None:
        status.update(verdicts.kept(body, "topics"))
    else:
        status["topics"] = owned_records(observed.owned_topics)
    summary = observed.summary
    if summary is None or summary.units == 0:
        status.update(
            verdicts.kept_figures(
                body, "latency", "throughput", "cost", stale=observed.stats_unavailable
            )
        )
        return status
    status["latency"] = verdicts.latency_block(summary, now=now)
    status["throughput"] = verdicts.windowed(
        {
            "eventsPerSecond": summary.units_per_second,
            "events": summary.units,
            "deadLettered": summary.errors,
        },
        now=now,
    )
    status["cost"] = verdicts.cost_block(summary, per_unit_field="perEventUSD", now=now)
    return status


def owned_records(owned: Mapping[str, str]) -> list[dict[str, str]]:
    """`status.topics`: the topics the pipeline created, by name and Kafka topic id (none for a
    topic claimed before it is made)."""
    return [
        {"name": name, "id": topic_id} if topic_id else {"name": name}
        for name, topic_id in sorted(owned.items())
    ]
