"""The periodic re-check that makes reconciliation level-based, without kopf's timers.

kopf puts its finalizer on every object a `@kopf.timer` serves (it must stop the timer's task
before the object goes), so a timer would block the deletion of every RealtimeEndpoint,
StreamPipeline and BatchJob while no operator runs, although only a StreamPipeline with
`deletionPolicy: Delete` has anything outside the cluster to clean up. Instead, a watch-event
handler (which needs no finalizer) keeps the latest body of each object and one task per object
that calls the reconcile every `interval` seconds and patches the status it wrote. The DELETED
event, which every watcher sees, ends the task and drops what is kept of the object's children
(`kube.forget_owner`).

A child that drifts or whose Deployment's pods come and go wakes its owner's task at once
(`nudge`, from `children`).

A reconcile reads what earlier ones recorded in status (the Kafka topics a pipeline created, a
batch's runs), so it must never start from a body older than the status last written: kopf
hands its handler the body of the event it is processing, the watch may still deliver events
older than a write, and either path may have just written. So `bodies` holds the newest body
known of each object, by resource version (comparable for objects of one resource since
Kubernetes 1.35, KEP-5504), fed by the watch and by the answer to every status write, which
goes through `write_status`; a reconcile starts from the newer of its own body and that one
(`current`), and no reads are added.

`triggers.reconciler` registers this for every kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
import random
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import kopf

from tiers.api import kinds
from tiers.operator import kube

log = logging.getLogger(__name__)

Reconcile = Callable[..., Awaitable[None]]

CONCURRENCY = int(os.environ.get("TIERS_CONCURRENT_RECONCILES", "64"))
"""How many objects are reconciled at once, of all kinds: the rest wait their turn. A reconcile
mostly waits on the apiserver (its children's applies go one after another), so this many keep
the operator's one core busy when a thousand objects arrive at once."""
SETTLE_S = 0.3
"""How long a woken re-check waits for more news (a burst of child events) before it runs."""

_turns: asyncio.Semaphore | None = None
_by_kind: dict[str, Rechecks] = {}


async def write_status(kind: kinds.Kind, name: str, namespace: str, status: dict[str, Any]) -> None:
    """A merge patch of an object's status, by every reconcile (at its end, or at once for what
    must be recorded before anything else happens); its answer becomes the newest body known."""
    written = await kube.patch_status(kind, name, namespace, status)
    rechecks = _by_kind.get(kind.kind)
    if written is not None and rechecks is not None:
        rechecks.learn(written)


def newest(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The newest body known of the object: `body`, or the answer to a status write made since
    (what a reconcile recorded before its end, such as a claim)."""
    rechecks = _by_kind.get(str(body.get("kind")))
    if rechecks is None or not body.get("metadata", {}).get("uid"):
        return body
    return rechecks.current(body)


def nudge(kind: str, uid: str) -> None:
    """Re-checks the object soon: one of its children changed (`children`)."""
    rechecks = _by_kind.get(kind)
    if rechecks is not None:
        rechecks.wake(uid)


_later: dict[str, asyncio.TimerHandle] = {}
"""The early re-check pending of each object (by uid): one at most."""


def nudge_later(kind: str, uid: str, *, delay_s: float) -> None:
    """Re-checks the object after `delay_s`, sooner than its interval: it waits for something
    that no watch tells of (a deleted namesake's children going). One is pending per object,
    the soonest asked for: each reconcile asks again, and chains of them would add up."""
    loop = asyncio.get_running_loop()
    pending = _later.get(uid)
    if pending is not None and not pending.cancelled():
        if pending.when() <= loop.time() + delay_s:
            return
        pending.cancel()

    def due() -> None:
        _later.pop(uid, None)
        nudge(kind, uid)

    _later[uid] = loop.call_later(delay_s, due)


@contextlib.asynccontextmanager
async def exclusively(
    kind: kinds.Kind, body: Mapping[str, Any]
) -> AsyncIterator[Mapping[str, Any]]:
    """The object's lock, which its reconciles take, and the newest body known once it is held:
    for a delete handler that must not miss what a reconcile running beside it records (a
    Databricks run claimed in status)."""
    rechecks = _by_kind.get(kind.kind)
    if rechecks is None:
        yield body
        return
    async with rechecks.reconciling(body["metadata"]["uid"]):
        yield rechecks.current(body)


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

    def current(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """The object to reconcile: `body`, or the newer one known (a status write's answer)."""
        known = self.bodies.get(body["metadata"]["uid"])
        return known if known is not None and is_older(body, known) else body

    async def write_status(self, metadata: Mapping[str, Any], status: dict[str, Any]) -> None:
        await write_status(self.kind, metadata["name"], metadata["namespace"], status)

    def learn(self, body: Mapping[str, Any]) -> None:
        """Keeps `body` unless a newer one of the object is known (or the object is gone)."""
        uid = body["metadata"]["uid"]
        known = self.bodies.get(uid)
        if known is not None and not is_older(body, known):
            self.bodies[uid] = typing.cast(kopf.RawBody, body)

    async def on_event(self, event: kopf.RawEvent, **_: Any) -> None:
        body = event["object"]
        uid = body.get("metadata", {}).get("uid")
        if not uid:
            return
        if event["type"] == "DELETED":
            self.bodies.pop(uid, None)
            self.woken.pop(uid, None)
            self.locks.pop(uid, None)
            task = self.tasks.pop(uid, None)
            if task is not None:
                task.cancel()
            kube.forget_owner(uid)
            return
        if uid in self.bodies:
            self.learn(body)  # an event older than a write already answered is no news
        else:
            self.bodies[uid] = body
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
            if deleting(body):
                continue  # deletion is kopf's delete handler's business
            try:
                async with self.reconciling(uid):
                    newest = self.bodies.get(uid, body)
                    # Deleted while this waited its turn (the delete handler held the lock):
                    # nothing is made again for it.
                    if not deleting(newest):
                        await self.recheck(newest)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("re-checking %s %s failed", self.kind.kind, _named(body))

    async def recheck(self, raw: kopf.RawBody) -> None:
        """One reconcile of the object as last seen, and a merge patch of the status it wrote."""
        copied = typing.cast(kopf.RawBody, copy.deepcopy(dict(self.current(raw))))
        patch = kopf.Patch()
        await self.reconcile(body=kopf.Body(copied), patch=patch, logger=log)
        status = dict(patch.get("status") or {})
        if status:
            await self.write_status(raw["metadata"], status)


def deleting(body: Mapping[str, Any]) -> bool:
    """Whether the object is being deleted: no reconcile runs on it any more."""
    return bool(body.get("metadata", {}).get("deletionTimestamp"))


def is_older(body: Mapping[str, Any], than: Mapping[str, Any]) -> bool:
    """Whether `body` is an older version of the object than `than`, by resource version: a
    positive integer without leading zeros, so longer is newer, then greater. One that is not
    such a number (no apiserver of 1.35 or later sends one) is never taken for older."""
    mine = _version(body)
    theirs = _version(than)
    return mine is not None and theirs is not None and mine < theirs


def _version(body: Mapping[str, Any]) -> tuple[int, str] | None:
    version = body.get("metadata", {}).get("resourceVersion")
    if not isinstance(version, str) or not version.isdigit() or version.startswith("0"):
        return None
    return len(version), version


def _named(body: kopf.RawBody) -> str:
    metadata = body.get("metadata", {})
    return f"{metadata.get('namespace')}/{metadata.get('name')}"
