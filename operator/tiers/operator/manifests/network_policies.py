"""NetworkPolicies of the children that serve something only their own pods should reach: a
RealtimeEndpoint's managed Redis, a StreamPipeline's stats Redis and its push gateway. Pure.

`realtime_children.desired_children()` and `stream_children.desired_children()` append those of
their owner when `Settings.enabled` (chart value `networkPolicy.enabled`, on by default). A
policy selects its component's pods and admits, on the component's port only:

- a Redis (`render_redis_policy`): the pods of its owner that use it (an endpoint's gateways, a
  pipeline's job), and the operator's pod, which reads the stats in it (when the operator runs
  in the cluster and knows where it is);
- the push gateway: pods of the pipeline's own namespace (the apps that send it events and the
  proxy in front of browsers), and of the namespaces the admin lists (an ingress controller's).

Everything else is refused once a policy selects the pods (on a network plugin that enforces
NetworkPolicy; without one they change nothing).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from tiers.operator.manifests import labels

API_VERSION = "networking.k8s.io/v1"
KIND = "NetworkPolicy"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
"""Set by the apiserver on every namespace: selects one namespace by its name."""

ENABLED_ENV = "TIERS_NETWORK_POLICIES"
OPERATOR_NAMESPACE_ENV = "TIERS_OPERATOR_NAMESPACE"
OPERATOR_POD_LABELS_ENV = "TIERS_OPERATOR_POD_LABELS"
PUSH_FROM_NAMESPACES_ENV = "TIERS_PUSH_GATEWAY_FROM_NAMESPACES"


@dataclasses.dataclass(frozen=True)
class Settings:
    """What the admin chose (chart values `networkPolicy.*`), read by the operator at start."""

    enabled: bool = True
    operator_namespace: str | None = None
    """Where the operator's pod runs; None outside a cluster (no pod to admit)."""
    operator_pod_labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    push_gateway_from_namespaces: tuple[str, ...] = ()


def settings_from(environ: Mapping[str, str]) -> Settings:
    """The settings from the operator's environment (the chart sets these variables)."""
    pod_labels = dict(
        pair.split("=", 1)
        for pair in environ.get(OPERATOR_POD_LABELS_ENV, "").split(",")
        if "=" in pair
    )
    return Settings(
        enabled=environ.get(ENABLED_ENV, "true").strip().lower() not in ("false", "0", "no"),
        operator_namespace=environ.get(OPERATOR_NAMESPACE_ENV) or None,
        operator_pod_labels=pod_labels,
        push_gateway_from_namespaces=tuple(
            environ.get(PUSH_FROM_NAMESPACES_ENV, "").replace(",", " ").split()
        ),
    )


def render_redis_policy(
    owner: labels.Owner,
    *,
    redis: labels.Component,
    clients: Sequence[labels.Component],
    settings: Settings,
) -> dict[str, Any]:
    """A Redis of `owner`: admits the pods of `clients` (its components that use it) and the
    operator only."""
    peers: list[dict[str, Any]] = [
        {"podSelector": {"matchLabels": _pod_selector(owner, client)}} for client in clients
    ]
    if settings.operator_namespace is not None:
        peers.append(
            {
                "namespaceSelector": {
                    "matchLabels": {NAMESPACE_NAME_LABEL: settings.operator_namespace}
                },
                "podSelector": {"matchLabels": dict(settings.operator_pod_labels)},
            }
        )
    return _policy(owner, redis, peers)


def render_push_gateway_policy(
    owner: labels.Owner, *, push: labels.Component, settings: Settings
) -> dict[str, Any]:
    """The push gateway of `owner` (a StreamPipeline): its own namespace's pods, and those of the
    namespaces the admin named."""
    peers: list[dict[str, Any]] = [{"podSelector": {}}]
    peers += [
        {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}}}
        for namespace in settings.push_gateway_from_namespaces
    ]
    return _policy(owner, push, peers)


def _policy(
    owner: labels.Owner, component: labels.Component, peers: list[dict[str, Any]]
) -> dict[str, Any]:
    if component.port is None:
        raise ValueError(f"{component.role} serves nothing to guard")
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": component.metadata(owner),
        "spec": {
            "podSelector": {"matchLabels": _pod_selector(owner, component)},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": peers, "ports": [{"protocol": "TCP", "port": component.port}]}],
        },
    }


def _pod_selector(owner: labels.Owner, component: labels.Component) -> dict[str, str]:
    """The pods of one component of `owner`: its selector and its role, since two components
    may share an app name (a managed Redis and a stats Redis are both tiers-redis)."""
    return {**component.selector(owner), "app.kubernetes.io/component": component.role}
