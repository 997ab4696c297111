"""Which CA the console verifies a tier's https server with (an endpoint's gateway with
`spec.tls`, a pipeline's push gateway with `spec.push.tls`): the one its resource publishes, in
the ConfigMap the operator renders beside the server's certificate (`serving_tls.ca_name`), read
with the caller's identity like everything else the console shows them.

Only a ConfigMap that the resource itself controls is trusted: one of that name that someone
else made is refused, never used. Where there is none (a certificate from a public CA, or one
not issued yet), the system's CAs verify it. Verification is never turned off. The playground
(`realtime`) and the live view (`stream`) call `server`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import fastapi
import lightkube
from lightkube.resources import core_v1

from tiers.console import errors, resources, upstream
from tiers.operator.manifests import labels, serving_tls


async def server(
    request: fastapi.Request, obj: Mapping[str, Any], component: labels.Component,
    in_cluster: str,
) -> upstream.Server:  # fmt: skip
    """The server of `obj`'s `component` at `in_cluster`, as this console calls and verifies it."""
    url = upstream.reachable(request, in_cluster)
    if not in_cluster.startswith("https://"):
        return upstream.Server(in_cluster.rstrip("/"), url)
    client = resources.caller(request).client
    return upstream.Server(in_cluster.rstrip("/"), url, await published_ca(client, obj, component))


async def published_ca(
    client: lightkube.AsyncClient, obj: Mapping[str, Any], component: labels.Component
) -> str | None:
    """The CA certificates (PEM) `obj` publishes for its `component`'s clients; None when it
    publishes none. `ConsoleError` 502 for a ConfigMap of that name that `obj` does not
    control, or that holds no CA."""
    metadata = obj["metadata"]
    owner = labels.Ref(metadata["name"], metadata["namespace"])
    name = serving_tls.ca_name(owner, component)
    try:
        found = await client.get(core_v1.ConfigMap, name, namespace=owner.namespace)
    except lightkube.ApiError as error:
        if error.status.code == 404:
            return None
        raise
    refs = (found.metadata.ownerReferences if found.metadata else None) or []
    if [ref.uid for ref in refs if ref.controller] != [metadata.get("uid")]:
        raise errors.ConsoleError(
            502, "UntrustedCA",
            f"ConfigMap {name} is not {obj.get('kind', 'the resource')} {owner.name}'s own (it"
            " is not its controller): its CA is not trusted; delete or rename the ConfigMap",
        )  # fmt: skip
    pem: str | None = (found.data or {}).get(serving_tls.CA_KEY)
    if not pem:
        raise errors.ConsoleError(
            502, "UntrustedCA", f"ConfigMap {name} holds no {serving_tls.CA_KEY} to verify with"
        )
    return pem
