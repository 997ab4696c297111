"""The Ingress or Gateway API HTTPRoute that exposes a gateway's Service outside the cluster
(`spec.expose` of a RealtimeEndpoint, `spec.push.expose` of a StreamPipeline). Pure.

Both are named after the Service they route to (`component.name(owner)`) and owned like every
other child: applied with force, corrected on drift, deleted when `expose` goes or switches to
the other kind. An HTTPRoute needs the Gateway API's CRDs; where the cluster lacks them, the
apply finds out (`kube.TypeNotServed`) and the handler reports `gateway_api_missing()`.
"""

from __future__ import annotations

from typing import Any

from tiers.api import exposure
from tiers.operator import verdicts
from tiers.operator.manifests import labels

INGRESS_API_VERSION = "networking.k8s.io/v1"
INGRESS = "Ingress"
HTTP_ROUTE_API_VERSION = "gateway.networking.k8s.io/v1"
HTTP_ROUTE = "HTTPRoute"
GATEWAY_API_MISSING = "GatewayAPIMissing"


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
            "group": "gateway.networking.k8s.io",
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
