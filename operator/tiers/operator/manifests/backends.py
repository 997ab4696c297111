"""A spec's backend as the data plane's `BackendConfig`: one translation for the gateway of a
RealtimeEndpoint and the model client of a StreamPipeline."""

from __future__ import annotations

from tiers.api import common
from tiers.runtime import providers


def backend_config(backend: common.Backend, *, api_key_env: str) -> providers.BackendConfig:
    """`api_key_env` names the variable the pod gets the key in, when the spec references one."""
    return providers.BackendConfig(
        name=backend.name,
        provider=backend.provider,
        model=backend.model,
        base_url=backend.base_url,
        deployment=backend.deployment,
        api_version=backend.api_version,
        api_key_env=None if backend.api_key_secret_ref is None else api_key_env,
        priority=backend.priority,
        weight=backend.weight,
        timeout_ms=backend.timeout_ms,
    )
