"""When a kind's reconcile runs: on create, on spec change, on operator start, and on a timer.

The periodic re-check (`rechecks`) makes reconciliation level-based: drift is corrected even
when no event arrives. None of these puts a finalizer on the object.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import kopf

from tiers.api import kinds
from tiers.operator import rechecks

Handler = TypeVar("Handler", bound=Callable[..., Any])

RECHECK_SECONDS = float(os.environ.get("TIERS_RECHECK_SECONDS", "60"))


def reconciler(kind: kinds.Kind) -> Callable[[Handler], Handler]:
    """Registers one async function as the reconcile of `kind` for every trigger."""
    resource = (kinds.GROUP, kinds.VERSION, kind.plural)

    def register(handler: Handler) -> Handler:
        # kopf's decorators register as a side effect and return the function unchanged.
        kopf.on.resume(*resource)(handler)
        kopf.on.create(*resource)(handler)
        kopf.on.update(*resource, field="spec")(handler)
        # Not kopf.timer: that would put a finalizer on every object (see `rechecks`).
        rechecks.Rechecks(kind, handler, interval=RECHECK_SECONDS).register()
        return handler

    return register
