"""Microsoft Entra ID access tokens for an Azure OpenAI backend that authenticates without a key
(`BackendConfig.entra`): the gateway and the model client send `Authorization: Bearer <token>`.

A token is asked for at Entra ID's token endpoint (OAuth 2.0 client credentials: the
application's client secret, or the pod's workload identity's projected token) in a worker
thread, with the standard library (the data plane loads no Azure SDK), and kept until
`REFRESH_BEFORE_S` before it expires; until then a call reads it from memory, with no await.
A refusal, or no answer, is remembered for `RETRY_AFTER_S`: the calls meanwhile fail at once with
it, rather than each asking Entra ID again (and waiting its turn behind the others to do so).
Tokens are never logged; a refusal is a `TokenError` whose message says who was refused and why,
never the secret.

Where Entra ID is (sovereign clouds, tests): `AZURE_AUTHORITY_HOST` (as azure-identity reads
it) and `TIERS_AZURE_CA_BUNDLE` (a CA bundle to trust instead of the system's).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import json
import os
import pathlib
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

from tiers.runtime.providers import config

REFRESH_BEFORE_S = 300.0
"""A token this close to its expiry is replaced (azure-identity's own margin)."""
PUBLIC_AUTHORITY = "https://login.microsoftonline.com"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
RETRY_AFTER_S = 5.0
"""How long a failure to get a token is the answer to every call, before Entra ID is asked again."""
TIMEOUT_S = 10.0
"""The whole request for a token, however slowly its answer comes (a socket's timeout is only
per read); the calls waiting for the token wait no longer."""
MAX_ANSWER_BYTES = 64 * 1024
CHUNK = 4096
_asking = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="entra-token")
"""Where requests for tokens run: a request given up on at its deadline may still be reading (at
most `TIMEOUT_S` more per read), so they have threads of their own, not asyncio's shared ones."""


class TokenError(Exception):
    """No token: Entra ID refused the application, or did not answer."""


class Tokens:
    """One backend's tokens."""

    def __init__(
        self,
        settings: config.EntraConfig,
        secret: str | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._secret = secret or None
        self._clock = clock
        self._header = ""
        self._refresh_at = 0.0
        self._expires_at = 0.0
        self._failure: str | None = None
        self._retry_at = 0.0
        self._lock = asyncio.Lock()

    async def authorization(self) -> str:
        """`Bearer <token>`, from memory while it is fresh; `TokenError` while none can be had.
        A token due for refresh that Entra ID does not replace serves on until it expires."""
        if self._clock() < self._refresh_at:
            return self._header
        async with self._lock:  # one request for a new token, however many calls wait for it
            if self._clock() >= self._refresh_at:
                if self._failure is not None and self._clock() < self._retry_at:
                    return self._still_valid(self._failure)
                try:
                    token, expires_on = await self._fetch_within(TIMEOUT_S)
                except TokenError as error:
                    self._failure, self._retry_at = str(error), self._clock() + RETRY_AFTER_S
                    return self._still_valid(self._failure)
                self._header, self._failure = f"Bearer {token}", None
                self._refresh_at = expires_on - REFRESH_BEFORE_S
                self._expires_at = expires_on
            return self._header

    def _still_valid(self, failure: str) -> str:
        """The token had before, while it has not expired; else `TokenError(failure)`."""
        if self._header and self._clock() < self._expires_at:
            return self._header
        raise TokenError(failure)

    async def _fetch_within(self, limit_s: float) -> tuple[str, float]:
        """`_fetch` in a worker thread, given up on after `limit_s`: it stops reading then too
        (or after at most one more read's timeout while the answer's headers drip in)."""
        deadline = time.monotonic() + limit_s
        asking = asyncio.get_running_loop().run_in_executor(_asking, self._fetch, deadline)
        try:
            return await asyncio.wait_for(asking, limit_s)
        except TimeoutError:
            raise TokenError(
                f"Microsoft Entra ID gave no token to {self._who()} within {limit_s:g} s"
            ) from None

    def _who(self) -> str:
        return f"application {self._settings.client_id} of tenant {self._settings.tenant_id}"

    def _fetch(self, deadline: float) -> tuple[str, float]:
        """OAuth 2.0 client credentials at the tenant's token endpoint, as Entra ID documents
        them: the client secret, or the pod's projected token as a client assertion; the answer
        read by `deadline` (`time.monotonic()`) or not at all."""
        settings = self._settings
        who = self._who()
        form = {"grant_type": "client_credentials", "client_id": settings.client_id,
                "scope": settings.scope}  # fmt: skip
        try:
            if self._secret is not None:
                form["client_secret"] = self._secret
            else:  # workload identity: the file is rotated by the kubelet, so read each time
                path = os.environ.get("AZURE_FEDERATED_TOKEN_FILE") or ""
                form["client_assertion_type"] = ASSERTION_TYPE
                form["client_assertion"] = pathlib.Path(path).read_text().strip()
            authority = (os.environ.get("AZURE_AUTHORITY_HOST") or PUBLIC_AUTHORITY).rstrip("/")
            tenant = urllib.parse.quote(settings.tenant_id, safe="")
            request = urllib.request.Request(
                f"{authority}/{tenant}/oauth2/v2.0/token",
                data=urllib.parse.urlencode(form).encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            timeout = max(deadline - time.monotonic(), 0.001)
            with urllib.request.urlopen(request, timeout=timeout, context=_tls()) as response:
                answer = json.loads(_read_by(response, deadline))
            return str(answer["access_token"]), self._clock() + float(answer["expires_in"])
        except urllib.error.HTTPError as error:
            raise TokenError(f"Microsoft Entra ID refused {who}: {_oauth_error(error)}") from None
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise TokenError(
                f"Microsoft Entra ID gave no token to {who}: {type(error).__name__}"
            ) from None


def _read_by(response: http.client.HTTPResponse, deadline: float) -> bytes:
    """The answer's body (up to `MAX_ANSWER_BYTES`); `TimeoutError` once `deadline` passed (a
    read itself is bounded by the socket's timeout)."""
    body = b""
    while len(body) < MAX_ANSWER_BYTES:
        if time.monotonic() >= deadline:
            raise TimeoutError("the answer was still coming at the deadline")
        chunk = response.read1(min(CHUNK, MAX_ANSWER_BYTES - len(body)))
        if not chunk:
            break
        body += chunk
    return body


def _oauth_error(error: urllib.error.HTTPError) -> str:
    """The status and Entra ID's `error` and the first line of its description."""
    try:
        body = json.loads(error.read(MAX_ANSWER_BYTES))
        description = str(body.get("error_description") or "").splitlines()
        return f"{error.code} {body.get('error')}: {description[0][:200] if description else ''}"
    except (OSError, ValueError, AttributeError):
        return str(error.code)


def _tls() -> ssl.SSLContext:
    bundle = os.environ.get("TIERS_AZURE_CA_BUNDLE") or None
    return ssl.create_default_context(cafile=bundle)
