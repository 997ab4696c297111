"""The Ingress or Gateway API HTTPRoute that exposes a gateway's Service outside the cluster
(`spec.expose` of a RealtimeEndpoint, `spec.push.expose` of a StreamPipeline). Pure.

Both are named after the Service they route to (`component.name(owner)`) and owned like every
other child: applied with force, corrected on drift, deleted when `expose` goes or switches to
the other kind. An HTTPRoute needs the Gateway API's CRDs; where the cluster lacks them, the
apply finds out (`kube.TypeNotServed`) and the handler reports `gateway_api_missing()`.

An HTTPRoute to a gateway that serves https (`tls`) comes with a BackendTLSPolicy, where the
cluster serves that kind (`render_backend_tls_policy`): the Gateway then speaks TLS to the
Service and verifies it with the CA its owner publishes.
"""

from __future__ import annotations

from typing import Any

from tiers.api import exposure
from tiers.operator import verdicts
from tiers.operator.manifests import labels, serving_tls

INGRESS_API_VERSION = "networking.k8s.io/v1"
INGRESS = "Ingress"
HTTP_ROUTE_API_VERSION = "gateway.networking.k8s.io/v1"
HTTP_ROUTE = "HTTPRoute"
GATEWAY_API_MISSING = "GatewayAPIMissing"
GATEWAY_API_GROUP = "gateway.networking.k8s.io"
BACKEND_TLS_POLICY = "BackendTLSPolicy"
BACKEND_TLS_POLICIES = "backendtlspolicies"
BACKEND_TLS_POLICY_VERSIONS = ("v1", "v1alpha3")
"""Where the Gateway API serves BackendTLSPolicy, the preferred first: v1 from its release 1.4
(standard channel), v1alpha3 in 1.2 and 1.3 (experimental channel), both of the same shape for
what is rendered here (targetRefs with sectionName, validation.caCertificateRefs or
wellKnownCACertificates, validation.hostname)."""


BACKEND_PROTOCOL_ANNOTATION = "nginx.ingress.kubernetes.io/backend-protocol"
"""How ingress-nginx learns that the Service speaks HTTPS (`spec.tls`); controllers that read
the Service port's name or appProtocol (https) need nothing more."""


def render(
    owner: labels.Owner,
    component: labels.Component,
    expose: exposure.Expose,
    *,
    backend_tls: bool = False,
) -> dict[str, Any]:
    """The Ingress or HTTPRoute of `expose`, routing `host` and `path` to the component's
    Service; `backend_tls` when that Service serves https (the gateway's `tls`)."""
    if expose.http_route is not None:
        return _http_route(owner, component, expose, expose.http_route)
    assert expose.ingress is not None, "the CRD requires one of ingress or httpRoute"
    ingress = _ingress(owner, component, expose, expose.ingress)
    if backend_tls:
        ingress["metadata"]["annotations"] = {BACKEND_PROTOCOL_ANNOTATION: "HTTPS"}
    return ingress


def external_url(expose: exposure.Expose, *, path: str) -> str | None:
    """The URL that clients outside the cluster call, `<scheme>://<host><path>`: https with the
    Ingress's TLS and through an HTTPRoute (whose TLS is the Gateway listener's, which the route
    cannot tell), http through an Ingress without TLS; None for a wildcard host (no one name)."""
    if expose.host.startswith("*."):
        return None
    plain = expose.ingress is not None and expose.ingress.tls is None
    return f"{'http' if plain else 'https'}://{expose.host}{path}"


def candidates(owner: labels.Owner, component: labels.Component) -> list[tuple[str, str, str]]:
    """Both kinds the component may be exposed by (apiVersion, kind, name): the one the spec no
    longer wants is deleted."""
    name = component.name(owner)
    return [(INGRESS_API_VERSION, INGRESS, name), (HTTP_ROUTE_API_VERSION, HTTP_ROUTE, name)]


def render_children(
    owner: labels.Owner,
    component: labels.Component,
    expose: exposure.Expose,
    *,
    backend_tls: bool,
    ca_published: bool,
    policy_version: str | None,
) -> list[dict[str, Any]]:
    """`render`, and with an HTTPRoute to a Service that serves https (`backend_tls`) where the
    cluster serves BackendTLSPolicy (at `policy_version`), the policy that has the Gateway
    verify it (`ca_published`: against the owner's CA ConfigMap)."""
    route = render(owner, component, expose, backend_tls=backend_tls)
    if not wants_backend_tls_policy(expose, backend_tls=backend_tls) or policy_version is None:
        return [route]
    policy = render_backend_tls_policy(
        owner, component, api_version=policy_version, ca_published=ca_published
    )
    return [route, policy]


def wants_backend_tls_policy(expose: exposure.Expose | None, *, backend_tls: bool) -> bool:
    """Whether the component gets a BackendTLSPolicy: an HTTPRoute to a Service that serves
    https (where the cluster serves the kind)."""
    return expose is not None and expose.http_route is not None and backend_tls


def render_backend_tls_policy(
    owner: labels.Owner,
    component: labels.Component,
    *,
    api_version: str,
    ca_published: bool,
) -> dict[str, Any]:
    """The BackendTLSPolicy (at `api_version`, one the cluster serves) that has the Gateway
    verify the component's https port for its Service's `.svc` name (the certificate's common
    name) against the CA ConfigMap's `ca.crt`, or the system's CAs where the owner publishes
    none (a certificate from a public CA)."""
    validation: dict[str, Any] = {"hostname": serving_tls.dns_names(owner, component)[2]}
    if ca_published:
        ca = serving_tls.ca_name(owner, component)
        validation["caCertificateRefs"] = [{"group": "", "kind": "ConfigMap", "name": ca}]
    else:
        validation["wellKnownCACertificates"] = "System"
    target = {"group": "", "kind": "Service", "name": component.name(owner),
              "sectionName": serving_tls.HTTPS}  # fmt: skip
    return {
        "apiVersion": f"{GATEWAY_API_GROUP}/{api_version}",
        "kind": BACKEND_TLS_POLICY,
        "metadata": component.metadata(owner),
        "spec": {"targetRefs": [target], "validation": validation},
    }


def backend_tls_policy_candidates(
    owner: labels.Owner, component: labels.Component, policy_version: str | None
) -> list[tuple[str, str, str]]:
    """The policy the component may have (apiVersion, kind, name), at the version the cluster
    serves only (the same object read at another version is not another child)."""
    if policy_version is None:
        return []
    return [(f"{GATEWAY_API_GROUP}/{policy_version}", BACKEND_TLS_POLICY, component.name(owner))]


def gateway_api_missing(field: str) -> verdicts.Verdict:
    """The condition of an HTTPRoute asked for on a cluster that does not serve the kind."""
    return verdicts.Verdict(
        "False",
        GATEWAY_API_MISSING,
        f"{field}.httpRoute needs the Gateway API's HTTPRoute ({HTTP_ROUTE_API_VERSION}), which"
        " this cluster does not serve: install the Gateway API's standard CRDs and a Gateway"
        f" controller, or use {field}.ingress",
    )


def _port(component: labels.Component) -> int:
    assert component.port is not None, f"{component.role} has no Service to expose"
    return component.port


def _ingress(
    owner: labels.Owner,
    component: labels.Component,
    expose: exposure.Expose,
    ingress: exposure.IngressExposure,
) -> dict[str, Any]:
    backend = {"service": {"name": component.name(owner), "port": {"number": _port(component)}}}
    spec: dict[str, Any] = {
        "rules": [
            {
                "host": expose.host,
                "http": {
                    "paths": [{"path": expose.path, "pathType": "Prefix", "backend": backend}]
                },
            }
        ]
    }
    if ingress.class_name is not None:
        spec["ingressClassName"] = ingress.class_name
    if ingress.tls is not None:
        spec["tls"] = [{"hosts": [expose.host], "secretName": ingress.tls.secret_name}]
    return {
        "apiVersion": INGRESS_API_VERSION,
        "kind": INGRESS,
        "metadata": component.metadata(owner),
        "spec": spec,
    }


def _http_route(
    owner: labels.Owner,
    component: labels.Component,
    expose: exposure.Expose,
    route: exposure.HTTPRouteExposure,
) -> dict[str, Any]:
    parents = [
        {
            "group": GATEWAY_API_GROUP,
            "kind": "Gateway",
            "name": parent.name,
            **({"namespace": parent.namespace} if parent.namespace else {}),
            **({"sectionName": parent.section_name} if parent.section_name else {}),
        }
        for parent in route.parent_refs
    ]
    return {
        "apiVersion": HTTP_ROUTE_API_VERSION,
        "kind": HTTP_ROUTE,
        "metadata": component.metadata(owner),
        "spec": {
            "parentRefs": parents,
            "hostnames": [expose.host],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": expose.path}}],
                    "backendRefs": [{"name": component.name(owner), "port": _port(component)}],
                }
            ],
        },
    }
