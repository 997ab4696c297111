"""JWT callers (spec.auth.jwt): a bearer token from an OIDC provider, checked against the
provider's published signing keys (its JWKS), names the caller's tenant.

`callers.Callers` asks a `Verifier` only for a bearer that is no accepted API key, so an endpoint
without JWT, or a caller with a key, pays nothing for it. A token is accepted when it is signed
by a key of the JWKS with an allowed public-key algorithm and its `iss`, `aud`, `exp` (and `nbf`
when present) hold, within the clock skew; its tenant is the value of `tenant_claim`.

`SigningKeys` holds the JWKS: fetched at startup and every `jwks_refresh_s` (so a key the
provider removed stops working), and again when a token names a key id it does not hold (a
rotation), at most once per `jwks_min_refetch_s` (so made-up key ids cannot flood the provider).
A fetch is bounded in time and size; a failed one keeps the keys fetched before. Never per
request otherwise. Refusals are OpenAI-style 401s that say why, never echoing the token.

A caller sends the same token with every request until it expires, and checking its signature
costs far more than the rest of a cache hit: a token once verified is remembered (by a digest,
never the token itself) with its tenant, until its `exp` passes or the JWKS no longer holds the
key that signed it. At most `VERIFIED_TOKENS` are held; past that the oldest go first.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import re
import time
import typing
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

import jwt

from tiers.runtime.gateway import config, errors

log = logging.getLogger(__name__)

MAX_JWKS_BYTES = 1024 * 1024
"""A provider's JWKS holds a few keys (Entra's: under 20 KiB); past this it is refused."""
MAX_TOKEN_BYTES = 16 * 1024
Fetch = Callable[[str, float], Awaitable[bytes]]
"""Gets the JWKS at a URL within a timeout (seconds); raises OSError on failure."""
_LABEL_SAFE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,57}[A-Za-z0-9])?")
TENANT_PREFIX = "jwt-"
VERIFIED_TOKENS = 4096
"""How many verified tokens are remembered: a token's digest, its tenant, its expiry and key."""


async def fetch_jwks(url: str, timeout_s: float) -> bytes:
    """The JWKS's bytes, read in a thread (it is rare: startup, refreshes, rotations)."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(_get, url, timeout_s), timeout_s)
    except TimeoutError:
        raise OSError(f"no answer within {timeout_s:g}s") from None


def _get(url: str, timeout_s: float) -> bytes:
    request = urllib.request.Request(url, headers={"accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        body: bytes = response.read(MAX_JWKS_BYTES + 1)
    if len(body) > MAX_JWKS_BYTES:
        raise OSError(f"the JWKS is over {MAX_JWKS_BYTES} bytes")
    return body


class _Key:
    """One signing key and the algorithm its JWK declares (None when it declares none)."""

    def __init__(self, jwk: jwt.PyJWK, declared: str | None) -> None:
        self.jwk = jwk
        self.declared = declared


def parse_jwks(body: bytes) -> dict[str | None, _Key]:
    """The usable signing keys of a JWKS by key id; a key PyJWT cannot use (encryption keys,
    unknown types) is skipped. ValueError when the document is no JWKS."""
    try:
        document = json.loads(body)
    except ValueError:
        raise ValueError("the JWKS is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('the JWKS has no "keys" array')
    keys: dict[str | None, _Key] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        kid = entry.get("kid")
        try:
            jwk = jwt.PyJWK(entry)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            continue
        declared = entry.get("alg")
        keys[kid if isinstance(kid, str) else None] = _Key(
            jwk, declared if isinstance(declared, str) else None
        )
    return keys


class SigningKeys:
    """The JWKS of one issuer, refreshed as the module docstring says."""

    def __init__(
        self,
        settings: config.JwtConfig,
        *,
        fetch: Fetch = fetch_jwks,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._fetch = fetch
        self._clock = clock
        self._keys: dict[str | None, _Key] = {}
        self._fetched_at: float | None = None
        """When the last fetch began (successful or not)."""
        self._lock = asyncio.Lock()
        self.problem: str | None = None
        """Why the last fetch failed; None after a good one."""

    @property
    def empty(self) -> bool:
        return not self._keys

    async def refresh(self) -> None:
        """Fetches the JWKS; on failure the keys fetched before stay (and the problem is logged)."""
        self._fetched_at = self._clock()
        url = self._settings.jwks_url
        try:
            keys = parse_jwks(await self._fetch(url, self._settings.jwks_timeout_s))
            if not keys:
                raise ValueError("the JWKS holds no usable signing key")
        except (OSError, ValueError) as error:
            problem = f"cannot fetch the JWKS from {url}: {error}"
            if problem != self.problem:
                kept = len(self._keys)
                log.warning("JWT callers: %s; keeping %d key(s) fetched before", problem, kept)
            self.problem = problem
            return
        if self.problem is not None or set(keys) != set(self._keys):
            log.info("JWT callers: %d signing key(s) from %s", len(keys), url)
        self._keys, self.problem = keys, None

    async def key(self, kid: str | None) -> _Key | None:
        """The key a token names; one it does not hold fetches the JWKS again if allowed."""
        found = self._lookup(kid)
        if found is None and self._may_refetch():
            async with self._lock:
                # Another request may have fetched while this one waited.
                if self._lookup(kid) is None and self._may_refetch():
                    await self.refresh()
            found = self._lookup(kid)
        return found

    async def watch(self) -> None:
        """Fetches now, then every `jwks_refresh_s`, until cancelled."""
        while True:
            async with self._lock:
                await self.refresh()
            await asyncio.sleep(self._settings.jwks_refresh_s)

    def holds(self, kid: str | None, key: _Key) -> bool:
        """Whether the JWKS still holds `key` under that key id (a refresh may have dropped it)."""
        return self._lookup(kid) is key

    def _lookup(self, kid: str | None) -> _Key | None:
        if kid is None and len(self._keys) == 1:
            # A token without a key id, from an issuer with one key: that key.
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    def _may_refetch(self) -> bool:
        return (
            self._fetched_at is None
            or self._clock() - self._fetched_at >= self._settings.jwks_min_refetch_s
        )


def refused(reason: str) -> errors.GatewayError:
    return errors.GatewayError(
        401,
        f"The bearer token was refused: {reason}.",
        type="invalid_request_error",
        code="invalid_api_key",
    )


# PyJWT's refusals, most specific first, as a caller can act on them.
_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "it has expired (exp)"),
    (jwt.ImmatureSignatureError, "it is not valid yet (nbf or iat)"),
    (jwt.InvalidAudienceError, "its audience (aud) is not this endpoint's"),
    (jwt.InvalidIssuerError, "its issuer (iss) is not the one this endpoint accepts"),
    (jwt.InvalidSignatureError, "its signature does not verify"),
    (jwt.DecodeError, "it is not a well-formed JWT"),
)


@dataclasses.dataclass(frozen=True, slots=True)
class _Verified:
    tenant: str
    expires_at: float
    """Epoch seconds after which the token is refused (its `exp` plus the clock skew)."""
    kid: str | None
    key: _Key


class Verifier:
    """Checks a bearer JWT and names its tenant (see the module docstring)."""

    def __init__(self, settings: config.JwtConfig, keys: SigningKeys) -> None:
        self.settings = settings
        self.keys = keys
        self._algorithms = frozenset(settings.algorithms)
        self._allowed = ", ".join(settings.algorithms)
        self._verified: dict[bytes, _Verified] = {}

    async def tenant(self, token: str) -> str:
        """The tenant of a valid token; raises an OpenAI-style 401 (503 without any keys)."""
        if len(token) > MAX_TOKEN_BYTES:
            raise refused(f"it is over {MAX_TOKEN_BYTES} bytes")
        digest = hashlib.blake2b(token.encode(), digest_size=16).digest()
        known = self._verified.get(digest)
        if known is not None:
            if time.time() < known.expires_at and self.keys.holds(known.kid, known.key):
                return known.tenant
            del self._verified[digest]
        verified = await self._verify(token)
        if len(self._verified) >= VERIFIED_TOKENS:
            del self._verified[next(iter(self._verified))]
        self._verified[digest] = verified
        return verified.tenant

    async def _verify(self, token: str) -> _Verified:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise refused("it is not a well-formed JWT") from None
        algorithm = header.get("alg")
        if algorithm not in self._algorithms:
            # The header is the caller's: it is named only when it is a known algorithm.
            shown = f"{algorithm} " if algorithm in _KNOWN_ALGORITHMS else ""
            raise refused(
                f"its algorithm {shown}is not accepted (spec.auth.jwt.algorithms: {self._allowed})"
            )
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise refused("its key id (kid) is not a string")
        key = await self.keys.key(kid)
        if key is None:
            if self.keys.empty:
                raise errors.GatewayError(
                    503,
                    "The issuer's signing keys (JWKS) could not be fetched; try again shortly.",
                    type="api_error",
                    code="jwks_unavailable",
                )
            raise refused("it is signed by a key (kid) that the issuer's JWKS does not hold")
        if key.declared is not None and key.declared != algorithm:
            raise refused(f"its algorithm is not the one its key (kid) declares ({key.declared})")
        claims = self._decode(token, key, algorithm)
        tenant = tenant_of(claims.get(self.settings.tenant_claim), self.settings.tenant_claim)
        # `exp` is required and numeric once decoded; the skew forgiven now is forgiven later.
        expires_at = float(claims["exp"]) + self.settings.clock_skew_s
        return _Verified(tenant, expires_at, kid, key)

    def _decode(self, token: str, key: _Key, algorithm: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.jwk.key,
                algorithms=[algorithm],
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                leeway=self.settings.clock_skew_s,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.MissingRequiredClaimError as error:
            raise refused(f"it lacks the {error.claim} claim") from None
        except jwt.PyJWTError as error:
            for kind, reason in _REASONS:
                if isinstance(error, kind):
                    raise refused(reason) from None
            raise refused("it is not valid") from None
        except (TypeError, ValueError):
            # A key of another type than the algorithm's (an EC key for RS256...).
            raise refused("its signature does not verify") from None
        return claims


_KNOWN_ALGORITHMS = frozenset(
    {*typing.get_args(config.JwtAlgorithm), "none", "HS256", "HS384", "HS512"}
)


def tenant_of(value: object, claim: str) -> str:
    """The tenant id of a claim's value: `jwt-<value>` when it is short and label-safe (Entra's
    GUIDs, most subjects), else `jwt-<digest prefix>`; the prefix sets it apart from a key's."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise refused(
            f"it has no {claim} claim, which names its tenant (spec.auth.jwt.tenantClaim)"
        )
    if _LABEL_SAFE.fullmatch(value):
        return TENANT_PREFIX + value
    return TENANT_PREFIX + hashlib.sha256(value.encode()).hexdigest()[:16]


def build(settings: config.JwtConfig | None) -> Verifier | None:
    return None if settings is None else Verifier(settings, SigningKeys(settings))
