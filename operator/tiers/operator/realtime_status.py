"""The status a RealtimeEndpoint should show, from what the operator observed: pure.

Conditions: `ProxyReady` (gateway pods), `CacheReady` (Redis), `BackendReady` (referenced
Secrets, upstream errors), and `Ready` when all three are True; `BudgetExceeded` while
spec.budget is set. Latency, traffic, cache hit ratio and cost come from the gateways' shared
stats window; `budget` from the month's spend counter the gateways enforce the budget with.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
from collections.abc import Mapping
from typing import Any

from tiers.api import realtime
from tiers.operator import verdicts
from tiers.operator.manifests import serving_tls
from tiers.operator.verdicts import Verdict
from tiers.runtime import pricing, stats

WINDOW = verdicts.WINDOW
WINDOW_SECONDS = verdicts.WINDOW_SECONDS
BUDGET_EXCEEDED = "BudgetExceeded"
# Upstream errors above this share of a window's requests mark the backends unhealthy.
BACKEND_ERROR_SHARE = 0.5


@dataclasses.dataclass(frozen=True)
class MissingSecret:
    """A Secret (or one key of it) that the spec refers to but the namespace lacks, or one
    whose values are all blank (`blank`: it exists but holds nothing usable)."""

    field: str
    name: str
    key: str | None = None
    blank: bool = False

    @property
    def message(self) -> str:
        what = f"Secret {self.name}" + (f" with key {self.key}" if self.key else "")
        if self.blank:
            return f"{what}, named by {self.field}, holds no non-blank value"
        return f"{what}, named by {self.field}, does not exist"


@dataclasses.dataclass(frozen=True)
class MonthSpend:
    """What the endpoint's gateways spent in one UTC month, from their shared counter."""

    month: str
    spent_usd: decimal.Decimal


@dataclasses.dataclass(frozen=True)
class Observed:
    """What the operator read from the cluster and from the stats store for one endpoint."""

    gateway: Mapping[str, Any] | None
    """The gateway Deployment's status (with `desiredReplicas`), None if absent."""
    redis: Mapping[str, Any] | None
    """The managed Redis Deployment's status; None if absent or not managed."""
    managed_redis: bool
    missing_secrets: tuple[MissingSecret, ...] = ()
    apply_error: Verdict | None = None
    """Why the children could not be applied (ApplyFailed, ChildConflict)."""
    summary: stats.Summary | None = None
    url: str | None = None
    """The gateway's in-cluster URL."""
    external_url: str | None = None
    """Its URL outside the cluster (spec.expose at one host); None when not exposed."""
    spend: MonthSpend | None = None
    """This month's spend; None without spec.budget or when Redis did not answer."""
    stats_unavailable: bool = False
    """The stats store did not answer: status keeps its last figures and marks them stale."""
    serving_ca: str | None = None
    """With spec.tls, the CA certificates (PEM) its clients verify the gateway with."""


def desired_status(
    spec: realtime.RealtimeEndpointSpec,
    observed: Observed,
    *,
    body: Mapping[str, Any],
    now: datetime.datetime,
) -> dict[str, Any]:
    dependencies = {
        "ProxyReady": proxy_verdict(spec, observed),
        "CacheReady": cache_verdict(spec, observed),
        "BackendReady": backend_verdict(observed),
    }
    url = observed.external_url or observed.url
    ready = verdicts.ready(dependencies, ready_message=f"serving at {url}")
    reported = {**dependencies, "Ready": ready}
    if spec.budget is not None:
        reported[BUDGET_EXCEEDED] = budget_verdict(spec.budget, observed.spend)
    status = verdicts.stamp(body, reported, now=now)
    if spec.budget is None:
        # A budget taken out of the spec takes its condition with it, not a stale verdict.
        status["conditions"] = [c for c in status["conditions"] if c["type"] != BUDGET_EXCEEDED]
    status["url"] = url
    status["address"] = (
        None
        if observed.url is None
        else serving_tls.status_address(observed.url, spec.tls, observed.serving_ca)
    )
    status["readyReplicas"] = int((observed.gateway or {}).get("readyReplicas") or 0)
    status.update(traffic_blocks(observed.summary, body, now, stale=observed.stats_unavailable))
    status.update(budget_blocks(spec.budget, observed.spend, body))
    return status


def proxy_verdict(spec: realtime.RealtimeEndpointSpec, observed: Observed) -> Verdict:
    if observed.apply_error is not None:
        return observed.apply_error
    if spec.suspend:
        return Verdict("False", "Suspended", "spec.suspend is true: the gateway is scaled to zero")
    missing = _missing(observed, "spec.auth")
    if missing:
        # Auth fails closed: the gateways refuse every call (401) until a key is there.
        blank = any(m.blank for m in observed.missing_secrets if m.field.startswith("spec.auth"))
        return Verdict(
            "False",
            "NoAPIKeys" if blank else "SecretNotFound",
            f"{missing}: every call is refused with 401 until it holds a key",
        )
    # The pods mount the certificate (cert-manager issues it) and read the Batch API's
    # workspace token from its Secret: they start once it is there.
    missing = _missing(observed, "spec.tls") or _missing(observed, "spec.batch")
    if missing:
        return Verdict("False", "SecretNotFound", f"{missing}: the gateway serves once it does")
    if observed.gateway is None:
        return Verdict("Unknown", "Creating", "the gateway Deployment is being created")
    desired = observed.gateway.get("desiredReplicas") or spec.replicas
    available = int(observed.gateway.get("availableReplicas") or 0)
    if available >= 1:
        return Verdict("True", "Available", f"{available}/{desired} gateway replicas available")
    return Verdict("False", "Unavailable", f"0/{desired} gateway replicas available")


def cache_verdict(spec: realtime.RealtimeEndpointSpec, observed: Observed) -> Verdict:
    if not spec.cache.enabled and not observed.managed_redis:
        return Verdict("True", "Disabled", "spec.cache.enabled is false")
    if spec.cache.redis_url_secret_ref is not None:
        missing = _missing(observed, "spec.cache")
        if missing:
            return Verdict("False", "SecretNotFound", missing)
        return Verdict("True", "External", "using the Redis named by spec.cache.redisURLSecretRef")
    if observed.redis is None:
        return Verdict("Unknown", "Creating", "the managed Redis is being created")
    if int(observed.redis.get("availableReplicas") or 0) >= 1:
        return Verdict("True", "Available", "the managed Redis is available")
    return Verdict("False", "Unavailable", "the managed Redis has no available replica")


def backend_verdict(observed: Observed) -> Verdict:
    missing = _missing(observed, "spec.backends")
    if missing:
        return Verdict("False", "SecretNotFound", missing)
    summary = observed.summary
    if (
        summary is not None
        and summary.units
        and summary.errors / summary.units > BACKEND_ERROR_SHARE
    ):
        return Verdict(
            "False",
            "UpstreamErrors",
            f"{summary.errors} of {summary.units} requests failed upstream in the last {WINDOW}",
        )
    return Verdict("True", "Configured", "backends configured; their keys are present")


def _missing(observed: Observed, field_prefix: str) -> str:
    return "; ".join(
        m.message for m in observed.missing_secrets if m.field.startswith(field_prefix)
    )


def traffic_blocks(
    summary: stats.Summary | None,
    body: Mapping[str, Any],
    now: datetime.datetime,
    *,
    stale: bool = False,
) -> dict[str, Any]:
    """latency, traffic, cache and cost; kept from the last status when no traffic was seen or
    the stats could not be read (`stale`: then said so)."""
    if summary is None or summary.units == 0:
        return verdicts.kept_figures(body, "latency", "traffic", "cache", "cost", stale=stale)
    blocks: dict[str, Any] = {
        "latency": verdicts.latency_block(summary, now=now),
        "traffic": verdicts.windowed(
            {
                "requests": summary.units,
                "requestsPerSecond": summary.units_per_second,
                "errors": summary.errors,
            },
            now=now,
        ),
        "cost": verdicts.cost_block(summary, per_unit_field="perRequestUSD", now=now),
    }
    if summary.cache_hit_ratio is not None:
        hit_ratio = str(summary.cache_hit_ratio.normalize())
        blocks["cache"] = verdicts.windowed({"hitRatio": hit_ratio}, now=now)
    return blocks


def budget_verdict(budget: realtime.Budget, spend: MonthSpend | None) -> Verdict:
    """`BudgetExceeded`: True once the month's spend reaches spec.budget.monthlyUSD.

    It is reported beside `Ready`, not folded into it. A spent budget is the cap the user asked
    for working as intended, not a fault: the gateway pods stay up, cache hits are still served
    and only calls that would reach a backend get 429 insufficient_quota, until the month turns
    or the budget is raised. Folding it into `Ready` would make GitOps health checks and
    `kubectl wait --for=condition=Ready` treat a deliberate cap as a broken endpoint.
    """
    limit = decimal.Decimal(budget.monthly_usd)
    if spend is None:
        return Verdict(
            "Unknown",
            "SpendUnavailable",
            "this month's spend could not be read from Redis; the gateways keep enforcing"
            f" spec.budget.monthlyUSD ({pricing.format_usd(limit)} USD)",
        )
    spent = (
        f"{pricing.format_usd(spend.spent_usd)} USD spent in {spend.month}"
        f" of spec.budget.monthlyUSD {pricing.format_usd(limit)} USD"
    )
    if spend.spent_usd >= limit:
        return Verdict(
            "True",
            "MonthlyBudgetSpent",
            f"{spent}: calls that miss the cache get 429 insufficient_quota until the month"
            " ends or the budget is raised",
        )
    return Verdict("False", "WithinBudget", spent)


def budget_blocks(
    budget: realtime.Budget | None, spend: MonthSpend | None, body: Mapping[str, Any]
) -> dict[str, Any]:
    """`budget`: None (which removes it) without spec.budget, the last one when Redis did not
    answer, otherwise the month's spend against the limit."""
    if budget is None:
        return {"budget": None}
    if spend is None:
        return verdicts.kept(body, "budget")
    limit = decimal.Decimal(budget.monthly_usd)
    return {
        "budget": {
            "month": spend.month,
            "monthUSD": pricing.format_usd(spend.spent_usd),
            "limitUSD": pricing.format_usd(limit),
            "remainingUSD": pricing.format_usd(max(limit - spend.spent_usd, decimal.Decimal(0))),
        }
    }
