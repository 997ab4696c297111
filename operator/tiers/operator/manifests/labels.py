"""Names, URLs, labels and owner references that every child of a custom resource carries.

The render modules (`gateway`, `redis`, `stream_children`...) describe each part an owner runs
as a `Component`, and take every child's name, in-cluster URL and port from it; handlers ask the
same helpers (`gateway.name(owner)`), so that no name or port is written twice. `Owner` says
which object is reconciled; `Ref` names another one a spec points at (an endpointRef).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any, Protocol

PART_OF = "tiers"
MANAGED_BY = "tiers-operator"
ENDPOINT_LABEL = "tiers.dev/endpoint"
CONFIG_HASH_ANNOTATION = "tiers.dev/config-hash"
"""On a pod template (or a SparkApplication's driver): a change of config rolls the pods."""
CONFIG_HASH_LENGTH = 16
SECRET_HASH_ANNOTATION = "tiers.dev/secret-hash"
"""On a pod template: the digest of a generated Secret its pods read (a Redis password). Should
the Secret be made again (someone deleted it), the server and its clients roll together."""


class Named(Protocol):
    """What a child's name and URL are made from: the owner's name and namespace."""

    @property
    def name(self) -> str: ...

    @property
    def namespace(self) -> str: ...


@dataclasses.dataclass(frozen=True)
class Owner:
    """The custom resource whose children are rendered: they are garbage-collected with it."""

    api_version: str
    kind: str
    name: str
    namespace: str
    uid: str


def owner_reference(owner: Owner) -> dict[str, Any]:
    """Makes `owner` the controller of a child, so deleting it deletes the child."""
    return {
        "apiVersion": owner.api_version,
        "kind": owner.kind,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


@dataclasses.dataclass(frozen=True)
class Ref:
    """Another custom resource, named by a spec (e.g. `spec.model.endpointRef`): enough to name
    its children and reach their Services."""

    name: str
    namespace: str


@dataclasses.dataclass(frozen=True)
class Component:
    """One part of what an owner runs (the gateway, its Redis): how its objects are named."""

    app: str
    """`app.kubernetes.io/name`, e.g. tiers-gateway."""
    role: str
    """`app.kubernetes.io/component`, e.g. gateway or cache."""
    suffix: str
    """Objects are named `<owner>-<suffix>`."""
    port: int | None = None
    """The port its Service listens on; None for a component that serves nothing."""

    def name(self, owner: Named) -> str:
        return f"{owner.name}-{self.suffix}"

    def url(self, owner: Named, *, scheme: str = "http", path: str = "") -> str:
        """Its Service's in-cluster URL, `<scheme>://<name>.<namespace>.svc:<port><path>`."""
        if self.port is None:
            raise ValueError(f"{self.role} has no Service to call")
        return f"{scheme}://{self.name(owner)}.{owner.namespace}.svc:{self.port}{path}"

    def selector(self, owner: Owner) -> dict[str, str]:
        """The subset of labels that selectors match on; it never changes once pods exist."""
        return {"app.kubernetes.io/name": self.app, "app.kubernetes.io/instance": owner.name}

    def labels(self, owner: Owner) -> dict[str, str]:
        """Labels on every object and pod: the recommended `app.kubernetes.io/*` set."""
        return {
            **self.selector(owner),
            "app.kubernetes.io/component": self.role,
            "app.kubernetes.io/part-of": PART_OF,
            "app.kubernetes.io/managed-by": MANAGED_BY,
            ENDPOINT_LABEL: owner.name,
        }

    def metadata(self, owner: Owner) -> dict[str, Any]:
        """`metadata` of this component's object in the owner's namespace."""
        return {
            "name": self.name(owner),
            "namespace": owner.namespace,
            "labels": self.labels(owner),
            "ownerReferences": [owner_reference(owner)],
        }


def stamp_secret_hash(deployment: dict[str, Any], secret_value: str) -> dict[str, Any]:
    """`deployment` with `SECRET_HASH_ANNOTATION` on its pod template: a digest, not the value."""
    digest = hashlib.sha256(secret_value.encode()).hexdigest()[:CONFIG_HASH_LENGTH]
    template = deployment["spec"]["template"]
    template["metadata"].setdefault("annotations", {})[SECRET_HASH_ANNOTATION] = digest
    return deployment


def config_hash(data: Mapping[str, str]) -> str:
    """A short digest of a ConfigMap's data: put on the pod template as `CONFIG_HASH_ANNOTATION`,
    a change rolls the pods."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:CONFIG_HASH_LENGTH]
