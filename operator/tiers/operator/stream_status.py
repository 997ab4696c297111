"""The status a StreamPipeline should show, from what the operator observed: pure.

Conditions: `TopicsReady` (the three Kafka topics match the spec), `StreamingReady` (the Spark
job and the push gateway run), and `Ready` when both are True. Lag comes from Kafka offsets;
throughput, end-to-end latency and cost per event from the job's stats window.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any

from tiers.operator import verdicts
from tiers.runtime import stats


@dataclasses.dataclass(frozen=True)
class Observed:
    topics: verdicts.Verdict
    streaming: verdicts.Verdict
    lag: int | None = None
    summary: stats.Summary | None = None


def desired_status(
    observed: Observed, *, body: Mapping[str, Any], now: datetime.datetime
) -> dict[str, Any]:
    dependencies = {"TopicsReady": observed.topics, "StreamingReady": observed.streaming}
    ready = verdicts.ready(dependencies, ready_message="topics in place, the streaming job runs")
    status = verdicts.stamp(body, {**dependencies, "Ready": ready}, now=now)
    if observed.lag is not None:
        status["lag"] = observed.lag
    summary = observed.summary
    if summary is None or summary.units == 0:
        status.update(verdicts.kept(body, "latency", "throughput", "cost"))
        return status
    status["latency"] = verdicts.latency_block(summary, now=now)
    status["throughput"] = {
        "eventsPerSecond": summary.units_per_second,
        "events": summary.units,
        "deadLettered": summary.errors,
    }
    status["cost"] = verdicts.cost_block(summary, per_unit_field="perEventUSD", now=now)
    return status
