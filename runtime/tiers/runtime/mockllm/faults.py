"""Fault injection that tests can change while the server runs.

Every inference request asks `FaultState.decide()` whether to fail: first the deterministic
`fail_next` queue (so retry tests are not flaky), then the random rates. `POST /_mock/faults`
calls `update()`; `POST /_mock/reset` calls `reset()`.
"""

import dataclasses
import random
from typing import Any, Final

from tiers.runtime.mockllm import config, errors

TIMEOUT: Final = "timeout"
GARBAGE: Final = "garbage"
"""A 200 whose body (or each streamed event) is not JSON."""
CUT: Final = "cut"
"""A 200 whose connection closes half-way through the answer (a stream after its first events)."""
_BROKEN = (GARBAGE, CUT)
_RATE_FIELDS = ("fail_rate_429", "fail_rate_500", "timeout_rate")
_FIELDS = tuple(f.name for f in dataclasses.fields(config.Faults))


@dataclasses.dataclass(frozen=True)
class Hang:
    """Hold the request this long (or until the client hangs up), then answer normally."""

    seconds: float


@dataclasses.dataclass(frozen=True)
class Broken:
    """Answer 200, then break the answer the way `how` (GARBAGE or CUT) says."""

    how: str


class FaultState:
    def __init__(self, initial: config.Faults, *, rng: random.Random) -> None:
        self._initial = initial
        self._rng = rng
        self.reset()

    def reset(self) -> None:
        """Back to the faults the server started with, and nothing queued."""
        self._set(self._initial)
        self._fail_next_count = 0
        self._fail_next_status: int | str = 500

    def decide(self) -> errors.ApiError | Hang | Broken | None:
        """None lets the request through; otherwise the error to send or the hang to wait."""
        if self._fail_next_count:
            self._fail_next_count -= 1
            return self._injected(self._fail_next_status)
        if not self._any_rate:
            return None
        faults = self.faults
        draw = self._rng.random()
        if draw < faults.timeout_rate:
            return Hang(faults.timeout_s)
        draw -= faults.timeout_rate
        if draw < faults.fail_rate_429:
            return errors.rate_limited(faults.retry_after_s)
        draw -= faults.fail_rate_429
        if draw < faults.fail_rate_500:
            return errors.injected(500)
        return None

    def update(self, patch: object) -> None:
        """Apply a partial change such as `{"fail_rate_500": 1.0}` or `{"fail_next": {...}}`.

        All of it or none of it: a bad field raises a 400 `ApiError` naming it.
        """
        if not isinstance(patch, dict):
            raise errors.invalid_request("The faults body must be a JSON object.", param=None)
        changes: dict[str, float] = {}
        fail_next = None
        for key, value in patch.items():
            if key == "fail_next":
                fail_next = _fail_next(value)
            elif key in _FIELDS:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise errors.bad_type(key, "a number")
                changes[key] = float(value)
            else:
                allowed = ", ".join((*_FIELDS, "fail_next"))
                raise errors.invalid_request(
                    f"Unknown field '{key}'; allowed: {allowed}.", param=key
                )
        try:
            faults = dataclasses.replace(self.faults, **changes)
        except ValueError as e:
            raise errors.invalid_request(str(e), param=next(iter(changes), None)) from None
        self._set(faults)
        if fail_next is not None:
            self._fail_next_count, self._fail_next_status = fail_next

    def snapshot(self) -> dict[str, Any]:
        fail_next = {"count": self._fail_next_count, "status": self._fail_next_status}
        return {**dataclasses.asdict(self.faults), "fail_next": fail_next}

    def _set(self, faults: config.Faults) -> None:
        self.faults = faults
        self._any_rate = any(getattr(faults, name) for name in _RATE_FIELDS)

    def _injected(self, status: int | str) -> errors.ApiError | Hang | Broken:
        if status in _BROKEN:
            return Broken(str(status))
        if status == TIMEOUT or not isinstance(status, int):
            return Hang(self.faults.timeout_s)
        if status == 429:
            return errors.rate_limited(self.faults.retry_after_s)
        return errors.injected(status)


def _fail_next(value: object) -> tuple[int, int | str]:
    if not isinstance(value, dict):
        raise errors.bad_type("fail_next", 'an object like {"count": 2, "status": 500}')
    count = value.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise errors.bad_type("fail_next.count", "an integer >= 0")
    status = value.get("status", 500)
    valid_status = isinstance(status, int) and not isinstance(status, bool) and 400 <= status <= 599
    if not valid_status and status not in (TIMEOUT, *_BROKEN):
        raise errors.invalid_request(
            "'fail_next.status' must be an HTTP status from 400 to 599, or \"timeout\","
            ' "garbage" or "cut".',
            param="fail_next.status",
        )
    return count, status
