"""A token endpoint that answers slowly, a byte at a time, holds the calls waiting for the token no
longer than `entra.TIMEOUT_S` in all (a socket's timeout is per read, and each byte resets it)."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections.abc import Iterator

import pytest

from tiers.runtime import providers
from tiers.runtime.providers import entra


@pytest.fixture
def dripping() -> Iterator[str]:
    stop = threading.Event()

    class Drip(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", "200")
            self.end_headers()
            for _ in range(200):  # 20 s in all, a byte each 0.1 s
                if stop.wait(0.1):
                    return
                try:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                except OSError:
                    return

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Drip)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        stop.set()
        server.shutdown()
        server.server_close()


def test_a_dripping_token_endpoint_is_given_up_on_at_the_deadline(
    dripping: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", dripping)
    monkeypatch.setattr(entra, "TIMEOUT_S", 1.0)
    tokens = entra.Tokens(providers.EntraConfig(tenant_id="t", client_id="app"), "secret")
    asked = time.monotonic()
    with pytest.raises(entra.TokenError, match="gave no token to application app of tenant t"):
        asyncio.run(tokens.authorization())
    assert time.monotonic() - asked < 3.0, "the calls waited past the deadline"
