"""The playground: a chat completion sent to a RealtimeEndpoint's gateway through the console.

The caller must be able to read the endpoint (with their own identity); the body goes to the
gateway as it is and the answer comes back as it arrives (JSON, or the SSE stream of a
`"stream": true` request), with the gateway's `x-tiers-cache` and `x-tiers-cost-usd` and the
console's `x-tiers-latency-ms`. A streamed answer ends, after the gateway's `data: [DONE]`, with
one more event the page reads for its timings:

    event: tiers
    data: {"latencyMs": 812, "ttftMs": 95}
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import fastapi
import httpx2

from tiers.console import errors, objects, resources, sse, upstream

router = fastapi.APIRouter(prefix="/api/v1/realtime")


async def gateway_url(request: fastapi.Request, namespace: str, name: str) -> str:
    """The endpoint's OpenAI base URL (…/v1) as this console reaches it, read as the caller."""
    obj = await objects.get(resources.caller(request).client, "realtimeendpoints", namespace, name)
    url = (obj.get("status") or {}).get("url")
    if not url:
        raise errors.ConsoleError(
            409,
            "NotReady",
            f"RealtimeEndpoint {name!r} has no status.url yet: its gateway is not up",
        )
    base = upstream.reachable(request, str(url))
    return base if base.endswith("/v1") else base + "/v1"


@router.post("/{namespace}/{name}/chat/completions")
async def chat_completions(request: fastapi.Request, namespace: str, name: str) -> fastapi.Response:
    base = await gateway_url(request, namespace, name)
    body = await request.body()
    try:
        streamed = bool(json.loads(body).get("stream")) if body else False
    except (ValueError, AttributeError):
        streamed = False  # the gateway answers the malformed body with its own error
    started = time.monotonic()
    response = await upstream.open_stream(
        "POST",
        base + "/chat/completions",
        headers=upstream.headers_for(request, "application/json"),
        content=body,
    )
    if not streamed or response.status_code != 200:
        await response.aread()
        return upstream.passthrough(response, started=started, body=_once(response.content))
    return upstream.passthrough(response, started=started, body=_timed(response, started))


async def _once(content: bytes) -> AsyncIterator[bytes]:
    yield content


async def _timed(response: httpx2.Response, started: float) -> AsyncIterator[bytes]:
    first: float | None = None
    async for chunk in response.aiter_raw():
        if first is None:
            first = time.monotonic()
        yield chunk
    done = time.monotonic()
    yield sse.event(
        "tiers",
        {
            "latencyMs": round((done - started) * 1000),
            "ttftMs": None if first is None else round((first - started) * 1000),
        },
    )
