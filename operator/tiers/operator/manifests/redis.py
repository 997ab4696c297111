"""The Redis the operator runs for a RealtimeEndpoint that references none: Deployment + Service.

`manifests.realtime_children.desired_children()` calls these when the endpoint needs Redis (cache
or rate limits) and has no `cache.redisURLSecretRef`. It is a cache, not a store: nothing is
persisted, and the gateway serves from its backends while Redis restarts.
"""

from __future__ import annotations

from typing import Any

from tiers.operator.manifests import labels, security, services

PORT = 6379
COMPONENT = labels.Component(app="tiers-redis", role="cache", suffix="redis", port=PORT)
CONTAINER = "redis"
IMAGE = "redis:7.4-alpine"
PORT_NAME = "redis"
# The `redis` user of the official image.
UID = 999
MAX_MEMORY = "256mb"
ARGS = [
    # No snapshots, no append-only file: a restart starts with an empty cache.
    "--save",
    "",
    "--appendonly",
    "no",
    "--maxmemory",
    MAX_MEMORY,
    "--maxmemory-policy",
    "allkeys-lru",
]


def name(owner: labels.Named) -> str:
    """Name of the managed Redis Deployment and Service of `owner`."""
    return COMPONENT.name(owner)


def url(owner: labels.Named) -> str:
    """The URL gateway pods (and the operator, for stats) reach the managed Redis at."""
    return COMPONENT.url(owner, scheme="redis", path="/0")


def _tcp_probe(*, period_seconds: int) -> dict[str, Any]:
    return {
        "tcpSocket": {"port": PORT_NAME},
        "periodSeconds": period_seconds,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
    }


def render_deployment(owner: labels.Owner) -> dict[str, Any]:
    """One Redis pod, evicting least recently used keys once `MAX_MEMORY` is reached."""
    container = {
        "name": CONTAINER,
        "image": IMAGE,
        "args": list(ARGS),
        "ports": [{"name": PORT_NAME, "containerPort": PORT, "protocol": "TCP"}],
        "readinessProbe": _tcp_probe(period_seconds=5),
        "livenessProbe": _tcp_probe(period_seconds=10),
        # The memory limit leaves room above maxmemory for Redis's own overhead.
        "resources": {
            "requests": {"cpu": "100m", "memory": "320Mi"},
            "limits": {"memory": "384Mi"},
        },
        "securityContext": security.container_security_context(UID),
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": COMPONENT.metadata(owner),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": COMPONENT.selector(owner)},
            "template": {
                "metadata": {"labels": COMPONENT.labels(owner)},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": security.pod_security_context(UID),
                    "containers": [container],
                    # The working directory; the root filesystem is read-only.
                    "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "64Mi"}}],
                },
            },
        },
    }


def render_service(owner: labels.Owner) -> dict[str, Any]:
    """The ClusterIP Service behind `url(owner)`."""
    return services.render_cluster_ip_service(owner, COMPONENT, port_name=PORT_NAME)
