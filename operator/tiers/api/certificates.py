"""`tls`: HTTPS on a gateway's own listener, inside the cluster. Used by a RealtimeEndpoint
(`spec.tls`, its OpenAI-compatible gateway) and a StreamPipeline (`spec.push.tls`, its push
gateway); the operator mounts the certificate, serves https on the Service and publishes the CA
that in-cluster clients verify it with (`tiers.operator.manifests.serving_tls`).

Where the certificate comes from, as cert-manager users expect:
- `secretName`: a kubernetes.io/tls Secret that the user (or their own cert-manager Certificate)
  provides;
- `issuerRef`: the operator makes a cert-manager Certificate, owned by the resource, that asks
  this Issuer or ClusterIssuer for it (cert-manager renews it; the gateway reloads it);
- neither (`tls: {}`): the operator generates a self-signed CA and a serving certificate into
  a Secret that it owns.
"""

from __future__ import annotations

from typing import Literal

import pydantic

from tiers.api import common

CERT_MANAGER_GROUP = "cert-manager.io"


class IssuerRef(common.Model):
    """A cert-manager issuer, as a Certificate's spec.issuerRef names it."""

    name: common.ResourceName = pydantic.Field(description="Name of the Issuer or ClusterIssuer.")
    kind: Literal["Issuer", "ClusterIssuer"] = pydantic.Field(
        default="Issuer",
        description="Issuer (in the resource's namespace) or ClusterIssuer.",
    )
    group: str = pydantic.Field(
        default=CERT_MANAGER_GROUP,
        min_length=1,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="The issuer's API group: cert-manager.io, or an external issuer's.",
    )


class TLS(common.Model):
    """Serve HTTPS (TLS 1.2 or later) with a certificate from a Secret, from cert-manager, or
    self-signed by the operator (neither secretName nor issuerRef)."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.validations(
            common.cel(
                "!(has(self.secretName) && has(self.issuerRef))",
                "tls takes secretName (a Secret you provide) or issuerRef (a cert-manager"
                " Certificate the operator makes), not both; neither: self-signed",
                reason="FieldValueInvalid",
            )
        )
    )

    secret_name: common.ResourceName | None = pydantic.Field(
        default=None,
        description="A kubernetes.io/tls Secret in the resource's namespace (tls.crt, tls.key;"
        " its ca.crt, when present, is what in-cluster clients verify against).",
    )
    issuer_ref: IssuerRef | None = pydantic.Field(
        default=None,
        description="Have cert-manager issue and renew the certificate: the operator makes a"
        " Certificate for the Service's DNS names with this issuer (cert-manager must be"
        " installed).",
    )
