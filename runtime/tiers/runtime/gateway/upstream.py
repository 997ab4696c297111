"""The endpoint's backends as one set: pick one by priority and weight, retry it as the providers
layer does, fall back to the next, and keep a circuit breaker per backend.

Each backend's attempts go through `providers.retries.send_with_retries`; what this adds is the
order of the backends (open circuits last), the fallback from one to the next, and the
OpenAI-style error a client gets when all of them failed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar

from tiers.runtime import providers
from tiers.runtime.gateway import config, errors, requests, traces
from tiers.runtime.providers import backends, breakers, failures, http1, retries
from tiers.runtime.tracing import spans

T = TypeVar("T")
R = TypeVar("R", http1.Response, http1.StreamingResponse)


@dataclasses.dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    backend: str
    attempts: int


@dataclasses.dataclass(frozen=True)
class Member:
    """One backend of the set, with the circuit breaker the set keeps for it."""

    backend: backends.Backend
    breaker: breakers.CircuitBreaker

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def settings(self) -> providers.BackendConfig:
        return self.backend.settings


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
        self._policy = settings.retries
        self._pool = pool
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.all = [
            Member(backends.Backend(backend), breakers.CircuitBreaker(settings.circuit_breaker))
            for backend in settings.backends
        ]

    def plan(self) -> list[Member]:
        """The order to try: by priority; within one, a weighted shuffle. Open circuits go last."""
        if len(self.all) == 1:
            # Nothing to order (an open circuit would go last, behind nothing): skip the shuffle.
            return self.all
        ordered: list[Member] = []
        for priority in sorted({m.settings.priority for m in self.all}):
            group = [m for m in self.all if m.settings.priority == priority]
            while group:
                pick = self._rng.choices(group, weights=[m.settings.weight for m in group])[0]
                ordered.append(pick)
                group.remove(pick)
        now = self._clock()
        closed = [m for m in ordered if m.breaker.allows(now)]
        return closed + [m for m in ordered if m not in closed]

    async def complete(
        self,
        request: requests.ModelRequest,
        span: spans.Span | None = None,
        passed_on: Mapping[str, str] | None = None,
    ) -> Reply:
        """A whole (non-streamed) response, or the client's own 4xx, after retries and fallback;
        with `span`, each attempt is a child span of it (`traces`); without, `passed_on` (an
        unsampled caller's trace context) goes upstream with each attempt."""

        def attempt(backend: backends.Backend) -> retries.Attempt[http1.Response]:
            payload = backend.payload(request.body)
            send = functools.partial(backend.request, self._pool, request.route, payload)
            return _attempt(send, span, passed_on, backend, request)

        response, backend, attempts = await self._first_answer(attempt, span)
        return Reply(response.status, response.body, backend, attempts)

    async def open_stream(
        self,
        request: requests.ModelRequest,
        span: spans.Span | None = None,
        passed_on: Mapping[str, str] | None = None,
    ) -> tuple[http1.StreamingResponse, str]:
        """An upstream streaming response whose status is known good; the caller releases it."""

        def attempt(backend: backends.Backend) -> retries.Attempt[http1.StreamingResponse]:
            payload = backend.payload(request.body, stream=True)
            send = functools.partial(backend.open_stream, self._pool, request.route, payload)
            return _attempt(send, span, passed_on, backend, request)

        response, backend, _ = await self._first_answer(attempt, span)
        return response, backend

    async def _first_answer(
        self,
        attempt: Callable[[backends.Backend], retries.Attempt[T]],
        span: spans.Span | None = None,
    ) -> tuple[T, str, int]:
        """The first backend's answer that is not a failure, its name and the attempts made in
        all; the 429 or 502 for the client once every backend has failed."""
        last: tuple[str, failures.Failure] | None = None
        attempts = 0
        for member in self.plan():
            if span is not None and last is not None:
                traces.fell_back(span, to=member.name, failed=last[0], failure=last[1])
            tried = await retries.send_with_retries(
                attempt(member.backend),
                policy=self._policy,
                rng=self._rng,
                sleep=self._sleep,
                breaker=member.breaker,
                clock=self._clock,
            )
            attempts += tried.attempts
            if not isinstance(tried.outcome, failures.Failure):
                return tried.outcome, member.name, attempts
            last = (member.name, tried.outcome)
        raise _all_failed(last)


def _attempt(
    send: functools.partial[Coroutine[Any, Any, R | failures.Failure]],
    span: spans.Span | None,
    passed_on: Mapping[str, str] | None,
    backend: backends.Backend,
    request: requests.ModelRequest,
) -> retries.Attempt[R]:
    """`send` (one attempt, given the headers to send, else with the backend's own) as the call
    is traced: a span of its own, or an unsampled caller's context passed on as it came."""
    if span is not None:
        return traces.traced(span, backend, request, send)
    if passed_on is not None:
        return functools.partial(send, {**backend.headers, **passed_on})
    return send


def _all_failed(last: tuple[str, failures.Failure] | None) -> errors.GatewayError:
    if last is None:
        return errors.upstream_failed("no backend was tried")
    backend, failure = last
    detail = f"{backend}: {failure.message}"
    if failure.status == 429:
        return errors.GatewayError(
            429,
            f"All backends are rate limited ({detail}).",
            type="requests",
            code="rate_limit_exceeded",
            headers=((b"retry-after", str(max(1, round(failure.retry_after_s or 1))).encode()),),
        )
    return errors.upstream_failed(detail)
