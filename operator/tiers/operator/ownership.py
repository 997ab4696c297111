"""Which children this operator may write or delete: only those its custom resource controls.

A child is ours when its controller ownerReference carries the uid of the custom resource that
renders it. An object of the same name that someone else made (or that another resource
controls) is never adopted, rewritten or deleted: it is reported as a `ChildConflict`.

`kube.apply_all` and `kube.delete_unlisted` call this module. To spare a GET before every apply,
`Known` remembers, per process, the uid of each child found to be ours; applies then carry that
uid, and the apiserver itself refuses (409 or 422) an apply onto a different object of the same
name. Only a child not known yet (after a restart, or once a uid stops matching) is read first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

CHILD_CONFLICT = "ChildConflict"
"""The condition reason for a child that exists and is not ours."""


@dataclasses.dataclass(frozen=True)
class Key:
    api_version: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, manifest: Mapping[str, Any]) -> Key:
        metadata = manifest["metadata"]
        return cls(
            manifest["apiVersion"], manifest["kind"], metadata["namespace"], metadata["name"]
        )


@dataclasses.dataclass(frozen=True)
class Known:
    """A child found to be ours: its uid and the uid of the resource that controls it."""

    uid: str
    owner_uid: str


class ChildConflict(Exception):
    """A child's name is taken by an object this custom resource does not control."""

    def __init__(self, key: Key, holder: str) -> None:
        super().__init__(
            f"{key.kind} {key.name} already exists and {holder}: it is left alone; "
            "delete or rename it, or rename this resource"
        )
        self.key = key
        self.holder = holder


def controller_uid(manifest: Mapping[str, Any]) -> str | None:
    """The uid of the object's controller (its ownerReference with `controller: true`)."""
    for ref in manifest.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            uid = ref.get("uid")
            return str(uid) if uid else None
    return None


def holder_of(existing: Mapping[str, Any]) -> str:
    """Who controls an object that is not ours, in words for the condition's message."""
    for ref in existing.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return f"is controlled by {ref.get('kind')} {ref.get('name')}"
    return "was not made by this resource"


def is_ours(existing: Mapping[str, Any], owner_uid: str) -> bool:
    return controller_uid(existing) == owner_uid


_known: dict[Key, Known | None] = {}
"""Per child name: ours (with uids), None when found absent or not ours, missing when unknown."""


def recall(key: Key, owner_uid: str) -> Known | None:
    """The child's uid when it is known to be ours under this very owner."""
    known = _known.get(key)
    return known if known is not None and known.owner_uid == owner_uid else None


def is_known_absent(key: Key) -> bool:
    """Whether the child was found missing (or foreign) before: nothing of ours to delete."""
    return key in _known and _known[key] is None


def remember(key: Key, known: Known | None) -> None:
    _known[key] = known


def forget(key: Key) -> None:
    _known.pop(key, None)
