"""Reconciles RealtimeEndpoint: renders the gateway's children, applies them, observes them
and the gateways' stats and budget counter, and writes conditions, URL, latency, cost and the
month's spend against the budget into status."""

from __future__ import annotations

import os
from typing import Any

import kopf
import lightkube

from tiers.api import kinds, realtime
from tiers.operator import (
    batch_databricks,
    caller_keys,
    kube,
    metrics,
    ownership,
    realtime_status,
    reconciliation,
    serving_certificates,
    stats_reader,
    triggers,
    verdicts,
)
from tiers.operator.manifests import (
    exposure,
    gateway,
    gateway_access,
    labels,
    network_policies,
    realtime_children,
    redis,
    serving_tls,
    stats_store,
    telemetry,
)

KIND = kinds.REALTIME_ENDPOINT
DEFAULT_TELEMETRY = telemetry.default_from(os.environ)
"""The chart's `telemetry.*`, for endpoints whose spec names no collector."""


@triggers.reconciler(KIND)
async def reconcile_realtime_endpoint(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    with metrics.reconciling(KIND.kind):
        spec = reconciliation.parse_spec(KIND, realtime.RealtimeEndpointSpec, body, patch)
        if spec is None:
            return
        owner = reconciliation.owner_of(KIND, body)
        apply_error, serving_ca = await apply_children(owner, spec, body=body)
        observed = await observe(owner, spec, apply_error=apply_error, serving_ca=serving_ca)
        desired = realtime_status.desired_status(
            spec, observed, body=body, now=reconciliation.now()
        )
        reconciliation.write_status(patch, body, desired)


async def apply_children(
    owner: labels.Owner, spec: realtime.RealtimeEndpointSpec, *, body: kopf.Body
) -> tuple[verdicts.Verdict | None, str | None]:
    """Applies the desired children and deletes the optional ones the spec no longer wants,
    each change an Event on the endpoint: what went wrong, for ProxyReady, or None; and with
    spec.tls the CA its clients verify the gateway with (the one status published before
    when it could not be read)."""
    serving_ca = serving_certificates.published(body, "address", spec.tls)
    try:
        workspace = await batch_workspace(owner, spec)
        if isinstance(workspace, verdicts.Verdict):
            return workspace, serving_ca  # the config needs the workspace: applied once found
        password = None
        if realtime_children.runs_managed_redis(spec):
            # Created once, then only read: a new password would lock every client out.
            made = redis.render_password_secret(owner, redis.new_password())
            password = (await kube.generated_secret(made)).get(redis.PASSWORD_KEY)
        renewed: list[kube.Change] = []
        if spec.tls is not None:
            serving_ca, renewed = await serving_certificates.prepare(
                owner, gateway.COMPONENT, spec.tls
            )
        policy_version = await serving_certificates.backend_tls_policy_version(
            wanted=exposure.wants_backend_tls_policy(spec.expose, backend_tls=spec.tls is not None)
        )
        children = realtime_children.desired_children(
            owner,
            spec,
            image=reconciliation.IMAGE,
            network_policy=network_policies.settings_from(os.environ),
            redis_password=password,
            default_telemetry=DEFAULT_TELEMETRY,
            serving_ca=serving_ca,
            backend_tls_policy=policy_version,
            workspace_url=workspace,
        )
        if spec.auth is not None:
            # The digests of the keys of the pipelines and batch jobs that call this endpoint.
            await caller_keys.sync(owner.name, owner.namespace)
        optional = [
            *optional_children(owner),
            *exposure.backend_tls_policy_candidates(owner, gateway.COMPONENT, policy_version),
        ]
        changes, unserved = await kube.sync_children(
            children, reconciliation.possible_leftovers(body, optional)
        )
        reconciliation.record_changes(body, renewed + changes)
        if unserved is not None and serving_certificates.backend_tls_policy_unserved(unserved):
            unserved = None
        if unserved is not None:
            # The HTTPRoute (applied last) and the Certificate of spec.tls.issuerRef are the
            # children whose type a cluster may lack.
            if unserved.kind == serving_tls.CERTIFICATE_KIND:
                return serving_tls.cert_manager_missing("spec.tls.issuerRef"), serving_ca
            if unserved.kind != exposure.HTTP_ROUTE:
                raise unserved
            return exposure.gateway_api_missing("spec.expose"), serving_ca
    except (ownership.ChildConflict, kube.SecretNotOurs) as error:
        return reconciliation.child_conflict(KIND, body, error), serving_ca
    except kube.DiscoveryFailed as error:
        return serving_certificates.discovery_failed("spec.expose", error), serving_ca
    except lightkube.ApiError as error:
        message = f"applying the gateway's objects failed: {error.status.message}"
        return verdicts.Verdict("False", "ApplyFailed", message), serving_ca
    return None, serving_ca


async def batch_workspace(
    owner: labels.Owner, spec: realtime.RealtimeEndpointSpec
) -> str | verdicts.Verdict | None:
    """The URL of the Batch API's Databricks workspace where `spec.batch.databricks` names it
    by Azure `workspaceResourceId`, read as a BatchJob's is (its BatchJobs carry the ID and
    read it again themselves); a verdict where it cannot be had; None where none is needed."""
    found = spec.batch
    if found is None or not found.enabled or found.databricks is None:
        return None
    if found.databricks.workspace_resource_id is None:
        return None
    return await batch_databricks.workspace_host(
        found.databricks, owner.namespace, field="spec.batch.databricks"
    )


async def observe(
    owner: labels.Owner,
    spec: realtime.RealtimeEndpointSpec,
    *,
    apply_error: verdicts.Verdict | None,
    serving_ca: str | None = None,
) -> realtime_status.Observed:
    """Reads back what the status is made of: the children, the Secrets, the stats and spend."""
    missing = await missing_secrets(owner.namespace, spec)
    certificate = await serving_certificates.missing(
        owner, gateway.COMPONENT, spec.tls, field="spec.tls"
    )
    if certificate is not None:
        missing += (realtime_status.MissingSecret(*certificate),)
    managed = realtime_children.runs_managed_redis(spec)
    proxy = await kube.deployment_status(gateway.name(owner), owner.namespace)
    cache = await kube.deployment_status(redis.name(owner), owner.namespace) if managed else None
    where = await stats_reader.target(stats_store.of_endpoint(owner, spec), owner.namespace)
    subject = f"{owner.namespace}/{owner.name}"
    summary = spend = None
    stats_unavailable = False
    if where is not None:
        summary = await stats_reader.summary(
            where, subject, minutes=realtime_status.WINDOW_SECONDS // 60
        )
        stats_unavailable = summary is None
        if spec.budget is not None:
            spend = await stats_reader.month_spend(where, subject)
    return realtime_status.Observed(
        gateway=proxy,
        redis=cache,
        managed_redis=managed,
        missing_secrets=missing,
        apply_error=apply_error,
        summary=summary,
        url=realtime_children.gateway_url(owner, spec),
        external_url=realtime_children.external_gateway_url(spec),
        spend=spend,
        stats_unavailable=stats_unavailable,
        serving_ca=serving_ca,
    )


def optional_children(owner: labels.Owner) -> list[tuple[str, str, str]]:
    """Children that some specs have and others not: (apiVersion, kind, name)."""
    return [
        ("apps/v1", "Deployment", redis.name(owner)),
        ("v1", "Service", redis.name(owner)),
        (network_policies.API_VERSION, network_policies.KIND, redis.name(owner)),
        ("autoscaling/v2", "HorizontalPodAutoscaler", gateway.name(owner)),
        *exposure.candidates(owner, gateway.COMPONENT),
        *gateway_access.optional_children(owner),
        *serving_tls.optional_children(owner, gateway.COMPONENT),
    ]


async def missing_secrets(
    namespace: str, spec: realtime.RealtimeEndpointSpec
) -> tuple[realtime_status.MissingSecret, ...]:
    """The Secrets (and keys) the spec refers to that the namespace lacks."""
    refs = [
        (f"spec.backends[{index}].apiKeySecretRef", backend.api_key_secret_ref)
        for index, backend in enumerate(spec.backends)
    ] + [
        (f"spec.backends[{index}].entraID.clientSecretRef", backend.entra_id.client_secret_ref)
        for index, backend in enumerate(spec.backends)
        if backend.entra_id is not None
    ]
    refs.append(("spec.cache.redisURLSecretRef", spec.cache.redis_url_secret_ref))
    if spec.batch is not None and spec.batch.enabled and spec.batch.databricks is not None:
        refs.append(
            ("spec.batch.databricks.tokenSecretRef", spec.batch.databricks.token_secret_ref)
        )
    missing = [
        realtime_status.MissingSecret(field, ref.name, ref.key)
        for field, ref in refs
        if ref is not None and await kube.secret_value(ref.name, ref.key, namespace) is None
    ]
    if spec.auth is not None and spec.auth.api_keys_secret_ref is not None:
        name = spec.auth.api_keys_secret_ref.name
        keys = await kube.secret_nonblank_values(name, namespace)
        if keys is None or keys == 0:
            missing.append(
                realtime_status.MissingSecret("spec.auth.apiKeysSecretRef", name, blank=keys == 0)
            )
    return tuple(missing)
