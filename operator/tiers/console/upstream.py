"""The console's calls to what the tiers serve (an endpoint's gateway, a pipeline's push
gateway): where to reach them, and their answers passed through to the page.

A resource's in-cluster URL is reached as it is, or at the URL `--url-override` maps it to (the
local demo runs the data plane as processes on 127.0.0.1). An API key the page sends as
`x-tiers-api-key` goes to the gateway as its bearer token (the page's own `Authorization` is the
caller's Kubernetes token and never leaves for the data plane).

An https server is verified, never not: against the CA its resource publishes (`trust`), else
the system's CAs. Reached at an overridden URL, its certificate is still checked for its
in-cluster name (sent as SNI), the name it was issued for.
"""

from __future__ import annotations

import collections
import dataclasses
import ssl
import time
import urllib.parse
from collections.abc import AsyncIterator, Mapping

import fastapi
import httpx2
from fastapi import responses
from starlette import background

from tiers.console import errors, state
from tiers.runtime import tls

API_KEY_HEADER = "x-tiers-api-key"
PASSED_HEADERS = ("content-type", "x-tiers-cache", "x-tiers-cost-usd", "x-tiers-backend",
                  "retry-after", "x-request-id")  # fmt: skip
TIMEOUT = httpx2.Timeout(120.0, connect=5.0)
STREAM_TIMEOUT = httpx2.Timeout(None, connect=5.0)

MAX_CLIENTS = 64
"""Clients kept, one per CA bundle verified against (a bounded LRU)."""

_clients: collections.OrderedDict[str | None, httpx2.AsyncClient] = collections.OrderedDict()


@dataclasses.dataclass(frozen=True)
class Server:
    """A tier's server as this console calls it."""

    in_cluster: str
    """Its in-cluster base URL, as the operator names it."""
    url: str
    """Where this console reaches it (`reachable`)."""
    ca_pem: str | None = None
    """With https: the CA certificates it is verified against; None: the system's."""

    def extensions(self) -> dict[str, str]:
        """An overridden https URL still verifies the in-cluster name (and sends it as SNI)."""
        if self.url == self.in_cluster or not self.url.startswith("https://"):
            return {}
        host = urllib.parse.urlsplit(self.in_cluster).hostname
        return {"sni_hostname": host} if host else {}


def client(ca_pem: str | None = None) -> httpx2.AsyncClient:
    """The client that verifies https servers against `ca_pem` (None: the system's CAs)."""
    found = _clients.get(ca_pem)
    if found is not None:
        _clients.move_to_end(ca_pem)
        return found
    try:
        verify = tls.verifying_context(ca_pem)
    except ssl.SSLError as error:
        raise errors.ConsoleError(
            502, "UntrustedCA", f"the published CA does not load: {error.reason or error}"
        ) from error
    made = _clients[ca_pem] = httpx2.AsyncClient(
        timeout=TIMEOUT, follow_redirects=False, trust_env=False, verify=verify
    )
    while len(_clients) > MAX_CLIENTS:
        _clients.popitem(last=False)
    return made


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
    method: str, server: Server, path: str, *, headers: Mapping[str, str],
    content: bytes | None = None, timeout: httpx2.Timeout = TIMEOUT,
) -> httpx2.Response:  # fmt: skip
    """`method` on the server's `path`, its answer streamed; what failed, said as a 502."""
    url = server.url + path
    http = client(server.ca_pem)
    request = http.build_request(
        method, url, headers=headers, content=content, timeout=timeout,
        extensions=server.extensions(),
    )  # fmt: skip
    try:
        return await http.send(request, stream=True)
    except httpx2.HTTPError as error:
        raise errors.ConsoleError(502, "Unreachable", _failure(url, error)) from error


def _failure(url: str, error: Exception) -> str:
    """Why `url` did not answer; a certificate that did not verify says why, in OpenSSL's
    words (an unknown CA, another name, expired)."""
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, ssl.SSLCertVerificationError):
        cause = cause.__cause__ or cause.__context__
    if cause is not None:
        return f"{url} did not answer: its certificate was not verified ({cause.verify_message})"
    return f"{url} did not answer: {type(error).__name__}"


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
