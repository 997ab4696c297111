"""Reconciles BatchJob: validates the spec and reports its state through conditions."""

from __future__ import annotations

from typing import Any

import kopf

from tiers.api import kinds
from tiers.operator import reconciliation, triggers

KIND = kinds.BATCH_JOB
PENDING = "the batch run is not submitted by this operator version yet"


@triggers.reconciler(KIND)
async def reconcile_batch_job(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    reconciliation.reconcile(KIND, body, patch, pending_message=PENDING)
