"""A spec's backend as the data plane's `BackendConfig`: one translation for the gateway of a
RealtimeEndpoint and the model client of a StreamPipeline."""

from __future__ import annotations

from tiers.api import common
from tiers.runtime import providers


def secret_ref(backend: common.Backend) -> common.SecretKeyRef | None:
    """The Secret key the backend's pods call it with: its API key or, with Entra ID, the
    application's client secret (none for workload identity)."""
    if backend.entra_id is not None:
        return backend.entra_id.client_secret_ref
    return backend.api_key_secret_ref


def backend_config(backend: common.Backend, *, api_key_env: str) -> providers.BackendConfig:
    """`api_key_env` names the variable the pod gets the key (or the Entra ID application's
    client secret) in, when the spec references one."""
    identity = backend.entra_id
    return providers.BackendConfig(
        name=backend.name,
        provider=backend.provider,
        model=backend.model,
        base_url=backend.base_url,
        deployment=backend.deployment,
        api_version=backend.api_version,
        api_key_env=None if secret_ref(backend) is None else api_key_env,
        entra=None
        if identity is None
        else providers.EntraConfig(tenant_id=identity.tenant_id, client_id=identity.client_id),
        priority=backend.priority,
        weight=backend.weight,
        timeout_ms=backend.timeout_ms,
    )
