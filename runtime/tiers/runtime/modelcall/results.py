"""The outcome of one row: the reply or the error, with attempts, latency, tokens and cost.

`client.ModelClient.score` returns one `RowResult` per input row, in input order. The stream and
batch jobs write them next to the row's key; `as_columns` turns a list of them into columns from
which the caller builds a pandas DataFrame or an Arrow RecordBatch without a per-row loop of its
own (this package imports neither pandas nor pyarrow).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

from tiers.runtime import pricing

Status = Literal["ok", "error"]
NO_COST = pricing.format_usd(pricing.cost(pricing.Usage(), pricing.ZERO))


class RowResult(NamedTuple):
    """Immutable and cheap to build: a job makes one per row, tens of thousands a second, and a
    frozen dataclass spent more time in `__init__` than the row's JSON took to write."""

    key: str
    """The caller's idempotency key: topic/partition/offset or a record id."""
    status: Status
    output: str | None
    """The reply text, or for embeddings the vector as a JSON array; None on error."""
    error: str | None
    attempts: int
    """Calls made for the row; 0 when it never reached the model (e.g. a missing field)."""
    latency_ms: int
    """From the first attempt to the outcome, backoff included; waiting for a slot excluded."""
    tokens_in: int
    tokens_out: int
    cost_usd: str
    """A decimal string, e.g. "0.000150"."""
    finish_reason: str | None


COLUMNS: tuple[str, ...] = RowResult._fields
SPARK_DDL = (
    "key string, status string, output string, error string, attempts int, latency_ms bigint, "
    "tokens_in bigint, tokens_out bigint, cost_usd string, finish_reason string"
)
"""The columns as a Spark schema string, for `mapInArrow(..., schema)` or a struct column."""


def failed(key: str, error: str, *, attempts: int = 0, latency_ms: int = 0) -> RowResult:
    return RowResult(
        key=key,
        status="error",
        output=None,
        error=error,
        attempts=attempts,
        latency_ms=latency_ms,
        tokens_in=0,
        tokens_out=0,
        cost_usd=NO_COST,
        finish_reason=None,
    )


def as_columns(results: Sequence[RowResult]) -> dict[str, list[Any]]:
    """`{"key": [...], "status": [...], ...}` in `COLUMNS` order, one entry per result."""
    return {name: [getattr(result, name) for result in results] for name in COLUMNS}
