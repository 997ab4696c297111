"""Conditions from verdicts, and the latency and cost blocks of status: what every kind's
status function shares. Pure."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any

from tiers.api import common
from tiers.operator import conditions
from tiers.runtime import pricing, stats

WINDOW = "5m"
WINDOW_SECONDS = 300

RECONCILING = "Reconciling"
STALLED = "Stalled"
STALLED_REASONS = frozenset(
    {
        "InvalidSpec",
        "ChildConflict",
        "ImageNotAllowed",
        "HostNotAllowed",
        "SecretNotFound",
        "NoAPIKeys",
        "EndpointNotFound",
        "SparkOperatorMissing",
        "GatewayAPIMissing",
        "CertManagerMissing",
        "TopicNotOwned",
        "ResourceConflict",
        "NotSupported",
        "Failed",
    }
)
"""Reasons that only the user can clear (a spec, a Secret, a name, an install, a SparkApplication
its operator gave up on): `Stalled`."""
RESTING_REASONS = frozenset({"Suspended", "Scheduled"})
"""Reasons of an object that is as its spec asks, with nothing under way: neither condition."""


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One condition's value, before it is stamped with times and generations."""

    status: common.ConditionStatus
    reason: str
    message: str


def ready(dependencies: Mapping[str, Verdict], *, ready_message: str) -> Verdict:
    """`Ready` is True when every dependency is; otherwise it carries the first False one (or
    the first Unknown), prefixed with the condition it comes from."""
    failing = [(type_, v) for type_, v in dependencies.items() if v.status != "True"]
    if not failing:
        return Verdict("True", "Ready", ready_message)
    type_, verdict = next(((t, v) for t, v in failing if v.status == "False"), failing[0])
    return Verdict(verdict.status, verdict.reason, f"{type_}: {verdict.message}")


def progress(primary_type: str, primary: Verdict, *, scheduled: bool = False) -> dict[str, Verdict]:
    """`Reconciling` and `Stalled`, the conditions kstatus reads (and with it `kubectl wait`,
    Flux and Argo CD's checks): Reconciling=True while the operator works toward the spec,
    Stalled=True when it cannot get there without the user (a reason in `STALLED_REASONS`, or
    a BatchJob's failed run). Both False once the object is Ready or Succeeded, suspended or
    waiting for its schedule; and on a schedule (`scheduled`), while a run goes, as kstatus and
    Argo CD judge a CronJob. Together with observedGeneration they give kstatus InProgress,
    Failed or Current."""
    if primary.status == "True":
        done = f"{primary_type} is True"
        return {
            RECONCILING: Verdict("False", primary.reason, done),
            STALLED: Verdict("False", primary.reason, done),
        }
    failed_run = primary_type == "Succeeded" and primary.status == "False"
    if primary.reason in STALLED_REASONS or failed_run:
        return {
            RECONCILING: Verdict("False", primary.reason, "waiting for a change by the user"),
            STALLED: Verdict("True", primary.reason, primary.message),
        }
    if primary.reason in RESTING_REASONS or scheduled:
        return {
            RECONCILING: Verdict("False", primary.reason, primary.message),
            STALLED: Verdict("False", primary.reason, primary.message),
        }
    return {
        RECONCILING: Verdict("True", primary.reason, primary.message),
        STALLED: Verdict("False", primary.reason, "not stalled: the operator is working on it"),
    }


def stamp(
    body: Mapping[str, Any],
    verdicts: Mapping[str, Verdict],
    *,
    now: datetime.datetime,
    scheduled: bool = False,
) -> dict[str, Any]:
    """observedGeneration, conditions (with `progress`' from the primary one) and a printable
    state from the verdicts, keeping each condition's lastTransitionTime while its status
    holds."""
    generation = body.get("metadata", {}).get("generation")
    current = conditions.parse(body.get("status", {}).get("conditions"))
    primary_type = "Ready" if "Ready" in verdicts else "Succeeded"
    primary = verdicts.get(primary_type)
    stamped = dict(verdicts)
    if primary is not None:
        stamped.update(progress(primary_type, primary, scheduled=scheduled))
    for type_, verdict in stamped.items():
        current = conditions.set_condition(
            current,
            type=type_,
            status=verdict.status,
            reason=verdict.reason,
            message=verdict.message,
            generation=generation,
            now=now,
        )
    state = None if primary is None else primary.reason
    return {
        "observedGeneration": generation,
        "conditions": conditions.to_wire(current),
        "state": state,
    }


def windowed(
    figures: dict[str, Any], *, now: datetime.datetime, window: str = WINDOW, stale: bool = False
) -> dict[str, Any]:
    """`figures` over `window`, saying which window, when they were read, and whether they are
    stale (read, but no longer updated by what counts them)."""
    return {**figures, "window": window, "observedAt": _timestamp(now), "stale": stale}


def latency_block(summary: stats.Summary, *, now: datetime.datetime) -> dict[str, Any]:
    percentiles = {"p50Ms": summary.p50_ms, "p95Ms": summary.p95_ms, "p99Ms": summary.p99_ms}
    return windowed(percentiles, now=now)


def cost_block(
    summary: stats.Summary, *, per_unit_field: str, now: datetime.datetime
) -> dict[str, Any]:
    spent = {
        "totalUSD": pricing.format_usd(summary.cost_usd),
        per_unit_field: pricing.format_usd(summary.cost_per_unit_usd),
    }
    return windowed(spent, now=now)


def kept(body: Mapping[str, Any], *fields: str) -> dict[str, Any]:
    """The named blocks of the current status: a window without traffic keeps the last numbers."""
    previous = body.get("status", {})
    return {field: previous[field] for field in fields if field in previous}


def kept_figures(body: Mapping[str, Any], *fields: str, stale: bool) -> dict[str, Any]:
    """The named figures of the current status, those over a window marked `stale` (the stats
    store did not answer) or not (it answered; the window saw no traffic)."""
    return {
        field: {**block, "stale": stale} if "window" in block else block
        for field, block in kept(body, *fields).items()
    }


def _timestamp(now: datetime.datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")
