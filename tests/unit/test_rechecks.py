"""A reconcile never starts from a body older than the status a reconcile last wrote: kopf's
handler and the periodic re-check each hold a body that may predate the other's write."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tiers.api import kinds
from tiers.operator import kube, rechecks


def body(resource_version: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "p",
            "namespace": "n",
            "uid": "u-1",
            "resourceVersion": resource_version,
        },
        "status": status,
    }


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    made: list[str] = []

    async def custom_object(kind: kinds.Kind, name: str, namespace: str) -> dict[str, Any]:
        made.append(f"{kind.kind} {namespace}/{name}")
        return body("7", topics=[{"name": "in", "id": "abc"}])

    monkeypatch.setattr(kube, "custom_object", custom_object)
    return made


async def watched(checks: rechecks.Rechecks, raw: dict[str, Any]) -> None:
    await checks.on_event({"type": "MODIFIED", "object": raw})  # type: ignore[typeddict-item]
    for task in checks.tasks.values():
        task.cancel()


def test_a_body_watched_after_the_last_write_is_used_as_it_is(reads: list[str]) -> None:
    async def scenario() -> None:
        checks = rechecks.Rechecks(kinds.STREAM_PIPELINE, reconcile=None, interval=60)  # type: ignore[arg-type]
        checks.wrote("u-1")
        await watched(checks, body("5"))
        current = await checks.current(checks.bodies["u-1"])
        assert current is checks.bodies["u-1"]

    asyncio.run(scenario())
    assert reads == []


def test_a_body_older_than_the_last_write_is_read_afresh(reads: list[str]) -> None:
    async def scenario() -> None:
        checks = rechecks.Rechecks(kinds.STREAM_PIPELINE, reconcile=None, interval=60)  # type: ignore[arg-type]
        stale = body("5")
        await watched(checks, stale)
        checks.wrote("u-1")
        current = await checks.current(stale)
        assert current is not None and current["status"]["topics"] == [{"name": "in", "id": "abc"}]
        # The read replaces the watched body: the next re-check starts from it without a read.
        assert checks.bodies["u-1"]["metadata"]["resourceVersion"] == "7"
        assert await checks.current(checks.bodies["u-1"]) is checks.bodies["u-1"]

    asyncio.run(scenario())
    assert reads == ["StreamPipeline n/p"]


def test_an_object_gone_or_made_again_under_its_name_is_not_reconciled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers: list[dict[str, Any] | None] = [None, {**body("9"), "metadata": {"uid": "u-2"}}]

    async def custom_object(kind: kinds.Kind, name: str, namespace: str) -> Any:
        return answers.pop(0)

    monkeypatch.setattr(kube, "custom_object", custom_object)

    async def scenario() -> None:
        checks = rechecks.Rechecks(kinds.STREAM_PIPELINE, reconcile=None, interval=60)  # type: ignore[arg-type]
        checks.wrote("u-1")
        assert await checks.current(body("5")) is None
        assert await checks.current(body("5")) is None

    asyncio.run(scenario())
