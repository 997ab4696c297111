"""Conditions keep metav1.Condition semantics."""

import datetime

from tiers.operator import conditions

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(minutes=5)


def ready(current, status, *, at, reason="Reconciling", message="m", generation=1):
    return conditions.set_condition(
        current, type="Ready", status=status, reason=reason, message=message,
        generation=generation, now=at,
    )  # fmt: skip


def test_first_condition_is_added_with_the_current_time() -> None:
    (condition,) = ready([], "Unknown", at=T0)
    assert condition.last_transition_time == T0
    assert condition.observed_generation == 1


def test_transition_time_stays_while_the_status_stays() -> None:
    first = ready([], "Unknown", at=T0)
    (second,) = ready(first, "Unknown", at=T1, reason="StillWorking", message="other", generation=2)
    assert second.last_transition_time == T0
    assert (second.reason, second.message, second.observed_generation) == (
        "StillWorking",
        "other",
        2,
    )


def test_transition_time_moves_when_the_status_changes() -> None:
    (condition,) = ready(ready([], "Unknown", at=T0), "True", at=T1)
    assert condition.last_transition_time == T1


def test_other_conditions_are_kept_in_order() -> None:
    current = conditions.set_condition(
        [], type="CacheReady", status="True", reason="Up", message="", generation=1, now=T0
    )
    current = ready(current, "Unknown", at=T0)
    current = conditions.set_condition(
        current, type="CacheReady", status="False", reason="Down", message="", generation=1, now=T1
    )
    assert [c.type for c in current] == ["CacheReady", "Ready"]


def test_wire_form_round_trips() -> None:
    wire = conditions.to_wire(ready([], "True", at=T0))
    assert wire == [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Reconciling",
            "message": "m",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
            "observedGeneration": 1,
        }
    ]
    assert conditions.parse(wire) == ready([], "True", at=T0)
