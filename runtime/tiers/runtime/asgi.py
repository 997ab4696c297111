"""The ASGI interface's types, for the three ASGI apps of the data plane: the gateway, the
stream tier's push gateway and the mock model server.

Defined once here, below everything that serves HTTP, so that an app's signature reads the same
in each (`async def __call__(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send)`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, TypeAlias

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
Headers: TypeAlias = Iterable[tuple[bytes, bytes]]
"""Response headers as ASGI sends them: (name, value) pairs of bytes."""
