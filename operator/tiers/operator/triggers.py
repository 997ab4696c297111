"""When a kind's reconcile runs: on create, on spec change, on operator start, and on a timer.

The periodic re-check (`rechecks`) makes reconciliation level-based: drift is corrected even
when no event arrives, and at once when a watched child changes (`children`). Every trigger
takes the object's lock first: one reconcile of an object at a time. None of these puts a
finalizer on the object.
"""

from __future__ import annotations

import copy
import functools
import os
import typing
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx2
import kopf

from tiers.api import kinds
from tiers.operator import children, rechecks

Handler = TypeVar("Handler", bound=Callable[..., Any])

RECHECK_SECONDS = float(os.environ.get("TIERS_RECHECK_SECONDS", "60"))
TRANSPORT_RETRY_S = 5.0
"""When the apiserver did not answer (a timeout, a refused connection: it is busy or restarting),
the handler is retried this soon, not after kopf's default minute."""


def reconciler(kind: kinds.Kind) -> Callable[[Handler], Handler]:
    """Registers one async function as the reconcile of `kind` for every trigger."""
    resource = (kinds.GROUP, kinds.VERSION, kind.plural)

    def register(handler: Handler) -> Handler:
        # Not kopf.timer: that would put a finalizer on every object (see `rechecks`).
        recheck = rechecks.Rechecks(kind, handler, interval=RECHECK_SECONDS)
        recheck.register()
        locked = _locked(handler, recheck)
        # kopf's decorators register as a side effect and return the function unchanged.
        kopf.on.resume(*resource)(locked)
        kopf.on.create(*resource)(locked)
        kopf.on.update(*resource, field="spec")(locked)
        return handler

    return register


def _locked(
    handler: Callable[..., Awaitable[None]], recheck: rechecks.Rechecks
) -> Callable[..., Awaitable[None]]:
    """The handler run under the object's lock. `functools.wraps` keeps its kopf handler id."""

    @functools.wraps(handler)
    async def locked(*, body: kopf.Body, patch: kopf.Patch, **kwargs: Any) -> None:
        async with recheck.reconciling(body["metadata"]["uid"]):
            current = recheck.current(body)
            if rechecks.deleting(current):
                return  # deleted while this waited for the lock: its delete handler's business
            if current is not body:
                body = kopf.Body(typing.cast(kopf.RawBody, copy.deepcopy(dict(current))))
            try:
                await handler(body=body, patch=patch, **kwargs)
                # Written here rather than by kopf after the handler: its answer is the newest
                # body, which the next reconcile of either path starts from.
                status = patch.pop("status", None)
                if status:
                    await recheck.write_status(body["metadata"], dict(status))
            except httpx2.TransportError as error:
                raise kopf.TemporaryError(
                    f"the apiserver did not answer ({type(error).__name__}): retrying",
                    delay=TRANSPORT_RETRY_S,
                ) from error

    return locked


children.register(rechecks.nudge)
