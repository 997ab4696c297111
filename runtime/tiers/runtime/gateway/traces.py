"""The gateway's spans: one per model call, a child per upstream attempt, named and described
as OpenTelemetry's semantic conventions for generative AI say.

A call's span (kind server) continues the caller's `traceparent` (a caller's unsampled context
gets no span and goes upstream as it came, `passed_on`); it records when the caller
was authenticated and the cache looked up (events), the model, tokens and cost (attributes,
cost as `tiers.cost_usd`), and the status. Each attempt at a backend is a client span whose
context goes upstream in `traceparent`; a retry and a fallback to the next backend are events
of the call's span. With no tracing configured none of this runs: the gateway holds no tracer.
"""

from __future__ import annotations

import decimal
import functools
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol, TypeVar

from tiers.runtime import asgi, pricing
from tiers.runtime.gateway import asgi_io, errors, requests
from tiers.runtime.providers import backends, failures, routes
from tiers.runtime.tracing import genai, spans


class _Answer(Protocol):
    @property
    def status(self) -> int: ...


A = TypeVar("A", bound=_Answer)


def start_call(tracer: spans.Tracer, route: routes.Route, scope: asgi.Scope) -> spans.Span | None:
    """The span of one model call, in the caller's trace when it sent one."""
    return tracer.start(
        genai.OPERATIONS[route],
        traceparent=asgi_io.header(scope, b"traceparent"),
        tracestate=asgi_io.header(scope, b"tracestate"),
    )


def passed_on(scope: asgi.Scope) -> dict[str, str] | None:
    """The caller's trace context, to send upstream as it came, for a call with no span: the
    caller's trace is not sampled (W3C Trace Context passes it on all the same)."""
    return spans.passed_on(
        asgi_io.header(scope, b"traceparent"), asgi_io.header(scope, b"tracestate")
    )


def end_call(
    span: spans.Span,
    *,
    endpoint: str,
    request: requests.ModelRequest | None,
    status: int,
    cache: str,
    usage: pricing.Usage | None,
    cost: decimal.Decimal,
    error: errors.GatewayError | None,
) -> None:
    attributes = span.attributes
    attributes["gen_ai.operation.name"] = span.name
    attributes["tiers.endpoint"] = endpoint
    attributes["http.response.status_code"] = status
    attributes["tiers.cache"] = cache
    if request is not None:
        span.name = f"{span.name} {request.model}"
        attributes["gen_ai.request.model"] = request.model
    if usage is not None:
        attributes["gen_ai.usage.input_tokens"] = usage.prompt_tokens
        attributes["gen_ai.usage.output_tokens"] = usage.completion_tokens
    attributes["tiers.cost_usd"] = float(cost)
    if status >= 500:
        # As OpenTelemetry's HTTP conventions say of a server: a 4xx is the client's doing.
        attributes["error.type"] = str(status)
        span.error = error.message if error is not None else f"HTTP {status}"
    elif error is not None:
        attributes["error.type"] = error.code or error.type
    span.end()


def traced(
    span: spans.Span,
    backend: backends.Backend,
    request: requests.ModelRequest,
    send: Callable[[Mapping[str, str]], Awaitable[A | failures.Failure]],
) -> Callable[[], Awaitable[A | failures.Failure]]:
    """`send` (one attempt at `backend`, given the headers to send) as an attempt with a span of
    its own, whose trace context goes upstream; a second attempt is a retry event."""
    settings = backend.settings
    model = request.model if settings.model == "*" else settings.model
    operation = genai.OPERATIONS[request.route]
    host = _host(backend.url(request.route))
    tries = 0

    async def attempt() -> A | failures.Failure:
        nonlocal tries
        tries += 1
        if tries > 1:
            span.event("retry", {"tiers.backend": backend.name, "tiers.attempt": tries})
        child = span.child(f"{operation} {model}", kind="client")
        child.attributes.update(
            {
                "gen_ai.operation.name": operation,
                "gen_ai.provider.name": genai.PROVIDERS[settings.provider],
                "gen_ai.system": genai.PROVIDERS[settings.provider],
                "gen_ai.request.model": model,
                "server.address": host,
                "tiers.backend": backend.name,
                "tiers.attempt": tries,
            }
        )
        try:
            outcome = await send({**backend.headers, **child.headers()})
        except BaseException as error:
            child.error = f"{type(error).__name__}: {error}"
            child.end()
            raise
        if isinstance(outcome, failures.Failure):
            child.error = outcome.message
            child.attributes["error.type"] = str(outcome.status or "no_response")
            if outcome.status is not None:
                child.attributes["http.response.status_code"] = outcome.status
        else:
            child.attributes["http.response.status_code"] = outcome.status
        child.end()
        return outcome

    return attempt


@functools.lru_cache(maxsize=64)
def _host(url: str) -> str:
    """server.address of a backend's URL (a backend's URLs are few and fixed)."""
    return urllib.parse.urlsplit(url).hostname or ""


def fell_back(span: spans.Span, *, to: str, failed: str, failure: failures.Failure) -> None:
    span.event(
        "fallback",
        {
            "tiers.backend": to,
            "tiers.failed_backend": failed,
            "error.type": str(failure.status or "no_response"),
        },
    )
