"""When a kind's reconcile runs: on create, on spec change, on operator start, and on a timer.

The timer makes reconciliation level-based: drift is corrected even when no event arrives.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import kopf

from tiers.api import kinds

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
        kopf.timer(*resource, interval=RECHECK_SECONDS, initial_delay=RECHECK_SECONDS)(handler)
        return handler

    return register
