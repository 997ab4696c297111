"""Which children this operator may write or delete: only those its custom resource controls.

A child is ours when its controller ownerReference carries the uid of the custom resource that
renders it. An object of the same name that someone else made (or that another resource
controls) is never adopted, rewritten or deleted: it is reported as a `ChildConflict`.

`kube.apply_all` and `kube.delete_unlisted` call this module. To spare a GET before every apply,
`Known` remembers, per process, the uid of each child found to be ours; applies then carry that
uid, and the apiserver itself refuses (409 or 422) an apply onto a different object of the same
name. Only a child not known yet (after a restart, or once a uid stops matching) is read first.

A custom resource deleted and created again at once (`kubectl replace --force`, an Argo CD sync
with Replace=true) finds its children's names still held, for a moment, by the children of the
deleted one, which the garbage collector is deleting: those are `NamesakesChild`, waited for.
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


class NamesakesChild(ChildConflict):
    """A child's name is held by the child of a deleted object of its owner's kind and name (one
    deleted and created again at once), which the garbage collector is deleting: no conflict to
    clear by hand, the name is free once it has gone. Every kind's handler waits for it
    (`reconciliation.child_conflict`): never adopted, never deleted."""

    def __init__(self, key: Key, owner_kind: str) -> None:
        Exception.__init__(
            self,
            f"{key.kind} {key.name} of the {owner_kind} of this name that was deleted before this"
            " one was created is still being deleted",
        )
        self.key = key
        self.holder = f"is controlled by a deleted {owner_kind} of this name"


def conflict(
    key: Key,
    existing: Mapping[str, Any],
    manifest: Mapping[str, Any],
    *,
    owner_now: Mapping[str, Any] | None,
) -> ChildConflict:
    """Why the child `manifest` cannot take its name from `existing`, which its owner does not
    control: the child of a deleted namesake of its owner (`NamesakesChild`), or another's.
    `owner_now` is the object that holds the owner's kind and name as read now (None when
    none does): a namesake whose controller is still there, not being deleted (a reconcile of
    an object already replaced), is no namesake but a conflict."""
    if held_by_a_deleted_namesake(existing, manifest) and _gone(_controller(existing), owner_now):
        owner = _controller(manifest) or {}
        return NamesakesChild(key, str(owner.get("kind")))
    return ChildConflict(key, holder_of(existing))


def controller_uid(manifest: Mapping[str, Any]) -> str | None:
    """The uid of the object's controller (its ownerReference with `controller: true`)."""
    ref = _controller(manifest)
    uid = None if ref is None else ref.get("uid")
    return str(uid) if uid else None


def holder_of(existing: Mapping[str, Any]) -> str:
    """Who controls an object that is not ours, in words for the condition's message."""
    for ref in existing.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return f"is controlled by {ref.get('kind')} {ref.get('name')}"
    return "was not made by this resource"


def is_ours(existing: Mapping[str, Any], owner_uid: str) -> bool:
    return controller_uid(existing) == owner_uid


def held_by_a_deleted_namesake(existing: Mapping[str, Any], manifest: Mapping[str, Any]) -> bool:
    """Whether `existing` is controlled by an earlier object of the kind and name of the
    manifest's controller, with another uid: one since deleted (a name is held by one object at
    a time), so the garbage collector is deleting `existing` and the name is free once it has."""
    theirs, ours = _controller(existing), _controller(manifest)
    if theirs is None or ours is None:
        return False
    return _named(theirs) == _named(ours) and theirs.get("uid") != ours.get("uid")


def owner_key(manifest: Mapping[str, Any]) -> Key:
    """The child's controller (it has one: every child is rendered with it), by name."""
    ref = _controller(manifest)
    assert ref is not None, "every child is rendered with its controller ownerReference"
    namespace = manifest["metadata"]["namespace"]
    return Key(str(ref["apiVersion"]), str(ref["kind"]), namespace, str(ref["name"]))


def _gone(ref: Mapping[str, Any] | None, owner_now: Mapping[str, Any] | None) -> bool:
    """Whether the object `ref` names is no longer there, or is being deleted."""
    metadata = (owner_now or {}).get("metadata") or {}
    same = ref is not None and metadata.get("uid") == ref.get("uid")
    return not same or bool(metadata.get("deletionTimestamp"))


def _controller(manifest: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for ref in manifest.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref  # type: ignore[no-any-return]
    return None


def _named(ref: Mapping[str, Any]) -> tuple[str, str, str]:
    """An owner's group, kind and name: what a namesake shares, whatever its version."""
    group = str(ref.get("apiVersion", "")).rpartition("/")[0]
    return group, str(ref.get("kind")), str(ref.get("name"))


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
