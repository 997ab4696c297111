"""Fixtures shared by the unit tests."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from typing import Any

import pytest


@dataclasses.dataclass
class Rebinding:
    """A DNS name whose first lookup answers a public address and every later one 127.0.0.1:
    what a DNS-rebinding attacker's name does to a client that checks the name, then connects."""

    name: str = "rebind.test"
    public: str = "93.184.215.14"
    lookups: int = 0


@pytest.fixture
def rebinding(monkeypatch: pytest.MonkeyPatch) -> Iterator[Rebinding]:
    """`Rebinding`'s name, answered by the process's resolver (`socket.getaddrinfo`), which
    asyncio, anyio and urllib3 all ask; any other name resolves as usual."""
    state = Rebinding()
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in (state.name, state.name.encode()):
            return real(host, port, *args, **kwargs)
        address = state.public if state.lookups == 0 else "127.0.0.1"
        state.lookups += 1
        return real(address, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield state
