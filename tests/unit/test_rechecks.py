"""A reconcile never starts from a body older than the status last written: the watch may
deliver events older than a write, and kopf hands its handler the body of the event it is
processing. Resource versions of one resource are comparable (KEP-5504)."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
import pytest

from tiers.api import kinds
from tiers.operator import kube, rechecks, triggers


def body(version: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "n", "uid": "u-1", "resourceVersion": version},
        "status": status,
    }


def watching(*events: dict[str, Any]) -> rechecks.Rechecks:
    """A kind's re-checks that have watched `events` (their tasks stopped at once)."""
    checks = rechecks.Rechecks(kinds.STREAM_PIPELINE, reconcile=None, interval=60)  # type: ignore[arg-type]

    async def watch() -> None:
        for event in events:
            await checks.on_event({"type": "MODIFIED", "object": event})  # type: ignore[typeddict-item]
        for task in checks.tasks.values():
            task.cancel()

    asyncio.run(watch())
    return checks


@pytest.mark.parametrize(
    ("older", "newer"), [("9", "10"), ("99", "100"), ("123455", "123456"), ("7", "7")]
)
def test_resource_versions_compare_by_length_then_digits(older: str, newer: str) -> None:
    assert not rechecks.is_older(body(newer), body(older))
    assert rechecks.is_older(body(older), body(newer)) is (older != newer)


def test_a_version_that_is_no_number_is_never_taken_for_older() -> None:
    for odd in ("", "abc", "012", "-5"):
        assert not rechecks.is_older(body(odd), body("10"))
        assert not rechecks.is_older(body("10"), body(odd))


def test_an_event_older_than_a_written_status_does_not_replace_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checks = watching(body("5"))
    rechecks._by_kind[checks.kind.kind] = checks
    written = body("8", topics=[{"name": "in", "id": "abc"}])

    async def patch_status(kind: kinds.Kind, name: str, namespace: str, status: Any) -> Any:
        return written

    monkeypatch.setattr(kube, "patch_status", patch_status)
    asyncio.run(rechecks.write_status(checks.kind, "p", "n", {"topics": []}))
    assert checks.bodies["u-1"] is written
    # The watch still delivers an event from before the write: no news.
    asyncio.run(checks.on_event({"type": "MODIFIED", "object": body("6")}))  # type: ignore[typeddict-item]
    assert checks.bodies["u-1"] is written
    # kopf's handler, holding the body of an older event, starts from the written one.
    assert checks.current(body("6")) is written
    # A later change by anyone else is news.
    later = body("9", topics=[{"name": "in", "id": "abc"}])
    asyncio.run(checks.on_event({"type": "MODIFIED", "object": later}))  # type: ignore[typeddict-item]
    assert checks.current(body("6")) is later
    assert checks.current(later) is later


def test_a_write_answered_after_the_object_went_is_not_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checks = watching(body("5"))
    rechecks._by_kind[checks.kind.kind] = checks
    asyncio.run(checks.on_event({"type": "DELETED", "object": body("6")}))  # type: ignore[typeddict-item]

    async def patch_status(kind: kinds.Kind, name: str, namespace: str, status: Any) -> Any:
        return body("7")

    monkeypatch.setattr(kube, "patch_status", patch_status)
    asyncio.run(rechecks.write_status(checks.kind, "p", "n", {"lag": 1}))
    assert "u-1" not in checks.bodies


def test_a_delete_handler_waits_for_the_reconcile_beside_it_and_sees_what_it_wrote() -> None:
    checks = watching(body("5"))
    rechecks._by_kind[checks.kind.kind] = checks
    claimed = body("8", runs=[{"name": "r", "databricks": {"attempt": 0}}])
    seen: list[Any] = []

    async def both() -> None:
        async def reconcile() -> None:
            async with checks.reconciling("u-1"):
                await asyncio.sleep(0.05)
                checks.learn(claimed)  # its claim's write, answered

        going = asyncio.create_task(reconcile())
        await asyncio.sleep(0.01)
        async with rechecks.exclusively(checks.kind, body("6")) as current:
            seen.append(current)
        await going

    asyncio.run(both())
    assert seen == [claimed]


def deleting(version: str) -> dict[str, Any]:
    found = body(version)
    found["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return found


def test_a_reconcile_that_waited_for_the_delete_handler_does_not_run_on_the_deleted_object(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A reconcile waiting its turn while the delete handler cancels what the object made
    # outside the cluster must not then make it again (a Databricks run of a deleted BatchJob).
    reconciled: list[Any] = []

    async def reconcile(*, body: Any, **_: Any) -> None:
        reconciled.append(body)

    checks = rechecks.Rechecks(kinds.BATCH_JOB, reconcile, interval=0.05)
    monkeypatch.setitem(rechecks._by_kind, checks.kind.kind, checks)

    async def both() -> None:
        async with rechecks.exclusively(checks.kind, body("5")):
            await checks.on_event({"type": "MODIFIED", "object": body("5")})  # type: ignore[typeddict-item]
            await asyncio.sleep(0.2)  # the re-check is due, and waits for the lock
            await checks.on_event({"type": "MODIFIED", "object": deleting("6")})  # type: ignore[typeddict-item]
        await asyncio.sleep(0.1)
        for task in checks.tasks.values():
            task.cancel()

    asyncio.run(both())
    assert reconciled == []


def test_a_handler_that_waited_for_the_delete_handler_does_not_run_on_the_deleted_object() -> None:
    reconciled: list[Any] = []

    async def reconcile(*, body: Any, **_: Any) -> None:
        reconciled.append(body)

    checks = rechecks.Rechecks(kinds.BATCH_JOB, reconcile, interval=60)
    locked = triggers._locked(reconcile, checks)

    async def both() -> None:
        async with checks.reconciling("u-1"):
            waiting = asyncio.create_task(locked(body=kopf.Body(body("5")), patch=kopf.Patch()))  # type: ignore[arg-type]
            await asyncio.sleep(0.05)
            checks.bodies["u-1"] = deleting("6")  # type: ignore[assignment]
        await waiting

    asyncio.run(both())
    assert reconciled == []


def test_an_object_has_one_early_recheck_pending_however_many_reconciles_asked_for_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each reconcile of an object waiting for a deleted namesake's children asks for an early
    # re-check: were they all kept, every periodic re-check would start one more chain of them.
    nudged: list[tuple[str, str]] = []
    monkeypatch.setattr(rechecks, "nudge", lambda kind, uid: nudged.append((kind, uid)))

    async def asked() -> None:
        for _ in range(5):
            rechecks.nudge_later("StreamPipeline", "u-1", delay_s=0.05)
        rechecks.nudge_later("StreamPipeline", "u-2", delay_s=0.05)
        await asyncio.sleep(0.2)

    asyncio.run(asked())
    assert sorted(nudged) == [("StreamPipeline", "u-1"), ("StreamPipeline", "u-2")]
