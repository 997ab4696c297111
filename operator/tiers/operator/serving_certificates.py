"""The certificate Secret behind a gateway's `tls` (`spec.tls`, `spec.push.tls`): made and
renewed when the operator self-signs it, read for the CA that clients verify the gateway with.

The RealtimeEndpoint and StreamPipeline handlers call `prepare` before rendering their children
(its CA goes into a ConfigMap, `serving_tls.render_ca_configmap`, and into status,
`serving_tls.status_address`) and `missing` when observing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tiers.api import certificates
from tiers.operator import kube, reconciliation, verdicts
from tiers.operator.manifests import exposure, labels, serving_tls


def _self_signed(tls: certificates.TLS) -> bool:
    return tls.secret_name is None and tls.issuer_ref is None


async def prepare(
    owner: labels.Owner, component: labels.Component, tls: certificates.TLS
) -> tuple[str | None, list[kube.Change]]:
    """The CA certificates (PEM) of the served certificate, None while it has none (its Secret
    not made yet by cert-manager, or a certificate from a public CA); and the Secret as a
    change when this call renewed it. A self-signed pair is created into a Secret the owner
    controls and renewed when due (`self_signed`); `kube.SecretNotOurs` when the name is
    taken."""
    if _self_signed(tls):
        made = serving_tls.render_self_signed_secret(owner, component)
        now = reconciliation.now()
        pair, renewed = await kube.renewed_secret(
            made,
            make_data=lambda: serving_tls.self_signed_data(owner, component, now=now),
            renew=lambda data: serving_tls.renewed_data(owner, component, data, now=now),
        )
        changes = [kube.Change("Updated", "Secret", made["metadata"]["name"])] if renewed else []
        return pair.get(serving_tls.CA_KEY), changes
    name = serving_tls.secret_name(owner, component, tls)
    return await kube.secret_value(name, serving_tls.CA_KEY, owner.namespace), []


def published(body: Mapping[str, Any], block: str, tls: certificates.TLS | None) -> str | None:
    """The CA certificates the resource's status publishes for its server (`status.<block>`'s
    `CACerts`): what a reconcile keeps there while it cannot read the certificate Secret (the
    server's children are not applied either, so what it serves is unchanged)."""
    if tls is None:
        return None
    found = ((body.get("status") or {}).get(block) or {}).get("CACerts")
    return str(found) if found else None


async def missing(
    owner: labels.Owner, component: labels.Component, tls: certificates.TLS | None, *, field: str
) -> tuple[str, str, str] | None:
    """(the spec field, the Secret, its key) when the certificate Secret the pods mount lacks
    its certificate: not provided yet, or not issued yet by cert-manager."""
    if tls is None or _self_signed(tls):
        return None
    name = serving_tls.secret_name(owner, component, tls)
    if await kube.secret_value(name, serving_tls.CERT_KEY, owner.namespace) is not None:
        return None
    which = "secretName" if tls.secret_name is not None else "issuerRef"
    return (f"{field}.{which}", name, serving_tls.CERT_KEY)


async def backend_tls_policy_version(*, wanted: bool) -> str | None:
    """The version at which the cluster serves BackendTLSPolicy (None: it serves none): an
    HTTPRoute to a gateway with `tls` gets one (`wanted`), and one no longer wanted is deleted.
    Where discovery fails, `kube.DiscoveryFailed` for an owner that wants one
    (`discovery_failed`); None for any other, whose leftover policy, if any, goes at a later
    reconcile."""
    try:
        return await kube.served_version(
            exposure.GATEWAY_API_GROUP,
            exposure.BACKEND_TLS_POLICIES,
            exposure.BACKEND_TLS_POLICY_VERSIONS,
        )
    except kube.DiscoveryFailed:
        if wanted:
            raise
        return None


def discovery_failed(field: str, error: kube.DiscoveryFailed) -> verdicts.Verdict:
    """The condition of an owner whose BackendTLSPolicy (`field`.httpRoute with tls) waits for
    the apiserver's discovery to say at which version the kind is served."""
    return verdicts.Verdict(
        "False",
        "DiscoveryFailed",
        f"{field}.httpRoute to a gateway with tls needs a BackendTLSPolicy, and the apiserver's"
        f" discovery of its version failed ({error}); retrying",
    )


def backend_tls_policy_unserved(unserved: kube.TypeNotServed) -> bool:
    """Whether what the cluster did not serve is the BackendTLSPolicy (at the version discovery
    found before its CRD was removed or changed): discovery is asked again at the next
    reconcile, and the endpoint goes on without the policy meanwhile."""
    if unserved.kind != exposure.BACKEND_TLS_POLICY:
        return False
    kube.forget_served(exposure.GATEWAY_API_GROUP, exposure.BACKEND_TLS_POLICIES)
    return True
