"""metav1.Condition lists: pure functions that set one condition and keep the others."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from tiers.api import common

Conditions = list[common.Condition]


def parse(raw: Sequence[Mapping[str, Any]] | None) -> Conditions:
    """Conditions as read from an object's status; entries that do not parse are dropped."""
    parsed = []
    for entry in raw or ():
        try:
            parsed.append(common.Condition.model_validate(entry))
        except ValueError:
            continue
    return parsed


def set_condition(
    conditions: Sequence[common.Condition],
    *,
    type: str,
    status: common.ConditionStatus,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime.datetime,
) -> Conditions:
    """Sets one condition by type. lastTransitionTime moves only when the status changes."""
    previous = find(conditions, type)
    changed = previous is None or previous.status != status
    updated = common.Condition(
        type=type,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=now if changed or previous is None else previous.last_transition_time,
        observed_generation=generation,
    )
    kept = [condition for condition in conditions if condition.type != type]
    return (
        [*kept, updated]
        if previous is None
        else [updated if condition.type == type else condition for condition in conditions]
    )


def find(conditions: Sequence[common.Condition], type: str) -> common.Condition | None:
    return next((condition for condition in conditions if condition.type == type), None)


def to_wire(conditions: Sequence[common.Condition]) -> list[dict[str, Any]]:
    return [
        condition.model_dump(by_alias=True, mode="json", exclude_none=True)
        for condition in conditions
    ]
