"""The ClusterIP Service in front of a component's pods: `gateway` and `redis` render theirs."""

from __future__ import annotations

from typing import Any

from tiers.operator.manifests import labels


def render_cluster_ip_service(
    owner: labels.Owner, component: labels.Component, *, port: int, port_name: str
) -> dict[str, Any]:
    """A Service at `<component name>.<namespace>.svc:<port>`, sending to the named pod port."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": component.metadata(owner),
        "spec": {
            "type": "ClusterIP",
            "selector": component.selector(owner),
            "ports": [
                {"name": port_name, "port": port, "targetPort": port_name, "protocol": "TCP"}
            ],
        },
    }
