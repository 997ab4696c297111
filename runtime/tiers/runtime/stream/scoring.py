"""Scoring one micro-batch inside a Spark Python worker: the function `mapInArrow` runs.

Each Arrow batch of Kafka records becomes result records for the output topic and dead-letter
records for the rest; a model error never raises. What a batch scored (events, dead letters,
tokens, cost, the events' timestamps and the partitions' progress) is added to the job's
accumulator: the driver times and publishes it once the task has written its results
(`written`).
"""

from __future__ import annotations

import decimal
import functools
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from tiers.runtime import modelcall
from tiers.runtime.stats import window
from tiers.runtime.stream import config, events, traces, written

OUTPUT_SCHEMA = "key string, value binary, topic string"
"""What the Kafka sink writes: one row per record, to the topic the row names."""


def output_schema(settings: config.StreamJobConfig) -> str:
    """The rows `score_batches` makes: a traced job's carry their trace context too."""
    return OUTPUT_SCHEMA if settings.tracing is None else OUTPUT_SCHEMA + traces.OUTPUT_COLUMNS


def score_batches(settings_json: str, tally: Any = None) -> Any:
    """The `mapInArrow` function for a job: a closure over its config and the accumulator of
    `written.Tally` its batches add to (None: nothing counted), pickled to workers.

    Arrow in and out, no pandas: building a pandas frame of the results cost more per row than
    serializing them."""

    def score(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow

        settings = _settings(settings_json)
        names = ["key", "value", "topic"]
        types = [pyarrow.string(), pyarrow.binary(), pyarrow.string()]
        if settings.tracing is not None:
            names += [traces.TRACEPARENT, traces.TRACESTATE]
            types += [pyarrow.string(), pyarrow.string()]
        for batch in batches:
            rows = score_frame(batch.to_pydict(), settings, tally)
            columns = zip(*rows, strict=True) if rows else [()] * len(names)
            yield pyarrow.RecordBatch.from_arrays(
                [pyarrow.array(column, kind) for column, kind in zip(columns, types, strict=True)],
                names=names,
            )
        if settings.tracing is not None:
            traces.task_ended(settings)  # before Spark may end this worker

    return score


_parsed_settings: dict[str, config.StreamJobConfig] = {}


def _settings(settings_json: str) -> config.StreamJobConfig:
    parsed = _parsed_settings.get(settings_json)
    if parsed is None:
        parsed = _parsed_settings[settings_json] = config.StreamJobConfig.model_validate_json(
            settings_json
        )
    return parsed


def score_frame(
    frame: Mapping[str, Sequence[Any]], settings: config.StreamJobConfig, tally: Any = None
) -> list[tuple[Any, ...]]:
    """Rows of (key, value, topic) for one batch of Kafka records (columns by name), in order;
    a traced job's rows add the (traceparent, tracestate) their record passes on (`traces`).
    What they count is added to `tally` (an accumulator of `written.Tally`, or None)."""
    columns = (frame[name] for name in ("key", "value", "partition", "offset", "ts_ms"))
    batch = [
        events.Event(key, value, partition, offset, timestamp)
        for key, value, partition, offset, timestamp in zip(*columns, strict=True)
    ]
    parsed: list[dict[str, Any] | events.Unparseable] = []
    for event in batch:
        try:
            parsed.append(events.fields(event))
        except events.Unparseable as unparseable:
            parsed.append(unparseable)
    scorable = [i for i, fields in enumerate(parsed) if isinstance(fields, dict)]
    rows: list[Mapping[str, Any]] = [fields for fields in parsed if isinstance(fields, dict)]
    trace = (
        None
        if settings.tracing is None
        else traces.BatchTrace(settings, batch, frame[traces.TRACEPARENT], frame[traces.TRACESTATE])
    )
    found = dict(
        zip(
            scorable,
            modelcall.score_batch(
                settings.model,
                rows,
                [batch[i].id for i in scorable],
                None if trace is None else [trace.upstream[i] for i in scorable],
                None if trace is None else trace.finished(scorable),
            )
            if scorable
            else [],
            strict=True,
        )
    )
    now_ms = _now_ms()
    out: list[tuple[str, bytes, str]] = []
    errors = tokens_in = tokens_out = 0
    cost_usd = decimal.Decimal(0)
    for i, event in enumerate(batch):
        fields, result = parsed[i], found.get(i)
        if isinstance(fields, dict) and result is not None and result.status == "ok":
            record = events.result_record(event, result, now_ms=now_ms)
            out.append((event.id, record, settings.output_topic))
            tokens_in += result.tokens_in
            tokens_out += result.tokens_out
            cost_usd += _decimal(result.cost_usd)
            continue
        if result is None:
            reason, message, attempts = "unparseable", str(fields), 0
        else:
            reason = events.failure_reason(result)
            message, attempts = result.error or reason, result.attempts
        record = events.dead_letter_record(
            event, reason=reason, error=message, attempts=attempts, now_ms=now_ms
        )
        out.append((event.id, record, settings.dead_letter_topic))
        errors += 1
    if tally is not None and batch:
        tally.add(_tally(batch, errors, tokens_in, tokens_out, cost_usd))
    if trace is not None:
        return trace.end(out, parsed, [found.get(i) for i in range(len(batch))])
    return out


def _tally(
    batch: list[events.Event], errors: int, tokens_in: int, tokens_out: int,
    cost_usd: decimal.Decimal,
) -> written.Tally:  # fmt: skip
    """What a batch adds to the job's accumulator: untimed until its task has written it."""
    counts = window.Counts(
        units=len(batch), errors=errors, tokens_in=tokens_in, tokens_out=tokens_out,
        cost_nano_usd=int(cost_usd / window.NANO),
    )  # fmt: skip
    next_offsets: dict[int, int] = {}
    for event in batch:
        next_offsets[event.partition] = max(next_offsets.get(event.partition, 0), event.offset + 1)
    return written.Tally(
        counts, Counter(event.timestamp_ms for event in batch), next_offsets=next_offsets
    )


@functools.lru_cache(maxsize=1024)
def _decimal(usd: str) -> decimal.Decimal:
    return decimal.Decimal(usd)


def _now_ms() -> int:
    return int(time.time() * 1000)
