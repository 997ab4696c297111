"""The one way every caller tries a model again: full-jitter backoff, Retry-After honoured.

`send_with_retries(attempt, *args, policy=...)` calls `attempt(*args)` until it returns something
other than a `failures.Failure`, or the policy says to stop: after `max_attempts`, or at once when
the server asks (Retry-After) to wait longer than `max_backoff_ms`, or when the backend's circuit
breaker opens. Each attempt's deadline is its own (the backend's `timeout_ms`, kept by `backends`);
the waits between attempts are here. The gateway calls it once per backend and falls back to the
next; the model client calls it once per request of rows. Time is injectable (`sleep`, `clock`,
`rng`) so that tests retry without waiting.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Generic, NamedTuple, TypeAlias, TypeVar, TypeVarTuple

from tiers.runtime.providers import breakers, config, failures

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
Attempt: TypeAlias = Callable[[*Ts], Awaitable[T | failures.Failure]]
"""One try at a call (e.g. `backends.Backend.request`): what it got, or why it got nothing
usable."""


class Tried(NamedTuple, Generic[T]):
    """What the last attempt returned, and how many attempts were made (a NamedTuple: one per
    model call, on the gateway's hot path)."""

    outcome: T | failures.Failure
    attempts: int


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


def final_failure(
    failure: failures.Failure, attempt: int, policy: config.RetryConfig
) -> failures.Failure | None:
    """The failure to report when `failure` ends the retries, saying why; None to try again."""
    if attempt >= policy.max_attempts:
        return failure
    if (failure.retry_after_s or 0) > policy.max_backoff_ms / 1000:
        # Waiting less than asked would only be refused again; the caller may try elsewhere.
        return failure.but(
            f"the server asks to retry after {failure.retry_after_s:g} s, "
            "longer than max_backoff_ms"
        )
    return None


async def send_with_retries(
    attempt: Attempt[*Ts, T],
    *args: *Ts,
    policy: config.RetryConfig,
    rng: random.Random | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    breaker: breakers.CircuitBreaker | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Tried[T]:
    """Calls `attempt(*args)` until it succeeds or the retries end; records each outcome in
    `breaker` and stops once it opens (the caller's next backend is then the better bet).

    The arguments are passed through rather than bound in a partial or a closure: a stream job
    has thousands of calls in flight, and every object each keeps alive makes the garbage
    collector run more often (a partial per call was a quarter more collections per event)."""
    tries = 0
    while True:
        tries += 1
        outcome = await attempt(*args)
        if not isinstance(outcome, failures.Failure):
            if breaker is not None:
                breaker.record_success()
            return Tried(outcome, tries)
        if breaker is not None:
            breaker.record_failure(clock())
        final = final_failure(outcome, tries, policy)
        if final is not None:
            return Tried(final, tries)
        if breaker is not None and breaker.is_open:
            return Tried(outcome, tries)
        await sleep(backoff_seconds(tries, policy, retry_after_s=outcome.retry_after_s, rng=rng))
