"""Which CA the console verifies a tier's https server with (an endpoint's gateway with
`spec.tls`, a pipeline's push gateway with `spec.push.tls`): the one its resource publishes in
status (`status.address.CACerts`, `status.push.CACerts`), read with the object the caller was
allowed to read, at no other request.

Only the operator writes status (the status subresource is its right, not a namespace
editor's), so the CA it publishes there is the one of the server's own certificate Secret. Where
there is none (http, a certificate from a public CA, or one not issued yet), the system's CAs
verify it. Verification is never turned off. The playground (`realtime`) and the live view
(`stream`) call `server`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import fastapi

from tiers.console import upstream


def server(
    request: fastapi.Request, obj: Mapping[str, Any], block: str, in_cluster: str
) -> upstream.Server:
    """The server at `in_cluster` whose `Address` is `obj`'s `status.<block>`, as this console
    calls and verifies it."""
    url = upstream.reachable(request, in_cluster)
    if not in_cluster.startswith("https://"):
        return upstream.Server(in_cluster.rstrip("/"), url)
    return upstream.Server(in_cluster.rstrip("/"), url, published_ca(obj, block))


def published_ca(obj: Mapping[str, Any], block: str) -> str | None:
    """The CA certificates (PEM) `obj`'s status publishes in `status.<block>.CACerts`; None
    when it publishes none."""
    address = (obj.get("status") or {}).get(block) or {}
    found = address.get("CACerts") if isinstance(address, Mapping) else None
    return found if isinstance(found, str) and found else None
