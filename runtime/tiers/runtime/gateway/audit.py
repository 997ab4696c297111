"""The audit trail: one JSON line per model call on stdout, for a log pipeline to keep.

A line says who called (the tenant: an API key's digest prefix or `jwt-<claim>`), what (route,
model), how it went (status, cache outcome, tokens, cost in USD, latency) and when; never the
prompt, the answer or a key. `sample_ratio` (spec.audit.samplePercent / 100, or
`--audit-sample`) keeps that share of calls, drawn at random per call; without it the gateway
holds no `AuditLog` and a call pays one `is None` test.
"""

from __future__ import annotations

import datetime
import decimal
import random
import sys
from collections.abc import Callable
from typing import TextIO

import orjson

from tiers.runtime import pricing


class AuditLog:
    def __init__(
        self,
        endpoint: str,
        sample_ratio: float,
        *,
        stream: TextIO | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._endpoint = endpoint
        self._ratio = sample_ratio
        self._rng = rng
        # Written as they are, whatever level the process logs at (uvicorn's: warning).
        self._stream = stream or sys.stdout

    def record(
        self,
        *,
        tenant: str | None,
        route: str,
        model: str | None,
        status: int,
        cache: str,
        usage: pricing.Usage | None,
        cost: decimal.Decimal,
        latency_s: float,
    ) -> None:
        if self._ratio < 1.0 and self._rng() >= self._ratio:
            return
        line = {
            "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
            "event": "model_call",
            "endpoint": self._endpoint,
            "tenant": tenant,
            "route": route,
            "model": model,
            "status": status,
            "cache": cache,
            "prompt_tokens": usage.prompt_tokens if usage else 0,
            "completion_tokens": usage.completion_tokens if usage else 0,
            "cost_usd": str(cost),
            "latency_ms": round(latency_s * 1000, 3),
        }
        self._stream.write(orjson.dumps(line).decode() + "\n")
        self._stream.flush()


def build(endpoint: str, sample_ratio: float) -> AuditLog | None:
    return AuditLog(endpoint, sample_ratio) if sample_ratio > 0 else None
