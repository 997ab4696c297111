"""The keys that StreamPipelines and BatchJobs call a RealtimeEndpoint with: pure.

A job that calls an endpoint (`model.endpointRef`) gets a key of its own: the operator generates
it once into a Secret that the pipeline or batch job owns (`render_key_secret`, `<name>-stream-key`
or `<name>-batch-key`), and the job's pods read it by reference (`model_client.KEY_ENV`). An
endpoint with `auth` accepts, besides the keys in its own Secret, the digest of each such key
of the objects that reference it (`render_accepted`: the Secret `<endpoint>-client-keys`, owned
by the endpoint, holding `sha256:<hex>` entries only, never a key), mounted beside its keys. A
pipeline that goes away takes its entry with it at the endpoint's next reconcile.

Why this design: each caller's key is revocable on its own (delete its Secret and the operator
makes a new one), the endpoint's pods never see a pipeline's key, and the user's auth Secret is
never written by the operator.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from typing import Any

from tiers.api import common, kinds
from tiers.operator.manifests import labels, security

KEY = "key"
KEY_BYTES = 32
BY_KIND = {
    kinds.STREAM_PIPELINE.kind: labels.Component(
        app="tiers-client-key", role="endpoint-key", suffix="stream-key"
    ),
    kinds.BATCH_JOB.kind: labels.Component(
        app="tiers-client-key", role="endpoint-key", suffix="batch-key"
    ),
}
"""The Secret of each calling kind's own key."""
ACCEPTED = labels.Component(app="tiers-gateway", role="client-keys", suffix="client-keys")
"""The endpoint's Secret of the digests of its callers' keys."""


def new_key() -> str:
    return secrets.token_urlsafe(KEY_BYTES)


def digest(key: str) -> str:
    """What the gateway compares a caller's key by (`tiers.runtime.apikeys`): SHA-256, hex."""
    return hashlib.sha256(key.strip().encode()).hexdigest()


def key_ref(owner: labels.Owner) -> common.SecretKeyRef:
    """Where the pods of `owner` (a StreamPipeline or a BatchJob) find its key."""
    return common.SecretKeyRef(name=BY_KIND[owner.kind].name(owner), key=KEY)


def render_key_secret(owner: labels.Owner, key: str) -> dict[str, Any]:
    """The caller's key: created once, never applied again (a new key would be refused until
    the endpoint's gateways see its digest)."""
    return security.render_secret(owner, BY_KIND[owner.kind], {KEY: key})


def entry_name(kind: str, name: str) -> str:
    """The file a caller's digest is mounted as, e.g. `streampipeline.summaries`."""
    return f"{kind.lower()}.{name}"


def render_accepted(endpoint: labels.Owner, digests: Mapping[str, str]) -> dict[str, Any]:
    """The endpoint's Secret of its callers' digests (`entry_name` to hex digest)."""
    data = {name: f"sha256:{digest}" for name, digest in sorted(digests.items())}
    return security.render_secret(endpoint, ACCEPTED, data)
