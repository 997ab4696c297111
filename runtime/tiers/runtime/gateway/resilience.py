"""Backoff between retries and a circuit breaker per backend: pure logic, clock passed in."""

from __future__ import annotations

import random

from tiers.runtime.gateway import config


def backoff_seconds(
    attempt: int,
    policy: config.RetryConfig,
    *,
    retry_after_s: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Full-jitter exponential backoff; a server's Retry-After wins when it asks for longer."""
    ceiling = min(policy.max_backoff_ms, policy.initial_backoff_ms * 2 ** max(attempt - 1, 0))
    jittered = (rng or random).uniform(0, ceiling) / 1000
    if retry_after_s is not None:
        return min(max(jittered, retry_after_s), policy.max_backoff_ms / 1000)
    return jittered


def parse_retry_after(headers: dict[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms` (OpenAI) or `retry-after` (seconds; dates ignored)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(float(value) * scale, 0.0)
        except ValueError:
            continue
    return None


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
