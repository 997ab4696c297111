"""Which children the operator may write or delete, decided from ownerReferences and the uids it
has seen: pure, no cluster."""

from __future__ import annotations

from typing import Any

from tiers.operator import ownership


def child(*refs: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "chat-gateway", "namespace": "ns", "ownerReferences": list(refs)},
    }


def ref(uid: str, *, controller: bool = True, kind: str = "RealtimeEndpoint") -> dict[str, Any]:
    return {"kind": kind, "name": "chat", "uid": uid, "controller": controller}


def test_only_the_controller_reference_makes_a_child_ours() -> None:
    assert ownership.is_ours(child(ref("endpoint-uid")), "endpoint-uid")
    assert not ownership.is_ours(child(ref("endpoint-uid", controller=False)), "endpoint-uid")
    assert not ownership.is_ours(child(ref("another-uid")), "endpoint-uid")
    assert not ownership.is_ours(child(), "endpoint-uid")


def test_the_conflict_names_the_object_and_who_holds_it() -> None:
    key = ownership.Key.of(child())
    taken = ownership.ChildConflict(key, ownership.holder_of(child(ref("x", kind="BatchJob"))))
    assert "Deployment chat-gateway" in str(taken)
    assert "controlled by BatchJob chat" in str(taken)
    unowned = ownership.ChildConflict(key, ownership.holder_of(child()))
    assert "was not made by this resource" in str(unowned) and "left alone" in str(unowned)


def test_a_child_known_under_one_owner_is_not_known_under_its_namesake() -> None:
    key = ownership.Key("apps/v1", "Deployment", "ns-recall", "chat-gateway")
    ownership.remember(key, ownership.Known("child-uid", "old-endpoint-uid"))
    assert ownership.recall(key, "old-endpoint-uid") == ownership.Known(
        "child-uid", "old-endpoint-uid"
    )
    # An endpoint deleted and made again under the same name has a new uid: it reads first.
    assert ownership.recall(key, "new-endpoint-uid") is None
    ownership.forget(key)
    assert ownership.recall(key, "old-endpoint-uid") is None


def test_a_name_found_absent_or_foreign_has_nothing_of_ours_to_delete() -> None:
    key = ownership.Key("v1", "Service", "ns-absent", "chat-redis")
    assert not ownership.is_known_absent(key)
    ownership.remember(key, None)
    assert ownership.is_known_absent(key)
    ownership.remember(key, ownership.Known("uid", "owner"))
    assert not ownership.is_known_absent(key)


def test_a_run_of_a_deleted_namesake_is_told_from_someone_elses_job() -> None:
    def run(uid: str, *, kind: str = "BatchJob", name: str = "triage") -> dict[str, Any]:
        owner = {"apiVersion": "tiers.dev/v1alpha1", "kind": kind, "name": name, "uid": uid,
                 "controller": True}  # fmt: skip
        return {"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": "triage-run", "namespace": "ns", "ownerReferences": [owner]}}  # fmt: skip

    new = run("new-uid")
    assert ownership.held_by_a_deleted_namesake(run("old-uid"), new)
    assert not ownership.held_by_a_deleted_namesake(run("new-uid"), new), "ours"
    assert not ownership.held_by_a_deleted_namesake(run("old-uid", name="other"), new)
    assert not ownership.held_by_a_deleted_namesake(run("old-uid", kind="StreamPipeline"), new)
    orphaned = {**run("old-uid"), "metadata": {"name": "triage-run", "namespace": "ns"}}
    assert not ownership.held_by_a_deleted_namesake(orphaned, new), "no owner: someone else's"
    # A deleted namesake's child is waited for; anyone else's is a conflict to clear by hand.
    key = ownership.Key.of(new)
    now_held = {"metadata": {"name": "triage", "uid": "new-uid"}}
    going = ownership.conflict(key, run("old-uid"), new, owner_now=now_held)
    assert isinstance(going, ownership.NamesakesChild)
    assert str(going) == ("Job triage-run of the BatchJob of this name that was deleted before"
                          " this one was created is still being deleted")  # fmt: skip
    assert isinstance(ownership.conflict(key, run("old-uid"), new, owner_now=None),
                      ownership.NamesakesChild), "the old owner is gone"  # fmt: skip
    other = ownership.conflict(key, run("old-uid", name="other"), new, owner_now=now_held)
    assert type(other) is ownership.ChildConflict and "BatchJob other" in str(other)
    assert ownership.owner_key(new) == ownership.Key(
        "tiers.dev/v1alpha1", "BatchJob", "ns", "triage"
    )


def test_a_child_of_an_owner_still_there_is_no_namesakes_even_with_its_name() -> None:
    """A reconcile of an object already replaced (its body stale) must not wait on the children
    of the live one: only an old owner gone or being deleted makes a namesake."""
    new = child(ref("new-uid"))
    old_child = child(ref("old-uid"))
    key = ownership.Key.of(new)
    alive = {"metadata": {"name": "chat", "uid": "old-uid"}}
    found = ownership.conflict(key, old_child, new, owner_now=alive)
    assert type(found) is ownership.ChildConflict
    deleting = {"metadata": {**alive["metadata"], "deletionTimestamp": "2026-11-30T08:00:00Z"}}
    assert isinstance(ownership.conflict(key, old_child, new, owner_now=deleting),
                      ownership.NamesakesChild)  # fmt: skip
