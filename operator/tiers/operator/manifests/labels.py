"""Names, labels and owner references that every child of a custom resource carries.

The render modules (`gateway`, `redis`, `services`) call these so that all children of one object
share one naming scheme; the handlers use `Owner` to say which object they reconcile.
"""

from __future__ import annotations

import dataclasses
from typing import Any

PART_OF = "tiers"
MANAGED_BY = "tiers-operator"
ENDPOINT_LABEL = "tiers.dev/endpoint"


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
class Component:
    """One part of what an owner runs (the gateway, its Redis): how its objects are named."""

    app: str
    """`app.kubernetes.io/name`, e.g. tiers-gateway."""
    role: str
    """`app.kubernetes.io/component`, e.g. gateway or cache."""
    suffix: str
    """Objects are named `<owner>-<suffix>`."""

    def name(self, owner: Owner) -> str:
        return f"{owner.name}-{self.suffix}"

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
