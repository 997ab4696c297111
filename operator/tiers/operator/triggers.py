"""When a kind's reconcile runs: on create, on spec change, on operator start, and on a timer.

The periodic re-check (`rechecks`) makes reconciliation level-based: drift is corrected even
when no event arrives, and at once when a watched child changes (`children`). Every trigger
takes the object's lock first: one reconcile of an object at a time. None of these puts a
finalizer on the object.
"""

from __future__ import annotations

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
        uid = body["metadata"]["uid"]
        async with recheck.reconciling(uid):
            try:
                current = await recheck.current(body)
                if current is None:
                    return
                fresh = body if current is body else kopf.Body(typing.cast(kopf.RawBody, current))
                await handler(body=fresh, patch=patch, **kwargs)
            except httpx2.TransportError as error:
                raise kopf.TemporaryError(
                    f"the apiserver did not answer ({type(error).__name__}): retrying",
                    delay=TRANSPORT_RETRY_S,
                ) from error
            finally:
                if patch:
                    recheck.wrote(uid)  # kopf writes the patch once the handler returns

    return locked


children.register(rechecks.nudge)
