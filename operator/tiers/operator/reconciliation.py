"""What every kind's reconcile shares: read the spec against its model, compute status, patch it.

`desired_status()` is pure: an object in, the status it should have out. Handlers call it and
hand the result to `write_status()`, which patches only what differs.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

import kopf
import pydantic

from tiers.api import common, kinds
from tiers.operator import conditions, metrics

RECONCILING = "Reconciling"
INVALID_SPEC = "InvalidSpec"


def primary_condition(kind: kinds.Kind) -> str:
    """`Succeeded` for run-to-completion kinds, `Ready` for long-running ones."""
    return "Succeeded" if kind is kinds.BATCH_JOB else "Ready"


def spec_error(kind: kinds.Kind, spec: Mapping[str, Any]) -> str | None:
    """What the apiserver could not check about a spec, as a message naming the field."""
    try:
        kind.spec.model_validate(spec)
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        field = "spec" + "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]
        )
        return f"{field}: {first['msg']}"
    return None


def desired_status(
    kind: kinds.Kind,
    body: Mapping[str, Any],
    *,
    pending_message: str,
    now: datetime.datetime,
) -> dict[str, Any]:
    """The status an object of `kind` should carry while its workload is being reconciled."""
    generation = body.get("metadata", {}).get("generation")
    current = conditions.parse(body.get("status", {}).get("conditions"))
    error = spec_error(kind, body.get("spec", {}))
    status: common.ConditionStatus
    if error is None:
        status, reason, message = "Unknown", RECONCILING, pending_message
    else:
        status, reason, message = "False", INVALID_SPEC, error
    updated = conditions.set_condition(
        current,
        type=primary_condition(kind),
        status=status,
        reason=reason,
        message=message,
        generation=generation,
        now=now,
    )
    return {"observedGeneration": generation, "conditions": conditions.to_wire(updated)}


def reconcile(
    kind: kinds.Kind, body: Mapping[str, Any], patch: kopf.Patch, *, pending_message: str
) -> None:
    """One reconcile of an object whose workload this operator version does not manage yet."""
    with metrics.reconciling(kind.kind):
        desired = desired_status(kind, body, pending_message=pending_message, now=now())
        write_status(patch, body, desired)


def write_status(patch: kopf.Patch, body: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Puts into the patch the status fields that differ from the object's; says if any did."""
    current = body.get("status", {})
    changed = False
    for field, value in desired.items():
        if current.get(field) != value:
            patch.status[field] = value
            changed = True
    return changed


def now() -> datetime.datetime:
    """The time conditions are stamped with: UTC, whole seconds (as metav1.Time serializes)."""
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)
