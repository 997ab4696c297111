"""Input records in, result records out: the per-record logic of a batch run. Pure.

A record is a JSON line, or a row of a CSV or Parquet file. Each needs an id (the input's id
field), which keys its result: a rerun skips ids that already have a good one. A record that
cannot be read or has no id becomes an error result of its own; it never fails the run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import orjson

from tiers.runtime.modelcall import results

OUTCOME = "outcome"
"""The column the output is partitioned by: `ok` or `error` (the same as `status`)."""
RESULT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("status", "string"),
    ("output", "string"),
    ("error", "string"),
    ("attempts", "int"),
    ("latency_ms", "bigint"),
    ("tokens_in", "bigint"),
    ("tokens_out", "bigint"),
    ("cost_usd", "string"),
    ("finish_reason", "string"),
)


class Record(NamedTuple):
    """One input record: its id and fields, or why it cannot be scored."""

    id: str | None
    fields: Mapping[str, Any] | None
    error: str | None = None


def from_lines(lines: Iterable[str | None], id_field: str) -> list[Record]:
    """Records from JSON lines (one object per line)."""
    found = []
    for line in lines:
        try:
            fields = orjson.loads(line or "")
        except orjson.JSONDecodeError as error:
            found.append(Record(None, None, f"not a JSON line: {error}"))
            continue
        if not isinstance(fields, dict):
            found.append(Record(None, None, f"a JSON line must be an object, not {_kind(fields)}"))
            continue
        found.append(from_fields(fields, id_field))
    return found


def from_rows(rows: Iterable[Mapping[str, Any]], id_field: str) -> list[Record]:
    """Records from table rows (CSV, Parquet), each a mapping of column to value."""
    return [from_fields(row, id_field) for row in rows]


def from_fields(fields: Mapping[str, Any], id_field: str) -> Record:
    key = record_id(fields.get(id_field))
    if key is None:
        return Record(None, fields, f"the record has no id: field '{id_field}' is missing or empty")
    return Record(key, fields)


def record_id(value: Any) -> str | None:
    """An id as text: strings as they are, numbers in their shortest form; None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return orjson.dumps(value).decode()


def spark_schema(id_field: str) -> str:
    """The result rows' Spark schema: the id under its input name, the result, the outcome."""
    columns = [(id_field, "string"), *RESULT_COLUMNS, (OUTCOME, "string")]
    return ", ".join(f"`{name}` {kind}" for name, kind in columns)


def result_columns(
    records: Sequence[Record], scored: Mapping[int, results.RowResult]
) -> list[list[Any]]:
    """The result rows as columns in `spark_schema` order: record i's result is `scored[i]`, or
    an error from the record itself when it was not scored."""
    rows = [_result(record, scored.get(i)) for i, record in enumerate(records)]
    width = len(RESULT_COLUMNS) + 2
    return [[row[c] for row in rows] for c in range(width)] if rows else [[] for _ in range(width)]


def _result(record: Record, result: results.RowResult | None) -> tuple[Any, ...]:
    if result is None:
        error = record.error or "not scored"
        result = results.failed(record.id or "", error)
    return (
        record.id,
        result.status,
        result.output,
        result.error,
        result.attempts,
        result.latency_ms,
        result.tokens_in,
        result.tokens_out,
        result.cost_usd,
        result.finish_reason,
        result.status,
    )


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", int: "a number", float: "a number"}.get(
        type(value), "null" if value is None else type(value).__name__
    )
