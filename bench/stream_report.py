"""The stream benchmark's report: the machine's facts, and the throughput, where-the-time-went and
latency tables with the design's targets."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from tiers.devenv import jars

import kafka_load
import machine
import spark_progress
import stream_options
import stream_pipeline
import table

THROUGHPUT_TARGET_PER_S = 50_000
LATENCY_TARGET_RATE_PER_S = 10_000
P95_TARGET_MS = 1_000.0
NONE = table.NONE


def machine_facts() -> dict[str, str]:
    return {
        **machine.common_facts(),
        "pyspark": machine.package_version("pyspark"),
        "java": machine.first_line(["java", "-version"], stderr=True),
        "kafka broker": f"{jars.KAFKA.version} (KRaft, 1 node, 127.0.0.1)",
        "confluent-kafka (bench client)": machine.package_version("confluent-kafka"),
    }


def _variants_phrase(settings: stream_options.Settings) -> str:
    """How each variant calls the mock, in the words of the tables' calls column."""
    phrases = []
    for rows in settings.rows_per_request:
        variant = stream_options.Variant(rows, 0)
        if variant.route == "chat":
            phrases.append(
                f"'{variant.calls}' sends one chat request per event; its input holds "
                f"min(--events, {stream_options.CHAT_EVENTS_CAP:,}) events, since at its few "
                "thousand events/s more would only make the run longer"
            )
        else:
            phrases.append(
                f"'{variant.calls}' sends one completions request per {rows} events (a list of "
                "prompts; the mock answers with as many choices)"
            )
    latencies = " and ".join(f"{latency} ms" for latency in settings.mock_latencies_ms)
    return (
        f"one job run per variant: each events-per-request value and, within it, each mock "
        f"latency ({latencies}). {'; '.join(phrases)}"
    )


def render(
    settings: stream_options.Settings,
    facts: dict[str, str],
    ceiling: stream_pipeline.Ceiling,
    runs: Sequence[stream_pipeline.PipelineRun],
) -> str:
    backlog_s = stream_pipeline.MAX_BACKLOG_S
    sections = [
        "# Stream tier benchmark",
        table.facts(facts),
        "## Throughput",
        _throughput_table(ceiling, runs),
        f"Kafka rows: one confluent-kafka producer (linger 20 ms, batches up to 1 MB, acks=all) "
        f"writes ~{kafka_load.EVENT_BYTES}-byte JSON events into {settings.partitions} "
        "partitions until every one is acknowledged; one consumer reads them all back. ÷ Kafka "
        "divides by the lower of the two. Pipeline rows: the input topic holds all the events "
        "before the job starts (`startingOffsets=earliest`); the job is `python -m "
        f"tiers.runtime.stream job` on `local[2]`, trigger {settings.trigger_ms} ms, "
        f"maxOffsetsPerTrigger {settings.max_offsets:,}, {settings.max_in_flight} model calls "
        "in flight per Python worker, its stats published to a Redis of its own as the operator "
        f"runs it; {_variants_phrase(settings)}. 'none: Spark pass-through' "
        "is the same job, session, source, sink and settings with the model taken out "
        "(`bench/passthrough_job.py` copies each event to the output topic): what Spark "
        "Structured Streaming itself reaches here, and what '÷ Spark pass-through' divides by "
        "(over the same span). The bench counts "
        "records in the output and dead-letter topics. 'query start → last result' is the "
        "sustained figure: the job's JVM, Spark session and Python workers are up, and the "
        "events wait in Kafka. 'first result → last result' overstates it: a task writes its "
        "results only when its Arrow batch (up to 10,000 rows) is scored, so they arrive in "
        "bursts and the first burst comes a task's time after the start. 'job launch → last "
        "result' includes the job's start.",
        "## Where the time went",
        _details_table(runs),
        "Job start: from launching the process to its query running. Batches, from Spark's "
        "event log (`StreamingQueryProgress`), for the batches that started between the query's "
        "start and the last result. addBatch share: of the batches' time, the part spent running "
        "them (reading Kafka, the Python worker scoring, writing Kafka) rather than planning "
        "and committing. Spark rows/s: the batches' rows over their summed durations. CPU: "
        "user + system seconds per 10,000 events, over the same span, of the job's Spark JVM, "
        "its Python workers (daemon included), its Python driver process, the mock, the broker "
        "and the bench's own counting consumer; "
        f"{facts['cores (nproc)']} cores give as many CPU-seconds per second, shared with "
        "whatever else runs on the machine (see the load average).",
        "## Latency at a constant rate",
        _latency_table(runs),
        "With the job caught up, one producer (linger 1 ms) sends events on a schedule, each "
        f"with its send time in it: first {settings.warmup_s:g} s at the rate that are not "
        f"timed (the job settles into the rate), then {settings.duration_s:g} s that are; a "
        "consumer reads the output topic. End to end = the bench's "
        "receive time - the event's send time. In job = the result's `processed_ts - "
        "ingest_ts` (the Kafka timestamp, set when sent, to when the Python worker finished "
        "the batch; it leaves out the sink's write and the bench's read). Kept up: every "
        f"result arrived within {backlog_s:g} s of the last send and the producer held the "
        f"rate; a rate stops early once {backlog_s:g} s of sends await results, and a "
        "variant that did not keep up at one rate skips the higher ones (they would measure "
        "only its backlog). "
        f"Target: p95 ≤ {P95_TARGET_MS:,.0f} ms at {LATENCY_TARGET_RATE_PER_S:,} events/s.",
    ]
    return "\n\n".join(sections) + "\n"


def _throughput_table(
    ceiling: stream_pipeline.Ceiling, runs: Sequence[stream_pipeline.PipelineRun]
) -> str:
    header = ["measurement", "calls", "mock", "events", "seconds", "events/s", "÷ Kafka"]
    header += ["÷ Spark pass-through", "vs target"]
    rows = [
        _throughput_row("Kafka produce (1 producer)", None, ceiling.produce, None, None, False),
        _throughput_row("Kafka consume (1 consumer)", None, ceiling.consume, None, None, False),
    ]
    floor = next((run for run in runs if run.variant.passthrough), None)
    for run in runs:
        results = run.counted.total
        incomplete = "" if run.counted.complete else f" (incomplete: {results:,} results)"
        for span, seconds in _spans(run):
            name = f"pipeline: {span} → last result{incomplete}"
            measured = kafka_load.Produced(results, seconds)
            passthrough = None
            if floor is not None and not run.variant.passthrough:
                passthrough = kafka_load.Produced(floor.counted.total, dict(_spans(floor))[span])
            rows.append(_throughput_row(name, run.variant, measured, ceiling, passthrough))
    return table.markdown_table(header, rows)


def _spans(run: stream_pipeline.PipelineRun) -> list[tuple[str, float]]:
    """The spans a run's throughput is measured over, each ending at its last result."""
    return [
        ("query start", run.after_query_start_s),
        ("first result", run.scored_s),
        ("job launch", run.with_start_s),
    ]


def _throughput_row(
    name: str,
    variant: stream_options.Variant | None,
    measured: kafka_load.Produced,
    ceiling: stream_pipeline.Ceiling | None,
    passthrough: kafka_load.Produced | None,
    target: bool = True,
) -> list[str]:
    """`passthrough`: the job with the model taken out, over the same span, where there is one."""
    per_s = measured.per_s
    return [
        name,
        *_variant_cells(variant),
        f"{measured.events:,}",
        f"{measured.seconds:,.1f}",
        _number(per_s),
        NONE if ceiling is None else _share(per_s, ceiling.per_s),
        NONE if passthrough is None else _share(per_s, passthrough.per_s),
        _versus(per_s, THROUGHPUT_TARGET_PER_S) if target else NONE,
    ]


def _variant_cells(variant: stream_options.Variant | None) -> list[str]:
    """The calls and mock columns that every table starts its pipeline rows with."""
    return [NONE, NONE] if variant is None else [variant.calls, variant.mock]


def _details_table(runs: Sequence[stream_pipeline.PipelineRun]) -> str:
    header = ["calls", "mock", "load input ev/s", "job start s", "1st result s", "results", "dead"]
    header += ["batches", "rows/batch p50", "batch ms p50", "batch ms max", "addBatch share"]
    header += ["Spark rows/s"]
    header += ["CPU s/10k: JVM", "Py workers", "driver", "mock", "kafka", "bench"]
    rows = []
    for run in runs:
        batches = run.batches
        per_10k = 10_000 / max(1, run.counted.total)
        rows.append(
            [
                *_variant_cells(run.variant),
                _number(run.preload.per_s),
                f"{run.job_start_s:.1f}",
                f"{run.counted.first_s - run.launched_s:.1f}",
                f"{run.counted.total:,}",
                f"{run.dead_letters:,}",
                *_batch_cells(batches),
                *(f"{value * per_10k:.2f}" for value in dataclasses.astuple(run.cpu)),
            ]
        )
    return table.markdown_table(header, rows)


def _batch_cells(batches: spark_progress.Summary | None) -> list[str]:
    if batches is None:
        return [NONE] * 6
    return [
        f"{batches.batches:,}",
        _number(batches.rows_per_batch_p50),
        _number(batches.duration_p50_ms),
        _number(batches.duration_max_ms),
        NONE if math.isnan(batches.add_batch_share) else f"{batches.add_batch_share:.0%}",
        _number(batches.rows_per_s),
    ]


def _latency_table(runs: Sequence[stream_pipeline.PipelineRun]) -> str:
    header = ["calls", "mock", "rate/s", "sent/s", "results", "e2e p50 ms", "e2e p95 ms"]
    header += ["e2e p99 ms", "e2e max ms", "in job p50", "in job p95", "batch ms p50", "kept up"]
    header += ["p95 vs 1 s"]
    rows = []
    for run in runs:
        for at in run.latencies:
            measured, batches = at.measured, at.batches
            if measured is None:
                cells = [f"{at.rate_per_s:,}", *[NONE] * 9, stream_pipeline.kept_up(at), NONE]
                rows.append([*_variant_cells(run.variant), *cells])
                continue
            e2e = measured.end_to_end_ms
            p95 = kafka_load.percentile(e2e, 0.95)
            rows.append(
                [
                    *_variant_cells(run.variant),
                    f"{measured.rate_per_s:,}",
                    _number(measured.sent_per_s),
                    f"{measured.results:,} of {measured.sent:,}",
                    _number(kafka_load.percentile(e2e, 0.50)),
                    _number(p95),
                    _number(kafka_load.percentile(e2e, 0.99)),
                    _number(max(e2e, default=math.nan)),
                    _number(kafka_load.percentile(measured.in_job_ms, 0.50)),
                    _number(kafka_load.percentile(measured.in_job_ms, 0.95)),
                    NONE if batches is None else _number(batches.duration_p50_ms),
                    stream_pipeline.kept_up(at),
                    _p95_verdict(measured.rate_per_s, p95),
                ]
            )
    return table.markdown_table(header, rows)


def _p95_verdict(rate_per_s: int, p95_ms: float) -> str:
    if math.isnan(p95_ms):
        return NONE
    ratio = f"{p95_ms / P95_TARGET_MS:.2f}x"
    if rate_per_s != LATENCY_TARGET_RATE_PER_S:
        return ratio
    return f"{ratio} ({'met' if p95_ms <= P95_TARGET_MS else 'not met'})"


def _number(value: float) -> str:
    return NONE if math.isnan(value) else f"{value:,.0f}"


def _share(value: float, whole: float) -> str:
    return f"{value / whole:.1%}" if whole > 0 and not math.isnan(value) else NONE


def _versus(value: float, target: int) -> str:
    if math.isnan(value):
        return NONE
    verdict = "met" if value >= target else "not met"
    return f"{value / target:.2f}x of {target:,} ({verdict})"
