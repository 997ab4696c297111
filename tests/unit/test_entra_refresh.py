"""A token that is due for refresh but not expired keeps serving calls while Entra ID cannot give
a new one: a refusal or an outage in the last minutes of a token's life fails no call."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from collections.abc import Iterator

import pytest

from tiers.runtime import providers
from tiers.runtime.providers import entra


@pytest.fixture
def token_endpoint() -> Iterator[list[int]]:
    """Answers a token the first time, 503 after; yields the statuses it answered."""
    answered: list[int] = []

    class Tokens(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            if answered:
                body, status = b'{"error": "temporarily_unavailable"}', 503
            else:
                body, status = (
                    json.dumps({"access_token": "first", "expires_in": 3600}).encode(),
                    200,
                )
            answered.append(status)
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Tokens)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AZURE_AUTHORITY_HOST", f"http://127.0.0.1:{server.server_address[1]}")
        try:
            yield answered
        finally:
            server.shutdown()
            server.server_close()


def test_a_token_due_for_refresh_serves_on_while_entra_id_gives_none(
    token_endpoint: list[int],
) -> None:
    now = [1_000_000.0]
    tokens = entra.Tokens(
        providers.EntraConfig(tenant_id="t", client_id="app"), "secret", clock=lambda: now[0]
    )

    async def calls() -> None:
        assert await tokens.authorization() == "Bearer first"
        now[0] += 3600 - 60  # due for refresh, valid for a minute more
        assert await tokens.authorization() == "Bearer first"
        assert await tokens.authorization() == "Bearer first"
        now[0] += 120  # expired
        with pytest.raises(entra.TokenError, match="refused application app of tenant t"):
            await tokens.authorization()

    asyncio.run(calls())
    assert token_endpoint == [200, 503, 503], "asked again only after RETRY_AFTER_S"
