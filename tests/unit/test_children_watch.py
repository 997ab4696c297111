"""The operator re-applies a child only when it drifted or its manifest changed, and wakes an
owner when a watched child moves."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Secret

from tiers.api import kinds
from tiers.operator import children, kube, ownership, rechecks

KEY = ownership.Key("apps/v1", "Deployment", "team", "chat-gateway")
OWNER = {"apiVersion": "tiers.dev/v1alpha1", "kind": "RealtimeEndpoint", "uid": "u-1"}


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    yield
    ownership._known.clear()
    kube._children_of.clear()
    children._applied.clear()
    children._deployments.clear()
    children._runs.clear()
    children._runs_listed.clear()


def deployment(*, generation: int, resource_version: str = "1", **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "chat-gateway",
            "namespace": "team",
            "generation": generation,
            "resourceVersion": resource_version,
            "ownerReferences": [{**OWNER, "controller": True}],
        },
        "spec": {"replicas": 2},
        "status": status,
    }


def test_a_child_applied_from_the_same_manifest_is_not_applied_again() -> None:
    children.record_applied(KEY, "d1", deployment(generation=1))
    assert children.is_current(KEY, "d1")
    assert not children.is_current(KEY, "d2"), "a changed manifest is applied"


def test_an_edit_by_someone_else_is_drift_and_wakes_the_owner() -> None:
    children.record_applied(KEY, "d1", deployment(generation=1))
    assert children.observe("MODIFIED", deployment(generation=2))
    assert not children.is_current(KEY, "d1")


def test_status_updates_are_not_drift_but_wake_the_owner_once() -> None:
    children.record_applied(KEY, "d1", deployment(generation=1))
    assert children.observe("MODIFIED", deployment(generation=1, resource_version="7", ready=1))
    assert not children.observe("MODIFIED", deployment(generation=1, resource_version="8", ready=1))
    assert children.is_current(KEY, "d1")
    assert children.deployment_status(KEY) == {"ready": 1, "desiredReplicas": 2}


def test_a_deleted_child_is_applied_again() -> None:
    children.record_applied(KEY, "d1", deployment(generation=1))
    assert children.observe("DELETED", deployment(generation=1))
    assert not children.is_current(KEY, "d1")
    assert children.deployment_status(KEY) is None


def test_kinds_not_watched_are_applied_again_after_the_resync_period() -> None:
    claim = ownership.Key("v1", "PersistentVolumeClaim", "team", "pipe-checkpoint")
    children.record_applied(claim, "d1", {"metadata": {"resourceVersion": "3"}})
    assert children.is_current(claim, "d1")
    assert not children.is_current(claim, "d1", now=children._applied[claim].expires + 1)


def test_objects_not_controlled_by_a_tiers_kind_have_no_owner() -> None:
    foreign = deployment(generation=1)
    foreign["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet"}]
    assert children.owner_of(foreign) is None
    assert children.owner_of(deployment(generation=1)) == ("RealtimeEndpoint", "u-1")


def test_the_client_is_paced_at_its_rate_after_its_burst() -> None:
    now = [0.0]
    bucket = kube.TokenBucket(rate=10, burst=2, clock=lambda: now[0])
    assert [bucket.delay() for _ in range(4)] == [0.0, 0.0, pytest.approx(0.1), pytest.approx(0.2)]
    now[0] = 10.0
    assert bucket.delay() == 0.0, "a quiet spell refills the burst"


def job(name: str, *, owner_uid: str = "b-1", **status: Any) -> dict[str, Any]:
    ref = {"apiVersion": "tiers.dev/v1alpha1", "kind": "BatchJob", "uid": owner_uid}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": "team",
            "ownerReferences": [{**ref, "controller": True}],
        },
        "status": status,
    }


def test_a_batch_jobs_runs_are_listed_once_then_kept_by_the_watch() -> None:
    assert children.runs("b-1") is None, "never listed: list them"
    children.record_runs("b-1", [job("triage-1", active=1)])
    assert children.observe("MODIFIED", job("triage-1", succeeded=1)), "a finished run wakes it"
    assert children.observe("ADDED", job("triage-2", active=1))
    assert [j["status"] for j in children.runs("b-1") or []] == [{"succeeded": 1}, {"active": 1}]
    assert children.observe("DELETED", job("triage-1"))
    assert [j["metadata"]["name"] for j in children.runs("b-1") or []] == ["triage-2"]
    assert children.runs("b-1", now=children._runs_listed["b-1"] + 1) is None, "listed again"


def test_an_owners_deletion_drops_what_is_kept_of_its_children_and_runs() -> None:
    """The Batch API makes a BatchJob per batch: what is kept per child and per run goes with
    its owner (the DELETED event of the owner, which needs no finalizer), not the operator."""
    gone, kept = "b-1", "u-1"
    configmap = ownership.Key("v1", "ConfigMap", "team", "batch-1-config")
    leftover = ownership.Key("v1", "Secret", "team", "batch-1-absent")
    kube._remember(configmap, ownership.Known("c-1", gone), gone)
    kube._remember(leftover, None, gone)  # a candidate found absent
    children.record_applied(configmap, "d1", {"metadata": {"resourceVersion": "1"}})
    children.record_runs(gone, [job("triage-1", active=1)])
    kube._remember(KEY, ownership.Known("d-1", kept), kept)
    children.record_applied(KEY, "d2", deployment(generation=1))
    checks = rechecks.Rechecks(kinds.BATCH_JOB, reconcile=None, interval=60)  # type: ignore[arg-type]
    owner = {"metadata": {"name": "batch-1", "namespace": "team", "uid": gone}}
    asyncio.run(checks.on_event({"type": "DELETED", "object": owner}))  # type: ignore[typeddict-item]
    assert ownership.recall(configmap, gone) is None
    assert not ownership.is_known_absent(leftover) and leftover not in ownership._known
    assert children.applied_version(configmap) is None
    assert gone not in children._runs and gone not in children._runs_listed
    assert gone not in kube._children_of
    # Another owner's records stay.
    assert ownership.recall(KEY, kept) == ownership.Known("d-1", kept)
    assert children.is_current(KEY, "d2")


def test_a_run_deleted_after_its_owner_leaves_nothing_kept() -> None:
    """Jobs removed by the garbage collector after their BatchJob went: the watch's own record
    of them does not outlive them."""
    assert children.observe("MODIFIED", job("triage-1", active=1))
    assert children.observe("DELETED", job("triage-1"))
    assert children._runs == {}


def test_secrets_read_are_kept_up_to_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kube, "SECRETS_KEPT", 2)
    monkeypatch.setattr(kube, "_secrets", {})
    for name in ("a", "b", "c"):
        kube._keep_secret("team", name, Secret(metadata=ObjectMeta(name=name)))
    assert list(kube._secrets) == [("team", "b"), ("team", "c")]
