"""The async, batched model client that the stream and batch tiers share.

`ModelClient.score(rows, keys=...)` sends one request per row (or per `rows_per_request` rows,
for completions and embeddings), all at once but at most `max_in_flight` open, over one
`http1.Pool`; retries 429, 5xx, timeouts and broken connections as every caller of a model does
(`providers.retries`: full-jitter backoff, Retry-After honoured); and returns one `RowResult` per
row in input order. A model error never raises: it is that row's error. How to reach the backend
(URL, auth, payload) is the providers layer's; what this adds is rows.

`ModelClient.send_raw(requests)` is its sibling for bodies the caller prepared (`raw`): each
sent as it is to its own route, under the same limit and retries, and the whole answer returned.

Async callers own a client (`async with ModelClient(config) as client`); Spark workers reach one
through `blocking`, which keeps a client per config on a process-wide event loop.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from tiers.runtime import pricing, tls
from tiers.runtime.modelcall import config, prompts, raw, results, wire
from tiers.runtime.providers import backends, failures, http1, retries, routes

IDEMPOTENCY_HEADER = "Idempotency-Key"
Finished = Callable[[int, int, int], None]
"""Told of a row that was sent: its index in the rows scored, when its request's first attempt
began and when its last ended (ns since the epoch)."""


class ModelClient:
    """Bound to the event loop it first scores on; `close()` it on that loop."""

    def __init__(self, settings: config.ModelCallConfig) -> None:
        self.config = settings
        # No circuit breaker: with one backend there is nothing to fall back to, and a row's
        # retries are bounded by max_attempts anyway.
        self._backend = backends.Backend(settings.backend)
        self._policy = settings.retry_policy
        price = settings.price()
        # Rows of one multi-row request share a handful of distinct usages, so their prices repeat.
        self._cost_text = functools.lru_cache(maxsize=1024)(
            lambda usage: pricing.format_usd(pricing.cost(usage, price))
        )
        self._prices = raw.ReplyPrices(settings)
        self._rng = random.Random()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool: http1.Pool | None = None
        self._slots: asyncio.Semaphore | None = None
        self._trust: tls.TrustedCAs | None = None

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
        self,
        rows: Sequence[Mapping[str, Any]],
        *,
        keys: Sequence[str],
        headers: Sequence[Mapping[str, str] | None] | None = None,
        finished: Finished | None = None,
    ) -> list[results.RowResult]:
        """One result per row, in input order; `keys[i]` is row i's idempotency key, and
        `headers[i]` (when given) more headers for its request, such as its trace context (a
        request of several rows sends its first row's). `finished` (when given) is told, on this
        client's loop, when each row sent was answered (its spans' times)."""
        if len(rows) != len(keys):
            raise ValueError(f"score: {len(rows)} rows but {len(keys)} keys")
        if headers is not None and len(headers) != len(rows):
            raise ValueError(f"score: {len(rows)} rows but {len(headers)} headers")
        pool, slots = self._open()
        found: list[results.RowResult | None] = [None] * len(rows)
        positions: list[int] = []
        """Where each row that rendered sits in `rows`."""
        texts: list[str] = []
        sent_keys: list[str] = []
        for i, row in enumerate(rows):
            try:
                texts.append(prompts.render(self.config.prompt, row))
            except prompts.PromptError as error:
                found[i] = results.failed(keys[i], str(error))
                continue
            positions.append(i)
            sent_keys.append(keys[i])
        sent_headers = None if headers is None else [headers[i] for i in positions]
        # Each request gets its rows as a range of these lists, not lists of its own: thousands
        # of requests are in flight at once, and every object each keeps alive makes the garbage
        # collector run more often.
        size = self.config.rows_per_request
        starts = range(0, len(texts), size)
        groups = (
            self._score_group(
                pool,
                slots,
                texts,
                sent_keys,
                start,
                min(start + size, len(texts)),
                None if sent_headers is None else sent_headers[start],
            )
            for start in starts
        )
        if finished is not None:
            groups = (
                _timed(group, positions[start : start + size], finished)
                for start, group in zip(starts, groups, strict=True)
            )
        scored = await asyncio.gather(*groups)
        for start, group in zip(starts, scored, strict=True):
            for offset, result in enumerate(group):
                found[positions[start + offset]] = result
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
            self._trust = self._trusted_cas()
            context = None if self._trust is None else self._trust.context
            self._pool = http1.Pool(max_per_host=self.config.max_in_flight, ssl_context=context)
            self._slots = asyncio.Semaphore(self.config.max_in_flight)
        elif self._trust is not None:
            self._trust.refresh()
        return self._pool, self._slots

    def _trusted_cas(self) -> tls.TrustedCAs | None:
        """A gateway's https URL is verified against the CA its config names (TLS 1.2+), and
        the CAs added to it later (a CA being replaced) too."""
        target = self.config.target
        if isinstance(target, config.EndpointTarget) and target.url.startswith("https://"):
            return tls.TrustedCAs(target.ca_file)
        return None

    async def _score_group(
        self,
        pool: http1.Pool,
        slots: asyncio.Semaphore,
        texts: Sequence[str],
        keys: Sequence[str],
        start: int,
        stop: int,
        headers: Mapping[str, str] | None = None,
    ) -> list[results.RowResult]:
        """One request for rows `start` to `stop` of `texts` (one row unless rows_per_request >
        1), retried as a whole; the rows share its attempts and latency."""
        batched = self.config.rows_per_request > 1
        if batched:
            body = wire.batch_body(self.config, texts[start:stop])
            key = keys[start] if stop - start == 1 else f"{keys[start]}+{stop - start - 1}"
        else:
            body, key = wire.request_body(self.config, texts[start]), keys[start]
        outcome, attempts, latency_ms = await self._send(
            pool, slots, self.config.route, body, key, headers
        )
        row_keys = keys[start:stop]
        if isinstance(outcome, failures.Failure):
            error = outcome.message
        elif outcome.status >= 400:
            error = failures.error_message(outcome.status, outcome.body)
        else:
            try:
                replies: list[wire.Reply | str] = (
                    wire.parse_batch_reply(self.config.route, outcome.body, len(row_keys))
                    if batched
                    else [wire.parse_reply(self.config.route, outcome.body)]
                )
            except ValueError as unexpected:
                error = str(unexpected)
            else:
                return [
                    self._succeeded(k, reply, attempts, latency_ms)
                    if isinstance(reply, wire.Reply)
                    else results.failed(k, reply, attempts=attempts, latency_ms=latency_ms)
                    for k, reply in zip(row_keys, replies, strict=True)
                ]
        return [
            results.failed(k, error, attempts=attempts, latency_ms=latency_ms) for k in row_keys
        ]

    async def send_raw(self, requests: Sequence[raw.RawRequest]) -> list[raw.RawReply]:
        """One reply per request, in input order: each body sent as it is to its own route (the
        config's model where the body names none), one request each, retried as `score` does."""
        pool, slots = self._open()
        return list(await asyncio.gather(*(self._send_raw(pool, slots, r) for r in requests)))

    async def _send_raw(
        self, pool: http1.Pool, slots: asyncio.Semaphore, request: raw.RawRequest
    ) -> raw.RawReply:
        body = raw.with_model(request.body, self.config.model)
        outcome, attempts, latency_ms = await self._send(
            pool, slots, request.route, body, request.key
        )
        return raw.reply(
            request.key, outcome, attempts=attempts, latency_ms=latency_ms, prices=self._prices
        )

    async def _send(
        self,
        pool: http1.Pool,
        slots: asyncio.Semaphore,
        route: routes.Route,
        body: dict[str, Any],
        key: str,
        more_headers: Mapping[str, str] | None = None,
    ) -> tuple[http1.Response | failures.Failure, int, int]:
        """One request with its retries: the last attempt's outcome, the attempts made, and the
        milliseconds from the first attempt to the outcome."""
        payload = self._backend.payload(body)
        headers = {**self._backend.headers, IDEMPOTENCY_HEADER: key}
        if more_headers:
            headers.update(more_headers)
        # A request keeps its slot while it backs off, so a throttled backend sees fewer of them.
        async with slots:
            started = time.perf_counter()
            outcome, attempts = await retries.send_with_retries(
                self._backend.request, pool, route, payload, headers,
                policy=self._policy, rng=self._rng,
            )  # fmt: skip
            return outcome, attempts, _ms_since(started)

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


async def _timed(
    group: Awaitable[list[results.RowResult]], rows_at: Sequence[int], finished: Finished
) -> list[results.RowResult]:
    """`group`'s results, telling `finished` when each of its rows was answered."""
    answered = await group
    ended_ns = time.time_ns()
    for row, result in zip(rows_at, answered, strict=True):
        finished(row, ended_ns - result.latency_ms * 1_000_000, ended_ns)
    return answered


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
