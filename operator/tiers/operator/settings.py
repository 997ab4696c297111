"""How kopf behaves for Tiers: storage names under tiers.dev, quiet events, bounded workers, a
liveness probe."""

from __future__ import annotations

import datetime
import logging
import os
from typing import Any

import kopf

_started = datetime.datetime.now(datetime.UTC)
WORKERS = int(os.environ.get("TIERS_WORKERS", "200"))
"""kopf's object workers at once, of all watched kinds: the reconciles among them wait their
turn (`rechecks.CONCURRENCY`) holding a worker, while child events still flow."""


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = "tiers.dev/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="tiers.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="tiers.dev", key="last-handled-configuration"
    )
    # Failures live in conditions; events at WARNING and above only, to keep them readable.
    settings.posting.level = logging.WARNING
    # Reconnect watches well before idle connections are cut by proxies and load balancers.
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    settings.watching.connect_timeout = 10
    settings.batching.error_delays = (1, 2, 5, 10, 30, 60)
    settings.queueing.worker_limit = WORKERS


@kopf.on.probe(id="uptimeSeconds")
def uptime(**_: Any) -> int:
    return int((datetime.datetime.now(datetime.UTC) - _started).total_seconds())
