"""One micro-batch through the stream job's scoring function, against a real mock model server
(no Spark: the function takes the columns Spark hands it)."""

from __future__ import annotations

import pickle
from collections import Counter
from collections.abc import Iterator
from typing import Any

import orjson
import pyarrow
import pytest

from tiers.devenv import otlp_receiver
from tiers.runtime import mockllm, modelcall, providers
from tiers.runtime.stats import histogram, window
from tiers.runtime.stream import config, events, scoring, traces, written
from tiers.runtime.tracing import config as tracing_config


@pytest.fixture(scope="module")
def mock_url() -> Iterator[str]:
    with mockllm.running() as url:
        yield url


def settings(url: str, prompt: str = "Summarize: {text}") -> config.StreamJobConfig:
    backend = providers.BackendConfig(
        name="mock", provider="openai-compatible", model="*", base_url=url
    )
    return config.StreamJobConfig(
        bootstrap="unused:9092",
        input_topic="in",
        output_topic="out",
        dead_letter_topic="dlq",
        model=modelcall.ModelCallConfig(target=backend, model="gpt-4o-mini", prompt=prompt),
        checkpoint="/tmp/unused",
    )


def frame(*values: str | None) -> dict[str, list[Any]]:
    """One Arrow batch of Kafka records as `score_batches` hands it on: columns by name."""
    return {
        "key": [f"k{i}" for i in range(len(values))],
        "value": list(values),
        "partition": [0] * len(values),
        "offset": list(range(len(values))),
        "ts_ms": [1_700_000_000_000] * len(values),
    }


def test_every_event_gets_a_result_record_on_the_output_topic(mock_url: str) -> None:
    rows = scoring.score_frame(
        frame(orjson.dumps({"text": "the cat sat"}).decode(), '{"text": "a dog ran"}'),
        settings(mock_url),
    )
    assert [(key, topic) for key, _, topic in rows] == [("k0", "out"), ("k1", "out")]
    record = orjson.loads(rows[0][1])
    assert record["status"] == "ok" and record["output"]
    assert record["input"] == {"text": "the cat sat"}
    assert record["tokens_in"] > 0 and float(record["cost_usd"]) > 0
    assert record["ingest_ts"] == 1_700_000_000_000 and record["processed_ts"] > record["ingest_ts"]


def test_the_arrow_function_turns_record_batches_into_sink_rows(mock_url: str) -> None:
    columns = frame('{"text": "one"}', "not json", '{"text": "three"}')
    batch = pyarrow.RecordBatch.from_pydict(columns)
    score = scoring.score_batches(settings(mock_url).model_dump_json())
    [out] = list(score(iter([batch])))
    assert out.schema.names == ["key", "value", "topic"]
    assert out.schema.field("value").type == pyarrow.binary()
    assert out.column("key").to_pylist() == ["k0", "k1", "k2"]
    assert out.column("topic").to_pylist() == ["out", "dlq", "out"]
    assert orjson.loads(out.column("value")[2].as_py())["output"] == "Summarize: three"
    [empty] = list(score(iter([batch.slice(0, 0)])))
    assert empty.num_rows == 0


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("not json at all", "unparseable"),
        ("[1, 2, 3]", "unparseable"),
        (None, "unparseable"),
        ('{"body": "no text field"}', "invalid_event"),
    ],
)
def test_a_poison_event_goes_to_the_dead_letter_topic_with_its_reason(
    mock_url: str, value: str | None, reason: str
) -> None:
    rows = scoring.score_frame(frame('{"text": "fine"}', value), settings(mock_url))
    assert [topic for _, _, topic in rows] == ["out", "dlq"]
    dead = orjson.loads(rows[1][1])
    assert dead["reason"] == reason and dead["error"]
    assert dead["value"] == value, "the original event is kept for replay"
    assert (dead["partition"], dead["offset"]) == (0, 1)


def test_a_model_that_keeps_failing_dead_letters_the_event_without_failing_the_batch(
    mock_url: str,
) -> None:
    mockllm.control.fail_next(mock_url, 3, status=500)
    rows = scoring.score_frame(frame('{"text": "unlucky"}'), settings(mock_url))
    (row,) = rows
    dead = orjson.loads(row[1])
    assert row[2] == "dlq" and dead["reason"] == "model_error" and dead["attempts"] == 3


def test_an_event_without_a_key_is_keyed_by_its_position() -> None:
    event = events.Event(None, "{}", 3, 42, 0)
    assert event.id == "3-42"


TRACE, PRODUCER = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
UNSAMPLED = f"00-{'ab' * 16}-{'cd' * 8}-00"
CLIENT = 3  # OTLP's SpanKind


@pytest.fixture
def receiver() -> Iterator[otlp_receiver.OtlpReceiver]:
    collector = otlp_receiver.OtlpReceiver()
    yield collector
    collector.close()


def traced(url: str, receiver: otlp_receiver.OtlpReceiver, ratio: float = 1.0) -> Any:
    return settings(url).model_copy(
        update={
            "tracing": tracing_config.TracingConfig(
                otlp_endpoint=receiver.url,
                sample_ratio=ratio,
                service_name="tiers-stream",
                export_interval_s=0.1,
            )
        }
    )


def with_headers(
    columns: dict[str, list[Any]], *headers: tuple[str | None, str | None]
) -> dict[str, list[Any]]:
    return {
        **columns,
        traces.TRACEPARENT: [parent for parent, _ in headers],
        traces.TRACESTATE: [state for _, state in headers],
    }


def test_an_events_trace_goes_from_its_headers_through_its_model_call_to_its_record(
    mock_url: str, receiver: otlp_receiver.OtlpReceiver
) -> None:
    columns = with_headers(
        frame('{"text": "traced"}', '{"text": "not sampled"}', '{"text": "new"}', "not json"),
        (f"00-{TRACE}-{PRODUCER}-01", "vendor=1"),
        (UNSAMPLED, None),
        (None, None),
        (f"00-{TRACE}-{PRODUCER}-01", None),
    )
    rows = scoring.score_frame(columns, traced(mock_url, receiver))

    spans = receiver.wait_for(lambda found: len(found) >= 3)
    assert len(spans) == 3, "no span for the event whose producer's trace is not sampled"
    by_offset = {span.attributes["messaging.kafka.offset"]: span for span in spans}
    first, new, poison = by_offset[0], by_offset[2], by_offset[3]
    assert (first.trace_id, first.parent_id) == (TRACE, PRODUCER)
    assert (poison.trace_id, poison.parent_id) == (TRACE, PRODUCER)
    assert new.parent_id == "" and new.trace_id != TRACE
    # Each record carries its span's context on; an unsampled one's goes on as it came.
    assert [row[3:] for row in rows] == [
        (f"00-{TRACE}-{first.span_id}-01", "vendor=1"),
        (UNSAMPLED, None),
        (f"00-{new.trace_id}-{new.span_id}-01", None),
        (f"00-{TRACE}-{poison.span_id}-01", None),
    ]
    # So does each model call.
    seen = mockllm.control.stats(mock_url)["traceparents"]
    assert {rows[0][3], UNSAMPLED, rows[2][3]} <= set(seen)
    record = orjson.loads(rows[0][1])
    assert first.name == "chat gpt-4o-mini" and first.kind == CLIENT
    assert first.attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "tiers.pipeline": "local/pipeline",
        "messaging.system": "kafka",
        "messaging.destination.name": "in",
        "messaging.destination.partition.id": "0",
        "messaging.kafka.offset": 0,
        "gen_ai.usage.input_tokens": record["tokens_in"],
        "gen_ai.usage.output_tokens": record["tokens_out"],
        "tiers.cost_usd": float(record["cost_usd"]),
        "tiers.attempts": 1,
    }
    assert first.resource == {"service.name": "tiers-stream", "tiers.pipeline": "local/pipeline"}
    # The span is the model call's own time; a poison event's, its batch's at the model client.
    assert first.end_ns - first.start_ns == record["model_latency_ms"] * 1_000_000
    assert poison.end_ns - poison.start_ns >= first.end_ns - first.start_ns
    assert poison.attributes["error.type"] == "unparseable" and poison.status_code == 2
    assert rows[3][2] == "dlq"


def test_a_producers_sampled_trace_is_followed_whatever_the_ratio(
    mock_url: str, receiver: otlp_receiver.OtlpReceiver
) -> None:
    columns = with_headers(
        frame('{"text": "a"}', '{"text": "b"}'), (f"00-{TRACE}-{PRODUCER}-01", None), (None, None)
    )
    rows = scoring.score_frame(columns, traced(mock_url, receiver, ratio=0.0))
    (span,) = receiver.wait_for(lambda found: len(found) >= 1)
    assert span.parent_id == PRODUCER
    assert rows[1][3:] == (None, None), "an event the ratio leaves out passes nothing on"


def test_a_producers_malformed_trace_headers_are_not_passed_on_and_fail_nothing(
    mock_url: str, receiver: otlp_receiver.OtlpReceiver
) -> None:
    # Kafka headers are any bytes: text no HTTP header may carry (not Latin-1, a line break)
    # must neither fail the task (the pipeline would stop on the record) nor reach the model.
    columns = with_headers(
        frame('{"text": "a"}', '{"text": "b"}', '{"text": "c"}'),
        (f"00-{TRACE}-{PRODUCER}-01", "vendor=\u20ac"),
        (UNSAMPLED, "vendor=1\r\nx-injected: 1"),
        (f"00-{TRACE}-{PRODUCER[:-1]}\u20ac-01", None),
    )
    rows = scoring.score_frame(columns, traced(mock_url, receiver))
    assert [topic for _, _, topic, *_ in rows] == ["out", "out", "out"]
    spans = receiver.wait_for(lambda found: len(found) >= 2)
    by_offset = {span.attributes["messaging.kafka.offset"]: span for span in spans}
    assert by_offset[0].parent_id == PRODUCER, "a malformed tracestate alone is dropped"
    assert rows[0][3:] == (f"00-{TRACE}-{by_offset[0].span_id}-01", None)
    assert rows[1][3:] == (UNSAMPLED, None)
    assert by_offset[2].parent_id == "", "a malformed traceparent starts a trace of its own"


def test_a_traced_jobs_arrow_rows_carry_the_context_columns(
    mock_url: str, receiver: otlp_receiver.OtlpReceiver
) -> None:
    columns = with_headers(frame('{"text": "one"}'), (UNSAMPLED, None))
    score = scoring.score_batches(traced(mock_url, receiver).model_dump_json())
    [out] = list(score(iter([pyarrow.RecordBatch.from_pydict(columns)])))
    assert out.schema.names == ["key", "value", "topic", "traceparent", "tracestate"]
    assert out.column("traceparent").to_pylist() == [UNSAMPLED]
    [empty] = list(score(iter([pyarrow.RecordBatch.from_pydict(columns).slice(0, 0)])))
    assert empty.num_columns == 5 and empty.num_rows == 0


def test_a_tasks_spans_reach_the_collector_before_the_task_ends(
    mock_url: str, receiver: otlp_receiver.OtlpReceiver
) -> None:
    """Spark may end a worker without warning once its task is done (no atexit runs): the
    `mapInArrow` function returns only once its spans are sent, not at the next export."""
    hourly = traced(mock_url, receiver)
    assert hourly.tracing is not None
    hourly = hourly.model_copy(
        update={"tracing": hourly.tracing.model_copy(update={"export_interval_s": 3600.0})}
    )
    columns = with_headers(frame('{"text": "one"}', '{"text": "two"}'), (None, None), (None, None))
    score = scoring.score_batches(hourly.model_dump_json())
    [out] = list(score(iter([pyarrow.RecordBatch.from_pydict(columns)])))
    received = {span.span_id for span in receiver.spans()}
    sent = {parent.split("-")[2] for parent in out.column("traceparent").to_pylist()}
    assert len(sent) == 2 and received == sent


def test_spans_a_worker_cannot_export_are_said_in_its_log_at_most_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    unexported = traces.Unexported(clock=lambda: now[0])
    with caplog.at_level("WARNING", logger=traces.__name__):
        unexported("exported", 512)
        unexported("dropped", 1)
        unexported("dropped", 3)
        now[0] = traces.SAY_EVERY_S
        unexported("failed", 512)
    assert [r.getMessage() for r in caplog.records] == [
        "spans not exported by this worker so far: {'dropped': 1}",
        "spans not exported by this worker so far: {'dropped': 4, 'failed': 512}",
    ]


def test_a_batch_adds_its_counts_and_its_events_timestamps_untimed_to_the_tally(
    mock_url: str,
) -> None:
    tally = written.Tally()
    scoring.score_frame(frame('{"text": "one"}', "not json"), settings(mock_url), tally)
    assert (tally.counts.units, tally.counts.errors) == (2, 1)
    assert tally.counts.tokens_in > 0 and tally.counts.cost_nano_usd > 0
    assert not tally.counts.latency, "timed in the driver once the task has written the results"
    assert tally.timestamps_ms == {1_700_000_000_000: 2}
    assert tally.next_offsets == {0: 2}


def test_the_driver_times_a_task_when_its_additions_arrive_not_when_it_scored() -> None:
    arrived: list[written.Tally] = []
    driver = written.TallyParam(arrived.append)
    worker = pickle.loads(pickle.dumps(driver))  # as Spark ships it to the Python workers
    total = worker.zero(written.Tally())
    for first in (0, 3):  # two Arrow batches of one task
        batch = written.Tally(window.Counts(units=3), Counter({1000: 2, 1200: 1}), {0: first + 3})
        total = worker.addInPlace(total, batch)
    assert arrived == [] and total.counts.units == 6 and total.next_offsets == {0: 6}
    kept = driver.addInPlace(driver.zero(written.Tally()), total)  # the task ended
    assert arrived == [total] and kept == written.Tally(), "the driver's own value stays empty"
    timed = total.timed(3000)  # written at 3 s: events stamped at 1.0 s and 1.2 s
    assert timed.units == 6 and timed.latency.total() == 6
    for quantile, exact in ((0.2, 1800), (0.9, 2000)):
        read = histogram.percentile_ms(timed.latency, quantile)
        assert abs(read - exact) <= histogram.error_bound_ms(exact), (quantile, read)


def test_a_failure_to_time_a_task_drops_its_stats_not_the_merge() -> None:
    def broken(_: written.Tally) -> None:
        raise ValueError("a bug in the driver's side")

    driver = written.TallyParam(broken)
    assert driver.addInPlace(written.Tally(), written.Tally()) == written.Tally()
