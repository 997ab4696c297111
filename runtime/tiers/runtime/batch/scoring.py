"""Scoring a partition inside a Spark Python worker: the function `mapInArrow` runs.

Each Arrow batch of input records becomes result rows (`records.spark_schema`). The next batch
is read and parsed while the model scores the current one, so the model sees no gap between
batches. What a batch scored is added to a Spark accumulator of `window.Counts`, which the driver
reads for progress, cost and the budget; Spark applies a task's additions once, when the task
(and so its committed output) succeeds.
"""

from __future__ import annotations

import concurrent.futures
import decimal
import functools
from collections.abc import Iterator
from typing import Any, Literal

from tiers.runtime import modelcall
from tiers.runtime.batch import config, records
from tiers.runtime.modelcall import results
from tiers.runtime.stats import window

Shape = Literal["lines", "rows"]
"""`lines`: one `value` column of JSON text (JSON lines); `rows`: the input's own columns."""


class CountsParam:
    """A Spark `AccumulatorParam` over `window.Counts` (duck-typed: pyspark is not imported)."""

    def zero(self, value: window.Counts) -> window.Counts:
        return window.Counts()

    def addInPlace(self, total: window.Counts, more: window.Counts) -> window.Counts:
        total.add(more)
        return total


def score_partitions(settings_json: str, shape: Shape, tally: Any) -> Any:
    """The `mapInArrow` function of a run: a closure over its config and accumulator."""

    def score(batches: Iterator[Any]) -> Iterator[Any]:
        settings = _settings(settings_json)
        pending: tuple[list[records.Record], list[int], Any] | None = None
        for batch in batches:
            started = _submit(settings, _records(batch, shape, settings.id_field))
            if pending is not None:
                yield _finish(pending, schema_of(settings), tally)
            pending = started
        if pending is not None:
            yield _finish(pending, schema_of(settings), tally)

    return score


def schema_of(settings: config.BatchJobConfig) -> Any:
    import pyarrow

    names = [settings.id_field, *(name for name, _ in records.RESULT_COLUMNS), records.OUTCOME]
    types = {"string": pyarrow.string(), "int": pyarrow.int32(), "bigint": pyarrow.int64()}
    kinds = ["string", *(kind for _, kind in records.RESULT_COLUMNS), "string"]
    return pyarrow.schema([(name, types[kind]) for name, kind in zip(names, kinds, strict=True)])


def _records(batch: Any, shape: Shape, id_field: str) -> list[records.Record]:
    if shape == "lines":
        return records.from_lines(batch.column(0).to_pylist(), id_field)
    return records.from_rows(batch.to_pylist(), id_field)


def _submit(
    settings: config.BatchJobConfig, found: list[records.Record]
) -> tuple[list[records.Record], list[int], Any]:
    scorable = [i for i, record in enumerate(found) if record.id is not None]
    future: concurrent.futures.Future[list[results.RowResult]] | None = None
    if scorable:
        future = modelcall.submit_batch(
            settings.model,
            [found[i].fields or {} for i in scorable],
            [found[i].id or "" for i in scorable],
        )
    return found, scorable, future


def _finish(pending: tuple[list[records.Record], list[int], Any], schema: Any, tally: Any) -> Any:
    import pyarrow

    found, scorable, future = pending
    scored = dict(zip(scorable, future.result() if future is not None else [], strict=True))
    tally.add(_counts(found, scored))
    columns = records.result_columns(found, scored)
    return pyarrow.RecordBatch.from_arrays(
        [pyarrow.array(column, field.type) for column, field in zip(columns, schema, strict=True)],
        schema=schema,
    )


def _counts(found: list[records.Record], scored: dict[int, results.RowResult]) -> window.Counts:
    errors = len(found) - sum(result.status == "ok" for result in scored.values())
    counts = window.Counts()
    counts.record_many(
        [result.latency_ms for result in scored.values()] + [0] * (len(found) - len(scored)),
        errors=errors,
        tokens_in=sum(result.tokens_in for result in scored.values()),
        tokens_out=sum(result.tokens_out for result in scored.values()),
        cost_usd=sum((_decimal(result.cost_usd) for result in scored.values()), decimal.Decimal(0)),
    )
    return counts


_parsed: dict[str, config.BatchJobConfig] = {}


def _settings(settings_json: str) -> config.BatchJobConfig:
    parsed = _parsed.get(settings_json)
    if parsed is None:
        parsed = _parsed[settings_json] = config.BatchJobConfig.model_validate_json(settings_json)
    return parsed


@functools.lru_cache(maxsize=1024)
def _decimal(usd: str) -> decimal.Decimal:
    return decimal.Decimal(usd)
