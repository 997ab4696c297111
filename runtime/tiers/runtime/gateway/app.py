"""The gateway as an ASGI application: routes, auth, errors and metrics around `calls`.

`Gateway(config)` is served by uvicorn (see `server`); its clients to Redis and the backends are
opened at ASGI startup and closed at shutdown.
"""

from __future__ import annotations

import decimal
import functools
import logging
import os
import time

import orjson
import redis.asyncio as aioredis

from tiers.runtime import asgi, stats
from tiers.runtime.gateway import (
    asgi_io,
    audit,
    availability,
    batches,
    budget,
    cache,
    callers,
    calls,
    config,
    errors,
    metrics,
    ratelimit,
    rediswire,
    requests,
    semantic,
    traces,
    upstream,
)
from tiers.runtime.providers import http1, routes
from tiers.runtime.tracing import export, spans

log = logging.getLogger(__name__)

# Cache outcomes as hits (True), misses (False) or no lookup (absent).
CACHE_HITS = {
    "hit": True,
    "coalesced": True,
    semantic.HIT: True,
    "miss": False,
    "bypass": False,
}
UPSTREAM_CONNECTIONS_PER_HOST = 512
"""Enough for every in-flight call of a busy replica; past it a call waits for a free one."""


class Gateway:
    def __init__(self, settings: config.GatewayConfig) -> None:
        self.settings = settings
        self.callers = callers.Callers(settings)
        self.keys = self.callers.keys
        self._redis: aioredis.Redis | None = None
        """redis-py, for what runs once a second (stats, budget) or needs its commands (vectors)."""
        self._wire: rediswire.Client | None = None
        """The lean client, for the commands of every request (limits, cache)."""
        self._pool: http1.Pool | None = None
        self._calls: calls.ModelCalls | None = None
        self.redis = availability.Availability("redis", configured=bool(settings.redis_url))
        self.stats = stats.Recorder(settings.endpoint)
        self.budget = budget.Budget(settings.budget_usd, settings.endpoint)
        self.audit = audit.build(settings.endpoint, settings.audit_sample_ratio)
        self.tracer: spans.Tracer | None = None
        """Set at startup when spec.telemetry names a collector; None: no spans, no cost."""
        self._exporter: export.Exporter | None = None
        self.batches: batches.BatchAPI | None = None
        if settings.batch is not None:
            self.batches = batches.BatchAPI(
                settings.batch,
                auth=self.callers,
                spend=self.budget,
                max_body_bytes=settings.max_body_bytes,
            )
        self._models = orjson.dumps(
            {
                "object": "list",
                "data": [
                    {"id": model, "object": "model", "created": 0, "owned_by": "tiers"}
                    for model in self._served_models()
                ],
            }
        )

    def _served_models(self) -> list[str]:
        if self.settings.model is not None:
            return [self.settings.model]
        return sorted({b.model for b in self.settings.backends if b.model != "*"})

    async def startup(self) -> None:
        self.callers.start()
        if self.settings.tracing is not None:
            self.tracer, self._exporter = export.tracer(
                self.settings.tracing,
                resource={"tiers.endpoint": self.settings.endpoint},
                counted=metrics.count_spans,
            )
            self._exporter.start()
        if self.settings.redis_url:
            env = self.settings.redis_password_env
            password = (os.environ.get(env, "").strip() or None) if env else None
            self._redis = aioredis.Redis.from_url(
                self.settings.redis_url,
                password=password,
                socket_timeout=0.5,
                socket_connect_timeout=0.5,
                health_check_interval=0,
                retry_on_timeout=False,
            )
            self._wire = rediswire.Client(self.settings.redis_url, password=password, timeout_s=0.5)
        self._pool = http1.Pool(
            max_per_host=UPSTREAM_CONNECTIONS_PER_HOST,
            max_body_bytes=self.settings.limits.max_upstream_body_bytes,
        )
        responses = cache.ResponseCache(self.settings.cache, self._wire, self.redis)
        self._calls = calls.ModelCalls(
            self.settings,
            limiter=ratelimit.RateLimiter(
                self.settings.rate_limits, self._wire, self.redis, endpoint=self.settings.endpoint
            ),
            responses=responses,
            backends=upstream.Backends(self.settings, self._pool),
            spend=self.budget,
            semantic_cache=semantic.build(
                self.settings,
                responses,
                self._wire,
                self.redis,
                backends=functools.partial(upstream.Backends, pool=self._pool),
            ),
        )

        if self._redis is not None:
            self.stats.start(self._redis)
            await self.budget.start(self._redis)
        if self.batches is not None:
            self.batches.start()

    async def shutdown(self) -> None:
        await self.callers.close()
        if self._pool is not None:
            await self._pool.close()
        if self._redis is not None:
            await self.stats.stop(self._redis)
            await self.budget.stop(self._redis)
            await self._redis.aclose()
        if self._wire is not None:
            await self._wire.close()
        if self.batches is not None:
            await self.batches.close()
        if self._exporter is not None:
            await self._exporter.close()

    async def __call__(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        path, method = scope["path"], scope["method"]
        route = requests.ROUTES.get(path.encode())
        if route is not None and method == "POST":
            await self._model_call(route, scope, receive, send)
        elif path in ("/healthz", "/readyz") and method == "GET":
            await asgi_io.send_bytes(send, 200, self._health())
        elif path == "/v1/models" and method == "GET":
            try:
                await self.callers.tenant(asgi_io.header(scope, b"authorization"))
            except errors.GatewayError as error:
                await asgi_io.send_error(send, error)
            else:
                await asgi_io.send_bytes(send, 200, self._models)
        elif path == "/metrics" and method == "GET":
            await asgi_io.send_bytes(
                send, 200, metrics.exposition(), content_type=b"text/plain; version=0.0.4"
            )
        elif self.batches is not None and path.startswith(batches.PREFIXES):
            await self.batches(scope, receive, send)
        else:
            await asgi_io.send_error(
                send, errors.GatewayError(404, f"No route {method} {path}.", code="not_found")
            )

    async def _model_call(
        self, route: routes.Route, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send
    ) -> None:
        started = time.perf_counter()
        assert self._calls is not None, "the ASGI lifespan startup did not run"
        status, label, outcome = 500, "none", None
        tenant: str | None = None
        request: requests.ModelRequest | None = None
        failure: errors.GatewayError | None = None
        span = passed_on = None
        if self.tracer is not None:
            span = traces.start_call(self.tracer, route, scope)
            if span is None:
                passed_on = traces.passed_on(scope)
        try:
            authorization = asgi_io.header(scope, b"authorization")
            # A key costs what it always did; only a bearer that is no key is tried as a JWT.
            tenant = self.keys.tenant(authorization) or await self.callers.token_tenant(
                authorization
            )
            if span is not None:
                span.event("authenticated")
            body = await asgi_io.read_body(receive, limit=self.settings.max_body_bytes)
            request = requests.parse(route, body)
            outcome = await self._calls.handle(request, tenant, send, span, passed_on)
            status, label = outcome.status, outcome.cache
            _record_spend(outcome)
            self.budget.add(outcome.cost)
        except errors.GatewayError as error:
            status, failure = error.status, error
            await asgi_io.send_error(send, error)
        except ConnectionResetError:
            status = 499
        except Exception:
            log.exception("unexpected error in %s", route)
            await asgi_io.send_error(
                send, errors.GatewayError(500, "Internal gateway error.", type="api_error")
            )
        finally:
            elapsed = time.perf_counter() - started
            metrics.requests_counter(route, status, label).inc()
            metrics.latency_histogram(route, label).observe(elapsed)
            self._record_stats(elapsed, status, label, outcome)
            if span is not None:
                traces.end_call(
                    span,
                    endpoint=self.settings.endpoint,
                    request=request,
                    status=status,
                    cache=label,
                    usage=None if outcome is None else outcome.usage,
                    cost=decimal.Decimal(0) if outcome is None else outcome.cost,
                    error=failure,
                )
            if self.audit is not None:
                self.audit.record(
                    tenant=tenant,
                    route=route,
                    model=None if request is None else request.model,
                    status=status,
                    cache=label,
                    usage=None if outcome is None else outcome.usage,
                    cost=decimal.Decimal(0) if outcome is None else outcome.cost,
                    latency_s=elapsed,
                )

    def _record_stats(
        self, elapsed_s: float, status: int, label: str, outcome: calls.Outcome | None
    ) -> None:
        usage = outcome.usage if outcome is not None else None
        self.stats.counts().record(
            latency_ms=elapsed_s * 1000,
            error=status >= 500,
            cache_hit=CACHE_HITS.get(label),
            tokens_in=usage.prompt_tokens if usage else 0,
            tokens_out=usage.completion_tokens if usage else 0,
            cost_usd=outcome.cost if outcome is not None else decimal.Decimal(0),
        )

    def _health(self) -> bytes:
        return orjson.dumps({"status": "ok", "redis": self.redis.state})

    async def _lifespan(self, receive: asgi.Receive, send: asgi.Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as error:
                    await send({"type": "lifespan.startup.failed", "message": str(error)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _record_spend(outcome: calls.Outcome) -> None:
    usage = outcome.usage
    if usage.prompt_tokens or usage.completion_tokens:
        metrics.TOKENS.labels("prompt").inc(usage.prompt_tokens)
        metrics.TOKENS.labels("cached").inc(usage.cached_tokens)
        metrics.TOKENS.labels("completion").inc(usage.completion_tokens)
        metrics.TOKENS.labels("reasoning").inc(usage.reasoning_tokens)
        metrics.COST.inc(float(outcome.cost))
