"""The console's calls to what the tiers serve (an endpoint's gateway, a pipeline's push
gateway): where to reach them, and their answers passed through to the page.

A resource's in-cluster URL is reached as it is, or at the URL `--url-override` maps it to (the
local demo runs the data plane as processes on 127.0.0.1). An API key the page sends as
`x-tiers-api-key` goes to the gateway as its bearer token (the page's own `Authorization` is the
caller's Kubernetes token and never leaves for the data plane).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping

import fastapi
import httpx2
from fastapi import responses
from starlette import background

from tiers.console import errors, state

API_KEY_HEADER = "x-tiers-api-key"
PASSED_HEADERS = ("content-type", "x-tiers-cache", "x-tiers-cost-usd", "x-tiers-backend",
                  "retry-after", "x-request-id")  # fmt: skip
TIMEOUT = httpx2.Timeout(120.0, connect=5.0)
STREAM_TIMEOUT = httpx2.Timeout(None, connect=5.0)

_client: httpx2.AsyncClient | None = None


def client() -> httpx2.AsyncClient:
    global _client
    if _client is None:
        _client = httpx2.AsyncClient(timeout=TIMEOUT, follow_redirects=False, trust_env=False)
    return _client


def reachable(request: fastapi.Request, in_cluster: str) -> str:
    """Where this console reaches an in-cluster URL."""
    url = in_cluster.rstrip("/")
    overrides = state.of(request).settings.url_overrides
    for prefix, replacement in overrides.items():
        if url == prefix or url.startswith(prefix + "/"):
            return replacement + url[len(prefix) :]
    return url


def headers_for(request: fastapi.Request, content_type: str | None = None) -> dict[str, str]:
    headers = {"accept": request.headers.get("accept", "*/*")}
    if content_type:
        headers["content-type"] = content_type
    key = request.headers.get(API_KEY_HEADER)
    if key:
        headers["authorization"] = f"Bearer {key}"
    return headers


async def open_stream(
    method: str, url: str, *, headers: Mapping[str, str], content: bytes | None = None,
    timeout: httpx2.Timeout = TIMEOUT,
) -> httpx2.Response:  # fmt: skip
    try:
        return await client().send(
            client().build_request(method, url, headers=headers, content=content, timeout=timeout),
            stream=True,
        )
    except httpx2.HTTPError as error:
        raise errors.ConsoleError(
            502, "Unreachable", f"{url} did not answer: {type(error).__name__}"
        ) from error


def passthrough(
    response: httpx2.Response, *, started: float, extra: Mapping[str, str] | None = None,
    body: AsyncIterator[bytes] | None = None,
) -> responses.StreamingResponse:  # fmt: skip
    """The upstream answer as it arrives, with its x-tiers-* headers and the console's own
    `x-tiers-latency-ms` (to the upstream's response headers)."""
    headers = {name: response.headers[name] for name in PASSED_HEADERS if name in response.headers}
    headers["x-tiers-latency-ms"] = str(round((time.monotonic() - started) * 1000))
    headers["cache-control"] = "no-store"
    headers.update(extra or {})
    return responses.StreamingResponse(
        body if body is not None else response.aiter_raw(),
        status_code=response.status_code,
        headers=headers,
        background=background.BackgroundTask(response.aclose),
    )
