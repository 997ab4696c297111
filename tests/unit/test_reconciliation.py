"""The status a reconcile computes, without a cluster."""

import datetime
from typing import Any

import kopf
import pytest

from tiers import api
from tiers.api import kinds
from tiers.operator import batch_status, kube, ownership, rechecks, reconciliation, verdicts

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
LATER = NOW + datetime.timedelta(hours=1)


def endpoint(generation: int = 3, **spec: object) -> dict:
    base = {"model": "m", "backends": [{"name": "a", "provider": "openai", "model": "m"}]}
    return {"metadata": {"name": "chat", "generation": generation}, "spec": {**base, **spec}}


def test_a_valid_spec_is_reconciling_at_its_generation() -> None:
    status = reconciliation.desired_status(
        api.REALTIME_ENDPOINT, endpoint(), pending_message="pending", now=NOW
    )
    assert status["observedGeneration"] == 3
    ready, reconciling, stalled = status["conditions"]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "Unknown", "Reconciling")
    assert (reconciling["type"], reconciling["status"]) == ("Reconciling", "True")
    assert (stalled["type"], stalled["status"]) == ("Stalled", "False")


def test_batch_jobs_report_succeeded_not_ready() -> None:
    job = {
        "metadata": {"generation": 1},
        "spec": {
            "engine": "spark",
            "input": {"uri": "file:///in"},
            "output": {"uri": "file:///out"},
            "model": {"endpointRef": {"name": "chat"}, "prompt": "{text}"},
        },
    }
    status = reconciliation.desired_status(api.BATCH_JOB, job, pending_message="p", now=NOW)
    assert [c["type"] for c in status["conditions"]] == ["Succeeded", "Reconciling", "Stalled"]


def test_a_spec_the_apiserver_let_through_but_the_model_refuses_is_reported() -> None:
    # Objects stored before a schema tightened are still read: the error names the field.
    status = reconciliation.desired_status(
        api.REALTIME_ENDPOINT, endpoint(replicas=0), pending_message="p", now=NOW
    )
    ready, reconciling, stalled = status["conditions"]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert ready["message"].startswith("spec.replicas:")
    assert (reconciling["status"], stalled["status"], stalled["reason"]) == (
        "False",
        "True",
        "InvalidSpec",
    ), "kstatus reads a spec only the user can fix as Failed, not as still in progress"


def test_reconciling_twice_changes_nothing() -> None:
    obj = endpoint()
    first = reconciliation.desired_status(api.REALTIME_ENDPOINT, obj, pending_message="p", now=NOW)
    obj["status"] = first
    second = reconciliation.desired_status(
        api.REALTIME_ENDPOINT, obj, pending_message="p", now=LATER
    )
    assert second == first


def test_nested_error_locations_read_like_field_paths() -> None:
    spec = endpoint()["spec"]
    spec["backends"][0]["weight"] = 0
    message = reconciliation.spec_error(api.REALTIME_ENDPOINT, spec)
    assert message is not None and message.startswith("spec.backends[0].weight:")


def test_only_an_object_changed_or_seen_through_may_have_children_left_behind() -> None:
    route = ("gateway.networking.k8s.io/v1", "HTTPRoute", "chat-gateway")
    new = endpoint(generation=1)
    assert reconciliation.possible_leftovers(new, [route]) == []
    changed = endpoint(generation=2)  # a route made for generation 1 may be left
    assert reconciliation.possible_leftovers(changed, [route]) == [route]
    seen = {**new, "status": {"observedGeneration": 1}}  # made by an older operator, maybe
    assert reconciliation.possible_leftovers(seen, [route]) == [route]


def test_children_changed_together_are_one_event_per_verb() -> None:
    changes = [
        kube.Change("Created", "ConfigMap", "chat-gateway"),
        kube.Change("Deleted", "HTTPRoute", "chat-gateway"),
        kube.Change("Created", "Deployment", "chat-gateway"),
    ]
    assert kube.Change.summaries(changes) == [
        ("ChildCreated", "created ConfigMap chat-gateway, Deployment chat-gateway"),
        ("ChildDeleted", "deleted HTTPRoute chat-gateway"),
    ]


@pytest.mark.parametrize("kind", [kinds.REALTIME_ENDPOINT, kinds.STREAM_PIPELINE, kinds.BATCH_JOB])
def test_a_deleted_namesakes_child_is_waited_for_by_every_kind_and_looked_at_again_soon(
    kind: kinds.Kind, monkeypatch: pytest.MonkeyPatch
) -> None:
    nudged: list[tuple[str, str, float]] = []
    monkeypatch.setattr(
        rechecks, "nudge_later", lambda k, uid, *, delay_s: nudged.append((k, uid, delay_s))
    )
    key = ownership.Key("v1", "ConfigMap", "ns", "chat-gateway")
    going = ownership.NamesakesChild(key, kind.kind)

    def body(waited_s: float) -> dict[str, Any]:
        created = reconciliation.now() - datetime.timedelta(seconds=waited_s)
        stamp = created.strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"metadata": {"name": "chat", "uid": "new-uid", "creationTimestamp": stamp}}

    verdict = reconciliation.child_conflict(kind, body(0), going)
    assert (verdict.status, verdict.reason) == ("Unknown", reconciliation.PREVIOUS_DELETING)
    assert verdict.message.startswith(f"waiting: ConfigMap chat-gateway of the {kind.kind} of")
    progress = verdicts.progress("Ready", verdict)
    assert progress["Reconciling"].status == "True" and progress["Stalled"].status == "False"
    # Soon, then less often the longer it waits, never less often than every 30 s.
    reconciliation.child_conflict(kind, body(120), going)
    reconciliation.child_conflict(kind, body(3600), going)
    assert nudged == [(kind.kind, "new-uid", 3.0), (kind.kind, "new-uid", 12.0),
                      (kind.kind, "new-uid", 30.0)]  # fmt: skip
    # Anyone else's child is a conflict only the user clears: Stalled, no early re-check.
    other = ownership.ChildConflict(key, "is controlled by RealtimeEndpoint other")
    conflict = reconciliation.child_conflict(kind, body(0), other)
    assert (conflict.status, conflict.reason) == ("False", ownership.CHILD_CONFLICT)
    assert verdicts.progress("Ready", conflict)["Stalled"].status == "True"
    assert len(nudged) == 3


def test_a_re_run_says_its_run_waits_for_the_old_runs_children(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rechecks, "nudge_later", lambda *_, **__: None)
    going = ownership.NamesakesChild(ownership.Key("batch/v1", "Job", "ns", "j-run"), "BatchJob")
    body = {"metadata": {"name": "j", "uid": "u"}}
    verdict = reconciliation.child_conflict(
        kinds.BATCH_JOB, body, going, waiting=batch_status.previous_run_deleting
    )
    assert (verdict.status, verdict.reason) == ("Unknown", batch_status.PREVIOUS_RUN_DELETING)
    assert "Job j-run" in verdict.message


def test_a_missing_install_only_the_user_can_make_is_stalled() -> None:
    for reason in ("SparkOperatorMissing", "GatewayAPIMissing", "CertManagerMissing"):
        primary = verdicts.Verdict("False", reason, "install it")
        found = verdicts.progress("Ready", primary)
        assert (found[verdicts.STALLED].status, found[verdicts.RECONCILING].status) == (
            "True",
            "False",
        )


def test_a_field_set_back_after_a_write_during_the_reconcile_is_written_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The reconcile claimed a topic (status written at once), then Kafka refused to create it:
    # the topics it ends with are those the object started with, and must replace the claim.
    checks = rechecks.Rechecks(kinds.STREAM_PIPELINE, reconcile=None, interval=60)  # type: ignore[arg-type]
    monkeypatch.setitem(rechecks._by_kind, kinds.STREAM_PIPELINE.kind, checks)
    owned = [{"name": "in", "id": "id-in"}]
    started = {
        "apiVersion": kinds.API_VERSION,
        "kind": kinds.STREAM_PIPELINE.kind,
        "metadata": {"name": "p", "namespace": "n", "uid": "u-1", "resourceVersion": "5"},
        "status": {"topics": owned},
    }
    checks.bodies["u-1"] = started  # type: ignore[assignment]
    claimed = {**started, "metadata": {**started["metadata"], "resourceVersion": "6"}}
    checks.learn({**claimed, "status": {"topics": [*owned, {"name": "dlq"}]}})
    patch = kopf.Patch()
    assert reconciliation.write_status(patch, started, {"topics": owned})
    assert patch["status"] == {"topics": owned}
