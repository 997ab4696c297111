"""What the operator knows of the children it applied, kept current by watching them.

kopf watches every kind of child that the operator server-side applies (`WATCHED`). For each
child controlled by one of the three kinds it keeps the version the operator last applied (and
a digest of what it applied) beside the version the cluster has. `kube.apply_all` skips a child
whose manifest is unchanged since it applied it and that nobody changed since: a re-check of an
object at rest sends no request. An event whose version is not the applied one is drift (an
edit, a deletion): the child is marked so and its owner re-checked at once (`rechecks.nudge`),
which applies it again. A Deployment's status is kept too, so that conditions follow its pods
without polling (`deployment_status`). A BatchJob's runs (its Jobs) are listed once, then kept
by the watch (`runs`), and a run that finishes wakes its BatchJob.

Children of kinds not watched here (claims, generated Secrets, SparkApplications, HTTPRoutes,
BackendTLSPolicies, Certificates:
kinds a cluster may not serve, or Secrets, which the operator may not list) are applied again
once their record is older than `RESYNC_S`, as every child is after a restart.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from tiers.api import kinds
from tiers.operator import ownership
from tiers.operator.manifests import labels

RESYNC_S = float(os.environ.get("TIERS_RESYNC_SECONDS", "3600"))
"""How long a record of a child not watched, or of a Secret read, is trusted (controller-runtime
resyncs every 10 h by default): an idle operator's requests are a few per object per RESYNC_S."""

WATCHED = (
    ("apps", "v1", "deployments"),
    ("", "v1", "services"),
    ("", "v1", "configmaps"),
    ("policy", "v1", "poddisruptionbudgets"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
    ("networking.k8s.io", "v1", "networkpolicies"),
    ("networking.k8s.io", "v1", "ingresses"),
    ("batch", "v1", "jobs"),
)
_WATCHED_KINDS = {
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("policy/v1", "PodDisruptionBudget"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("networking.k8s.io/v1", "Ingress"),
}


@dataclasses.dataclass
class Applied:
    """What the operator last applied of one child, and whether it has changed since."""

    digest: str
    version: str
    expires: float
    """When a record of a kind not watched stops being trusted (monotonic seconds)."""
    drifted: bool = False


_applied: dict[ownership.Key, Applied] = {}
_deployments: dict[ownership.Key, dict[str, Any]] = {}
_runs: dict[str, dict[str, dict[str, Any]]] = {}
"""Per BatchJob uid, its Jobs by name, as watched."""
_runs_listed: dict[str, float] = {}
"""Per BatchJob uid, until when `_runs` is known to hold all its Jobs (listed, then watched)."""

Nudge = Callable[[str, str], None]
"""Wakes the re-check of an owner: its kind and uid."""
_nudge: Nudge | None = None


def register(nudge: Nudge) -> None:
    """Watches every kind in `WATCHED` (only objects the operator labels as managed by it)."""
    global _nudge
    _nudge = nudge
    managed = {"app.kubernetes.io/managed-by": labels.MANAGED_BY}
    for group, version, plural in WATCHED:
        kopf.on.event(group, version, plural, labels=managed)(on_event)


def digest(manifest: Mapping[str, Any]) -> str:
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def version_of(body: Mapping[str, Any]) -> str:
    """What changes when someone changes what the operator applied: the generation where the
    kind has one (a status update leaves it alone), else the resourceVersion."""
    metadata = body.get("metadata") or {}
    generation = metadata.get("generation")
    return f"g{generation}" if generation else f"r{metadata.get('resourceVersion')}"


def is_current(key: ownership.Key, manifest_digest: str, *, now: float | None = None) -> bool:
    """Whether the child was applied from this very manifest and has not changed since."""
    record = _applied.get(key)
    if record is None or record.drifted or record.digest != manifest_digest:
        return False
    if (key.api_version, key.kind) in _WATCHED_KINDS:
        return True
    return (time.monotonic() if now is None else now) < record.expires


def record_applied(key: ownership.Key, manifest_digest: str, applied: Mapping[str, Any]) -> None:
    expires = time.monotonic() + jittered(RESYNC_S)
    _applied[key] = Applied(manifest_digest, version_of(applied), expires)


def applied_version(key: ownership.Key) -> str | None:
    """The version the child had after the operator last applied it, if it is remembered."""
    record = _applied.get(key)
    return None if record is None else record.version


def forget(key: ownership.Key) -> None:
    _applied.pop(key, None)


def deployment_status(key: ownership.Key) -> dict[str, Any] | None:
    """The status of a Deployment the operator applied, as last watched; None when not seen."""
    return _deployments.get(key)


def runs(owner_uid: str, *, now: float | None = None) -> list[dict[str, Any]] | None:
    """The Jobs of a BatchJob's runs, as watched since they were last listed; None when they
    must be listed (never since this process started, or longer ago than `RESYNC_S`)."""
    until = _runs_listed.get(owner_uid)
    if until is None or (time.monotonic() if now is None else now) >= until:
        return None
    return [copy.deepcopy(job) for job in _runs.get(owner_uid, {}).values()]


def record_runs(owner_uid: str, jobs: list[dict[str, Any]]) -> None:
    """The Jobs just listed of a BatchJob: from now on the watch keeps them."""
    _runs[owner_uid] = {job["metadata"]["name"]: job for job in jobs}
    _runs_listed[owner_uid] = time.monotonic() + jittered(RESYNC_S)


def forget_runs(owner_uid: str) -> None:
    """Drops the runs kept of a BatchJob (deleted)."""
    _runs.pop(owner_uid, None)
    _runs_listed.pop(owner_uid, None)


def owner_of(body: Mapping[str, Any]) -> tuple[str, str] | None:
    """The kind and uid of the custom resource that controls the object, if one of ours does."""
    for ref in (body.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("apiVersion") == kinds.API_VERSION:
            return str(ref.get("kind")), str(ref.get("uid"))
    return None


async def on_event(event: kopf.RawEvent, **_: Any) -> None:
    body = event["object"]
    owner = owner_of(body)
    if owner is None:
        return
    if observe(event["type"], body) and _nudge is not None:
        _nudge(*owner)


def observe(event_type: str | None, body: Mapping[str, Any]) -> bool:
    """Takes in one watch event of a child; says whether its owner should be re-checked: the
    child drifted from what was applied, or a Deployment's status moved."""
    metadata = body.get("metadata") or {}
    key = ownership.Key(
        str(body.get("apiVersion")),
        str(body.get("kind")),
        str(metadata.get("namespace")),
        str(metadata.get("name")),
    )
    if key.kind == "Job":
        return _observe_run(event_type, body)
    record = _applied.get(key)
    if event_type == "DELETED":
        _deployments.pop(key, None)
        if record is not None:
            record.drifted = True
        return True
    drifted = record is not None and record.version != version_of(body)
    if drifted:
        assert record is not None
        record.drifted = True
    moved = False
    if key.kind == "Deployment":
        status = {**(body.get("status") or {})}
        status["desiredReplicas"] = (body.get("spec") or {}).get("replicas")
        moved = _deployments.get(key) != status
        _deployments[key] = status
    return drifted or moved


def _observe_run(event_type: str | None, body: Mapping[str, Any]) -> bool:
    owner = owner_of(body)
    if owner is None:
        return False
    name = str(body["metadata"]["name"])
    if event_type == "DELETED":
        jobs = _runs.get(owner[1], {})
        gone = jobs.pop(name, None) is not None
        if not jobs:
            _runs.pop(owner[1], None)  # no run left, nothing kept (`runs` reads it as none)
        return gone
    jobs = _runs.setdefault(owner[1], {})
    before = jobs.get(name)
    jobs[name] = dict(body)
    return before is None or before.get("status") != body.get("status")


def jittered(seconds: float) -> float:
    """Spreads the resyncs of objects created together over a tenth of the period."""
    return seconds * (1 - 0.1 * random.random())
