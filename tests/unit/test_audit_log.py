"""The gateway's audit trail: one JSON line per sampled model call, without prompt or key."""

from __future__ import annotations

import decimal
import io
import json
from collections.abc import Iterator

from tiers.runtime import pricing
from tiers.runtime.gateway import audit


def record(log: audit.AuditLog, **changes: object) -> None:
    fields: dict[str, object] = {
        "tenant": "jwt-team-a",
        "route": "chat",
        "model": "gpt-4o-mini",
        "status": 200,
        "cache": "miss",
        "usage": pricing.Usage(prompt_tokens=12, completion_tokens=5),
        "cost": decimal.Decimal("0.0000048"),
        "latency_s": 0.0123456,
    }
    log.record(**{**fields, **changes})  # type: ignore[arg-type]


def test_a_call_is_one_json_line_with_who_what_and_how_it_went() -> None:
    out = io.StringIO()
    record(audit.AuditLog("ns/chat", 1.0, stream=out))
    record(
        audit.AuditLog("ns/chat", 1.0, stream=out),
        tenant=None,
        model=None,
        status=401,
        cache="none",
        usage=None,
        cost=decimal.Decimal(0),
    )
    first, refused = (json.loads(line) for line in out.getvalue().splitlines())
    assert first.pop("time").endswith("+00:00")
    assert first == {
        "event": "model_call", "endpoint": "ns/chat", "tenant": "jwt-team-a", "route": "chat",
        "model": "gpt-4o-mini", "status": 200, "cache": "miss", "prompt_tokens": 12,
        "completion_tokens": 5, "cost_usd": "0.0000048", "latency_ms": 12.346,
    }  # fmt: skip
    assert refused["tenant"] is None and refused["status"] == 401 and refused["prompt_tokens"] == 0


def test_sampling_keeps_the_share_of_calls_it_is_given() -> None:
    draws: Iterator[float] = iter([0.05, 0.5, 0.09, 0.95, 0.10])
    out = io.StringIO()
    log = audit.AuditLog("ns/chat", 0.1, stream=out, rng=lambda: next(draws))
    for _ in range(5):
        record(log)
    assert len(out.getvalue().splitlines()) == 2


def test_without_a_sample_ratio_there_is_no_audit_log() -> None:
    assert audit.build("ns/chat", 0.0) is None
    assert audit.build("ns/chat", 0.01) is not None
