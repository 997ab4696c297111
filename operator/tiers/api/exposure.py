"""`expose`: how a gateway is reached from outside the cluster, by an Ingress or a Gateway API
HTTPRoute (the user picks one). Used by a RealtimeEndpoint (`spec.expose`, its OpenAI-compatible
gateway) and a StreamPipeline (`spec.push.expose`, its push gateway); the operator renders and
owns the object (`tiers.operator.manifests.exposure`)."""

from __future__ import annotations

import pydantic

from tiers.api import common

# A DNS name as Ingress and HTTPRoute hosts take it; a leading `*.` is a wildcard subdomain.
HOST_PATTERN = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# A URL path prefix: starts with "/", no spaces, query or fragment.
PATH_PATTERN = r"^/[^\s?#]*$"


class IngressTLS(common.Model):
    """TLS at the Ingress controller, with the certificate and key of a Secret."""

    secret_name: common.ResourceName = pydantic.Field(
        description="A kubernetes.io/tls Secret in the resource's namespace (tls.crt, tls.key)."
    )


class IngressExposure(common.Model):
    """An Ingress (networking.k8s.io/v1) in front of the gateway's Service."""

    class_name: common.ResourceName | None = pydantic.Field(
        default=None,
        description="The IngressClass (ingressClassName); unset: the cluster's default class.",
    )
    tls: IngressTLS | None = pydantic.Field(
        default=None, description="Serve HTTPS for the host with this Secret's certificate."
    )


class ParentRef(common.Model):
    """A Gateway (gateway.networking.k8s.io) that the route attaches to."""

    name: common.ResourceName = pydantic.Field(description="Name of the Gateway.")
    namespace: common.ResourceName | None = pydantic.Field(
        default=None, description="Its namespace; unset: the resource's own."
    )
    section_name: common.ResourceName | None = pydantic.Field(
        default=None,
        description="One listener of the Gateway (e.g. the HTTPS one); unset: every listener.",
    )


class HTTPRouteExposure(common.Model):
    """A Gateway API HTTPRoute (gateway.networking.k8s.io/v1) to the gateway's Service. TLS is
    the Gateway's: its listener holds the certificate (certificateRefs)."""

    parent_refs: list[ParentRef] = pydantic.Field(
        min_length=1, max_length=8, description="The Gateways the route attaches to."
    )


class Expose(common.Model):
    """Reach the gateway from outside the cluster at `host` and `path`: through an Ingress or an
    HTTPRoute, whichever the cluster runs."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.validations(
            common.cel(
                "has(self.ingress) != has(self.httpRoute)",
                "expose needs exactly one of ingress (an Ingress) or httpRoute (a Gateway API"
                " HTTPRoute)",
                reason="FieldValueInvalid",
            )
        )
    )

    host: str = pydantic.Field(
        min_length=1,
        max_length=253,
        pattern=HOST_PATTERN,
        description="The DNS name clients use, e.g. chat.example.com (a leading *. for any"
        " subdomain).",
    )
    path: str = pydantic.Field(
        default="/",
        max_length=1024,
        pattern=PATH_PATTERN,
        description="The path prefix routed to the gateway, passed on unchanged: the gateway"
        " serves /v1/..., so / or /v1.",
    )
    ingress: IngressExposure | None = None
    http_route: HTTPRouteExposure | None = pydantic.Field(default=None, alias="httpRoute")
