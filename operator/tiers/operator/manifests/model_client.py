"""A spec's `model` block (`common.ModelCall`) as the model client's config, and the env entry
that carries its backend's key: what every job that calls a model renders the same way.

The StreamPipeline's children (`stream_children`) and the BatchJob's call these, so that a
stream and a batch job with the same `model` block call the model the same way. Pure.
"""

from __future__ import annotations

from typing import Any

from tiers.api import common
from tiers.operator.manifests import backends, client_keys, gateway, labels, security, serving_tls
from tiers.runtime import providers
from tiers.runtime.modelcall import config

KEY_ENV = "TIERS_MODEL_API_KEY"
"""The variable a job's pod gets its backend's key in, when the spec references one."""


def endpoint_url(namespace: str, endpoint: str, *, tls: bool = False) -> str:
    """The in-cluster OpenAI base URL of a RealtimeEndpoint (its gateway Service)."""
    return gateway.url(labels.Ref(endpoint, namespace), tls=tls)


def model_call(
    owner: labels.Owner,
    call: common.ModelCall,
    *,
    endpoint_model: str | None,
    endpoint_tls: bool = False,
    outside_url: str | None = None,
) -> config.ModelCallConfig:
    """The model client's config from the spec's `model` block; `endpoint_model` is the model the
    referenced RealtimeEndpoint serves (its `spec.model`), None when it does not exist, and
    `endpoint_tls` whether its gateway serves https: the client then verifies it against the CA
    the operator publishes (`serving_tls.client_volume`, mounted by the job's pods). A job that
    runs outside the cluster (on Databricks) calls the endpoint at `outside_url` instead, where
    it is exposed, verified with the system's CAs as any client outside does."""
    target: config.EndpointTarget | providers.BackendConfig
    if call.endpoint_ref is not None:
        if endpoint_model is None:
            raise ValueError(f"RealtimeEndpoint {call.endpoint_ref.name} not found")
        url = outside_url or endpoint_url(owner.namespace, call.endpoint_ref.name, tls=endpoint_tls)
        ca_file = serving_tls.client_ca_file() if endpoint_tls and not outside_url else None
        target = config.EndpointTarget(url=url, api_key_env=KEY_ENV, ca_file=ca_file)
        model = endpoint_model
    else:
        backend = call.backend
        assert backend is not None, "the CRD requires endpointRef or backend"
        target = backends.backend_config(backend, api_key_env=KEY_ENV)
        model = backend.model
    return config.ModelCallConfig(
        target=target,
        model=model,
        prompt=call.prompt,
        route=call.route,
        rows_per_request=call.rows_per_request,
        max_tokens=call.max_tokens,
        max_in_flight=call.max_in_flight,
        max_attempts=call.max_attempts,
    )


def key_env(owner: labels.Owner, call: common.ModelCall) -> list[dict[str, Any]]:
    """The pod's env entry for the key it calls with, read from its Secret: the backend's, or
    for an endpoint the caller's own (`client_keys`); none for a backend without one."""
    if call.endpoint_ref is not None:
        return [security.secret_env(KEY_ENV, client_keys.key_ref(owner))]
    ref = backends.secret_ref(call.backend) if call.backend is not None else None
    if ref is None:
        return []
    return [security.secret_env(KEY_ENV, ref)]
