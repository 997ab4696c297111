"""The async, batched model client that the stream and batch tiers share.

`ModelClient.score(rows, keys=...)` sends one request per row (or per `rows_per_request` rows,
for completions and embeddings), all at once but at most `max_in_flight` open, over one
`http1.Pool` (the gateway's lean HTTP/1.1 client); retries 429, 5xx, timeouts and broken
connections with the gateway's full-jitter backoff (honouring Retry-After); and returns one
`RowResult` per row in input order.
A model error never raises: it is that row's error.

Async callers own a client (`async with ModelClient(config) as client`); Spark workers reach one
through `blocking`, which keeps a client per config on a process-wide event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import random
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from tiers.runtime import http1, pricing
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
        price = settings.price()
        # Rows of one multi-row request share a handful of distinct usages, so their prices repeat.
        self._cost_text = functools.lru_cache(maxsize=1024)(
            lambda usage: pricing.format_usd(pricing.cost(usage, price))
        )
        self._timeout_s = settings.timeout_ms / 1000
        self._rng = random.Random()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool: http1.Pool | None = None
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
        pool, slots = self._open()
        found: list[results.RowResult | None] = [None] * len(rows)
        ready: list[tuple[int, str]] = []
        for i, row in enumerate(rows):
            try:
                ready.append((i, prompts.render(self.config.prompt, row)))
            except prompts.PromptError as error:
                found[i] = results.failed(keys[i], str(error))
        size = self.config.rows_per_request
        groups = [ready[start : start + size] for start in range(0, len(ready), size)]
        calls = (
            self._score_group(pool, slots, [p for _, p in g], [keys[i] for i, _ in g])
            for g in groups
        )
        for group, scored in zip(groups, await asyncio.gather(*calls), strict=True):
            for (i, _), result in zip(group, scored, strict=True):
                found[i] = result
        return [result for result in found if result is not None]

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
            self._slots = None
            self._loop = None

    def _open(self) -> tuple[http1.Pool, asyncio.Semaphore]:
        # Created on first use, inside the loop that will run them (its connections belong to it).
        loop = asyncio.get_running_loop()
        if self._loop is not None and self._loop is not loop:
            raise RuntimeError("a ModelClient serves only the event loop it first scored on")
        self._loop = loop
        if self._pool is None or self._slots is None:
            self._pool = http1.Pool(max_per_host=self.config.max_in_flight)
            self._slots = asyncio.Semaphore(self.config.max_in_flight)
        return self._pool, self._slots

    async def _score_group(
        self,
        pool: http1.Pool,
        slots: asyncio.Semaphore,
        texts: Sequence[str],
        keys: Sequence[str],
    ) -> list[results.RowResult]:
        """One request for the group's rows (one row unless rows_per_request > 1), retried as a
        whole; the rows share its attempts and latency."""
        batched = self.config.rows_per_request > 1
        if batched:
            body = wire.batch_body(self.config, texts)
            key = keys[0] if len(keys) == 1 else f"{keys[0]}+{len(keys) - 1}"
        else:
            body, key = wire.request_body(self.config, texts[0]), keys[0]
        headers = {**self._headers, IDEMPOTENCY_HEADER: key}
        # A request keeps its slot while it backs off, so a throttled backend sees fewer of them.
        async with slots:
            started = time.perf_counter()
            attempt = 0
            while True:
                attempt += 1
                outcome = await self._attempt(pool, body, headers)
                if isinstance(outcome, bytes):
                    try:
                        replies: list[wire.Reply | str] = (
                            wire.parse_batch_reply(self.config.route, outcome, len(keys))
                            if batched
                            else [wire.parse_reply(self.config.route, outcome)]
                        )
                    except ValueError as error:
                        outcome = _Failure(str(error), retryable=False)
                    else:
                        latency_ms = _ms_since(started)
                        return [
                            self._succeeded(k, reply, attempt, latency_ms)
                            if isinstance(reply, wire.Reply)
                            else results.failed(k, reply, attempts=attempt, latency_ms=latency_ms)
                            for k, reply in zip(keys, replies, strict=True)
                        ]
                final = self._final_error(outcome, attempt)
                if final is not None:
                    latency_ms = _ms_since(started)
                    return [
                        results.failed(k, final, attempts=attempt, latency_ms=latency_ms)
                        for k in keys
                    ]
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
        self, pool: http1.Pool, body: bytes, headers: Mapping[str, str]
    ) -> bytes | _Failure:
        """The body of a 2xx reply, or why there is none."""
        try:
            response = await pool.request(
                "POST", self._url, headers=headers, body=body, timeout_s=self._timeout_s
            )
        except TimeoutError:
            return _Failure(f"timed out after {self.config.timeout_ms} ms", retryable=True)
        except (http1.ClientError, OSError) as error:
            return _Failure(f"connection failed: {type(error).__name__}: {error}", retryable=True)
        if response.status >= 400:
            return _Failure(
                wire.error_message(response.status, response.body),
                retryable=response.status in upstream.RETRYABLE,
                retry_after_s=resilience.parse_retry_after(response.headers),
            )
        return response.body

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
            cost_usd=self._cost_text(reply.usage),
            finish_reason=reply.finish_reason,
        )


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
