"""A RealtimeEndpoint's status from what the operator observed, without a cluster: the budget,
the figures kept (and marked stale) when the stats store does not answer."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest

from tiers.api import realtime
from tiers.operator import realtime_status
from tiers.operator.manifests import self_signed
from tiers.runtime import stats
from tiers.runtime.stats import window

NOW = datetime.datetime(2026, 11, 26, 16, 0, tzinfo=datetime.UTC)
AVAILABLE = {"availableReplicas": 2, "readyReplicas": 2, "desiredReplicas": 2}


def spec(**changes: object) -> realtime.RealtimeEndpointSpec:
    base = {"model": "m", "backends": [{"name": "a", "provider": "openai", "model": "m"}]}
    return realtime.RealtimeEndpointSpec.model_validate({**base, **changes})


def status_of(
    endpoint: realtime.RealtimeEndpointSpec,
    spent_usd: str | None,
    previous: dict | None = None,
) -> dict:
    spend = None if spent_usd is None else realtime_status.MonthSpend("2026-11", Decimal(spent_usd))
    observed = realtime_status.Observed(
        gateway=AVAILABLE, redis=AVAILABLE, managed_redis=True, url="http://u/v1", spend=spend
    )
    body = {"metadata": {"generation": 4}, "status": previous or {}}
    status = realtime_status.desired_status(endpoint, observed, body=body, now=NOW)
    realtime.RealtimeEndpointStatus.model_validate(status)  # what the CRD schema accepts
    return status


def condition(status: dict, type_: str) -> dict | None:
    return next((c for c in status["conditions"] if c["type"] == type_), None)


@pytest.mark.parametrize(
    ("spent", "exceeded", "reason", "remaining"),
    [
        ("2.5", "False", "WithinBudget", "7.500000"),
        ("10", "True", "MonthlyBudgetSpent", "0.000000"),
        ("10.000001", "True", "MonthlyBudgetSpent", "0.000000"),
    ],
    ids=["below", "at-the-limit", "past-it"],
)
def test_the_months_spend_is_reported_against_the_budget(
    spent: str, exceeded: str, reason: str, remaining: str
) -> None:
    status = status_of(spec(budget={"monthlyUSD": "10"}), spent)
    assert status["budget"] == {
        "month": "2026-11",
        "monthUSD": realtime_status.pricing.format_usd(Decimal(spent)),
        "limitUSD": "10.000000",
        "remainingUSD": remaining,
    }
    budget = condition(status, "BudgetExceeded")
    assert budget is not None and (budget["status"], budget["reason"]) == (exceeded, reason)
    assert "spec.budget.monthlyUSD 10.000000 USD" in budget["message"]
    assert f"{status['budget']['monthUSD']} USD spent in 2026-11" in budget["message"]


def test_a_spent_budget_leaves_the_endpoint_ready() -> None:
    # Cache hits are still served: the cap is working, the endpoint is not broken.
    status = status_of(spec(budget={"monthlyUSD": "10"}), "12")
    ready = condition(status, "Ready")
    assert ready is not None and ready["status"] == "True"


def test_an_unreadable_spend_keeps_the_last_numbers_and_says_so() -> None:
    before = status_of(spec(budget={"monthlyUSD": "10"}), "3")
    after = status_of(spec(budget={"monthlyUSD": "10"}), None, previous=before)
    assert after["budget"] == before["budget"]
    budget = condition(after, "BudgetExceeded")
    assert budget is not None and (budget["status"], budget["reason"]) == (
        "Unknown",
        "SpendUnavailable",
    )
    assert "spec.budget.monthlyUSD" in budget["message"]


def test_removing_the_budget_removes_its_status_and_condition() -> None:
    before = status_of(spec(budget={"monthlyUSD": "10"}), "12")
    after = status_of(spec(), None, previous=before)
    assert after["budget"] is None  # a merge patch with null deletes the field
    assert condition(after, "BudgetExceeded") is None
    assert {c["type"] for c in after["conditions"]} == {
        "Ready",
        "ProxyReady",
        "CacheReady",
        "BackendReady",
        "Reconciling",
        "Stalled",
    }


def test_figures_the_stats_store_could_not_give_are_kept_and_marked_stale() -> None:
    endpoint = spec()
    counts = window.Counts()
    for latency_ms in (5, 7, 9, 40):
        counts.record(latency_ms=latency_ms, tokens_in=10, cost_usd=Decimal("0.0001"))
    summary = stats.summarize([counts], seconds=300)

    def status(summary: stats.Summary | None, previous: dict, *, unavailable: bool) -> dict:
        observed = realtime_status.Observed(
            gateway=AVAILABLE, redis=AVAILABLE, managed_redis=True, url="http://u/v1",
            summary=summary, stats_unavailable=unavailable,
        )  # fmt: skip
        body = {"metadata": {"generation": 4}, "status": previous}
        desired = realtime_status.desired_status(endpoint, observed, body=body, now=NOW)
        realtime.RealtimeEndpointStatus.model_validate(desired)
        return desired

    fresh = status(summary, {}, unavailable=False)
    figures = ("latency", "traffic", "cost")  # every block over the window says which, and when
    assert {(fresh[f]["window"], fresh[f]["observedAt"], fresh[f]["stale"]) for f in figures} == {
        ("5m", "2026-11-26T16:00:00Z", False)
    }
    down = status(None, fresh, unavailable=True)
    for figure in figures:  # the last figures are kept, marked stale
        assert down[figure] == {**fresh[figure], "stale": True}
    # Readable again, with no traffic in the window: the last figures, no longer stale.
    quiet = status(None, down, unavailable=False)
    assert all(quiet[figure] == fresh[figure] for figure in figures)


def test_an_exposed_endpoint_reports_its_outside_url_and_keeps_the_in_cluster_one() -> None:
    def status(external: str | None) -> dict:
        observed = realtime_status.Observed(
            gateway=AVAILABLE, redis=AVAILABLE, managed_redis=True,
            url="http://chat-gateway.prod.svc:8080/v1", external_url=external,
        )  # fmt: skip
        desired = realtime_status.desired_status(
            spec(), observed, body={"metadata": {"generation": 1}}, now=NOW
        )
        realtime.RealtimeEndpointStatus.model_validate(desired)
        return desired

    exposed = status("https://chat.example.com/v1")
    assert exposed["url"] == "https://chat.example.com/v1"
    assert exposed["address"] == {"url": "http://chat-gateway.prod.svc:8080/v1"}
    assert condition(exposed, "Ready")["message"] == "serving at https://chat.example.com/v1"
    inside = status(None)
    assert inside["url"] == inside["address"]["url"] == "http://chat-gateway.prod.svc:8080/v1"


def test_a_tls_gateways_address_carries_the_ca_it_is_verified_with() -> None:
    ca = self_signed.issue(["chat-gateway"], now=NOW)["ca.crt"]
    url = "https://chat-gateway.prod.svc:8080/v1"
    observed = realtime_status.Observed(
        gateway=AVAILABLE, redis=AVAILABLE, managed_redis=True, url=url, serving_ca=ca
    )
    body = {"metadata": {"generation": 1}}
    desired = realtime_status.desired_status(spec(tls={}), observed, body=body, now=NOW)
    realtime.RealtimeEndpointStatus.model_validate(desired)
    assert desired["address"] == {"url": url, "CACerts": ca}
    plain = realtime_status.desired_status(spec(), observed, body=body, now=NOW)
    assert plain["address"] == {"url": url}, "a CA left from a tls since removed is not shown"


def test_a_missing_batch_workspace_token_keeps_the_gateway_down_and_says_which_secret() -> None:
    missing = realtime_status.MissingSecret(
        "spec.batch.databricks.tokenSecretRef", "databricks", "token"
    )
    observed = realtime_status.Observed(
        gateway=None, redis=AVAILABLE, managed_redis=True, missing_secrets=(missing,)
    )
    verdict = realtime_status.proxy_verdict(spec(), observed)
    assert (verdict.status, verdict.reason) == ("False", "SecretNotFound")
    assert verdict.message == (
        "Secret databricks with key token, named by spec.batch.databricks.tokenSecretRef, does"
        " not exist: the gateway serves once it does"
    )
