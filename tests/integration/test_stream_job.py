"""The streaming job end to end: real Kafka, real Spark (local[2]), the mock model. Events in,
results out, none lost; poison events in the dead-letter topic; a killed job resumes from its
checkpoint; a broker restarted mid-stream loses nothing (and the StreamPipeline on it says Kafka
is unavailable, then recovers by itself); the push gateway takes events over HTTP
and pushes results over SSE; an event's trace goes from its headers to its output record's."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import pathlib
import secrets
import signal
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable

import pytest
import websockets.sync.client
from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from conftest import Collector, Kubectl, Processes, wait_for
from test_stream_operator import condition as pipeline_condition
from test_stream_operator import pipeline as stream_pipeline

from tiers import devenv
from tiers.devenv import kafka, otlp_receiver, processes
from tiers.runtime import mockllm, sparkjars

EVENTS = 300


def create_topics(bootstrap: str) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    names = {role: f"job-{role}-{suffix}" for role in ("in", "out", "dlq")}
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=2, replication_factor=1) for name in names.values()]
    )
    for future in futures.values():
        future.result(10)
    return names


@pytest.fixture
def topics(dev_cluster: devenv.DevCluster) -> dict[str, str]:
    return create_topics(dev_cluster.kafka_bootstrap)


def produce(bootstrap: str, topic: str, values: list[tuple[str, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for key, value in values:
        producer.produce(topic, key=key, value=value)
    producer.flush(10)


def reviews(first: int, last: int) -> list[tuple[str, bytes]]:
    return [
        (f"e{i}", json.dumps({"text": f"review number {i}"}).encode()) for i in range(first, last)
    ]


def start_job(
    bootstrap: str,
    topics: dict[str, str],
    mock: str,
    checkpoint: pathlib.Path,
    log_dir: pathlib.Path,
    *,
    stats_redis: str | None = None,
    flags: tuple[str, ...] = (),
) -> processes.Started:
    stats = ["--stats-redis", stats_redis, "--pipeline", "tests/job"] if stats_redis else []
    return processes.start(
        "stream-job",
        [sys.executable, "-m", "tiers.runtime.stream", "job",
         "--bootstrap", bootstrap, "--input", topics["in"], "--output", topics["out"],
         "--dead-letter", topics["dlq"], "--backend", f"openai-compatible={mock}/v1",
         "--prompt", "Summarize: {text}", "--checkpoint", str(checkpoint), "--trigger-ms", "500",
         *stats, *flags],
        log_dir=log_dir,
        # As the README runs it: the job finds the connector in the cache `tiers dev up` fills.
        env={name: value for name, value in os.environ.items() if name != sparkjars.ENV},
    )  # fmt: skip


def test_every_event_is_scored_once_and_poison_goes_to_the_dead_letter_topic(
    dev_cluster: devenv.DevCluster,
    topics: dict[str, str],
    services: Processes,
    tmp_path: pathlib.Path,
) -> None:
    mock = services.start("mockllm", "tiers.runtime.mockllm", "--latency-ms", "10")
    results, dead = (
        Collector(dev_cluster.kafka_bootstrap, topics["out"]),
        Collector(dev_cluster.kafka_bootstrap, topics["dlq"]),
    )
    events = reviews(0, EVENTS)
    poison = [("bad-json", b"{not json"), ("no-text", json.dumps({"body": "x"}).encode())]
    produce(dev_cluster.kafka_bootstrap, topics["in"], events[:150] + poison)
    run_job = functools.partial(
        start_job, dev_cluster.kafka_bootstrap, topics, mock, tmp_path / "checkpoint", tmp_path,
        stats_redis=dev_cluster.redis_url,
    )  # fmt: skip
    job = run_job()
    services.logs.append(job.log)
    try:
        wait_for(lambda: len(results.keys()) >= 150, timeout_s=180, what="the first results")
        # Killed without warning mid-stream, restarted on the same checkpoint: nothing is lost.
        os.killpg(job.pid, signal.SIGKILL)
        produce(dev_cluster.kafka_bootstrap, topics["in"], events[150:])
        job = run_job()
        wait_for(lambda: len(results.keys()) >= EVENTS, timeout_s=180, what="every result")
        wait_for(lambda: len(dead.keys()) >= 2, timeout_s=30, what="the dead letters")
    finally:
        processes.stop(job.pid)
        results.close()
        dead.close()
    assert results.keys() == {key for key, _ in events}
    record = next(r for r in results.records if r["key"] == "e7")
    assert (
        record["status"] == "ok"
        and record["output"]
        and record["input"] == {"text": "review number 7"}
    )
    assert record["processed_ts"] >= record["ingest_ts"]
    reasons = {r["key"]: r["reason"] for r in dead.records}
    assert reasons == {"bad-json": "unparseable", "no-text": "invalid_event"}


def test_completions_carry_many_events_per_request_and_each_events_trace_to_its_record(
    dev_cluster: devenv.DevCluster,
    topics: dict[str, str],
    services: Processes,
    tmp_path: pathlib.Path,
) -> None:
    """Many events per completions request, each with its own result; and, traced (one job
    start for both: it is most of a stream test's time), each producer's traceparent → the
    job's span of the event's model call → the output record's traceparent header. The job is
    stopped as soon as its records are out: its workers' spans reached the collector before."""
    receiver = otlp_receiver.OtlpReceiver()
    mock = services.start("mockllm", "tiers.runtime.mockllm")
    results, dead = (
        Collector(dev_cluster.kafka_bootstrap, topics["out"]),
        Collector(dev_cluster.kafka_bootstrap, topics["dlq"]),
    )
    events = reviews(0, EVENTS)
    trace = secrets.token_hex(16)
    sent = {key: f"00-{trace}-{secrets.token_hex(8)}-01" for key, _ in events}
    sent["no-text"] = f"00-{trace}-{secrets.token_hex(8)}-01"
    unsampled = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00"
    producer = Producer({"bootstrap.servers": dev_cluster.kafka_bootstrap, "linger.ms": 5})
    for key, value in [*events, ("no-text", b'{"body": "x"}')]:
        headers = [("traceparent", sent[key]), ("tracestate", "vendor=opaque")]
        producer.produce(topics["in"], key=key, value=value, headers=headers)
    producer.produce(topics["in"], key="quiet", value=b'{"text": "not sampled"}',
                     headers=[("traceparent", unsampled)])  # fmt: skip
    producer.flush(10)
    job = start_job(
        dev_cluster.kafka_bootstrap, topics, mock, tmp_path / "checkpoint", tmp_path,
        flags=("--route", "completions", "--rows-per-request", "32",
               "--otlp-endpoint", receiver.url),
    )  # fmt: skip
    services.logs.append(job.log)
    try:
        wait_for(lambda: len(results.keys()) >= EVENTS + 1, timeout_s=180, what="every result")
        wait_for(lambda: dead.keys(), timeout_s=30, what="the dead letter")
    finally:
        processes.stop(job.pid)
        results.close()
        dead.close()
        receiver.close()
    # Every task sent its spans before it ended, not up to an export interval (5 s) later.
    spans = receiver.spans()
    outputs = {r["key"]: r["output"] for r in results.records if r["key"] != "quiet"}
    assert outputs == {f"e{i}": f"Summarize: review number {i}" for i in range(EVENTS)}
    assert {r["key"]: r["reason"] for r in dead.records} == {"no-text": "invalid_event"}
    calls = mockllm.control.stats(mock)["total"]
    # 301 events in requests of up to 32: at least 10, and far fewer than one per event even
    # when Spark splits them into many small tasks.
    assert 10 <= calls <= EVENTS // 4, calls

    by_event = {
        (span.attributes["messaging.destination.partition.id"],
         span.attributes["messaging.kafka.offset"]): span
        for span in spans
    }  # fmt: skip
    assert len(by_event) == len(spans) == EVENTS + 1, "a span per sampled event, none for quiet"
    passed_on = {}
    received = [
        *zip(results.records, results.headers, strict=True),
        *zip(dead.records, dead.headers, strict=True),
    ]
    for record, headers in received:
        span = by_event.get((str(record["partition"]), record["offset"]))
        if record["key"] == "quiet":
            assert span is None
            assert headers == {"traceparent": unsampled.encode()}, "passed on as it came"
            continue
        assert span is not None
        assert (span.trace_id, span.parent_id) == (trace, sent[record["key"]].split("-")[2])
        assert headers == {
            "traceparent": f"00-{trace}-{span.span_id}-01".encode(),
            "tracestate": b"vendor=opaque",
        }
        passed_on[record["key"]] = headers["traceparent"].decode()
    assert len(passed_on) == EVENTS + 1
    e7 = next(r for r in results.records if r["key"] == "e7")
    span = by_event[(str(e7["partition"]), e7["offset"])]
    assert span.name == "text_completion gpt-4o-mini"
    assert span.resource["service.name"] == "tiers-stream"
    assert span.attributes["gen_ai.usage.output_tokens"] == e7["tokens_out"]
    assert span.attributes["tiers.cost_usd"] == float(e7["cost_usd"])
    no_text = by_event[(str(dead.records[0]["partition"]), dead.records[0]["offset"])]
    assert no_text.attributes["error.type"] == "invalid_event" and no_text.status_code == 2
    # Each request of many events carried the context of its first: a job's span, or quiet's.
    seen = mockllm.control.stats(mock)["traceparents"]
    assert len(seen) == calls and set(seen) <= {*passed_on.values(), unsampled}


def test_a_broker_restart_mid_stream_loses_no_event_and_the_pipeline_says_so(
    services: Processes,
    tmp_path: pathlib.Path,
    record_property: Callable[[str, object], None],
    kubectl: Kubectl,
    operator: str,
    namespace: str,
) -> None:
    """Kafka unreachable: the StreamPipeline's TopicsReady says KafkaUnavailable within seconds
    and comes back by itself; the job on its topics loses no event."""
    with contextlib.ExitStack() as cleanup:  # stops, last first: job, readers, pipeline, broker
        # A broker of the test's own, so that stopping it never disturbs the session's; started
        # again on the same data folder, it is back on the same port with topics and offsets.
        broker = kafka.start(tmp_path / "logs", tmp_path / "kafka", name="kafka-own")
        cleanup.callback(lambda: broker.stop())  # the restarted one, by then
        services.logs.append(broker.process.log)
        bootstrap = broker.bootstrap
        # The session's operator makes the pipeline's topics on it and reports on them; the job
        # runs here as a process on those topics (what the pipeline's Deployment runs).
        suffix = uuid.uuid4().hex[:8]
        topics = {role: f"{role}-{suffix}" for role in ("in", "out", "dlq")}
        kubectl.apply(stream_pipeline(bootstrap, topics), namespace=namespace)
        cleanup.callback(kubectl.run, "delete", "spipe", "summaries", "-n", namespace, "--wait",
                         "--timeout=60s", check=False)  # fmt: skip  # while the broker is up
        ready = functools.partial(pipeline_condition, kubectl, namespace)
        wait_for(lambda: ready("Ready").get("status") == "True", timeout_s=60, what="Ready")
        mock = services.start("mockllm", "tiers.runtime.mockllm", "--latency-ms", "10")
        results, dead = Collector(bootstrap, topics["out"]), Collector(bootstrap, topics["dlq"])
        cleanup.callback(results.close)
        cleanup.callback(dead.close)
        # One idempotent producer throughout: what it sends while the broker is down waits in
        # its queue and is delivered once the broker is back, never twice.
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5,
                             "enable.idempotence": True, "message.timeout.ms": 90_000})  # fmt: skip
        failures: list[str] = []

        def delivered(error: KafkaError | None, _: Message) -> None:
            if error is not None:
                failures.append(str(error))

        def send(values: list[tuple[str, bytes]]) -> None:
            for key, value in values:
                producer.produce(topics["in"], key=key, value=value, on_delivery=delivered)
                producer.poll(0)

        job = start_job(bootstrap, topics, mock, tmp_path / "checkpoint", tmp_path)
        cleanup.callback(processes.stop, job.pid)
        services.logs.append(job.log)
        send(reviews(0, 100))
        wait_for(lambda: len(results.keys()) >= 100, timeout_s=300, what="events flowing")
        send(reviews(100, 150))
        broker.stop()  # mid-stream: the job is reading, scoring and writing
        stopped = time.monotonic()
        send(reviews(150, 200))
        # The outage itself: the job's reads and writes fail meanwhile; the pipeline says so.
        said = wait_for(
            lambda: (c := ready("TopicsReady")).get("reason") == "KafkaUnavailable" and c,
            timeout_s=30, what="TopicsReady KafkaUnavailable",
        )  # fmt: skip
        noticed_s = time.monotonic() - stopped
        assert said["status"] == "False" and bootstrap in said["message"]
        assert ready("Ready")["status"] == "False"
        broker = kafka.start(tmp_path / "logs", tmp_path / "kafka", name="kafka-own")
        assert broker.bootstrap == bootstrap
        outage_s, restarted = time.monotonic() - stopped, time.monotonic()
        wait_for(lambda: ready("Ready").get("status") == "True", timeout_s=60, what="Ready again")
        recovered_s = time.monotonic() - restarted
        send([*reviews(200, EVENTS), ("poison", b"{not json")])
        assert producer.flush(60) == 0 and failures == [], failures
        wait_for(lambda: len(results.keys()) >= EVENTS, timeout_s=120, what="every result")
        wait_for(lambda: dead.keys(), timeout_s=30, what="the dead letter")
        assert processes.is_alive(job.pid), "the job exited in the outage instead of riding it out"
    assert results.keys() == {key for key, _ in reviews(0, EVENTS)}, "no event lost"
    duplicates = len(results.records) - len(results.keys())
    record_property("duplicate_results", duplicates)  # at-least-once: allowed, but counted
    print(f"{duplicates} duplicate results of {EVENTS} events across the broker restart")
    print(f"Kafka down {outage_s:.0f} s: KafkaUnavailable after {noticed_s:.1f} s,"
          f" Ready again {recovered_s:.1f} s after the restart, 0 events lost")  # fmt: skip
    assert {r["key"] for r in dead.records} == {"poison"}


def test_the_push_gateway_takes_events_and_pushes_their_results(
    dev_cluster: devenv.DevCluster,
    topics: dict[str, str],
    services: Processes,
    tmp_path: pathlib.Path,
) -> None:
    mock = services.start("mockllm", "tiers.runtime.mockllm")
    push = services.start(
        "push", "tiers.runtime.stream", "push", "--bootstrap", dev_cluster.kafka_bootstrap,
        "--input", topics["in"], "--output", topics["out"], health_path="/healthz",
    )  # fmt: skip
    received: list[bytes] = []
    subscribed = threading.Event()

    def subscribe() -> None:
        with urllib.request.urlopen(push + "/events/results?key=hello-1", timeout=120) as stream:
            for line in stream:
                subscribed.set()  # the gateway's first line confirms the subscription
                if line.startswith(b"data: "):
                    received.append(line[6:])
                    return

    threading.Thread(target=subscribe, daemon=True).start()
    assert subscribed.wait(30), "the SSE subscription was not confirmed"
    over_websocket: list[str] = []
    connected = threading.Event()

    def listen() -> None:
        url = push.replace("http://", "ws://") + "/events/ws?key=hello-0"
        with websockets.sync.client.connect(url) as socket:
            connected.set()
            over_websocket.append(str(socket.recv(timeout=180)))

    threading.Thread(target=listen, daemon=True).start()
    assert connected.wait(30), "the WebSocket did not connect"
    job = start_job(dev_cluster.kafka_bootstrap, topics, mock, tmp_path / "checkpoint", tmp_path)
    services.logs.append(job.log)
    try:
        request = urllib.request.Request(
            push + "/events",
            data=json.dumps(
                [{"id": "hello-0", "text": "first"}, {"id": "hello-1", "text": "second"}]
            ).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202 and json.load(response)["keys"] == ["hello-0", "hello-1"]
        wait_for(lambda: received, timeout_s=180, what="a result over SSE")
        wait_for(lambda: over_websocket, timeout_s=60, what="a result over the WebSocket")
    finally:
        processes.stop(job.pid)
    record = json.loads(received[0])
    assert record["key"] == "hello-1" and record["input"]["text"] == "second"
    assert json.loads(over_websocket[0])["key"] == "hello-0", "each subscriber gets its key only"
