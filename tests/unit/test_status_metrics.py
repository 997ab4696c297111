"""Every object's status as Prometheus gauges: what each kind's status says, read at scrape time,
gone with the object."""

from __future__ import annotations

import datetime
from typing import Any

import prometheus_client
from prometheus_client.parser import text_string_to_metric_families

from tiers.api import kinds
from tiers.operator import status_metrics

ENDPOINT: dict[str, Any] = {
    "metadata": {"name": "chat", "namespace": "team-a", "generation": 4},
    "spec": {"objectives": {"p95Ms": 100}, "budget": {"monthlyUSD": "50.00"}},
    "status": {
        "observedGeneration": 3,
        "conditions": [{"type": "Ready", "status": "True"}],
        "latency": {
            "p50Ms": 12, "p95Ms": 140, "p99Ms": 300, "window": "5m",
            "observedAt": "2026-11-30T01:00:00+00:00",
        },
        "traffic": {"requests": 200, "requestsPerSecond": 40, "errors": 5},
        "cost": {"totalUSD": "0.120000", "perRequestUSD": "0.000600", "window": "5m",
                 "observedAt": "2026-11-30T01:00:00+00:00"},
        "budget": {"month": "2026-11", "monthUSD": "42.50", "limitUSD": "50.00",
                   "remainingUSD": "7.50"},
    },
}  # fmt: skip

PIPELINE: dict[str, Any] = {
    "metadata": {"name": "tickets", "namespace": "team-a", "generation": 1},
    "status": {
        "observedGeneration": 1,
        "conditions": [{"type": "Ready", "status": "False"}, {"type": "TopicsReady",
                                                              "status": "True"}],
        "lag": 12000,
        "throughput": {"eventsPerSecond": 900, "events": 54000, "deadLettered": 3},
    },
}  # fmt: skip

JOB: dict[str, Any] = {
    "metadata": {"name": "nightly", "namespace": "team-b", "generation": 2},
    "status": {
        "observedGeneration": 2,
        "conditions": [{"type": "Succeeded", "status": "False"}],
        "progress": {"total": 1000, "done": 1000, "failed": 20, "percent": 100},
        "cost": {"totalUSD": "1.250000", "perRecordUSD": "0.001250", "estimateUSD": "1.000000"},
        "lastRun": {"name": "nightly-1", "state": "Failed"},
    },
}  # fmt: skip


def by_name(
    found: list[status_metrics.Sample],
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(sample.metric, sample.labels): sample.value for sample in found}


def test_an_endpoints_status_becomes_its_latency_traffic_budget_and_objective() -> None:
    found = by_name(status_metrics.samples(kinds.REALTIME_ENDPOINT, ENDPOINT))
    assert found[("tiers_latency_seconds", (("quantile", "0.95"),))] == 0.14
    assert found[("tiers_realtime_latency_objective_seconds", (("quantile", "0.95"),))] == 0.1
    assert found[("tiers_realtime_error_ratio", ())] == 5 / 200
    assert found[("tiers_realtime_requests_per_second", ())] == 40
    assert found[("tiers_realtime_budget_spent_usd", ())] == 42.5
    assert found[("tiers_realtime_budget_limit_usd", ())] == 50
    assert found[("tiers_cost_usd", (("window", "5m"),))] == 0.12
    observed_at = datetime.datetime(2026, 11, 30, 1, tzinfo=datetime.UTC).timestamp()
    assert found[("tiers_status_observed_timestamp_seconds", ())] == observed_at
    assert found[("tiers_resource_generation_observed", ())] == 0  # generation 4, observed 3
    ready = "tiers_resource_condition", (("condition", "Ready"), ("status", "True"))
    not_ready = "tiers_resource_condition", (("condition", "Ready"), ("status", "False"))
    assert (found[ready], found[not_ready]) == (1, 0)


def test_a_pipelines_lag_and_a_jobs_failed_run_over_its_estimate() -> None:
    pipeline = by_name(status_metrics.samples(kinds.STREAM_PIPELINE, PIPELINE))
    assert pipeline[("tiers_stream_lag_records", ())] == 12000
    assert pipeline[("tiers_stream_events_per_second", ())] == 900
    assert pipeline[("tiers_stream_dead_lettered", ())] == 3
    job = by_name(status_metrics.samples(kinds.BATCH_JOB, JOB))
    assert job[("tiers_batch_last_run_state", (("state", "Failed"),))] == 1
    assert job[("tiers_batch_last_run_state", (("state", "Succeeded"),))] == 0
    assert job[("tiers_batch_estimate_usd", ())] == 1.0
    assert job[("tiers_cost_usd", (("window", "run"),))] == 1.25
    assert job[("tiers_batch_progress_ratio", ())] == 1.0


def test_an_object_without_status_has_no_figures_and_every_metric_is_declared() -> None:
    bare = {"metadata": {"name": "new", "namespace": "ns"}, "spec": {}}
    for kind in kinds.ALL:
        assert status_metrics.samples(kind, bare) == []
    every = [
        *status_metrics.samples(kinds.REALTIME_ENDPOINT, ENDPOINT),
        *status_metrics.samples(kinds.STREAM_PIPELINE, PIPELINE),
        *status_metrics.samples(kinds.BATCH_JOB, JOB),
    ]
    for sample in every:
        declared = status_metrics.METRICS[sample.metric]
        assert tuple(name for name, _ in sample.labels) == declared.labels


def test_a_scrape_reads_what_was_observed_and_a_deleted_object_leaves_no_series() -> None:
    collector = status_metrics.StatusCollector()
    registry = prometheus_client.CollectorRegistry()
    registry.register(collector)
    collector.observe(kinds.REALTIME_ENDPOINT, ENDPOINT)
    collector.observe(kinds.STREAM_PIPELINE, PIPELINE)

    def lag_series() -> list[dict[str, str]]:
        text = prometheus_client.generate_latest(registry).decode()
        families = {family.name: family for family in text_string_to_metric_families(text)}
        return [sample.labels for sample in families["tiers_stream_lag_records"].samples]

    assert lag_series() == [{"kind": "StreamPipeline", "namespace": "team-a", "name": "tickets"}]
    collector.forget(kinds.STREAM_PIPELINE, "team-a", "tickets")
    assert lag_series() == []
