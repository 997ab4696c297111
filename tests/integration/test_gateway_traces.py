"""The gateway's OpenTelemetry traces as a collector receives them: a real gateway process and
mockllm backend, and an OTLP/HTTP receiver that decodes OpenTelemetry's own protobuf messages.

A caller's `traceparent` → the gateway's server span → one client span per upstream attempt,
whose context the backend receives; retries and fallbacks are events of the call's span. A
caller's unsampled `traceparent` gets no span and reaches the backend as it came."""

from __future__ import annotations

import json
import pathlib
import secrets
from collections.abc import Iterator

import pytest
from conftest import Processes
from test_gateway import MOCK, post

from tiers.devenv import otlp_receiver
from tiers.runtime.mockllm import control

SERVER, CLIENT = 2, 3  # OTLP's SpanKind
ERROR = 2  # OTLP's Status.StatusCode
HELLO = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Trace me"}]}


@pytest.fixture
def receiver() -> Iterator[otlp_receiver.OtlpReceiver]:
    collector = otlp_receiver.OtlpReceiver()
    yield collector
    collector.close()


@pytest.fixture
def mock(services: Processes) -> str:
    return services.start("mockllm", MOCK)


@pytest.fixture
def gateway(
    services: Processes, mock: str, receiver: otlp_receiver.OtlpReceiver, tmp_path: pathlib.Path
) -> str:
    """Two backends on the same mock, the second a fallback; two attempts each; spans exported
    every 100 ms."""
    backend = {"provider": "openai-compatible", "model": "*", "base_url": f"{mock}/v1"}
    settings = {
        "endpoint": "traces/chat",
        "backends": [{**backend, "name": "primary"}, {**backend, "name": "spare", "priority": 1}],
        "retries": {"max_attempts": 2, "initial_backoff_ms": 1, "max_backoff_ms": 10},
        "tracing": {"otlp_endpoint": receiver.url, "export_interval_s": 0.1},
    }
    path = tmp_path / "gateway.json"
    path.write_text(json.dumps(settings))
    return services.start("gateway", "tiers.runtime.gateway", "--config", str(path))


def traceparent(trace_id: str, span_id: str, *, sampled: bool = True) -> str:
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"


def test_a_callers_trace_runs_through_the_gateway_span_to_the_backend(
    gateway: str, mock: str, receiver: otlp_receiver.OtlpReceiver
) -> None:
    unsampled = secrets.token_hex(16)
    unsampled_parent = traceparent(unsampled, secrets.token_hex(8), sampled=False)
    status, _, _ = post(
        gateway + "/v1/chat/completions",
        HELLO,
        {"traceparent": unsampled_parent, "tracestate": "vendor=quiet"},
    )
    assert status == 200
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    status, headers, body = post(
        gateway + "/v1/chat/completions",
        {**HELLO, "messages": [{"role": "user", "content": "Trace me again"}]},
        {"traceparent": traceparent(trace_id, caller_span), "tracestate": "vendor=opaque"},
    )
    assert status == 200

    spans = receiver.wait_for(lambda found: sum(s.trace_id == trace_id for s in found) >= 2)
    assert not [s for s in spans if s.trace_id == unsampled], "a caller's unsampled trace"
    (call,) = [s for s in spans if s.trace_id == trace_id and s.kind == SERVER]
    (attempt,) = [s for s in spans if s.trace_id == trace_id and s.kind == CLIENT]
    assert call.parent_id == caller_span
    assert attempt.parent_id == call.span_id
    assert call.name == "chat gpt-4o-mini"
    assert call.resource["service.name"] == "tiers-gateway"
    assert call.resource["tiers.endpoint"] == "traces/chat"
    usage = body["usage"]
    assert call.attributes == {
        "gen_ai.operation.name": "chat",
        "tiers.endpoint": "traces/chat",
        "http.response.status_code": 200,
        "tiers.cache": "miss",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": usage["prompt_tokens"],
        "gen_ai.usage.output_tokens": usage["completion_tokens"],
        "tiers.cost_usd": float(headers["x-tiers-cost-usd"]),
    }
    assert call.attributes["tiers.cost_usd"] > 0
    assert [name for name, _ in call.events] == ["authenticated", "cache.lookup"]
    assert attempt.name == "chat gpt-4o-mini"
    assert attempt.attributes["gen_ai.provider.name"] == "openai"
    assert attempt.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attempt.attributes["tiers.backend"] == "primary"
    assert attempt.attributes["http.response.status_code"] == 200
    assert attempt.attributes["server.address"] == "127.0.0.1"
    assert call.flags == attempt.flags == 1

    # An unsampled caller's context went upstream as it came; a sampled one's, as the attempt's.
    seen = control.stats(mock)["traceparents"]
    assert seen == [unsampled_parent, traceparent(trace_id, attempt.span_id)]

    # An error the gateway answers itself is on the call's span; a 4xx is the client's doing.
    refused = secrets.token_hex(16)
    status, _, body = post(
        gateway + "/v1/chat/completions",
        {"model": "gpt-4o-mini"},
        {"traceparent": traceparent(refused, caller_span)},
    )
    assert status == 400
    spans = receiver.wait_for(lambda found: any(s.trace_id == refused for s in found))
    (call,) = [s for s in spans if s.trace_id == refused]
    assert call.attributes["http.response.status_code"] == 400
    assert call.attributes["error.type"] == body["error"]["code"] == "invalid_value"
    assert call.status_code != ERROR
    assert "gen_ai.usage.input_tokens" not in call.attributes


def test_retries_and_the_fallback_are_events_each_attempt_a_span(
    gateway: str, mock: str, receiver: otlp_receiver.OtlpReceiver
) -> None:
    control.fail_next(mock, 2, status=503)
    status, _, _ = post(gateway + "/v1/chat/completions", HELLO)
    assert status == 200

    def whole(found: list[otlp_receiver.ReceivedSpan]) -> bool:
        return len(found) >= 4

    spans = receiver.wait_for(whole)
    (call,) = [s for s in spans if s.kind == SERVER]
    assert call.parent_id == ""
    attempts = sorted(
        (s for s in spans if s.kind == CLIENT),
        key=lambda s: (s.attributes["tiers.backend"] != "primary", s.attributes["tiers.attempt"]),
    )
    assert [(a.attributes["tiers.backend"], a.attributes["tiers.attempt"]) for a in attempts] == [
        ("primary", 1),
        ("primary", 2),
        ("spare", 1),
    ]
    assert {a.trace_id for a in attempts} == {call.trace_id}
    assert {a.parent_id for a in attempts} == {call.span_id}
    failed, retried, answered = attempts
    assert failed.status_code == retried.status_code == ERROR
    assert failed.attributes["http.response.status_code"] == 503
    assert answered.status_code != ERROR
    assert answered.attributes["http.response.status_code"] == 200
    events = [(name, attributes.get("tiers.backend")) for name, attributes in call.events]
    assert ("retry", "primary") in events
    assert ("fallback", "spare") in events
    fallback = dict(call.events)["fallback"]
    assert fallback["tiers.failed_backend"] == "primary"
    assert fallback["error.type"] == "503"

    seen = control.stats(mock)["traceparents"]
    assert seen == [traceparent(call.trace_id, a.span_id) for a in attempts]
