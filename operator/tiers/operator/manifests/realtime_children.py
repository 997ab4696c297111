"""The Kubernetes children of a RealtimeEndpoint, rendered from its spec: the one entry point.

The RealtimeEndpoint handler calls `desired_children()` and server-side-applies each manifest it
returns; `gateway_url()` is what it writes to `status.url`. Everything here is pure: the same
owner and spec always give the same manifests.
"""

from __future__ import annotations

import decimal
import pathlib
from typing import Any

from tiers import api
from tiers.api import batch, common, realtime
from tiers.operator.manifests import (
    backends,
    exposure,
    gateway,
    gateway_access,
    labels,
    network_policies,
    redis,
    security,
    serving_tls,
    telemetry,
)
from tiers.runtime import providers
from tiers.runtime.gateway import config

Owner = labels.Owner
REDIS_URL_ENV = gateway.REDIS_URL_ENV


def needs_redis(spec: api.RealtimeEndpointSpec) -> bool:
    """Whether the gateway needs a Redis: for its response cache, its rate limits or its budget.

    Limits and the month's spend are counted in Redis so that all replicas share one count, so
    an endpoint with its cache switched off still needs Redis as long as it sets a limit or a
    budget. Where `cache.redisURLSecretRef`
    names one, that Redis serves; otherwise the operator runs one for the endpoint.
    """
    limits = spec.rate_limits
    has_limits = limits is not None and (
        limits.requests_per_minute is not None or limits.tokens_per_minute is not None
    )
    return spec.cache.enabled or has_limits or spec.budget is not None


def runs_managed_redis(spec: api.RealtimeEndpointSpec) -> bool:
    """Whether the operator runs the endpoint's Redis: needed, and none referenced."""
    return needs_redis(spec) and spec.cache.redis_url_secret_ref is None


def gateway_url(owner: Owner, spec: api.RealtimeEndpointSpec) -> str:
    """The OpenAI base URL of the endpoint inside the cluster, for `status.address.url` (and
    `status.url` unless it is exposed)."""
    return gateway.url(owner, tls=spec.tls is not None)


def external_gateway_url(spec: api.RealtimeEndpointSpec) -> str | None:
    """The OpenAI base URL of the endpoint outside the cluster, at `spec.expose`'s host, for
    `status.url`; None when it is not exposed or not at one host."""
    if spec.expose is None:
        return None
    return exposure.external_url(spec.expose, path=gateway.BASE_PATH)


def _prices(spec: api.RealtimeEndpointSpec) -> dict[str, providers.PriceConfig]:
    """The spec's price under the name clients ask for and under each upstream model's name."""
    if spec.pricing is None:
        return {}
    pricing = spec.pricing
    cached = pricing.cached_input_per_m_tok_usd
    price = providers.PriceConfig(
        input_per_m_tok_usd=decimal.Decimal(pricing.input_per_m_tok_usd),
        output_per_m_tok_usd=decimal.Decimal(pricing.output_per_m_tok_usd),
        cached_input_per_m_tok_usd=None if cached is None else decimal.Decimal(cached),
    )
    return dict.fromkeys([spec.model, *(backend.model for backend in spec.backends)], price)


def _semantic_cache(spec: api.RealtimeEndpointSpec) -> config.SemanticCacheConfig | None:
    """The spec's semantic cache; its threshold in percent (no floats in a spec) as a fraction."""
    semantic = spec.cache.semantic
    if semantic is None:
        return None
    return config.SemanticCacheConfig(
        enabled=semantic.enabled,
        threshold=semantic.similarity_percent / 100,
        embedding_model=semantic.embedding_model,
        max_entries=semantic.max_entries,
    )


def _backends(spec: api.RealtimeEndpointSpec) -> tuple[providers.BackendConfig, ...]:
    return tuple(
        backends.backend_config(backend, api_key_env=providers.backend_key_env(index))
        for index, backend in enumerate(spec.backends)
    )


def _batch(
    owner: Owner, spec: api.RealtimeEndpointSpec, workspace_url: str | None
) -> config.BatchConfig | None:
    found = spec.batch
    if found is None or not found.enabled:
        return None
    return config.BatchConfig(
        namespace=owner.namespace,
        endpoint_name=owner.name,
        endpoint_uid=owner.uid,
        storage_dir=pathlib.Path(gateway.BATCH_STORAGE_DIR),
        claim_name=found.storage.claim_name,
        volume=_batch_volume(found, workspace_url),
        engine=found.engine,
        spark=found.spark.model_dump(mode="json", by_alias=True, exclude_none=True),
        databricks=_dumped(found.databricks),
        backoff_limit=found.backoff_limit,
        max_file_bytes=found.max_file_mb * 1024 * 1024,
    )


def _dumped(databricks: batch.Databricks | None) -> dict[str, object] | None:
    return (
        None
        if databricks is None
        else databricks.model_dump(mode="json", by_alias=True, exclude_none=True)
    )


def _batch_volume(
    found: realtime.BatchAPI, workspace_url: str | None
) -> config.VolumeConfig | None:
    """The Unity Catalog volume folder of `storage.uri`, as the Files API names it, in the
    workspace at `databricks.host` or else at `workspace_url`."""
    uri, databricks = found.storage.uri, found.databricks
    if uri is None:
        return None
    assert databricks is not None, "the CRD requires it with storage.uri"
    host = databricks.host or workspace_url
    if host is None:
        raise ValueError(
            "spec.batch.databricks.workspaceResourceId: the workspace_url Azure gives for it "
            "is needed to render the gateway's config"
        )
    return config.VolumeConfig(
        host=host.rstrip("/"),
        token_env=gateway.BATCH_DATABRICKS_TOKEN_ENV,
        root=uri.removeprefix("dbfs:").rstrip("/"),
    )


def gateway_config(
    owner: Owner,
    spec: api.RealtimeEndpointSpec,
    *,
    redis_url_env: str | None,
    default_telemetry: common.Telemetry | None = None,
    workspace_url: str | None = None,
) -> config.GatewayConfig:
    """The gateway's config file for the endpoint: no secret in it, only where to find them.
    Its traces go where spec.telemetry says, else to the chart's `default_telemetry`.
    `workspace_url` is the Databricks workspace of a Batch API whose `databricks` names it by
    `workspaceResourceId`, as the handler read it from Azure (`batch_workspace`).

    `redis_url_env` names the variable that carries the Redis URL into the pod, None where the
    pod has none. The file's `redis_url` stays null either way: a URL read from a Secret must
    not be copied into a ConfigMap. The gateway reads `TIERS_REDIS_URL`, the only name accepted.
    """
    if redis_url_env not in (None, REDIS_URL_ENV):
        raise ValueError(f"redis_url_env must be None or {REDIS_URL_ENV!r}, not {redis_url_env!r}")
    limits = spec.rate_limits
    managed = runs_managed_redis(spec)
    return config.GatewayConfig(
        endpoint=f"{owner.namespace}/{owner.name}",
        model=spec.model,
        backends=_backends(spec),
        redis_url=None,
        redis_password_env=gateway.REDIS_PASSWORD_ENV if managed else None,
        api_keys_dir=None if spec.auth is None else pathlib.Path(gateway.API_KEYS_DIR),
        cache=config.CacheConfig(
            enabled=spec.cache.enabled,
            ttl_seconds=spec.cache.ttl_seconds,
            semantic=_semantic_cache(spec),
        ),
        rate_limits=config.RateLimitConfig(
            requests_per_minute=None if limits is None else limits.requests_per_minute,
            tokens_per_minute=None if limits is None else limits.tokens_per_minute,
        ),
        retries=providers.RetryConfig(
            max_attempts=spec.retries.max_attempts,
            initial_backoff_ms=spec.retries.initial_backoff_ms,
            max_backoff_ms=spec.retries.max_backoff_ms,
        ),
        prices=_prices(spec),
        budget_usd=None if spec.budget is None else decimal.Decimal(spec.budget.monthly_usd),
        batch=_batch(owner, spec, workspace_url),
        jwt=_jwt(spec),
        audit_sample_ratio=0.0 if spec.audit is None else spec.audit.sample_percent / 100,
        tracing=telemetry.tracing(
            spec.telemetry or default_telemetry, service_name="tiers-gateway"
        ),
    )


def _jwt(spec: api.RealtimeEndpointSpec) -> config.JwtConfig | None:
    """spec.auth.jwt as the gateway reads it; the JWKS is public, so it is no secret."""
    found = None if spec.auth is None else spec.auth.jwt
    if found is None:
        return None
    return config.JwtConfig(
        issuer=found.issuer,
        audience=found.audience,
        jwks_url=found.jwks_url,
        tenant_claim=found.tenant_claim,
        algorithms=tuple(found.algorithms),
        clock_skew_s=found.clock_skew_seconds,
        jwks_refresh_s=found.jwks_refresh_seconds,
        jwks_min_refetch_s=min(config.JWKS_MIN_REFETCH_S, found.jwks_refresh_seconds),
    )


def _redis_env(owner: Owner, spec: api.RealtimeEndpointSpec) -> list[dict[str, Any]]:
    """The gateway's `TIERS_REDIS_URL` entry, from the referenced Secret, or the managed Redis's
    URL and its password (by reference); none without a Redis."""
    if not needs_redis(spec):
        return []
    ref = spec.cache.redis_url_secret_ref
    if ref is not None:
        return [security.secret_env(REDIS_URL_ENV, ref)]
    return [
        {"name": REDIS_URL_ENV, "value": redis.url(owner)},
        redis.password_env(owner, gateway.REDIS_PASSWORD_ENV),
    ]


def desired_children(
    owner: Owner,
    spec: api.RealtimeEndpointSpec,
    *,
    image: str,
    network_policy: network_policies.Settings | None = None,
    redis_password: str | None = None,
    default_telemetry: common.Telemetry | None = None,
    serving_ca: str | None = None,
    backend_tls_policy: str | None = None,
    workspace_url: str | None = None,
) -> list[dict[str, Any]]:
    """Every object the endpoint should own, in apply order; `image` runs the gateway.
    `redis_password` (the managed Redis's, as its Secret holds it) goes on the Redis and
    gateway pods as a digest only, so that a re-made Secret rolls both together. `serving_ca`
    (with `spec.tls`, the `ca.crt` of the gateway's certificate Secret, when it has one) is
    published in a ConfigMap for the endpoint's in-cluster clients. `backend_tls_policy` is the
    version at which the cluster serves BackendTLSPolicy (None: it does not). `workspace_url`
    is the Batch API's workspace where Azure names it (`gateway_config`).

    The order is stable: ConfigMap, with `spec.tls` the cert-manager Certificate (issuerRef)
    and the CA's ConfigMap, the managed Redis (Deployment, Service, and its
    NetworkPolicy when `network_policy` is enabled) when the operator runs it, with the Batch
    API the gateway's ServiceAccount, Role and RoleBinding, the gateway Deployment, Service and
    PodDisruptionBudget, then the HPA when autoscaling is set, and last the Ingress or HTTPRoute
    of `spec.expose` (a cluster may lack the HTTPRoute's CRD), an HTTPRoute to a gateway with
    `spec.tls` followed by its BackendTLSPolicy. A
    suspended endpoint scales to zero and has no HPA (one would scale it back up). Objects
    absent from the list are the handler's to delete.
    """
    redis_env = _redis_env(owner, spec)
    settings = gateway_config(
        owner,
        spec,
        redis_url_env=REDIS_URL_ENV if redis_env else None,
        default_telemetry=default_telemetry,
        workspace_url=workspace_url,
    )
    configmap = gateway.render_configmap(owner, settings)
    children = [configmap]
    if spec.tls is not None:
        children += serving_tls.render_children(owner, gateway.COMPONENT, spec.tls, serving_ca)
    server = redis.render_deployment(owner)
    if redis_password is not None:
        labels.stamp_secret_hash(server, redis_password)
    if runs_managed_redis(spec):
        children += [server, redis.render_service(owner)]
        if network_policy is not None and network_policy.enabled:
            children.append(
                network_policies.render_redis_policy(
                    owner,
                    redis=redis.COMPONENT,
                    clients=(gateway.COMPONENT,),
                    settings=network_policy,
                )
            )
    proxy = gateway.render_deployment(
        owner,
        spec,
        image=image,
        config_hash=labels.config_hash(configmap["data"]),
        redis_env=redis_env,
    )
    if redis_password is not None and runs_managed_redis(spec):
        labels.stamp_secret_hash(proxy, redis_password)
    if settings.batch is not None:
        # The pods' ServiceAccount exists before the Deployment that names it.
        children += gateway_access.render_batch_access(owner)
    children += [
        proxy,
        gateway.render_service(owner, spec),
        gateway.render_pod_disruption_budget(owner),
    ]
    if spec.autoscaling is not None and not spec.suspend:
        children.append(gateway.render_horizontal_pod_autoscaler(owner, spec.autoscaling))
    if spec.expose is not None:
        children += exposure.render_children(
            owner,
            gateway.COMPONENT,
            spec.expose,
            backend_tls=spec.tls is not None,
            ca_published=serving_ca is not None,
            policy_version=backend_tls_policy,
        )
    return children
