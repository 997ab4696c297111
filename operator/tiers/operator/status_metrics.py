"""Every object's status as Prometheus gauges: the figures `kubectl get tiers` shows, for the
chart's alerts (PrometheusRule) and Grafana dashboards.

kube-state-metrics' way: the operator already watches the three kinds, so each watch event
refreshes the object's samples in memory (`observe`, fed by a kopf event handler per kind) and a
scrape reads them (`StatusCollector`). No API request is made for a metric, and a deleted object's
series disappear with it. Every series carries `kind`, `namespace` and `name` (the chart's
ServiceMonitor scrapes with honorLabels, so `namespace` is the object's, not the operator's).

`samples()` is pure: an object in, its samples out.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import kopf
import prometheus_client
import prometheus_client.registry
from prometheus_client.core import GaugeMetricFamily

from tiers.api import kinds

__all__ = ["METRICS", "Sample", "StatusCollector", "forget", "observe", "samples"]

CONDITION_STATUSES = ("True", "False", "Unknown")
QUANTILES = (("0.5", "p50Ms"), ("0.95", "p95Ms"), ("0.99", "p99Ms"))
RUN_STATES = ("Pending", "Estimating", "Running", "Succeeded", "Failed", "Suspended", "Stopped")


@dataclasses.dataclass(frozen=True)
class Metric:
    name: str
    help: str
    labels: tuple[str, ...] = ()
    """Labels besides kind, namespace and name."""


METRICS = {
    metric.name: metric
    for metric in (
        Metric(
            "tiers_resource_condition",
            "Each condition of the object: 1 for its current status, 0 for the others.",
            ("condition", "status"),
        ),
        Metric(
            "tiers_resource_generation_observed",
            "1 when status.observedGeneration has caught up with metadata.generation.",
        ),
        Metric(
            "tiers_latency_seconds",
            "Latency percentile over status.latency.window (per request, event or record).",
            ("quantile",),
        ),
        Metric(
            "tiers_status_observed_timestamp_seconds",
            "When the latency figures were observed (status.latency.observedAt).",
        ),
        Metric("tiers_cost_usd", "Spend over status.cost.window, in US dollars.", ("window",)),
        Metric("tiers_realtime_requests_per_second", "Requests per second (status.traffic)."),
        Metric(
            "tiers_realtime_error_ratio",
            "Requests that ended in an error over all requests (status.traffic).",
        ),
        Metric(
            "tiers_realtime_latency_objective_seconds",
            "The p95 latency the endpoint should keep (spec.objectives.p95Ms).",
            ("quantile",),
        ),
        Metric("tiers_realtime_budget_spent_usd", "This UTC month's spend (status.budget)."),
        Metric("tiers_realtime_budget_limit_usd", "The monthly budget (spec.budget.monthlyUSD)."),
        Metric("tiers_stream_lag_records", "Input events not yet read (status.lag)."),
        Metric("tiers_stream_events_per_second", "Events scored per second (status.throughput)."),
        Metric(
            "tiers_stream_dead_lettered",
            "Events sent to the dead-letter topic in the window (status.throughput).",
        ),
        Metric("tiers_batch_progress_ratio", "Share of the input scored (status.progress)."),
        Metric("tiers_batch_records_done", "Records scored so far (status.progress.done)."),
        Metric("tiers_batch_estimate_usd", "The run's cost estimated before it started."),
        Metric(
            "tiers_batch_last_run_state",
            "The state of the latest run: 1 for its state, 0 for the others.",
            ("state",),
        ),
    )
}


@dataclasses.dataclass(frozen=True)
class Sample:
    metric: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()


def samples(kind: kinds.Kind, body: Mapping[str, Any]) -> list[Sample]:
    """What `body`'s status says, as samples of `METRICS` (without kind/namespace/name)."""
    status = body.get("status") or {}
    spec = body.get("spec") or {}
    found = [*_conditions(status), *_latency(status)]
    generation = body.get("metadata", {}).get("generation")
    if generation is not None:
        caught_up = status.get("observedGeneration") == generation
        found.append(Sample("tiers_resource_generation_observed", float(caught_up)))
    cost = status.get("cost") or {}
    if "totalUSD" in cost:
        window = str(cost.get("window") or "run")
        found.append(Sample("tiers_cost_usd", _usd(cost["totalUSD"]), (("window", window),)))
    if kind is kinds.REALTIME_ENDPOINT:
        found += _realtime(spec, status)
    elif kind is kinds.STREAM_PIPELINE:
        found += _stream(status)
    else:
        found += _batch(status)
    return found


def _conditions(status: Mapping[str, Any]) -> Iterator[Sample]:
    for condition in status.get("conditions") or []:
        for value in CONDITION_STATUSES:
            labels = (("condition", str(condition.get("type"))), ("status", value))
            yield Sample(
                "tiers_resource_condition", float(condition.get("status") == value), labels
            )


def _latency(status: Mapping[str, Any]) -> Iterator[Sample]:
    latency = status.get("latency") or {}
    for quantile, field in QUANTILES:
        if field in latency:
            yield Sample("tiers_latency_seconds", latency[field] / 1000, (("quantile", quantile),))
    if latency.get("observedAt"):
        observed = datetime.datetime.fromisoformat(str(latency["observedAt"]))
        yield Sample("tiers_status_observed_timestamp_seconds", observed.timestamp())


def _realtime(spec: Mapping[str, Any], status: Mapping[str, Any]) -> Iterator[Sample]:
    traffic = status.get("traffic") or {}
    if "requestsPerSecond" in traffic:
        yield Sample("tiers_realtime_requests_per_second", float(traffic["requestsPerSecond"]))
    if traffic.get("requests"):
        ratio = traffic.get("errors", 0) / traffic["requests"]
        yield Sample("tiers_realtime_error_ratio", ratio)
    objective = (spec.get("objectives") or {}).get("p95Ms")
    if objective is not None:
        yield Sample(
            "tiers_realtime_latency_objective_seconds", objective / 1000, (("quantile", "0.95"),)
        )
    budget = status.get("budget") or {}
    if "monthUSD" in budget:
        yield Sample("tiers_realtime_budget_spent_usd", _usd(budget["monthUSD"]))
    limit = (spec.get("budget") or {}).get("monthlyUSD")
    if limit is not None:
        yield Sample("tiers_realtime_budget_limit_usd", _usd(limit))


def _stream(status: Mapping[str, Any]) -> Iterator[Sample]:
    if status.get("lag") is not None:
        yield Sample("tiers_stream_lag_records", float(status["lag"]))
    throughput = status.get("throughput") or {}
    if "eventsPerSecond" in throughput:
        yield Sample("tiers_stream_events_per_second", float(throughput["eventsPerSecond"]))
    if "deadLettered" in throughput:
        yield Sample("tiers_stream_dead_lettered", float(throughput["deadLettered"]))


def _batch(status: Mapping[str, Any]) -> Iterator[Sample]:
    progress = status.get("progress") or {}
    if "percent" in progress:
        yield Sample("tiers_batch_progress_ratio", progress["percent"] / 100)
    if "done" in progress:
        yield Sample("tiers_batch_records_done", float(progress["done"]))
    estimate = (status.get("cost") or {}).get("estimateUSD") or (status.get("estimate") or {}).get(
        "costUSD"
    )
    if estimate is not None:
        yield Sample("tiers_batch_estimate_usd", _usd(estimate))
    last_run = status.get("lastRun") or {}
    if last_run.get("state"):
        for state in RUN_STATES:
            is_it = float(last_run["state"] == state)
            yield Sample("tiers_batch_last_run_state", is_it, (("state", state),))


def _usd(amount: object) -> float:
    return float(decimal.Decimal(str(amount)))


Key = tuple[str, str, str]
"""(kind, namespace, name)"""


class StatusCollector(prometheus_client.registry.Collector):
    """The samples of every object seen, read at scrape time."""

    def __init__(self) -> None:
        self._by_object: dict[Key, list[Sample]] = {}
        self._lock = threading.Lock()  # scrapes run on the metrics server's thread

    def observe(self, kind: kinds.Kind, body: Mapping[str, Any]) -> None:
        metadata = body.get("metadata", {})
        key = (kind.kind, metadata.get("namespace", ""), metadata.get("name", ""))
        found = samples(kind, body)
        with self._lock:
            self._by_object[key] = found

    def forget(self, kind: kinds.Kind, namespace: str, name: str) -> None:
        with self._lock:
            self._by_object.pop((kind.kind, namespace, name), None)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            by_object = list(self._by_object.items())
        families = {
            metric.name: GaugeMetricFamily(
                metric.name, metric.help, labels=["kind", "namespace", "name", *metric.labels]
            )
            for metric in METRICS.values()
        }
        for (kind, namespace, name), found in by_object:
            for sample in found:
                values = [kind, namespace, name, *(value for _, value in sample.labels)]
                families[sample.metric].add_metric(values, sample.value)
        yield from families.values()


COLLECTOR = StatusCollector()
prometheus_client.REGISTRY.register(COLLECTOR)
observe = COLLECTOR.observe
forget = COLLECTOR.forget


def _keep_current(kind: kinds.Kind) -> None:
    @kopf.on.event(kinds.GROUP, kinds.VERSION, kind.plural, id=f"status-metrics-{kind.plural}")
    def keep(type: str | None, body: kopf.Body, **_: Any) -> None:
        if type == "DELETED":
            forget(kind, body.metadata.namespace or "", body.metadata.name or "")
        else:
            observe(kind, body)


for _kind in kinds.ALL:
    _keep_current(_kind)
