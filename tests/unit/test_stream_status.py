"""A StreamPipeline's status from what the operator observed, without a cluster: the figures kept
(and marked stale) when the stats store does not answer."""

from __future__ import annotations

import datetime
from decimal import Decimal

from tiers.api import certificates, stream
from tiers.operator import stream_status, verdicts
from tiers.operator.manifests import self_signed, serving_tls
from tiers.runtime import stats
from tiers.runtime.stats import window

NOW = datetime.datetime(2026, 11, 30, 5, 0, tzinfo=datetime.UTC)
GOOD = verdicts.Verdict("True", "Ready", "fine")


def status(summary: stats.Summary | None, previous: dict, *, unavailable: bool) -> dict:
    observed = stream_status.Observed(
        topics=GOOD, streaming=GOOD, summary=summary, stats_unavailable=unavailable
    )
    body = {"metadata": {"generation": 2}, "status": previous}
    desired = stream_status.desired_status(observed, body=body, now=NOW)
    stream.StreamPipelineStatus.model_validate(desired)  # what the CRD schema accepts
    return desired


def test_figures_the_stats_store_could_not_give_are_kept_and_marked_stale() -> None:
    counts = window.Counts()
    for latency_ms in (12, 15, 30):
        counts.record(latency_ms=latency_ms, tokens_in=20, cost_usd=Decimal("0.0002"))
    fresh = status(stats.summarize([counts], seconds=300), {}, unavailable=False)
    assert fresh["throughput"]["events"] == 3
    figures = ("latency", "throughput", "cost")  # every block over the window says which, when
    assert {(fresh[f]["window"], fresh[f]["observedAt"], fresh[f]["stale"]) for f in figures} == {
        ("5m", "2026-11-30T05:00:00Z", False)
    }

    down = status(None, fresh, unavailable=True)
    for figure in figures:  # the last figures are kept, marked stale
        assert down[figure] == {**fresh[figure], "stale": True}
    # Readable again, with no events in the window: the last figures, no longer stale.
    quiet = status(None, down, unavailable=False)
    assert all(quiet[figure] == fresh[figure] for figure in figures)


def test_the_push_gateways_address_carries_the_ca_it_is_verified_with() -> None:
    ca = self_signed.issue(["reviews-push"], now=NOW)["ca.crt"]
    url = "https://reviews-push.prod.svc:8086"
    push = serving_tls.status_address(url, certificates.TLS(), ca)
    observed = stream_status.Observed(topics=GOOD, streaming=GOOD, push=push)
    desired = stream_status.desired_status(observed, body={"metadata": {}}, now=NOW)
    stream.StreamPipelineStatus.model_validate(desired)
    assert desired["push"] == {"url": url, "CACerts": ca}
