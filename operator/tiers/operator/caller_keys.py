"""Keeps the keys that StreamPipelines and BatchJobs call RealtimeEndpoints with in step: each
caller's own key, generated once, and its endpoint's Secret of accepted digests (see
`manifests.client_keys`). The three kinds' handlers call these; the endpoint's reconcile (a
timer, too) is the level-based one, a caller's calls it at once so that a new pipeline is let in
without waiting for the endpoint's next turn.

Keys are read into memory to be hashed; only their digests are written, never logged.
"""

from __future__ import annotations

from typing import Any

from tiers.api import kinds
from tiers.operator import kube, reconciliation
from tiers.operator.manifests import client_keys, labels

CALLERS = ("streampipelines", "batchjobs")


async def ensure_key(owner: labels.Owner) -> None:
    """The caller's key Secret, created once (raises `kube.SecretNotOurs` if its name is taken)."""
    await kube.generated_secret(client_keys.render_key_secret(owner, client_keys.new_key()))


async def sync(endpoint: str, namespace: str) -> None:
    """Writes the digests of the keys of every caller of `endpoint` into its accepted-keys
    Secret; nothing when the endpoint does not exist or has no `auth`."""
    found = await kube.realtime_endpoint(endpoint, namespace)
    if found is None or not (found.get("spec") or {}).get("auth"):
        return
    owner = reconciliation.owner_of(kinds.REALTIME_ENDPOINT, found)
    digests = {}
    for plural in CALLERS:
        for caller in await kube.custom_objects(plural, namespace):
            if _endpoint_of(caller) != endpoint:
                continue
            metadata = caller["metadata"]
            name = client_keys.BY_KIND[caller["kind"]].name(labels.Ref(metadata["name"], namespace))
            key = await kube.secret_value(name, client_keys.KEY, namespace)
            if key:
                entry = client_keys.entry_name(caller["kind"], metadata["name"])
                digests[entry] = client_keys.digest(key)
    await kube.apply_all([client_keys.render_accepted(owner, digests)])


def _endpoint_of(caller: dict[str, Any]) -> str | None:
    ref = ((caller.get("spec") or {}).get("model") or {}).get("endpointRef") or {}
    name = ref.get("name")
    return str(name) if name else None
