"""Reconciles RealtimeEndpoint: validates the spec and reports its state through conditions."""

from __future__ import annotations

from typing import Any

import kopf

from tiers.api import kinds
from tiers.operator import reconciliation, triggers

KIND = kinds.REALTIME_ENDPOINT
PENDING = "the gateway is not deployed by this operator version yet"


@triggers.reconciler(KIND)
async def reconcile_realtime_endpoint(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    reconciliation.reconcile(KIND, body, patch, pending_message=PENDING)
