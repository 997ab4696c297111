"""The certificate Secret behind a gateway's `tls` (`spec.tls`, `spec.push.tls`): made when the
operator self-signs it, read for the CA that clients verify the gateway with.

The RealtimeEndpoint and StreamPipeline handlers call `prepare` before rendering their children
(its CA goes into a ConfigMap, `serving_tls.render_ca_configmap`) and `missing` when observing.
"""

from __future__ import annotations

from tiers.api import certificates
from tiers.operator import kube, reconciliation
from tiers.operator.manifests import labels, serving_tls


def _self_signed(tls: certificates.TLS) -> bool:
    return tls.secret_name is None and tls.issuer_ref is None


async def prepare(
    owner: labels.Owner, component: labels.Component, tls: certificates.TLS
) -> str | None:
    """The CA certificate (PEM) of the served certificate, None while it has none (its Secret not
    made yet by cert-manager, or a certificate from a public CA). A self-signed pair is created
    once into a Secret the owner controls; `kube.SecretNotOurs` when the name is taken."""
    if _self_signed(tls):
        made = serving_tls.render_self_signed_secret(owner, component)
        now = reconciliation.now()
        pair = await kube.generated_secret(
            made, make_data=lambda: serving_tls.self_signed_data(owner, component, now=now)
        )
        return pair.get(serving_tls.CA_KEY)
    name = serving_tls.secret_name(owner, component, tls)
    return await kube.secret_value(name, serving_tls.CA_KEY, owner.namespace)


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
