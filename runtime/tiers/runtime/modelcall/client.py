"""The async, batched model client that the stream and batch tiers share.

`ModelClient.score(rows, keys=...)` sends one request per row, all rows at once but at most
`max_in_flight` open, over one pooled `aiohttp` session; retries 429, 5xx, timeouts and broken
connections with the gateway's full-jitter backoff (honouring Retry-After); and returns one
`RowResult` per row in input order. A model error never raises: it is that row's error.

Async callers own a client (`async with ModelClient(config) as client`); Spark workers reach one
through `blocking`, which keeps a client per config on a process-wide event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import aiohttp

from tiers.runtime import pricing
from tiers.runtime.gateway import config as gateway_config
from tiers.runtime.gateway import resilience, upstream
from tiers.runtime.modelcall import config, prompts, results, wire

IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclasses.dataclass(frozen=True)
class _Failure:
    message: str
    retryable: bool
    retry_after_s: float | None = None


class ModelClient:
    """Bound to the event loop it first scores on; `close()` it on that loop."""

    def __init__(self, settings: config.ModelCallConfig) -> None:
        self.config = settings
        # The gateway's Backend knows each provider's URL form and auth header; its circuit
        # breaker is unused here, since a row's retries are bounded by max_attempts anyway.
        backend = upstream.Backend(
            settings.backend, resilience.CircuitBreaker(gateway_config.CircuitBreakerConfig())
        )
        self._url = backend.url(settings.route)
        self._headers = dict(backend.headers)
        self._policy = settings.retry_policy
        self._price = settings.price()
        self._timeout = aiohttp.ClientTimeout(total=settings.timeout_ms / 1000)
        self._rng = random.Random()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def score(
        self, rows: Sequence[Mapping[str, Any]], *, keys: Sequence[str]
    ) -> list[results.RowResult]:
        """One result per row, in input order; `keys[i]` is row i's idempotency key."""
        if len(rows) != len(keys):
            raise ValueError(f"score: {len(rows)} rows but {len(keys)} keys")
        session, slots = self._open()
        calls = (
            self._score_row(session, slots, row, key) for row, key in zip(rows, keys, strict=True)
        )
        return list(await asyncio.gather(*calls))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
            self._slots = None
            self._loop = None

    def _open(self) -> tuple[aiohttp.ClientSession, asyncio.Semaphore]:
        # Created on first use, inside the loop that will run them (aiohttp requires it).
        loop = asyncio.get_running_loop()
        if self._loop is not None and self._loop is not loop:
            raise RuntimeError("a ModelClient serves only the event loop it first scored on")
        self._loop = loop
        if self._session is None or self._slots is None:
            connector = aiohttp.TCPConnector(limit=self.config.max_in_flight)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
            self._slots = asyncio.Semaphore(self.config.max_in_flight)
        return self._session, self._slots

    async def _score_row(
        self,
        session: aiohttp.ClientSession,
        slots: asyncio.Semaphore,
        row: Mapping[str, Any],
        key: str,
    ) -> results.RowResult:
        try:
            body = wire.request_body(self.config, prompts.render(self.config.prompt, row))
        except prompts.PromptError as error:
            return results.failed(key, str(error))
        headers = {**self._headers, IDEMPOTENCY_HEADER: key}
        # A row keeps its slot while it backs off, so a throttled backend sees fewer requests.
        async with slots:
            started = time.perf_counter()
            attempt = 0
            while True:
                attempt += 1
                outcome = await self._attempt(session, body, headers)
                if isinstance(outcome, wire.Reply):
                    return self._succeeded(key, outcome, attempt, _ms_since(started))
                final = self._final_error(outcome, attempt)
                if final is not None:
                    return results.failed(
                        key, final, attempts=attempt, latency_ms=_ms_since(started)
                    )
                await asyncio.sleep(
                    resilience.backoff_seconds(
                        attempt, self._policy, retry_after_s=outcome.retry_after_s, rng=self._rng
                    )
                )

    def _final_error(self, failure: _Failure, attempt: int) -> str | None:
        """The row's error when this failure ends its retries; None to try again."""
        if not failure.retryable or attempt >= self._policy.max_attempts:
            return failure.message
        if (failure.retry_after_s or 0) > self._policy.max_backoff_ms / 1000:
            return (
                f"{failure.message} (the server asks to retry after "
                f"{failure.retry_after_s:g} s, longer than max_backoff_ms)"
            )
        return None

    async def _attempt(
        self, session: aiohttp.ClientSession, body: bytes, headers: Mapping[str, str]
    ) -> wire.Reply | _Failure:
        try:
            async with session.post(self._url, data=body, headers=headers) as response:
                raw = await response.read()
                if response.status >= 400:
                    retry_after = resilience.parse_retry_after(
                        {name.lower(): value for name, value in response.headers.items()}
                    )
                    return _Failure(
                        wire.error_message(response.status, raw),
                        retryable=response.status in upstream.RETRYABLE,
                        retry_after_s=retry_after,
                    )
        except TimeoutError:
            return _Failure(f"timed out after {self.config.timeout_ms} ms", retryable=True)
        except (aiohttp.ClientError, OSError) as error:
            return _Failure(f"connection failed: {type(error).__name__}: {error}", retryable=True)
        try:
            return wire.parse_reply(self.config.route, raw)
        except ValueError as error:
            return _Failure(f"HTTP {response.status}: {error}", retryable=False)

    def _succeeded(
        self, key: str, reply: wire.Reply, attempts: int, latency_ms: int
    ) -> results.RowResult:
        return results.RowResult(
            key=key,
            status="ok",
            output=reply.output,
            error=None,
            attempts=attempts,
            latency_ms=latency_ms,
            tokens_in=reply.usage.prompt_tokens,
            tokens_out=reply.usage.completion_tokens,
            cost_usd=pricing.format_usd(pricing.cost(reply.usage, self._price)),
            finish_reason=reply.finish_reason,
        )


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
