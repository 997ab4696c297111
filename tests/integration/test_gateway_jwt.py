"""JWT callers through a real gateway process: tokens from a local identity provider (a real
HTTP server publishing a JWKS), a real Redis for the per-tenant limits, mockllm upstream."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator

import pytest
from conftest import Processes, wait_for
from test_gateway import GATEWAY, HELLO, MOCK, post

from tiers.devenv import identity_provider
from tiers.devenv import redis_server as redis_server_module

AUDIENCE = "api://tiers-chat"


@pytest.fixture
def provider() -> Iterator[identity_provider.IdentityProvider]:
    idp = identity_provider.IdentityProvider("RSA")
    yield idp
    idp.close()


def test_jwt_callers_get_their_tenants_limits_and_rotated_keys_and_are_audited(
    services: Processes,
    redis_server: redis_server_module.RedisServer,
    provider: identity_provider.IdentityProvider,
    tmp_path: pathlib.Path,
) -> None:
    mock = services.start("mockllm", MOCK)
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "team-k").write_text("sk-team-k")
    config_file = tmp_path / "gateway.json"
    config_file.write_text(
        json.dumps(
            {
                "backends": [
                    {"name": "mock", "provider": "openai-compatible", "model": "*",
                     "base_url": f"{mock}/v1"}
                ],
                "redis_url": redis_server.url,
                "api_keys_dir": str(keys),
                "cache": {"enabled": False},
                "rate_limits": {"requests_per_minute": 2},
                "audit_sample_ratio": 1.0,
                "jwt": {"issuer": provider.issuer, "audience": AUDIENCE,
                        "jwks_url": provider.jwks_url, "tenant_claim": "tid",
                        "jwks_refresh_s": 1, "jwks_min_refetch_s": 0},
            }
        )
    )  # fmt: skip
    gateway = services.start("gateway", GATEWAY, "--config", str(config_file))
    url = gateway + "/v1/chat/completions"
    ask = {"model": "gpt-4o-mini", "messages": HELLO}

    def call(bearer: str) -> tuple[int, dict[str, object]]:
        status, _, body = post(url, ask, {"authorization": f"Bearer {bearer}"})
        return status, body

    team_a = provider.token(AUDIENCE, tid="team-a")
    assert [call(team_a)[0] for _ in range(3)] == [200, 200, 429], "team-a's own limit"
    # Another tenant's tokens, and a key, each have their own limit.
    assert call(provider.token(AUDIENCE, tid="team-b"))[0] == 200
    assert call("sk-team-k")[0] == 200

    status, body = call(provider.token("api://another-app", tid="team-c"))
    assert status == 401
    assert body["error"] == {
        "message": "The bearer token was refused: its audience (aud) is not this endpoint's.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }

    # The provider rolls its key: tokens signed by the new one work at once...
    old = provider.keys[0]
    new = provider.rotate("EC")
    assert call(provider.token(AUDIENCE, key=new, tid="team-d"))[0] == 200
    # ...and once it retires the old one, the gateway's next refresh refuses it.
    provider.retire(old)
    stale = provider.token(AUDIENCE, key=old, tid="team-e")
    wait_for(lambda: call(stale)[0] == 401, timeout_s=15, what="the retired key to be refused")

    # Each call left one audit line naming its tenant; none holds a token, a key or a prompt.
    log = services.started[-1].log.read_text()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith('{"time"')]
    seen = {(line["tenant"], line["status"]) for line in lines}
    assert {("jwt-team-a", 200), ("jwt-team-a", 429), ("jwt-team-b", 200), (None, 401)} <= seen
    assert all(line["model"] in ("gpt-4o-mini", None) and line["route"] == "chat" for line in lines)
    for secret in (team_a, stale, "sk-team-k", HELLO[0]["content"]):
        assert secret not in log
