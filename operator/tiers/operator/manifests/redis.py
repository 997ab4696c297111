"""The Redis the operator runs for a RealtimeEndpoint that references none: Deployment + Service.

`manifests.realtime_children.desired_children()` calls these when the endpoint needs Redis (cache
or rate limits) and has no `cache.redisURLSecretRef`. It is a cache, not a store: nothing is
persisted, and the gateway serves from its backends while Redis restarts.

It takes no command without its password: a random one that the operator generates once into
the Secret `name(owner)` (owned by the same resource, never rewritten: `render_password_secret`).
Redis reads it from its environment through a config fed on stdin, so the password is on no
command line; its clients get it by reference too (`password_env`), never inside a URL.
"""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any

from tiers.operator.manifests import labels, security, services

PORT = 6379
COMPONENT = labels.Component(app="tiers-redis", role="cache", suffix="redis", port=PORT)
CONTAINER = "redis"
IMAGE = "redis:7.4-alpine"
PORT_NAME = "redis"
# The `redis` user of the official image.
UID = 999
PASSWORD_KEY = "password"
PASSWORD_ENV = "REDIS_PASSWORD"
"""The variable Redis's own container reads its password from."""
PASSWORD_BYTES = 32
# `requirepass` as a config line on stdin (`redis-server -`): a shell builtin writes it, so the
# password is in no process's arguments. `exec` leaves Redis as the container's process 1.
SHELL = 'exec redis-server - "$@" <<EOF\nrequirepass $REDIS_PASSWORD\nEOF\n'


@dataclasses.dataclass(frozen=True)
class Size:
    max_memory: str
    """Redis's own bound, past which it evicts least recently used keys."""
    memory_request: str
    memory_limit: str
    """Leaves room above `max_memory` for Redis's own overhead."""
    cpu_request: str


CACHE = Size(max_memory="256mb", memory_request="320Mi", memory_limit="384Mi", cpu_request="100m")
"""A RealtimeEndpoint's cache, limits and budget."""
STATS = Size(max_memory="16mb", memory_request="48Mi", memory_limit="64Mi", cpu_request="20m")
"""A job's stats and progress: a few hashes per minute of its window."""


def args(size: Size) -> list[str]:
    # No snapshots, no append-only file: a restart starts empty.
    return ["--save", "", "--appendonly", "no", "--maxmemory", size.max_memory,
            "--maxmemory-policy", "allkeys-lru"]  # fmt: skip


def name(owner: labels.Named) -> str:
    """Name of the managed Redis Deployment, Service and password Secret of `owner`."""
    return COMPONENT.name(owner)


def url(owner: labels.Named, component: labels.Component = COMPONENT) -> str:
    """The URL gateway pods (and the operator, for stats) reach the managed Redis at; it
    carries no password (clients get it by `password_env`)."""
    return component.url(owner, scheme="redis", path="/0")


def new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


def render_password_secret(
    owner: labels.Owner, password: str, *, component: labels.Component = COMPONENT
) -> dict[str, Any]:
    """The Secret that holds the managed Redis's password: created once, never applied again
    (a new password would lock out every client until it restarts)."""
    return security.render_secret(owner, component, {PASSWORD_KEY: password})


def password_env(
    owner: labels.Named, variable: str, *, component: labels.Component = COMPONENT
) -> dict[str, Any]:
    """An env entry that gives a client pod the managed Redis's password, by reference."""
    secret = {"name": component.name(owner), "key": PASSWORD_KEY}
    return {"name": variable, "valueFrom": {"secretKeyRef": secret}}


def _tcp_probe(*, period_seconds: int) -> dict[str, Any]:
    return {
        "tcpSocket": {"port": PORT_NAME},
        "periodSeconds": period_seconds,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
    }


def render_deployment(
    owner: labels.Owner, *, component: labels.Component = COMPONENT, size: Size = CACHE
) -> dict[str, Any]:
    """One Redis pod, evicting least recently used keys once `size.max_memory` is reached."""
    container = {
        "name": CONTAINER,
        "image": IMAGE,
        "command": ["sh", "-c", SHELL, "redis-server"],
        "args": args(size),
        "env": [password_env(owner, PASSWORD_ENV, component=component)],
        "ports": [{"name": PORT_NAME, "containerPort": PORT, "protocol": "TCP"}],
        "readinessProbe": _tcp_probe(period_seconds=5),
        "livenessProbe": _tcp_probe(period_seconds=10),
        "resources": {
            "requests": {"cpu": size.cpu_request, "memory": size.memory_request},
            "limits": {"memory": size.memory_limit},
        },
        "securityContext": security.container_security_context(UID),
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": component.metadata(owner),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": component.selector(owner)},
            "template": {
                "metadata": {"labels": component.labels(owner)},
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


def render_service(
    owner: labels.Owner, *, component: labels.Component = COMPONENT
) -> dict[str, Any]:
    """The ClusterIP Service behind `url(owner, component)`."""
    return services.render_cluster_ip_service(owner, component, port_name=PORT_NAME)
