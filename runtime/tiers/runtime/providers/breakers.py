"""A circuit breaker per backend: pure logic, the clock passed in.

The gateway keeps one for each backend of an endpoint, so that a backend that keeps failing is
tried last for a while instead of first; `retries.send_with_retries` records into it.
"""

from __future__ import annotations

from tiers.runtime.providers import config


class CircuitBreaker:
    """Opens after `failure_threshold` consecutive failures; after `open_seconds` one trial call
    is let through (half-open): success closes it, failure opens it again."""

    def __init__(self, policy: config.CircuitBreakerConfig) -> None:
        self._policy = policy
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    def allows(self, now: float) -> bool:
        if self._opened_at is None:
            return True
        if now - self._opened_at < self._policy.open_seconds or self._trial_in_flight:
            return False
        self._trial_in_flight = True
        return True

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial_in_flight = False

    def record_failure(self, now: float) -> None:
        self._failures += 1
        self._trial_in_flight = False
        if self._failures >= self._policy.failure_threshold:
            self._opened_at = now

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None
