"""One backend as every caller talks to it: its URL per route, its auth header, its payload,
and one attempt of a call over the lean HTTP/1.1 client.

The three providers differ only here: OpenAI and OpenAI-compatible servers take
`Authorization: Bearer` at `<base>/<route path>`; Azure OpenAI takes `api-key` at
`<base>/openai/deployments/<deployment>/<route path>?api-version=<version>`, or with Entra ID
(`entra`) `Authorization: Bearer` and a token that `entra.Tokens` keeps fresh. An attempt returns
the response, unless it failed in a way worth retrying (`failures.Failure`); a client error such
as a 400 is a response, for the caller to pass on or report.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from typing import Any

import orjson

from tiers.runtime.providers import config, entra, failures, http1, routes

STREAM_CONNECT_TIMEOUT_S = 10.0
"""A stream's own timeout (`timeout_ms`) bounds each read, as a stream may rightly run long."""
_CLIENT_ERRORS = (http1.ClientError, TimeoutError, OSError)


class Backend:
    def __init__(self, settings: config.BackendConfig) -> None:
        self.settings = settings
        self.name = settings.name
        # A key written to a Secret with `echo` ends in a newline; sent raw, the header is
        # malformed (or smuggles a second line), so whitespace around it is never part of it.
        key = (os.environ.get(settings.api_key_env) or "").strip() if settings.api_key_env else ""
        self.tokens: entra.Tokens | None = None
        """With Entra ID, the key is the application's client secret (or none: workload
        identity), and each attempt carries a token instead."""
        if settings.entra is not None:
            self.tokens = entra.Tokens(settings.entra, key or None)
            self.headers = {}
        elif settings.provider == "azure-openai":
            self.headers = {"api-key": key} if key else {}
        else:
            self.headers = {"authorization": f"Bearer {key}"} if key else {}
        self.headers["content-type"] = "application/json"
        self._urls = {route: self._url(path) for route, path in routes.UPSTREAM_PATHS.items()}
        self._timeout_s = settings.timeout_ms / 1000

    def url(self, route: routes.Route) -> str:
        return self._urls[route]

    def _url(self, path: str) -> str:
        base = self.settings.url_base
        if self.settings.provider == "azure-openai":
            # Escaped whole: a name with `/`, `?` or `#` must not reach another path or query.
            deployment = urllib.parse.quote(self.settings.deployment or "", safe="")
            version = urllib.parse.quote(self.settings.api_version or "", safe="")
            return f"{base}/openai/deployments/{deployment}{path}?api-version={version}"
        return base + path

    def payload(self, body: dict[str, Any], *, stream: bool = False) -> bytes:
        """The request body for this backend: its model where it pins one and, for a stream,
        a request for usage (it arrives only when asked for, and every call is priced)."""
        if self.settings.model != "*" and body.get("model") != self.settings.model:
            body = {**body, "model": self.settings.model}
        if stream:
            body = {
                **body,
                "stream_options": {**(body.get("stream_options") or {}), "include_usage": True},
            }
        return orjson.dumps(body)

    async def request(
        self,
        pool: http1.Pool,
        route: routes.Route,
        payload: bytes,
        headers: Mapping[str, str] | None = None,
    ) -> http1.Response | failures.Failure:
        """One attempt at a whole response; `headers` replace the backend's own."""
        headers = self.headers if headers is None else headers
        try:
            if self.tokens is not None:
                headers = {**headers, "authorization": await self.tokens.authorization()}
            response = await pool.request(
                "POST",
                self._urls[route],
                headers=headers,
                body=payload,
                timeout_s=self._timeout_s,
            )
        except _CLIENT_ERRORS as error:
            return failures.from_exception(error, timeout_ms=self.settings.timeout_ms)
        except entra.TokenError as error:
            return failures.Failure(str(error))
        if response.status in failures.RETRYABLE_STATUSES:
            return failures.from_response(response.status, response.headers, response.body)
        if response.status == 200 and not failures.is_json_object(response.body):
            return failures.not_json(response.status, response.body)
        return response

    async def open_stream(
        self,
        pool: http1.Pool,
        route: routes.Route,
        payload: bytes,
        headers: Mapping[str, str] | None = None,
    ) -> http1.StreamingResponse | failures.Failure:
        """One attempt at a streamed response; the caller releases the one it gets. `headers`
        replace the backend's own."""
        headers = self.headers if headers is None else headers
        try:
            if self.tokens is not None:
                headers = {**headers, "authorization": await self.tokens.authorization()}
            response = await pool.stream(
                "POST",
                self._urls[route],
                headers=headers,
                body=payload,
                connect_timeout_s=STREAM_CONNECT_TIMEOUT_S,
                read_timeout_s=self._timeout_s,
            )
            if response.status not in failures.RETRYABLE_STATUSES:
                return response
            async with response:
                body = await response.read()
        except _CLIENT_ERRORS as error:
            return failures.from_exception(error, timeout_ms=self.settings.timeout_ms)
        except entra.TokenError as error:
            return failures.Failure(str(error))
        return failures.from_response(response.status, response.headers, body)
