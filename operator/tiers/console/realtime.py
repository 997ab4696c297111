"""The playground: a chat completion sent to a RealtimeEndpoint's gateway through the console.

The caller must be able to read the endpoint (with their own identity); the body goes to the
gateway as it is (a request naming no model asks for the endpoint's `spec.model`) and the answer
comes back as it arrives (JSON, or the SSE stream of a `"stream": true` request), with the
gateway's `x-tiers-cache` and `x-tiers-cost-usd` and the console's `x-tiers-latency-ms`. A
streamed answer's cost is known only at its end, so the console asks the gateway for the usage
chunk (`stream_options.include_usage`) and prices it as the gateway does (the endpoint's
`spec.pricing`, else the default price table); a cache hit costs nothing, as the gateway's
header says. After the gateway's `data: [DONE]` comes one more event:

    event: tiers
    data: {"latencyMs": 812, "ttftMs": 95, "costUsd": "0.000012", "usage": {...}}
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import fastapi
import httpx2

from tiers.console import errors, objects, resources, sse, trust, upstream
from tiers.runtime import pricing

router = fastapi.APIRouter(prefix="/api/v1/realtime")


def gateway(request: fastapi.Request, obj: Mapping[str, Any]) -> upstream.Server:
    """The endpoint's gateway, at its OpenAI base URL (…/v1) in the cluster (a status written
    before `address` was has only `url`), as this console reaches and verifies it (https with
    `spec.tls`: against the CA the endpoint publishes)."""
    status = obj.get("status") or {}
    url = str((status.get("address") or {}).get("url") or status.get("url") or "").rstrip("/")
    if not url:
        name = obj["metadata"]["name"]
        message = f"RealtimeEndpoint {name!r} has no status.url yet: its gateway is not up"
        raise errors.ConsoleError(409, "NotReady", message)
    base = url if url.endswith("/v1") else url + "/v1"
    return trust.server(request, obj, "address", base)


def price_of(obj: Mapping[str, Any], model: str) -> pricing.Price:
    """What the endpoint's gateway charges for `model`: the spec's price for the name clients
    ask for and its backends' models, else the default table."""
    spec = obj.get("spec") or {}
    given = spec.get("pricing")
    names = {spec.get("model"), *((b or {}).get("model") for b in spec.get("backends") or ())}
    if isinstance(given, Mapping) and model in names:
        cached = given.get("cachedInputPerMTokUSD")
        return pricing.Price.of(
            str(given.get("inputPerMTokUSD", "0")),
            str(given.get("outputPerMTokUSD", "0")),
            None if cached is None else str(cached),
        )
    return pricing.price_for(model)


@router.post("/{namespace}/{name}/chat/completions")
async def chat_completions(request: fastapi.Request, namespace: str, name: str) -> fastapi.Response:
    obj = await objects.get(resources.caller(request).client, "realtimeendpoints", namespace, name)
    server = gateway(request, obj)
    body = await request.body()
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None  # the gateway answers the malformed body with its own error
    streamed = isinstance(parsed, dict) and parsed.get("stream") is True
    if isinstance(parsed, dict):
        added = defaults(obj, parsed, streamed=streamed)
        if added:
            parsed = {**parsed, **added}
            body = json.dumps(parsed).encode()
    started = time.monotonic()
    response = await upstream.open_stream(
        "POST",
        server,
        "/chat/completions",
        headers=upstream.headers_for(request, "application/json"),
        content=body,
    )
    if not streamed or response.status_code != 200:
        await response.aread()
        return upstream.passthrough(response, started=started, body=_once(response.content))
    model = str(parsed.get("model", "")) if isinstance(parsed, dict) else ""
    hit = response.headers.get("x-tiers-cache", "miss") != "miss"
    price = pricing.ZERO if hit else price_of(obj, model)
    return upstream.passthrough(
        response, started=started, body=_timed(response, started, price=price)
    )


def defaults(
    obj: Mapping[str, Any], parsed: Mapping[str, Any], *, streamed: bool
) -> dict[str, Any]:
    """What the console adds to a chat request: the model the endpoint serves (`spec.model`)
    when the request names none, and the usage chunk of a streamed answer (to price it)."""
    added: dict[str, Any] = {}
    model = (obj.get("spec") or {}).get("model")
    if not parsed.get("model") and model:
        added["model"] = model
    if streamed and "stream_options" not in parsed:
        added["stream_options"] = {"include_usage": True}
    return added


async def _once(content: bytes) -> AsyncIterator[bytes]:
    yield content


async def _timed(
    response: httpx2.Response, started: float, *, price: pricing.Price
) -> AsyncIterator[bytes]:
    """The gateway's stream as it comes, then the console's `tiers` event."""
    first: float | None = None
    usage: dict[str, Any] | None = None
    pending = b""
    async for chunk in response.aiter_raw():
        if first is None:
            first = time.monotonic()
        yield chunk
        *lines, pending = (pending + chunk).split(b"\n")
        usage = last_usage(lines) or usage
    done = time.monotonic()
    cost = None if usage is None else pricing.cost(pricing.Usage.from_openai(usage), price)
    yield sse.event(
        "tiers",
        {
            "latencyMs": round((done - started) * 1000),
            "ttftMs": None if first is None else round((first - started) * 1000),
            "costUsd": None if cost is None else pricing.format_usd(cost),
            "usage": usage,
        },
    )


def last_usage(lines: list[bytes]) -> dict[str, Any] | None:
    """The last `usage` object among the SSE `data:` lines of chat completion chunks."""
    found = None
    for line in lines:
        if not line.startswith(b"data: {") or b'"usage"' not in line:
            continue
        try:
            usage = json.loads(line[6:]).get("usage")
        except ValueError:
            continue
        if isinstance(usage, dict):
            found = usage
    return found
