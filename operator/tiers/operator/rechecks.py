"""The periodic re-check that makes reconciliation level-based, without kopf's timers.

kopf puts its finalizer on every object a `@kopf.timer` serves (it must stop the timer's task
before the object goes), so a timer would block the deletion of every RealtimeEndpoint,
StreamPipeline and BatchJob while no operator runs, although only a StreamPipeline with
`deletionPolicy: Delete` has anything outside the cluster to clean up. Instead, a watch-event
handler (which needs no finalizer) keeps the latest body of each object and one task per object
that calls the reconcile every `interval` seconds and patches the status it wrote. The DELETED
event, which every watcher sees, ends the task.

`triggers.reconciler` registers this for every kind.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from tiers.api import kinds
from tiers.operator import kube

log = logging.getLogger(__name__)

Reconcile = Callable[..., Awaitable[None]]


class Rechecks:
    """The re-check tasks of one kind, keyed by object uid."""

    def __init__(self, kind: kinds.Kind, reconcile: Reconcile, *, interval: float) -> None:
        self.kind = kind
        self.reconcile = reconcile
        self.interval = interval
        self.bodies: dict[str, kopf.RawBody] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def register(self) -> None:
        kopf.on.event(kinds.GROUP, kinds.VERSION, self.kind.plural)(self.on_event)

    async def on_event(self, event: kopf.RawEvent, **_: Any) -> None:
        body = event["object"]
        uid = body.get("metadata", {}).get("uid")
        if not uid:
            return
        if event["type"] == "DELETED":
            self.bodies.pop(uid, None)
            task = self.tasks.pop(uid, None)
            if task is not None:
                task.cancel()
            return
        self.bodies[uid] = body
        if uid not in self.tasks:
            self.tasks[uid] = asyncio.create_task(self._every_interval(uid))

    async def _every_interval(self, uid: str) -> None:
        while True:
            await asyncio.sleep(self.interval)
            body = self.bodies.get(uid)
            if body is None:
                return
            if body.get("metadata", {}).get("deletionTimestamp"):
                continue  # deletion is kopf's delete handler's business
            try:
                await self.recheck(body)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("re-checking %s %s failed", self.kind.kind, _named(body))

    async def recheck(self, raw: kopf.RawBody) -> None:
        """One reconcile of the object as last seen, and a merge patch of the status it wrote."""
        body = kopf.Body(copy.deepcopy(raw))
        patch = kopf.Patch()
        await self.reconcile(body=body, patch=patch, logger=log)
        status = dict(patch.get("status") or {})
        if not status:
            return
        metadata = raw["metadata"]
        await kube.patch_status(self.kind, metadata["name"], metadata["namespace"], status)


def _named(body: kopf.RawBody) -> str:
    metadata = body.get("metadata", {})
    return f"{metadata.get('namespace')}/{metadata.get('name')}"
