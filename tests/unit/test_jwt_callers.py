"""JWT callers (spec.auth.jwt): tokens signed by a local identity provider (a real HTTP server
publishing a JWKS), checked by the gateway's `Callers` as a request's Authorization header."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import pathlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from tiers.devenv import identity_provider
from tiers.runtime.gateway import callers, config, errors, jwts

AUDIENCE = "api://tiers-test"
STRANGER = identity_provider.new_key()
"""A key the provider never published."""


@pytest.fixture(scope="module")
def provider() -> Iterator[identity_provider.IdentityProvider]:
    """One for the module (RSA keys take a while to make); a test that rotates keys has its own."""
    idp = identity_provider.IdentityProvider("RSA", "EC")
    yield idp
    idp.close()


def settings(idp: identity_provider.IdentityProvider, **overrides: Any) -> config.GatewayConfig:
    jwt = config.JwtConfig(
        issuer=idp.issuer,
        audience=AUDIENCE,
        jwks_url=idp.jwks_url,
        tenant_claim="tid",
        **{"jwks_min_refetch_s": 0.0, **overrides},
    )
    backend = {
        "name": "b",
        "provider": "openai-compatible",
        "model": "*",
        "base_url": "http://127.0.0.1:1/v1",
    }
    return config.GatewayConfig.model_validate(
        {"backends": [backend], "jwt": jwt.model_dump(), "api_keys_dir": None}
    )


def tenant(auth: callers.Callers, token: str) -> str:
    return asyncio.run(auth.tenant(f"Bearer {token}".encode()))


def refusal(auth: callers.Callers, token: str) -> errors.GatewayError:
    with pytest.raises(errors.GatewayError) as raised:
        tenant(auth, token)
    return raised.value


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None) -> str:
    """A token written by hand, as an attacker would: `alg: none` or an HMAC over `secret`."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    if secret is None:
        return signing_input + "."
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def test_a_valid_rsa_or_ec_token_names_its_tenant_from_the_claim(
    provider: identity_provider.IdentityProvider,
) -> None:
    auth = callers.Callers(settings(provider))
    rsa_key, ec_key = provider.keys
    fetches = provider.fetches
    tid = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    assert tenant(auth, provider.token(AUDIENCE, key=rsa_key, tid=tid)) == f"jwt-{tid}"
    assert tenant(auth, provider.token(AUDIENCE, key=ec_key, tid="team-b")) == "jwt-team-b"
    # A value unfit for a label or a key (spaces, length) becomes a digest of it.
    odd = tenant(auth, provider.token(AUDIENCE, tid="a team / with spaces"))
    assert odd.startswith("jwt-") and len(odd) == 20
    assert provider.fetches == fetches + 1, "the JWKS is fetched once, not per token"


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("expired", "it has expired (exp)"),
        ("not yet valid", "it is not valid yet"),
        ("wrong audience", "its audience (aud) is not this endpoint's"),
        ("wrong issuer", "its issuer (iss) is not the one this endpoint accepts"),
        ("wrong signature", "its signature does not verify"),
        ("unknown kid", "signed by a key (kid) that the issuer's JWKS does not hold"),
        ("no tenant claim", "it has no tid claim, which names its tenant"),
        ("no exp", "it lacks the exp claim"),
        ("alg none", "its algorithm none is not accepted (spec.auth.jwt.algorithms: RS256, ES256)"),
        ("HS256 with the public key", "its algorithm HS256 is not accepted"),
        ("garbage", "it is not a well-formed JWT"),
    ],
)
def test_a_bad_token_is_refused_with_an_openai_style_401_that_says_why(
    provider: identity_provider.IdentityProvider, case: str, reason: str
) -> None:
    auth = callers.Callers(settings(provider))
    key = provider.keys[0]
    now = int(time.time())
    claims = {"iss": provider.issuer, "aud": AUDIENCE, "exp": now + 300, "tid": "t"}
    stranger = STRANGER
    public_pem = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = {
        "expired": lambda: provider.token(AUDIENCE, tid="t", lifetime_s=-120),
        "not yet valid": lambda: provider.token(AUDIENCE, tid="t", nbf=now + 600),
        "wrong audience": lambda: provider.token("api://another-app", tid="t"),
        "wrong issuer": lambda: provider.token(AUDIENCE, tid="t", iss="https://evil.example/"),
        "wrong signature": lambda: provider.token(
            AUDIENCE, tid="t", key=identity_provider.SigningKey(key.kid, "RSA", stranger.private)
        ),
        "unknown kid": lambda: provider.token(AUDIENCE, tid="t", key=stranger),
        "no tenant claim": lambda: provider.token(AUDIENCE),
        "no exp": lambda: provider.token(AUDIENCE, tid="t", exp=None),
        "alg none": lambda: forged({"alg": "none", "kid": key.kid}, claims, None),
        "HS256 with the public key": lambda: forged(
            {"alg": "HS256", "kid": key.kid, "typ": "JWT"}, claims, public_pem
        ),
        "garbage": lambda: "not.a.jwt",
    }[case]()
    error = refusal(auth, token)
    assert error.status == 401 and error.code == "invalid_api_key"
    assert error.type == "invalid_request_error"
    assert reason in error.message
    assert token not in error.message and token[-20:] not in error.message


def test_a_little_clock_skew_is_forgiven(provider: identity_provider.IdentityProvider) -> None:
    token = provider.token(AUDIENCE, tid="t", lifetime_s=-20)
    assert tenant(callers.Callers(settings(provider, clock_skew_s=60)), token) == "jwt-t"
    assert refusal(callers.Callers(settings(provider, clock_skew_s=0)), token).status == 401


def test_a_rotated_key_is_picked_up_and_a_retired_one_refused_without_a_restart() -> None:
    provider = identity_provider.IdentityProvider("EC")
    auth = callers.Callers(settings(provider))
    old = provider.keys[0]

    async def scenario() -> None:
        assert await auth.tenant(f"Bearer {provider.token(AUDIENCE, tid='t')}".encode())
        new = provider.rotate("EC")
        # A token signed by the new key: its kid is unknown, so the JWKS is fetched again.
        fresh = provider.token(AUDIENCE, key=new, tid="t")
        assert await auth.tenant(f"Bearer {fresh}".encode()) == "jwt-t"
        provider.retire(old)
        stale = f"Bearer {provider.token(AUDIENCE, key=old, tid='t')}".encode()
        assert await auth.tenant(stale) == "jwt-t", "held until the next refresh"
        assert auth.tokens is not None
        await auth.tokens.keys.refresh()
        with pytest.raises(errors.GatewayError, match="does not hold"):
            await auth.tenant(stale)

    try:
        asyncio.run(scenario())
    finally:
        provider.close()


def test_unknown_key_ids_fetch_the_jwks_at_most_once_per_interval() -> None:
    fetched: list[str] = []
    now = [1000.0]
    idp = identity_provider.IdentityProvider("EC")
    try:
        body = json.dumps({"keys": [k.jwk() for k in idp.keys]}).encode()

        async def fetch(url: str, timeout_s: float) -> bytes:
            fetched.append(url)
            return body

        jwt_settings = settings(idp, jwks_min_refetch_s=30.0).jwt
        assert jwt_settings is not None
        keys = jwts.SigningKeys(jwt_settings, fetch=fetch, clock=lambda: now[0])
        verifier = jwts.Verifier(jwt_settings, keys)
        made_up = idp.token(AUDIENCE, key=STRANGER, tid="t")

        async def scenario() -> None:
            for _ in range(5):
                with pytest.raises(errors.GatewayError):
                    await verifier.tenant(made_up)
            assert len(fetched) == 1
            now[0] += 30
            with pytest.raises(errors.GatewayError):
                await verifier.tenant(made_up)
            assert len(fetched) == 2

        asyncio.run(scenario())
    finally:
        idp.close()


def test_without_a_jwks_tokens_get_503_and_keys_still_work(tmp_path: pathlib.Path) -> None:
    (tmp_path / "key").write_text("sk-team-a")
    dead = "http://127.0.0.1:9/keys"
    jwt = config.JwtConfig(issuer="https://i", audience=AUDIENCE, jwks_url=dead, jwks_timeout_s=1)
    backend = {
        "name": "b",
        "provider": "openai-compatible",
        "model": "*",
        "base_url": "http://127.0.0.1:1/v1",
    }
    auth = callers.Callers(
        config.GatewayConfig.model_validate(
            {"backends": [backend], "jwt": jwt.model_dump(), "api_keys_dir": str(tmp_path)}
        )
    )
    idp = identity_provider.IdentityProvider("EC")
    try:
        error = refusal(auth, idp.token(AUDIENCE, tid="t"))
    finally:
        idp.close()
    assert error.status == 503 and error.code == "jwks_unavailable"
    assert tenant(auth, "sk-team-a") == auth.keys.tenant(b"Bearer sk-team-a")
    # A bearer that is no JWT gets the API key's own message.
    assert refusal(auth, "sk-wrong").message.startswith("Incorrect API key provided")


def test_jwt_callers_without_a_key_folder_never_serve_anonymous_callers(
    provider: identity_provider.IdentityProvider,
) -> None:
    auth = callers.Callers(settings(provider))
    with pytest.raises(errors.GatewayError) as raised:
        asyncio.run(auth.tenant(None))
    assert raised.value.status == 401


def test_an_oversized_or_malformed_jwks_keeps_the_keys_fetched_before(
    provider: identity_provider.IdentityProvider,
) -> None:
    answers = [json.dumps({"keys": [provider.keys[0].jwk()]}).encode(), b"<html>", b'{"keys": 1}']
    jwt_settings = settings(provider).jwt
    assert jwt_settings is not None

    async def fetch(url: str, timeout_s: float) -> bytes:
        return answers.pop(0)

    keys = jwts.SigningKeys(jwt_settings, fetch=fetch)

    async def scenario() -> None:
        for problem in (None, "not JSON", 'no "keys" array'):
            await keys.refresh()
            assert (keys.problem is None) if problem is None else (problem in str(keys.problem))
            assert await keys.key(provider.keys[0].kid) is not None

    asyncio.run(scenario())


def test_a_verified_token_is_remembered_until_it_expires_or_its_key_goes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider = identity_provider.IdentityProvider("EC")
    auth = callers.Callers(settings(provider, clock_skew_s=0))
    assert auth.tokens is not None
    verifier = auth.tokens
    decoded: list[str] = []
    decode = verifier._decode

    def counted(token: str, key: Any, algorithm: str) -> dict[str, Any]:
        decoded.append(token)
        return decode(token, key, algorithm)

    monkeypatch.setattr(verifier, "_decode", counted)
    clock = [time.time()]
    monkeypatch.setattr(jwts.time, "time", lambda: clock[0])

    async def scenario() -> None:
        token = provider.token(AUDIENCE, tid="t", lifetime_s=60)
        for _ in range(3):
            assert await auth.tenant(f"Bearer {token}".encode()) == "jwt-t"
        assert len(decoded) == 1, "its signature is checked once, not per request"
        # Past its exp (by the gateway's clock) a remembered token is checked afresh (PyJWT's
        # own clock then refuses it; here its clock is the real one).
        clock[0] += 61
        await auth.tenant(f"Bearer {token}".encode())
        assert len(decoded) == 2
        clock[0] -= 61
        # A key the JWKS drops takes the tokens it signed with it.
        other = provider.token(AUDIENCE, tid="t", lifetime_s=60)
        assert await auth.tenant(f"Bearer {other}".encode()) == "jwt-t"
        provider.rotate("EC")
        provider.retire(provider.keys[0])
        await verifier.keys.refresh()
        with pytest.raises(errors.GatewayError, match="does not hold"):
            await auth.tenant(f"Bearer {other}".encode())

    try:
        asyncio.run(scenario())
    finally:
        provider.close()


def test_remembered_tokens_are_bounded_oldest_first(
    provider: identity_provider.IdentityProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jwts, "VERIFIED_TOKENS", 3)
    auth = callers.Callers(settings(provider))
    assert auth.tokens is not None
    tokens = [provider.token(AUDIENCE, tid=f"t{i}") for i in range(5)]
    for token in tokens:
        tenant(auth, token)
    remembered = auth.tokens._verified
    assert len(remembered) == 3
    digests = [jwts.hashlib.blake2b(t.encode(), digest_size=16).digest() for t in tokens]
    assert list(remembered) == digests[2:]
    assert all(token.encode() not in remembered for token in tokens), "never the token itself"
