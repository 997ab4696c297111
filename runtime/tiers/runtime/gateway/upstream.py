"""Calling the backends: pick one by priority and weight, retry 429/5xx with jittered backoff
(honouring Retry-After), fall back to the next, and keep a circuit breaker per backend."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson

from tiers.runtime import http1
from tiers.runtime.gateway import config, errors, requests, resilience

T = TypeVar("T")

RETRYABLE = frozenset({408, 409, 429, 500, 502, 503, 504})
STREAM_CONNECT_TIMEOUT_S = 10.0
"""A stream's own timeout (`timeout_ms`) bounds each read, as a stream may rightly run long."""


@dataclasses.dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    backend: str
    attempts: int


@dataclasses.dataclass
class Failure:
    status: int
    detail: str
    retry_after_s: float | None = None


class Backend:
    def __init__(self, settings: config.BackendConfig, breaker: resilience.CircuitBreaker) -> None:
        self.settings = settings
        self.breaker = breaker
        key = os.environ.get(settings.api_key_env) if settings.api_key_env else None
        if settings.provider == "azure-openai":
            self.headers = {"api-key": key} if key else {}
        else:
            self.headers = {"authorization": f"Bearer {key}"} if key else {}
        self.headers["content-type"] = "application/json"

    @property
    def name(self) -> str:
        return self.settings.name

    def url(self, route: requests.Route) -> str:
        path = requests.UPSTREAM_PATHS[route]
        base = self.settings.url_base
        if self.settings.provider == "azure-openai":
            return (
                f"{base}/openai/deployments/{self.settings.deployment}{path}"
                f"?api-version={self.settings.api_version}"
            )
        return base + path

    def payload(self, request: requests.ModelRequest) -> bytes:
        body: dict[str, Any] = request.body
        if self.settings.model != "*" and body.get("model") != self.settings.model:
            body = {**body, "model": self.settings.model}
        if request.stream:
            # Usage arrives only when asked for; the gateway always needs it to price the call.
            body = {
                **body,
                "stream_options": {**(body.get("stream_options") or {}), "include_usage": True},
            }
        return orjson.dumps(body)


class Backends:
    def __init__(
        self,
        settings: config.GatewayConfig,
        pool: http1.Pool,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.all = [
            Backend(backend, resilience.CircuitBreaker(settings.circuit_breaker))
            for backend in settings.backends
        ]

    def plan(self) -> list[Backend]:
        """The order to try: by priority; within one, a weighted shuffle. Open circuits go last."""
        if len(self.all) == 1:
            # Nothing to order (an open circuit would go last, behind nothing): skip the shuffle.
            return self.all
        ordered: list[Backend] = []
        for priority in sorted({b.settings.priority for b in self.all}):
            group = [b for b in self.all if b.settings.priority == priority]
            while group:
                pick = self._rng.choices(group, weights=[b.settings.weight for b in group])[0]
                ordered.append(pick)
                group.remove(pick)
        now = self._clock()
        closed = [b for b in ordered if b.breaker.allows(now)]
        return closed + [b for b in ordered if b not in closed]

    async def complete(self, request: requests.ModelRequest) -> Reply:
        """A whole (non-streamed) response, or the client's own 4xx, after retries and fallback."""

        async def send(backend: Backend) -> Reply | Failure:
            response = await self._pool.request(
                "POST",
                backend.url(request.route),
                headers=backend.headers,
                body=backend.payload(request),
                timeout_s=backend.settings.timeout_ms / 1000,
            )
            if response.status < 400 or response.status not in RETRYABLE:
                return Reply(response.status, response.body, backend.name, 0)
            return _failure(response.status, response.headers, response.body)

        return await self._with_retries(send)

    async def open_stream(
        self, request: requests.ModelRequest
    ) -> tuple[http1.StreamingResponse, str]:
        """An upstream streaming response whose status is known good; the caller releases it."""

        async def send(backend: Backend) -> tuple[http1.StreamingResponse, str] | Failure:
            response = await self._pool.stream(
                "POST",
                backend.url(request.route),
                headers=backend.headers,
                body=backend.payload(request),
                connect_timeout_s=STREAM_CONNECT_TIMEOUT_S,
                read_timeout_s=backend.settings.timeout_ms / 1000,
            )
            if response.status < 400 or response.status not in RETRYABLE:
                return response, backend.name
            async with response:
                body = await response.read()
            return _failure(response.status, response.headers, body)

        return await self._with_retries(send)

    async def _with_retries(self, send: Callable[[Backend], Awaitable[T | Failure]]) -> T:
        policy = self._settings.retries
        last = Failure(502, "no backend was tried")
        attempts = 0
        for backend in self.plan():
            for attempt in range(1, policy.max_attempts + 1):
                attempts += 1
                try:
                    outcome = await send(backend)
                except (http1.ClientError, TimeoutError, OSError) as error:
                    outcome = Failure(504 if isinstance(error, TimeoutError) else 502,
                                      f"{backend.name}: {type(error).__name__}")  # fmt: skip
                if not isinstance(outcome, Failure):
                    backend.breaker.record_success()
                    if isinstance(outcome, Reply):
                        # T is Reply here; built directly, as dataclasses.replace costs more.
                        counted = Reply(outcome.status, outcome.body, outcome.backend, attempts)
                        return counted  # type: ignore[return-value]
                    return outcome
                backend.breaker.record_failure(self._clock())
                last = dataclasses.replace(outcome, detail=f"{backend.name}: {outcome.detail}")
                wait = resilience.backoff_seconds(
                    attempt, policy, retry_after_s=outcome.retry_after_s, rng=self._rng
                )
                too_long = (outcome.retry_after_s or 0) > policy.max_backoff_ms / 1000
                if attempt == policy.max_attempts or too_long or backend.breaker.is_open:
                    break
                await self._sleep(wait)
        if last.status == 429:
            raise errors.GatewayError(
                429,
                f"All backends are rate limited ({last.detail}).",
                type="requests",
                code="rate_limit_exceeded",
                headers=((b"retry-after", str(max(1, round(last.retry_after_s or 1))).encode()),),
            )
        raise errors.upstream_failed(last.detail)


def _failure(status: int, headers: dict[str, str], body: bytes) -> Failure:
    try:
        message = orjson.loads(body)["error"]["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message = body[:200].decode(errors="replace")
    return Failure(status, f"HTTP {status} {message}", resilience.parse_retry_after(headers))
