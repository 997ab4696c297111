"""A stream event's trace through the job: the producer's `traceparent` (a Kafka record header)
→ a span of the event's model call → the output record's `traceparent` header.

Only a traced pipeline reads its input records' headers: `job` adds the `traceparent` and
`tracestate` columns (`INPUT_COLUMNS`) and writes what `BatchTrace.end` gives each output record
as its headers (`OUTPUT_HEADERS`). Untraced, none of this runs and the rows are as before.

Each event's span (kind client, named and described as OpenTelemetry's GenAI conventions say,
as the gateway's) continues the producer's trace, or starts a trace at the sampling ratio. It
covers the event's model call, from its first attempt to its answer (backoff included; an event
that never reached the model: its micro-batch's time at the model client). Its context goes
upstream with the model call (a Tiers gateway's span joins the trace) and on with the output
or dead-letter record. An event whose producer's trace is not sampled gets no span; its
context goes on as it came.

Ended spans leave the worker through an exporter on the worker's event loop (the model
client's, `modelcall.event_loop`), handed over once per Arrow batch. Spark may end a worker
without warning (SIGKILL of an idle one, SIGHUP from its daemon, `os._exit`: no `atexit` runs),
so a task ends only once its spans are sent (`task_ended`), at most `TASK_END_WAIT_S` later: a
cost per task, none per event. While the collector fails, tasks do not wait (the spans stay
queued for the next export), so a collector that is away costs the job one wait and dropped
spans, nothing more. A worker has no metrics endpoint: what its exporter drops is said in its
log, at most once a minute (`Unexported`).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from tiers.runtime import modelcall
from tiers.runtime.modelcall import results
from tiers.runtime.stream import config, events
from tiers.runtime.tracing import export, genai, spans

TRACEPARENT, TRACESTATE = "traceparent", "tracestate"
INPUT_COLUMNS = tuple(
    f"CAST(try_element_at(filter(headers, h -> h.key = '{name}'), 1).value AS STRING) AS {name}"
    for name in (TRACEPARENT, TRACESTATE)
)
"""Each input record's first `traceparent` and `tracestate` header, or null (the Kafka source's
`headers` column, read with `includeHeaders`)."""
OUTPUT_COLUMNS = f", {TRACEPARENT} string, {TRACESTATE} string"
"""What a traced job's `mapInArrow` adds to each row: the context its record passes on."""
OUTPUT_HEADERS = (
    f"filter(array(named_struct('key', '{TRACEPARENT}', 'value', CAST({TRACEPARENT} AS BINARY)),"
    f" named_struct('key', '{TRACESTATE}', 'value', CAST({TRACESTATE} AS BINARY))),"
    " h -> h.value IS NOT NULL) AS headers"
)
"""The Kafka sink's `headers` column from those two: none when the record passes nothing on."""

log = logging.getLogger(__name__)
Parsed = dict[str, Any] | events.Unparseable
SAY_EVERY_S = 60.0
TASK_END_WAIT_S = 2.0
"""The longest a task waits at its end for its spans to be sent (a local collector takes
milliseconds; a slow one costs each task this much at most)."""
_exporters: dict[tuple[Any, ...], tuple[export.Exporter, random.Random]] = {}


class BatchTrace:
    """The spans of one micro-batch's events, started when it goes to the model client."""

    def __init__(
        self,
        settings: config.StreamJobConfig,
        batch: Sequence[events.Event],
        traceparents: Sequence[str | None],
        tracestates: Sequence[str | None],
    ) -> None:
        assert settings.tracing is not None
        self._exporter, rng = _exporter(settings)
        self._ended: list[spans.Span] = []
        tracer = spans.Tracer(
            self._ended.append, sample_ratio=settings.tracing.sample_ratio, rng=rng
        )
        model = settings.model
        backend = model.backend
        operation = genai.OPERATIONS[model.route]
        name = f"{operation} {model.model}"
        common: spans.Attributes = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": genai.PROVIDERS[backend.provider],
            "gen_ai.request.model": model.model,
            "tiers.pipeline": settings.pipeline,
            "messaging.system": "kafka",
            "messaging.destination.name": settings.input_topic,
        }
        self._times: dict[int, tuple[int, int]] = {}
        self.spans: list[spans.Span | None] = []
        self.upstream: list[dict[str, str] | None] = []
        """What each event's model call sends on: its span's context, or the producer's."""
        for event, parent, state in zip(batch, traceparents, tracestates, strict=True):
            parent_header, state_header = _header(parent), _header(state)
            span = tracer.start(
                name, kind="client", traceparent=parent_header, tracestate=state_header
            )
            if span is None:
                self.upstream.append(spans.passed_on(parent_header, state_header))
            else:
                attributes = span.attributes
                attributes.update(common)
                attributes["messaging.destination.partition.id"] = str(event.partition)
                attributes["messaging.kafka.offset"] = event.offset
                self.upstream.append(span.headers())
            self.spans.append(span)

    def finished(self, sent: Sequence[int]) -> modelcall.Finished:
        """What the model client tells when each row was answered, `sent[row]` being its event
        (its index in the batch)."""
        times = self._times

        def answered(row: int, started_ns: int, ended_ns: int) -> None:
            times[sent[row]] = (started_ns, ended_ns)

        return answered

    def end(
        self,
        rows: list[tuple[str, bytes, str]],
        parsed: Sequence[Parsed],
        found: Sequence[results.RowResult | None],
    ) -> list[tuple[str, bytes, str, str | None, str | None]]:
        """Ends each event's span with its outcome (`found`: its model result, None when it was
        not parseable), hands them to the exporter, and returns `rows` (one per event, in order)
        with the context each record passes on."""
        times = self._times
        for i, (span, fields, result) in enumerate(zip(self.spans, parsed, found, strict=True)):
            if span is None:
                continue
            attributes = span.attributes
            if result is None:
                attributes["error.type"] = "unparseable"
                span.error = str(fields)
            else:
                attributes["gen_ai.usage.input_tokens"] = result.tokens_in
                attributes["gen_ai.usage.output_tokens"] = result.tokens_out
                attributes["tiers.cost_usd"] = float(result.cost_usd)
                attributes["tiers.attempts"] = result.attempts
                if result.status != "ok":
                    reason = attributes["error.type"] = events.failure_reason(result)
                    span.error = result.error or reason
            span.end()
            answered = times.get(i)
            if answered is not None:
                span.start_ns, span.end_ns = answered
        if self._ended:
            self._exporter.add_threadsafe(self._ended)
        return [
            (key, value, topic, None, None)
            if headers is None
            else (key, value, topic, headers["traceparent"], headers.get("tracestate"))
            for (key, value, topic), headers in zip(rows, self.upstream, strict=True)
        ]


def _header(value: str | None) -> bytes | None:
    """A Kafka header's text as a trace header, None unless it is printable ASCII (what W3C
    Trace Context allows): a header is any bytes, and one that fails to encode or carries a line
    break must neither fail the task nor reach the model call's request."""
    if not value or not value.isascii() or not value.replace("\t", " ").isprintable():
        return None
    return value.encode("ascii")


class Unexported:
    """The exporter's `counted`: spans dropped (queue full) or failed, in the worker's log at
    most once every `SAY_EVERY_S`, with the totals so far."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.totals: collections.Counter[str] = collections.Counter()
        self._clock = clock
        self._said: float | None = None

    def __call__(self, outcome: str, count: int) -> None:
        if outcome == "exported":
            return
        self.totals[outcome] += count
        now = self._clock()
        if self._said is None or now - self._said >= SAY_EVERY_S:
            self._said = now
            log.warning("spans not exported by this worker so far: %s", dict(self.totals))


def task_ended(settings: config.StreamJobConfig) -> None:
    """Sends what this worker's exporter holds before Spark may end the worker (the end of a
    `mapInArrow` task), within `TASK_END_WAIT_S`; logged when they were not all sent."""
    assert settings.tracing is not None
    found = _exporters.get(_key(settings))
    if found is not None and not found[0].drain_threadsafe(TASK_END_WAIT_S):
        log.info("the collector is failing or slow: spans may stay queued past this task")


def _key(settings: config.StreamJobConfig) -> tuple[Any, ...]:
    return (settings.pipeline, settings.tracing, os.getpid())


def _exporter(settings: config.StreamJobConfig) -> tuple[export.Exporter, random.Random]:
    """This worker process's exporter for the pipeline (on the model client's loop) and the
    random ids of its spans: both made anew in a forked worker, whose ids must differ."""
    assert settings.tracing is not None
    key = _key(settings)
    found = _exporters.get(key)
    if found is None:
        tracing = settings.tracing

        async def started() -> export.Exporter:
            exporter = export.Exporter(tracing, resource=resource(settings), counted=Unexported())
            exporter.start()
            return exporter

        running = asyncio.run_coroutine_threadsafe(started(), modelcall.event_loop())
        found = _exporters[key] = (running.result(), random.Random())
    return found


def resource(settings: config.StreamJobConfig) -> dict[str, spans.AttributeValue]:
    assert settings.tracing is not None
    return {"service.name": settings.tracing.service_name, "tiers.pipeline": settings.pipeline}
