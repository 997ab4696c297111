"""The ClusterIP Service in front of a component's pods: `gateway`, `redis` and the stream's push
gateway render theirs, on the port their `labels.Component` names."""

from __future__ import annotations

from typing import Any

from tiers.operator.manifests import labels, serving_tls


def render_cluster_ip_service(
    owner: labels.Owner, component: labels.Component, *, port_name: str
) -> dict[str, Any]:
    """The Service behind `component.url(owner)`, sending to the named pod port."""
    if component.port is None:
        raise ValueError(f"{component.role} has no port to serve on")
    port: dict[str, Any] = {
        "name": port_name,
        "port": component.port,
        "targetPort": port_name,
        "protocol": "TCP",
    }
    if port_name == serving_tls.HTTPS:
        # What service meshes and Gateway API implementations speak to the backend.
        port["appProtocol"] = serving_tls.HTTPS
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": component.metadata(owner),
        "spec": {
            "type": "ClusterIP",
            "selector": component.selector(owner),
            "ports": [port],
        },
    }
