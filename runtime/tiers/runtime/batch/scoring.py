"""Scoring a partition inside a Spark Python worker: the function `mapInArrow` runs.

Each Arrow batch of input records becomes result rows (`records.spark_schema`), or for an OpenAI
batch file each batch of its lines becomes output and error lines (`openai_lines`), their bodies
sent as they are (`modelcall.submit_raw_batch`). The next batch is read and parsed while the
model works on the current one, so the model sees no gap between batches. What a batch scored
is added to a Spark accumulator of `window.Counts`, which the driver reads for progress, cost and
the budget; Spark applies a task's additions once, when the task (and so its committed output)
succeeds.
"""

from __future__ import annotations

import concurrent.futures
import decimal
import functools
from collections.abc import Callable, Iterator
from typing import Any, Literal

from tiers.runtime import modelcall
from tiers.runtime.batch import config, openai_lines, records
from tiers.runtime.modelcall import raw, results
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
    """The `mapInArrow` function of a run: a closure over its config and accumulator. Its rows
    are `records.spark_schema`'s, or `openai_lines.SPARK_SCHEMA`'s for an OpenAI batch file."""

    def score(batches: Iterator[Any]) -> Iterator[Any]:
        settings = _settings(settings_json)
        start = _start_openai if settings.openai_batch else _start_records
        finishing: Callable[[], Any] | None = None
        for batch in batches:
            started = start(settings, batch, shape, tally)
            if finishing is not None:
                yield finishing()
            finishing = started
        if finishing is not None:
            yield finishing()

    return score


def done_costs(settings_json: str) -> Any:
    """The `mapInArrow` function that reads OpenAI output lines (one `value` column of text)
    back into `custom_id` and `cost_usd`, what `job` reads of earlier attempts' results."""

    def read(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow

        prices = raw.ReplyPrices(_settings(settings_json).model)
        for batch in batches:
            found = [openai_lines.done_cost(line, prices) for line in batch.column(0).to_pylist()]
            ids, costs = zip(*found, strict=True) if found else ((), ())
            yield pyarrow.RecordBatch.from_arrays(
                [pyarrow.array(ids, pyarrow.string()), pyarrow.array(costs, pyarrow.string())],
                names=["custom_id", "cost_usd"],
            )

    return read


def schema_of(settings: config.BatchJobConfig) -> Any:
    """The Arrow schema of a run's result rows of records (`records.spark_schema`)."""
    import pyarrow

    names = [settings.id_field, *(name for name, _ in records.RESULT_COLUMNS), records.OUTCOME]
    types = {"string": pyarrow.string(), "int": pyarrow.int32(), "bigint": pyarrow.int64()}
    kinds = ["string", *(kind for _, kind in records.RESULT_COLUMNS), "string"]
    return pyarrow.schema([(name, types[kind]) for name, kind in zip(names, kinds, strict=True)])


def _start_records(
    settings: config.BatchJobConfig, batch: Any, shape: Shape, tally: Any
) -> Callable[[], Any]:
    """Starts scoring a batch of records; the function that waits for it and returns its rows."""
    if shape == "lines":
        found = records.from_lines(batch.column(0).to_pylist(), settings.id_field)
    else:
        found = records.from_rows(batch.to_pylist(), settings.id_field)
    scorable = [i for i, record in enumerate(found) if record.id is not None]
    future: concurrent.futures.Future[list[results.RowResult]] | None = None
    if scorable:
        future = modelcall.submit_batch(
            settings.model,
            [found[i].fields or {} for i in scorable],
            [found[i].id or "" for i in scorable],
        )

    def finish() -> Any:
        import pyarrow

        schema = schema_of(settings)
        scored = dict(zip(scorable, future.result() if future is not None else [], strict=True))
        tally.add(_counts(found, scored))
        columns = records.result_columns(found, scored)
        return pyarrow.RecordBatch.from_arrays(
            [pyarrow.array(c, field.type) for c, field in zip(columns, schema, strict=True)],
            schema=schema,
        )

    return finish


def _start_openai(
    settings: config.BatchJobConfig, batch: Any, shape: Shape, tally: Any
) -> Callable[[], Any]:
    """Starts sending a batch of OpenAI input lines; the function that waits for the replies and
    returns their output and error lines."""
    lines = [openai_lines.read(text) for text in batch.column(0).to_pylist()]
    sendable = [i for i, line in enumerate(lines) if line.request is not None]
    future: concurrent.futures.Future[list[raw.RawReply]] | None = None
    if sendable:
        requests = [line.request for line in lines if line.request is not None]
        future = modelcall.submit_raw_batch(settings.model, requests)

    def finish() -> Any:
        import pyarrow

        replies = dict(zip(sendable, future.result() if future is not None else [], strict=True))
        out = [openai_lines.written(line, replies.get(i)) for i, line in enumerate(lines)]
        tally.add(_reply_counts(out, replies))
        return pyarrow.RecordBatch.from_arrays(
            [
                pyarrow.array([w.line for w in out], pyarrow.string()),
                pyarrow.array([w.outcome for w in out], pyarrow.string()),
            ],
            names=["line", records.OUTCOME],
        )

    return finish


def _counts(found: list[records.Record], scored: dict[int, results.RowResult]) -> window.Counts:
    errors = len(found) - sum(result.status == "ok" for result in scored.values())
    return _tallied(len(found), errors, list(scored.values()))


def _reply_counts(
    out: list[openai_lines.Written], replies: dict[int, raw.RawReply]
) -> window.Counts:
    errors = sum(written.outcome != "ok" for written in out)
    return _tallied(len(out), errors, list(replies.values()))


def _tallied(
    units: int, errors: int, answered: list[results.RowResult] | list[raw.RawReply]
) -> window.Counts:
    """What a batch adds to the run's accumulator: its units (records or lines), the failed ones,
    and the latency, tokens and cost of those that reached the model."""
    counts = window.Counts()
    counts.record_many(
        [result.latency_ms for result in answered] + [0] * (units - len(answered)),
        errors=errors,
        tokens_in=sum(result.tokens_in for result in answered),
        tokens_out=sum(result.tokens_out for result in answered),
        cost_usd=sum((_decimal(result.cost_usd) for result in answered), decimal.Decimal(0)),
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
