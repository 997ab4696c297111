"""The batch job with the model taken out: what `bench/batch.py` divides the real job by.

`passthrough` has the shape of `tiers.runtime.batch.scoring.score_partitions`, so `job.run(...,
score=passthrough)` runs the job's own session, read, plan (count, sample, estimate), partitions,
Python worker round trip, record parsing, result columns and write, and calls no model: each
record's result is `ok`, its text as the output, no tokens, no cost.

Spark's Python workers unpickle the function; they cannot import this folder, so
`register_with_spark()` has cloudpickle send this module by value.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

from tiers.runtime.batch import config, records, scoring
from tiers.runtime.modelcall import results
from tiers.runtime.stats import window

TEXT_FIELD = "text"


def register_with_spark() -> None:
    from pyspark import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])


def passthrough(
    settings_json: str, shape: scoring.Shape, tally: Any
) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """A `mapInArrow` function: each record parsed as the job parses it, its result the text."""

    def copy(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow

        settings = config.BatchJobConfig.model_validate_json(settings_json)
        schema = scoring.schema_of(settings)
        for batch in batches:
            if shape == "lines":
                found = records.from_lines(batch.column(0).to_pylist(), settings.id_field)
            else:
                found = records.from_rows(batch.to_pylist(), settings.id_field)
            echoed = {i: _echo(record) for i, record in enumerate(found) if record.id is not None}
            counts = window.Counts()
            counts.record_many([0] * len(found), errors=len(found) - len(echoed))
            tally.add(counts)
            columns = zip(records.result_columns(found, echoed), schema, strict=True)
            yield pyarrow.RecordBatch.from_arrays(
                [pyarrow.array(column, field.type) for column, field in columns], schema=schema
            )

    return copy


def _echo(record: records.Record) -> results.RowResult:
    fields = record.fields or {}
    return results.RowResult(
        key=record.id or "",
        status="ok",
        output=str(fields.get(TEXT_FIELD, "")),
        error=None,
        attempts=0,
        latency_ms=0,
        tokens_in=0,
        tokens_out=0,
        cost_usd=results.NO_COST,
        finish_reason=None,
    )
