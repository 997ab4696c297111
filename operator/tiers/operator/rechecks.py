"""The periodic re-check that makes reconciliation level-based, without kopf's timers.

kopf puts its finalizer on every object a `@kopf.timer` serves (it must stop the timer's task
before the object goes), so a timer would block the deletion of every RealtimeEndpoint,
StreamPipeline and BatchJob while no operator runs, although only a StreamPipeline with
`deletionPolicy: Delete` has anything outside the cluster to clean up. Instead, a watch-event
handler (which needs no finalizer) keeps the latest body of each object and one task per object
that calls the reconcile every `interval` seconds and patches the status it wrote. The DELETED
event, which every watcher sees, ends the task.

A child that drifts or whose Deployment's pods come and go wakes its owner's task at once
(`nudge`, from `children`).

A reconcile reads what earlier ones recorded in status (the Kafka topics a pipeline created, a
batch's runs), so it must never start from a body older than the last status written: kopf
hands its handler the body of the event it is processing, and the task holds the last body
watched, and either may predate what the other has just written. `current` therefore reads the
object afresh when a reconcile wrote status after its body arrived; an idle object, whose
re-checks write nothing, costs no read. One lock per object keeps kopf's handlers and the task from
reconciling the same object at once, and `CONCURRENCY` bounds how many objects are reconciled
together (like controller-runtime's MaxConcurrentReconciles); first re-checks are spread over
the interval, so that objects created together are not re-checked together.

`triggers.reconciler` registers this for every kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
import random
import time
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import kopf

from tiers.api import kinds
from tiers.operator import kube

log = logging.getLogger(__name__)

Reconcile = Callable[..., Awaitable[None]]

CONCURRENCY = int(os.environ.get("TIERS_CONCURRENT_RECONCILES", "16"))
"""How many objects are reconciled at once, of all kinds: the rest wait their turn."""
SETTLE_S = 0.3
"""How long a woken re-check waits for more news (a burst of child events) before it runs."""

_turns: asyncio.Semaphore | None = None
_by_kind: dict[str, Rechecks] = {}


def nudge(kind: str, uid: str) -> None:
    """Re-checks the object soon: one of its children changed (`children`)."""
    rechecks = _by_kind.get(kind)
    if rechecks is not None:
        rechecks.wake(uid)


@contextlib.asynccontextmanager
async def turn() -> AsyncIterator[None]:
    """One of the `CONCURRENCY` places for a reconcile."""
    global _turns
    if _turns is None:
        _turns = asyncio.Semaphore(CONCURRENCY)
    async with _turns:
        yield


class Rechecks:
    """The re-check tasks of one kind, keyed by object uid."""

    def __init__(self, kind: kinds.Kind, reconcile: Reconcile, *, interval: float) -> None:
        self.kind = kind
        self.reconcile = reconcile
        self.interval = interval
        self.bodies: dict[str, kopf.RawBody] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.woken: dict[str, asyncio.Event] = {}
        self.locks: dict[str, asyncio.Lock] = {}
        self.received: dict[str, float] = {}
        """When the body in `bodies` arrived (monotonic seconds)."""
        self.written: dict[str, float] = {}
        """When a reconcile of the object last finished having written status."""

    def register(self) -> None:
        kopf.on.event(kinds.GROUP, kinds.VERSION, self.kind.plural)(self.on_event)
        _by_kind[self.kind.kind] = self

    def wake(self, uid: str) -> None:
        woken = self.woken.get(uid)
        if woken is not None:
            woken.set()

    @contextlib.asynccontextmanager
    async def reconciling(self, uid: str) -> AsyncIterator[None]:
        """The object's own lock, then a place among the `CONCURRENCY` reconciles."""
        lock = self.locks.setdefault(uid, asyncio.Lock())
        async with lock, turn():
            yield

    def wrote(self, uid: str) -> None:
        """A reconcile of the object wrote (or is about to write) status."""
        self.written[uid] = time.monotonic()

    async def current(self, body: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The object to reconcile: `body`, unless status was written after it arrived, then
        the object as the apiserver has it now (None when it is gone)."""
        metadata = body["metadata"]
        uid = metadata["uid"]
        if self.written.get(uid, -1.0) < self.received.get(uid, 0.0):
            return body
        found = await kube.custom_object(self.kind, metadata["name"], metadata["namespace"])
        if found is None or found["metadata"].get("uid") != uid:
            return None
        fresh = typing.cast(kopf.RawBody, found)
        if uid in self.bodies:
            self.bodies[uid] = fresh
            self.received[uid] = time.monotonic()
        return fresh

    async def on_event(self, event: kopf.RawEvent, **_: Any) -> None:
        body = event["object"]
        uid = body.get("metadata", {}).get("uid")
        if not uid:
            return
        if event["type"] == "DELETED":
            self.bodies.pop(uid, None)
            self.woken.pop(uid, None)
            self.locks.pop(uid, None)
            self.received.pop(uid, None)
            self.written.pop(uid, None)
            task = self.tasks.pop(uid, None)
            if task is not None:
                task.cancel()
            return
        self.bodies[uid] = body
        self.received[uid] = time.monotonic()
        if uid not in self.tasks:
            self.woken[uid] = asyncio.Event()
            self.tasks[uid] = asyncio.create_task(self._every_interval(uid))

    async def _every_interval(self, uid: str) -> None:
        woken = self.woken[uid]
        wait = self.interval * random.random()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), timeout=wait)
                await asyncio.sleep(SETTLE_S)
            woken.clear()
            wait = self.interval
            body = self.bodies.get(uid)
            if body is None:
                return
            if body.get("metadata", {}).get("deletionTimestamp"):
                continue  # deletion is kopf's delete handler's business
            try:
                async with self.reconciling(uid):
                    await self.recheck(self.bodies.get(uid, body))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("re-checking %s %s failed", self.kind.kind, _named(body))

    async def recheck(self, raw: kopf.RawBody) -> None:
        """One reconcile of the object as last seen, and a merge patch of the status it wrote."""
        current = await self.current(raw)
        if current is None:
            return
        patch = kopf.Patch()
        copied = typing.cast(kopf.RawBody, copy.deepcopy(dict(current)))
        await self.reconcile(body=kopf.Body(copied), patch=patch, logger=log)
        status = dict(patch.get("status") or {})
        if not status:
            return
        metadata = raw["metadata"]
        await kube.patch_status(self.kind, metadata["name"], metadata["namespace"], status)
        self.wrote(metadata["uid"])


def _named(body: kopf.RawBody) -> str:
    metadata = body.get("metadata", {})
    return f"{metadata.get('namespace')}/{metadata.get('name')}"
