"""The console's pure parts: a custom resource as a Summary, status as series points, the rings
that keep them, and the caller's token as the console reads it."""

from __future__ import annotations

import datetime
import io
import pathlib
from typing import Any

import pytest

from tiers.console import batch, errors, identity, realtime, series, summaries, upstream
from tiers.runtime import pricing

NOW = datetime.datetime(2026, 11, 30, 12, 0, tzinfo=datetime.UTC)


def endpoint(**status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "tiers.dev/v1alpha1",
        "kind": "RealtimeEndpoint",
        "metadata": {"name": "chat", "namespace": "demo", "uid": "u1", "generation": 3,
                     "creationTimestamp": "2026-11-30T11:00:00Z"},
        "spec": {"model": "gpt-4o-mini"},
        "status": status,
    }  # fmt: skip


READY = {"type": "Ready", "status": "True", "reason": "Serving", "message": "2/2 replicas"}
LATENCY = {
    "p50Ms": 3,
    "p95Ms": 9,
    "p99Ms": 14,
    "window": "5m",
    "observedAt": "2026-11-30T11:59:00Z",
}


def test_a_ready_endpoint_reads_as_ready_with_its_latency_throughput_and_cost() -> None:
    found = summaries.summarize(
        endpoint(
            observedGeneration=3, conditions=[READY], url="http://chat-gateway.demo:8080",
            latency=LATENCY, requestsPerSecond=7, errors=0,
            traffic={"requests": 120, "requestsPerSecond": 12, "errors": 1},
            cost={"totalUSD": "0.001200", "perRequestUSD": "0.000010", "window": "5m",
                  "observedAt": "2026-11-30T11:59:00Z"},
        ),
        now=NOW,
    )  # fmt: skip
    shown = found.model_dump(by_alias=True)
    assert shown["ready"] == "True"
    assert shown["reason"] == "Serving"
    assert shown["latency"] == {"p50Ms": 3, "p95Ms": 9, "p99Ms": 14}
    assert shown["throughputPerSecond"] == 12.0
    assert shown["costUsd"] == "0.001200"
    assert shown["costWindow"] == "5m"
    assert shown["url"] == "http://chat-gateway.demo:8080"
    assert shown["stale"] is False
    assert shown["columns"]["Ready"] == "True"
    assert shown["columns"]["P95"] == "9"
    assert shown["columns"]["Cost/req"] == "0.000010"
    assert shown["columns"]["Model"] == "gpt-4o-mini"
    assert shown["observedGeneration"] == 3 and shown["generation"] == 3


def test_an_object_without_status_is_unknown_with_no_numbers() -> None:
    found = summaries.summarize(endpoint(), now=NOW)
    assert found.ready == "Unknown"
    assert found.latency is None and found.cost_usd is None and found.throughput_per_second is None
    assert found.columns["P95"] == ""


def test_numbers_observed_long_ago_are_marked_stale() -> None:
    old = {**LATENCY, "observedAt": "2026-11-30T11:00:00Z"}
    assert summaries.summarize(endpoint(latency=old), now=NOW).stale is True
    unread = {**LATENCY, "stale": True}  # the operator could not read the stats store
    assert summaries.summarize(endpoint(latency=unread), now=NOW).stale is True


def test_a_failed_batch_job_reads_its_succeeded_condition_and_progress() -> None:
    job = {
        "kind": "BatchJob",
        "metadata": {"name": "scores", "namespace": "demo", "uid": "u2"},
        "spec": {"engine": "spark"},
        "status": {
            "state": "Failed",
            "conditions": [{"type": "Succeeded", "status": "False", "reason": "OverBudget",
                            "message": "spent over spec.budget.maxUSD"}],
            "progress": {"total": 2000, "done": 1200, "failed": 3, "percent": 60,
                         "recordsPerSecond": 400},
            "cost": {"totalUSD": "0.5", "perRecordUSD": "0.0004"},
        },
    }  # fmt: skip
    found = summaries.summarize(job, now=NOW)
    assert (found.ready, found.reason, found.state) == ("False", "OverBudget", "Failed")
    assert found.progress == summaries.Progress(done=1200, total=2000)
    assert found.cost_window == "run"
    assert found.columns["Progress"] == "60"
    assert found.columns["Engine"] == "spark"
    assert found.stale is False


def test_a_batch_job_whose_figures_status_marks_stale_reads_as_stale() -> None:
    """A running run whose progress stopped coming, or a stats store that did not answer."""
    cost = {"totalUSD": "0.5", "perRecordUSD": "0.0004", "window": "run",
            "observedAt": "2026-11-30T11:59:00Z", "stale": True}  # fmt: skip
    job = {"kind": "BatchJob", "metadata": {"name": "scores", "namespace": "demo"},
           "spec": {"engine": "spark"}, "status": {"state": "Running", "cost": cost}}  # fmt: skip
    assert summaries.summarize(job, now=NOW).stale is True


def test_a_status_observation_becomes_one_series_point() -> None:
    point = series.point_of(
        endpoint(latency=LATENCY, traffic={"requests": 200, "requestsPerSecond": 4, "errors": 10},
                 cost={"totalUSD": "0.0300", "window": "5m", "observedAt": LATENCY["observedAt"]})
    )  # fmt: skip
    assert point is not None
    assert point.model_dump(by_alias=True) == {
        "t": "2026-11-30T11:59:00Z", "p50Ms": 3, "p95Ms": 9, "p99Ms": 14,
        "throughputPerSecond": 4.0, "costUsd": "0.0300", "errorRatio": 0.05,
    }  # fmt: skip


def test_a_status_without_observation_gives_no_point() -> None:
    assert series.point_of(endpoint(conditions=[READY])) is None


def test_a_ring_keeps_each_observation_once_and_at_most_its_bound() -> None:
    rings = series.Rings(max_points=3)
    for minute in range(5):
        observed = f"2026-11-30T11:5{minute}:00Z"
        assert rings.record(endpoint(latency={**LATENCY, "observedAt": observed}))
        assert not rings.record(endpoint(latency={**LATENCY, "observedAt": observed}))
    kept = rings.points(
        ("realtimeendpoints", "demo", "chat"), since=NOW - datetime.timedelta(hours=1)
    )
    assert [point.t for point in kept] == [f"2026-11-30T11:5{m}:00Z" for m in (2, 3, 4)]
    recent = rings.points(
        ("realtimeendpoints", "demo", "chat"),
        since=datetime.datetime(2026, 11, 30, 11, 54, tzinfo=datetime.UTC),
    )
    assert [point.t for point in recent] == ["2026-11-30T11:54:00Z"]


def test_rings_survive_a_restart_through_their_file(tmp_path: pathlib.Path) -> None:
    rings = series.Rings()
    rings.record(endpoint(latency=LATENCY))
    rings.save(tmp_path / "series.json")
    again = series.Rings()
    again.load(tmp_path / "series.json")
    since = NOW - datetime.timedelta(hours=1)
    key = ("realtimeendpoints", "demo", "chat")
    assert again.points(key, since=since) == rings.points(key, since=since) != []


def test_points_older_than_a_day_are_pruned() -> None:
    rings = series.Rings()
    rings.record(endpoint(latency={**LATENCY, "observedAt": "2026-11-28T11:00:00Z"}))
    rings.prune(now=NOW)
    assert (
        rings.points(("realtimeendpoints", "demo", "chat"), since=NOW - datetime.timedelta(days=9))
        == []
    )


@pytest.mark.parametrize(
    ("header", "token"),
    [(None, None), ("", None), ("Bearer abc.def", "abc.def"), ("bearer  x ", "x")],
)
def test_the_callers_bearer_token_is_read_from_the_authorization_header(
    header: str | None, token: str | None
) -> None:
    assert identity.bearer_token(header) == token


@pytest.mark.parametrize("header", ["Basic dXNlcg==", "Bearer", "Bearer a b"])
def test_a_malformed_authorization_header_is_refused_with_401(header: str) -> None:
    with pytest.raises(errors.ConsoleError) as refused:
        identity.bearer_token(header)
    assert refused.value.status == 401
    assert "Bearer <token>" in refused.value.message


def test_a_streamed_replys_usage_is_its_last_usage_chunk() -> None:
    lines = [
        b'data: {"choices": [{"delta": {"content": "Hi"}}], "usage": null}',
        b"",
        b'data: {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3}}',
        b"data: [DONE]",
    ]
    assert realtime.last_usage(lines) == {"prompt_tokens": 9, "completion_tokens": 3}
    assert realtime.last_usage(lines[:2]) is None


def test_the_playground_prices_as_the_endpoints_gateway_does() -> None:
    obj = endpoint()
    obj["spec"]["pricing"] = {"inputPerMTokUSD": "1", "outputPerMTokUSD": "2"}
    assert realtime.price_of(obj, "gpt-4o-mini") == pricing.Price.of("1", "2")
    assert realtime.price_of(obj, "gpt-4o") == pricing.DEFAULT_PRICES["gpt-4o"]
    assert realtime.price_of(endpoint(), "gpt-4o-mini") == pricing.DEFAULT_PRICES["gpt-4o-mini"]


def test_a_chat_naming_no_model_asks_for_the_endpoints_and_a_stream_for_its_usage() -> None:
    messages = {"messages": [{"role": "user", "content": "hi"}]}
    assert realtime.defaults(endpoint(), {**messages, "stream": True}, streamed=True) == {
        "model": "gpt-4o-mini", "stream_options": {"include_usage": True},
    }  # fmt: skip
    named = {**messages, "model": "gpt-4o", "stream_options": {"include_usage": False}}
    assert realtime.defaults(endpoint(), named, streamed=True) == {}
    assert realtime.defaults(endpoint(), messages, streamed=False) == {"model": "gpt-4o-mini"}


def test_the_prompts_counted_before_a_run_are_the_first_records_rendered(
    tmp_path: pathlib.Path,
) -> None:
    lines = tmp_path / "in.jsonl"
    lines.write_text('{"id": 1, "body": "late"}\n\n{"id": 2}\n{"id": 3, "body": "lost"}\n')
    assert batch.sample_prompts(lines, "jsonl", "Classify: {body}", "id") == [
        "Classify: late", "Classify: lost",
    ]  # fmt: skip
    table = tmp_path / "in.csv"
    table.write_text("id,body\n1,late\n")
    assert batch.sample_prompts(table, "csv", "Classify: {body}", "id") == ["Classify: late"]
    requests = tmp_path / "in.openai.jsonl"
    requests.write_text('{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",'
                        ' "body": {"model": "m", "messages": [{"role": "user", "content": "hi"}]}}\n')  # fmt: skip
    assert batch.sample_prompts(requests, "openai", "unused {x}", "custom_id") == ["hi"]


def test_a_rerun_creates_the_job_anew_with_its_spec_unsuspended_and_no_status() -> None:
    job = {
        "apiVersion": "tiers.dev/v1alpha1", "kind": "BatchJob",
        "metadata": {"name": "scores", "namespace": "demo", "uid": "u1", "resourceVersion": "9",
                     "labels": {"team": "a"}, "finalizers": ["tiers.dev/finalizer"],
                     "annotations": {"note": "kept", "kopf.zalando.org/last-handled-configuration": "{}",
                                     "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {"engine": "spark", "suspend": True}, "status": {"state": "Succeeded"},
    }  # fmt: skip
    assert batch.rerun_body(job) == {
        "apiVersion": "tiers.dev/v1alpha1", "kind": "BatchJob",
        "metadata": {"name": "scores", "namespace": "demo", "labels": {"team": "a"},
                     "annotations": {"note": "kept"}},
        "spec": {"engine": "spark", "suspend": False},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("fmt", "content", "records"),
    [("jsonl", b'{"a": 1}\n\n{"a": 2}\n', 2), ("openai", b'{"custom_id": "x"}\n', 1),
     ("csv", b"id,body\n1,x\n2,y\n", 2), ("csv", b"id,body\n", 0)],
)  # fmt: skip
def test_an_uploaded_input_is_counted_in_its_jobs_format(
    fmt: str, content: bytes, records: int
) -> None:
    assert batch.count_records(io.BytesIO(content), fmt) == records


def test_an_upload_not_in_the_jobs_format_is_refused_naming_the_line() -> None:
    with pytest.raises(errors.ConsoleError) as refused:
        batch.count_records(io.BytesIO(b"\n[1, 2]\n"), "jsonl")
    assert refused.value.status == 422
    assert refused.value.message.startswith("line 2 is not a JSON object")


def test_a_tls_server_reached_elsewhere_is_still_verified_for_its_in_cluster_name() -> None:
    in_cluster = "https://chat-gateway.demo.svc:8080/v1"
    moved = upstream.Server(in_cluster, "https://127.0.0.1:4443/v1", ca_pem="PEM")
    assert moved.extensions() == {"sni_hostname": "chat-gateway.demo.svc"}
    assert upstream.Server(in_cluster, in_cluster).extensions() == {}
    plain = "http://chat-gateway.demo.svc:8080/v1"
    assert upstream.Server(plain, "http://127.0.0.1:8080/v1").extensions() == {}


def test_a_ca_that_does_not_load_is_refused_not_replaced_by_no_verification() -> None:
    with pytest.raises(errors.ConsoleError) as raised:
        upstream.client("-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----\n")
    assert raised.value.status == 502
