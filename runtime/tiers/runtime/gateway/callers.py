"""Who may call the gateway: an API key (`apikeys`) or, with spec.auth.jwt, a JWT (`jwts`).

Both name a tenant, which the rate limits, the cache's scope, the budget and the Batch API's
ownership read alike. A key is looked up first and costs what it always did; only a bearer that
is no accepted key is checked as a JWT, so an endpoint without JWT pays nothing for it.
"""

from __future__ import annotations

import asyncio
import contextlib

from tiers.runtime import apikeys
from tiers.runtime.gateway import config, errors, jwts


class Callers:
    def __init__(self, settings: config.GatewayConfig) -> None:
        # With JWT callers and no key folder, keys are still required: never `anonymous`.
        self.keys = apikeys.KeyRing.from_dir(
            settings.api_keys_dir, required=settings.jwt is not None
        )
        self.tokens = jwts.build(settings.jwt)
        self._watches: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Re-reads the keys and fetches the JWKS in the background, until `close()`."""
        loop = asyncio.get_running_loop()
        if self.keys.required:
            self._watches.append(loop.create_task(self.keys.watch()))
        if self.tokens is not None:
            self._watches.append(loop.create_task(self.tokens.keys.watch()))

    async def close(self) -> None:
        for watch in self._watches:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        self._watches.clear()

    async def tenant(self, authorization: bytes | None) -> str:
        """The caller's tenant; raises an OpenAI-style 401 when it is no accepted caller."""
        return self.keys.tenant(authorization) or await self.token_tenant(authorization)

    async def token_tenant(self, authorization: bytes | None) -> str:
        """The tenant of a bearer JWT, for a caller whose bearer is no accepted key."""
        token = _bearer(authorization) if self.tokens is not None else None
        # A bearer that is no JWT (three dot-separated parts) was meant as a key.
        if self.tokens is None or token is None or token.count(".") != 2:
            raise errors.unauthorized()
        return await self.tokens.tenant(token)


def _bearer(authorization: bytes | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, token = authorization.decode("latin-1").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None
