"""Events in and records out: parse an input event, and render the result and dead-letter
records the job writes. Pure functions; `scoring` calls them for each micro-batch."""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from tiers.runtime.modelcall import results


class Event(NamedTuple):
    """One input record as Kafka delivered it (a NamedTuple: cheap to build, one per event)."""

    key: str | None
    value: str | None
    partition: int
    offset: int
    timestamp_ms: int

    @property
    def id(self) -> str:
        """The idempotency key: the event's own key, or where it sits in the topic."""
        return self.key if self.key else f"{self.partition}-{self.offset}"


class Unparseable(ValueError):
    """The event is not a JSON object; it goes to the dead-letter topic with this reason."""


def fields(event: Event) -> dict[str, Any]:
    if event.value is None:
        raise Unparseable("the event has no value")
    try:
        parsed = orjson.loads(event.value)
    except orjson.JSONDecodeError as error:
        raise Unparseable(f"the value is not JSON: {error}") from None
    if not isinstance(parsed, dict):
        raise Unparseable(f"the value is JSON {type(parsed).__name__}, not an object")
    return parsed


def result_record(event: Event, result: results.RowResult, *, now_ms: int) -> bytes:
    """The result with the input event as it came: its value was checked to be a JSON object
    (`fields`), so it is copied in as is rather than parsed and serialized again."""
    if event.value is None:
        raise ValueError("an event without a value has no result, only a dead letter")
    return orjson.dumps(
        {
            "key": event.id,
            "input": orjson.Fragment(event.value),
            "output": result.output,
            "status": result.status,
            "finish_reason": result.finish_reason,
            "attempts": result.attempts,
            "model_latency_ms": result.latency_ms,
            "tokens_in": result.tokens_in,
            "tokens_out": result.tokens_out,
            "cost_usd": result.cost_usd,
            "partition": event.partition,
            "offset": event.offset,
            "ingest_ts": event.timestamp_ms,
            "processed_ts": now_ms,
        }
    )


def dead_letter_record(
    event: Event, *, reason: str, error: str, attempts: int, now_ms: int
) -> bytes:
    """Everything needed to replay or fix the event: the original value and why it failed."""
    return orjson.dumps(
        {
            "key": event.id,
            "reason": reason,
            "error": error,
            "attempts": attempts,
            "value": event.value,
            "partition": event.partition,
            "offset": event.offset,
            "ingest_ts": event.timestamp_ms,
            "failed_ts": now_ms,
        }
    )


def failure_reason(result: results.RowResult) -> str:
    """`invalid_event` when the model was never called (e.g. a field the prompt needs is
    missing), `model_error` when it was and every attempt failed."""
    return "invalid_event" if result.attempts == 0 else "model_error"
