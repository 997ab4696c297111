"""Spans, their W3C trace context, their OTLP encoding and their bounded export queue."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator

import pytest

from tiers.devenv import otlp_receiver
from tiers.runtime.tracing import config, export, otlp, spans

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.fixture
def receiver() -> Iterator[otlp_receiver.OtlpReceiver]:
    collector = otlp_receiver.OtlpReceiver()
    yield collector
    collector.close()


def collected() -> tuple[spans.Tracer, list[spans.Span]]:
    ended: list[spans.Span] = []
    return spans.Tracer(ended.append, rng=random.Random(7)), ended


def test_a_callers_sampled_traceparent_is_continued() -> None:
    tracer, ended = collected()
    span = tracer.start("chat", traceparent=f"00-{TRACE}-{PARENT}-01".encode(), tracestate=b"a=1")
    assert span is not None
    assert (span.trace_id.hex(), span.parent_id and span.parent_id.hex()) == (TRACE, PARENT)
    child = span.child("chat gpt-4o-mini", kind="client")
    assert child.headers() == {
        "traceparent": f"00-{TRACE}-{child.span_id.hex()}-01",
        "tracestate": "a=1",
    }
    child.end()
    span.end()
    span.end()
    assert ended == [child, span]


def test_a_callers_unsampled_trace_gets_no_span() -> None:
    tracer, _ = collected()
    assert tracer.start("chat", traceparent=f"00-{TRACE}-{PARENT}-00".encode()) is None


def test_an_unsampled_context_is_passed_on_as_it_came_and_a_malformed_one_not_at_all() -> None:
    unsampled = f"00-{TRACE}-{PARENT}-00".encode()
    assert spans.passed_on(unsampled, b"a=1") == {
        "traceparent": unsampled.decode(),
        "tracestate": "a=1",
    }
    assert spans.passed_on(unsampled) == {"traceparent": unsampled.decode()}
    assert spans.passed_on(b"00-nonsense") is None
    assert spans.passed_on(None, b"a=1") is None


@pytest.mark.parametrize(
    "header",
    [
        f"00-{TRACE}-{PARENT}-1",  # short
        f"00-{TRACE.upper()}-{PARENT}-01",  # upper case hex
        f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"ff-{TRACE}-{PARENT}-01",  # the forbidden version
        f"00-{TRACE}-{PARENT}-01-extra",  # version 00 has four fields
        f"00_{TRACE}-{PARENT}-01",
        f"00-{TRACE}-{PARENT}-01\n",  # nothing after the flags
        f"01-{TRACE}-{PARENT}-01x",  # a later version's fields follow a dash
    ],
)
def test_a_malformed_traceparent_starts_a_new_trace(header: str) -> None:
    assert spans.parse_traceparent(header.encode()) is None
    tracer, _ = collected()
    span = tracer.start("chat", traceparent=header.encode())
    assert span is not None and span.parent_id is None and span.trace_id.hex() != TRACE


def test_a_later_version_is_read_by_its_first_four_fields() -> None:
    found = spans.parse_traceparent(f"01-{TRACE}-{PARENT}-01-what-comes-next".encode())
    assert found is not None and found.trace_id.hex() == TRACE and found.sampled


def test_the_ratio_samples_about_that_share_of_new_traces() -> None:
    tracer = spans.Tracer(lambda span: None, sample_ratio=0.25, rng=random.Random(1))
    kept = sum(tracer.start("chat") is not None for _ in range(4000))
    assert 850 < kept < 1150
    never = spans.Tracer(lambda span: None, sample_ratio=0.0)
    assert all(never.start("chat") is None for _ in range(100))


def test_spans_encode_as_otlp_protobuf_a_collector_decodes() -> None:
    tracer, ended = collected()
    call = tracer.start("chat", traceparent=f"00-{TRACE}-{PARENT}-01".encode())
    assert call is not None
    call.attributes.update({"gen_ai.usage.input_tokens": 12, "tiers.cost_usd": 0.5, "ok": True})
    call.event("retry", {"tiers.backend": "primary"})
    call.error = "all backends failed"
    call.end()
    (span,) = otlp_receiver.decode(otlp.export_request(ended, resource={"service.name": "t"}))
    assert (span.trace_id, span.parent_id, span.span_id) == (TRACE, PARENT, call.span_id.hex())
    assert span.attributes == {"gen_ai.usage.input_tokens": 12, "tiers.cost_usd": 0.5, "ok": True}
    assert span.events == [("retry", {"tiers.backend": "primary"})]
    assert (span.status_code, span.status_message) == (2, "all backends failed")
    assert span.resource == {"service.name": "t"}
    assert span.kind == 2


async def no_wait(seconds: float) -> None:
    waits.append(seconds)


waits: list[float] = []


def test_a_full_queue_drops_new_spans_and_counts_them() -> None:
    counts: list[tuple[str, int]] = []
    settings = config.TracingConfig(otlp_endpoint="http://127.0.0.1:9", max_queue_spans=2)

    async def main() -> None:
        exporter = export.Exporter(
            settings, resource={}, counted=lambda outcome, n: counts.append((outcome, n)),
            sleep=no_wait,
        )  # fmt: skip
        tracer = spans.Tracer(exporter.add)
        for _ in range(3):
            span = tracer.start("chat")
            assert span is not None
            span.end()
        assert counts == [("dropped", 1)]
        await exporter.close()  # nothing listens on port 9: the queued two fail, counted

    asyncio.run(main())
    assert counts == [("dropped", 1), ("failed", 2)]


def ended_spans(tracer: spans.Tracer, count: int) -> list[bytes]:
    made = []
    for _ in range(count):
        span = tracer.start("chat")
        assert span is not None
        span.end()
        made.append(span.span_id)
    return made


def test_a_batch_the_collector_refuses_for_a_while_is_sent_again_until_taken(
    receiver: otlp_receiver.OtlpReceiver,
) -> None:
    receiver.refuse(2, status=503, retry_after="1")
    counts: list[tuple[str, int]] = []
    waits.clear()
    settings = config.TracingConfig(otlp_endpoint=receiver.url)

    async def main() -> list[bytes]:
        exporter = export.Exporter(
            settings, resource={}, counted=lambda outcome, n: counts.append((outcome, n)),
            sleep=no_wait,
        )  # fmt: skip
        made = ended_spans(spans.Tracer(exporter.add), 5)
        await exporter.close()
        return made

    made = asyncio.run(main())
    received = receiver.spans()
    assert (receiver.refused, receiver.requests) == (2, 1)
    assert [span.span_id for span in received] == [span_id.hex() for span_id in made]
    assert counts == [("exported", 5)]
    assert waits == [1.0, 1.0], "the collector's Retry-After, within the backoff's bound"


def test_a_batch_is_tried_a_bounded_number_of_times_while_new_spans_queue_up_to_the_bound(
    receiver: otlp_receiver.OtlpReceiver,
) -> None:
    receiver.refuse(100, status=429)
    counts: list[tuple[str, int, int]] = []
    """(outcome, spans, exports refused so far) as the exporter counts them."""
    settings = config.TracingConfig(
        otlp_endpoint=receiver.url, max_queue_spans=4, max_export_batch=2, export_interval_s=0.01
    )
    backing_off = asyncio.Event()
    go_on = asyncio.Event()

    async def held(seconds: float) -> None:
        backing_off.set()
        await go_on.wait()

    async def main() -> None:
        exporter = export.Exporter(
            settings, resource={},
            counted=lambda outcome, n: counts.append((outcome, n, receiver.refused)), sleep=held,
        )  # fmt: skip
        exporter.start()
        tracer = spans.Tracer(exporter.add)
        ended_spans(tracer, 2)  # a full batch: the exporter takes it at once
        await asyncio.wait_for(backing_off.wait(), 10)
        # While that batch waits for its next try, spans still end at once, up to the bound.
        ended_spans(tracer, 5)
        assert [outcome for outcome, _, _ in counts] == ["dropped"]
        go_on.set()
        async with asyncio.timeout(10):
            while len(counts) < 2:
                await asyncio.sleep(0.01)
        await exporter.close()

    asyncio.run(main())
    assert counts[:2] == [("dropped", 1, 1), ("failed", 2, export.RETRIES.max_attempts)]
    assert [(outcome, n) for outcome, n, _ in counts[2:]] == [("failed", 2)] * 2
    assert receiver.spans() == []


def test_a_refusal_that_is_not_retryable_loses_the_batch_at_once(
    receiver: otlp_receiver.OtlpReceiver,
) -> None:
    receiver.refuse(1, status=400)
    counts: list[tuple[str, int]] = []

    async def main() -> None:
        exporter = export.Exporter(
            config.TracingConfig(otlp_endpoint=receiver.url), resource={},
            counted=lambda outcome, n: counts.append((outcome, n)), sleep=no_wait,
        )  # fmt: skip
        ended_spans(spans.Tracer(exporter.add), 3)
        await exporter.close()

    asyncio.run(main())
    assert counts == [("failed", 3)] and receiver.refused == 1


def test_a_batch_larger_than_a_chunk_reaches_the_collector_whole(
    receiver: otlp_receiver.OtlpReceiver,
) -> None:
    counts: list[tuple[str, int]] = []
    settings = config.TracingConfig(otlp_endpoint=receiver.url)

    async def main() -> list[bytes]:
        tracer, exporter = export.tracer(
            settings, resource={}, counted=lambda outcome, n: counts.append((outcome, n))
        )
        made = ended_spans(tracer, 3 * export.ENCODE_CHUNK + 5)
        await exporter.close()
        return made

    made = asyncio.run(main())
    received = receiver.spans()
    assert [span.span_id for span in received] == [span_id.hex() for span_id in made]
    assert {span.resource["service.name"] for span in received} == {"tiers-gateway"}
    assert counts == [("exported", len(made))]


async def _counted_until(counts: list[tuple[str, int]], expected: list[tuple[str, int]]) -> None:
    async with asyncio.timeout(10):
        while counts != expected:
            await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    ("endpoint", "model"),
    [
        ("http://127.0.0.1:99999", "gpt-4o-mini"),  # a port the URL pattern lets through
        ("http://127.0.0.1:9", "gpt-\ud800"),  # a string protobuf cannot encode
    ],
)
def test_a_batch_that_cannot_be_sent_is_counted_and_the_export_goes_on(
    endpoint: str, model: str
) -> None:
    counts: list[tuple[str, int]] = []
    settings = config.TracingConfig(otlp_endpoint=endpoint, max_export_batch=1)

    async def main() -> None:
        tracer, exporter = export.tracer(
            settings, resource={}, counted=lambda outcome, n: counts.append((outcome, n))
        )
        exporter.start()
        for sent in (1, 2):  # the second is sent by the same task, still alive
            span = tracer.start("chat")
            assert span is not None
            span.attributes["gen_ai.request.model"] = model
            span.end()
            await _counted_until(counts, [("failed", 1)] * sent)
        await exporter.close()

    asyncio.run(main())


def started_in_a_thread(settings: config.TracingConfig) -> Iterator[export.Exporter]:
    """An exporter started on an event loop of its own thread, as a Spark worker's is."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def started() -> export.Exporter:
        exporter = export.Exporter(settings, resource={}, sleep=no_wait)
        exporter.start()
        return exporter

    exporter = asyncio.run_coroutine_threadsafe(started(), loop).result(10)
    try:
        yield exporter
    finally:
        asyncio.run_coroutine_threadsafe(exporter.close(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def test_a_drain_from_another_thread_returns_once_its_spans_are_sent(
    receiver: otlp_receiver.OtlpReceiver,
) -> None:
    """What a stream task does at its end: its spans reach the collector before it returns,
    not at the next export an hour later."""
    settings = config.TracingConfig(otlp_endpoint=receiver.url, export_interval_s=3600)
    for exporter in started_in_a_thread(settings):
        ended: list[spans.Span] = []
        made = ended_spans(spans.Tracer(ended.append), 3)
        exporter.add_threadsafe(ended)
        assert exporter.drain_threadsafe(5.0)
        assert [span.span_id for span in receiver.spans()] == [span_id.hex() for span_id in made]
        begun = time.monotonic()
        assert exporter.drain_threadsafe(5.0)
        assert time.monotonic() - begun < 1.0, "nothing queued: nothing to wait for"


def test_a_drain_does_not_wait_on_a_collector_that_is_away() -> None:
    settings = config.TracingConfig(otlp_endpoint="http://127.0.0.1:9", export_interval_s=3600)
    for exporter in started_in_a_thread(settings):
        ended: list[spans.Span] = []
        ended_spans(spans.Tracer(ended.append), 3)
        exporter.add_threadsafe(ended)
        begun = time.monotonic()
        assert not exporter.drain_threadsafe(5.0)  # refused: the first try says so
        assert not exporter.drain_threadsafe(5.0)  # still failing: no wait at all
        assert time.monotonic() - begun < 2.0
