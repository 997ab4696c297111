"""One model call through the gateway: limits, cache, single-flight, backends, cost.

The order is chosen so that the cheap checks come first and every path ends in exactly one
response: requests-per-minute → cache (L1, Redis) → monthly budget → tokens-per-minute → one
upstream call per distinct in-flight request → cache fill → cost from usage. An exact cache hit
costs nothing, so it is served even once the budget is spent; the caller adds each call's cost
to the budget.
"""

from __future__ import annotations

import dataclasses
import decimal
import logging
from collections.abc import Mapping

import orjson

from tiers.runtime import asgi, pricing
from tiers.runtime.gateway import (
    asgi_io,
    budget,
    cache,
    config,
    errors,
    metrics,
    ratelimit,
    requests,
    semantic,
    singleflight,
    sse,
    upstream,
)
from tiers.runtime.providers import http1
from tiers.runtime.tracing import spans

log = logging.getLogger(__name__)

CACHE_HEADER = b"x-tiers-cache"
COST_HEADER = b"x-tiers-cost-usd"
BACKEND_HEADER = b"x-tiers-backend"
PRICES_KEPT = 256


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What the caller records about one answered call."""

    status: int
    cache: str
    usage: pricing.Usage
    cost: decimal.Decimal


class ModelCalls:
    def __init__(
        self,
        settings: config.GatewayConfig,
        *,
        limiter: ratelimit.RateLimiter,
        responses: cache.ResponseCache,
        backends: upstream.Backends,
        spend: budget.Budget,
        semantic_cache: semantic.SemanticCache | None = None,
    ) -> None:
        self._settings = settings
        self._limiter = limiter
        self._budget = spend
        self._cache = responses
        self._backends = backends
        self._semantic = semantic_cache
        self._flights: singleflight.SingleFlight[upstream.Reply] = singleflight.SingleFlight()
        self._prices = settings.price_overrides()
        self._price_of: dict[str, pricing.Price] = {}

    async def handle(
        self,
        request: requests.ModelRequest,
        tenant: str,
        send: asgi.Send,
        span: spans.Span | None = None,
        passed_on: Mapping[str, str] | None = None,
    ) -> Outcome:
        """Answers one call; `span` (when the call is traced) gets the cache lookup as an event
        and each upstream attempt as a child; `passed_on` (a caller's unsampled trace context)
        goes upstream as it came."""
        if self._settings.model is not None and request.model != self._settings.model:
            raise errors.model_not_found(request.model, self._settings.model)
        key = cache.cache_key(self._settings.endpoint, tenant, request)
        if self._cache.enabled:
            cached, source = await self._admit_and_look_up(tenant, key)
            if cached is not None:
                if span is not None:
                    span.event("cache.lookup", {"tiers.cache": "hit"})
                await self._send_cached(request, cached, send)
                return Outcome(200, "hit", pricing.Usage(), decimal.Decimal(0))
            label = "bypass" if source == "bypass" else "miss"
        else:
            await self._limiter.admit_requests(tenant)
            label = "off"
        if span is not None:
            span.event("cache.lookup", {"tiers.cache": label})
        self._budget.check()
        # Only after an exact miss: a Redis that is down (bypass) would not answer it either.
        similar = self._semantic if label == "miss" else None
        probe = await similar.probe(request, tenant, key) if similar is not None else None
        if probe is not None and probe.response is not None:
            spent = pricing.format_usd(probe.cost).encode()
            await self._send_cached(
                request, probe.response, send, label=semantic.HIT.encode(), cost=spent
            )
            return Outcome(200, semantic.HIT, probe.usage, probe.cost)
        estimate = request.estimated_tokens()
        await self._limiter.admit_tokens(tenant, estimate)
        if request.stream:
            usage, cost, status = await self._stream(request, key, label, send, span, passed_on)
        else:
            reply, shared = await self._flights.do(
                key, lambda: self._fetch(request, key, span, passed_on)
            )
            usage = _usage(reply.body) if reply.status == 200 and not shared else pricing.Usage()
            cost = self._cost(request, usage)
            await asgi_io.send_bytes(
                send,
                reply.status,
                reply.body,
                headers=[
                    (CACHE_HEADER, b"coalesced" if shared else label.encode()),
                    (COST_HEADER, pricing.format_usd(cost).encode()),
                    (BACKEND_HEADER, reply.backend.encode()),
                ],
            )
            status = reply.status
            label = "coalesced" if shared else label
        actual = usage.prompt_tokens + usage.completion_tokens
        await self._limiter.settle_tokens(tenant, estimated=estimate, actual=actual)
        if similar is not None and probe is not None:
            usage, cost = similar.settle(probe, status=status, usage=usage, cost=cost)
        return Outcome(status, label, usage, cost)

    async def _admit_and_look_up(self, tenant: str, key: str) -> tuple[bytes | None, str]:
        """The request-rate check, then the cache lookup: in one Redis round trip when both need
        Redis (a miss of L1 with a request limit), else each on its own."""
        local = self._cache.local(key)
        if local is not None:
            await self._limiter.admit_requests(tenant)
            return local, "l1"
        if not (self._cache.shared and self._limiter.checks_requests):
            await self._limiter.admit_requests(tenant)
            return await self._cache.get(key)
        fetched = await self._limiter.admit_requests(tenant, fetch=key)
        if isinstance(fetched, ratelimit.Unanswered):
            return None, "bypass"
        return self._cache.adopt(key, fetched)

    async def _fetch(
        self,
        request: requests.ModelRequest,
        key: str,
        span: spans.Span | None,
        passed_on: Mapping[str, str] | None,
    ) -> upstream.Reply:
        reply = await self._backends.complete(request, span, passed_on)
        metrics.UPSTREAM_ATTEMPTS.inc(reply.attempts)
        if reply.status == 200 and self._cache.enabled:
            self._cache.put(key, reply.body)
        return reply

    async def _send_cached(
        self,
        request: requests.ModelRequest,
        cached: bytes,
        send: asgi.Send,
        *,
        label: bytes = b"hit",
        cost: bytes = b"0.000000",
    ) -> None:
        headers = [(CACHE_HEADER, label), (COST_HEADER, cost)]
        if not request.stream:
            await asgi_io.send_bytes(send, 200, cached, headers=headers)
            return
        await asgi_io.start_stream(send, headers=headers)
        whole = orjson.loads(cached)
        events = list(
            sse.replay(
                whole if isinstance(whole, dict) else {}, include_usage=request.include_usage
            )
        )
        events.insert(-1, sse.cost_comment(cost.decode()))  # before [DONE], as a miss has it
        await asgi_io.send_chunk(send, b"".join(events), more=False)

    async def _stream(
        self,
        request: requests.ModelRequest,
        key: str,
        label: str,
        send: asgi.Send,
        span: spans.Span | None,
        passed_on: Mapping[str, str] | None,
    ) -> tuple[pricing.Usage, decimal.Decimal, int]:
        """Passes the upstream stream through event by event while rebuilding it for the cache;
        the call's cost goes out as a comment just before [DONE] (its usage has come by then).

        A stream the backend breaks off (the connection drops, a read times out, an event is not
        JSON) ends with an OpenAI-style error event and no [DONE]: its 200 has left already, and
        the openai SDK raises that event as an `APIError`. Nothing of it is cached."""
        response, backend = await self._backends.open_stream(request, span, passed_on)
        try:
            if response.status != 200:
                body = await response.read()
                await asgi_io.send_bytes(send, response.status, body)
                return pricing.Usage(), decimal.Decimal(0), response.status
            await asgi_io.start_stream(
                send, headers=[(CACHE_HEADER, label.encode()), (BACKEND_HEADER, backend.encode())]
            )
            splitter = sse.EventSplitter(self._settings.limits.max_event_bytes)
            status = 200
            whole = sse.ChatAccumulator()
            cost: decimal.Decimal | None = None
            try:
                async for data in response.iter_chunks():
                    forward = []
                    for event in splitter.feed(data):
                        if not _take(event, whole, client_wants_usage=request.include_usage):
                            continue
                        if whole.complete and cost is None:  # this event is the [DONE]
                            cost = self._cost(request, pricing.Usage.from_openai(whole.usage))
                            forward.append(sse.cost_comment(pricing.format_usd(cost)))
                        forward.append(event)
                    if forward:
                        await asgi_io.send_chunk(send, b"".join(forward))
            except sse.EventTooLarge as error:
                # The stream is cut (the client sees no [DONE]) and nothing of it is cached.
                log.warning("backend %s: %s; the stream is cut", backend, error)
                whole = sse.ChatAccumulator()
            except (http1.ClientError, TimeoutError, UnreadableEvent) as error:
                why = "a read timed out" if isinstance(error, TimeoutError) else str(error)
                log.warning("backend %s broke off a stream: %s", backend, why)
                broken = errors.stream_broken(backend, why)
                await asgi_io.send_chunk(send, sse.error_event(broken.body()))
                whole, status = sse.ChatAccumulator(), broken.status
            await asgi_io.send_chunk(send, b"", more=False)
        finally:
            response.release()
        assembled = whole.response()
        if assembled is not None and self._cache.enabled:
            self._cache.put(key, orjson.dumps(assembled))
        usage = pricing.Usage.from_openai(whole.usage)
        return usage, self._cost(request, usage) if cost is None else cost, status

    def _cost(self, request: requests.ModelRequest, usage: pricing.Usage) -> decimal.Decimal:
        price = self._price_of.get(request.model)
        if price is None:
            # Finding a model's family scans the price table; clients name few models, so keep
            # the answers (and forget them all if someone sends many names).
            if len(self._price_of) >= PRICES_KEPT:
                self._price_of.clear()
            price = self._price_of[request.model] = pricing.price_for(request.model, self._prices)
        return pricing.cost(usage, price)


class UnreadableEvent(ValueError):
    """A streamed event whose data is neither JSON nor [DONE]: the backend is broken."""


def _take(event: bytes, whole: sse.ChatAccumulator, *, client_wants_usage: bool) -> bool:
    """Feeds one event to the accumulator; says whether the client should see it."""
    data = sse.event_data(event)
    if data is None:
        return True
    if data == b"[DONE]":
        whole.mark_done()
        return True
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UnreadableEvent(f"an event is not JSON: {data[:80]!r}") from None
    whole.add(chunk)
    if not isinstance(chunk, dict):
        return True
    # The gateway asked for usage on the client's behalf; a client that did not gets none.
    return client_wants_usage or not (chunk.get("usage") and not chunk.get("choices"))


def _usage(body: bytes) -> pricing.Usage:
    try:
        return pricing.Usage.from_openai(orjson.loads(body).get("usage"))
    except (orjson.JSONDecodeError, AttributeError):
        return pricing.Usage()
