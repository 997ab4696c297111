"""The streaming job end to end: real Kafka, real Spark (local[2]), the mock model. Events in,
results out, none lost; poison events in the dead-letter topic; a killed job resumes from its
checkpoint; the push gateway takes events over HTTP and pushes results over SSE."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import sys
import threading
import urllib.request
import uuid
from typing import Any

import pytest
import websockets.sync.client
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from conftest import Processes, wait_for

from tiers import devenv
from tiers.devenv import jars, processes

EVENTS = 300


@pytest.fixture
def topics(dev_cluster: devenv.DevCluster) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    names = {role: f"job-{role}-{suffix}" for role in ("in", "out", "dlq")}
    admin = AdminClient({"bootstrap.servers": dev_cluster.kafka_bootstrap})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=2, replication_factor=1) for name in names.values()]
    )
    for future in futures.values():
        future.result(10)
    return names


def produce(bootstrap: str, topic: str, values: list[tuple[str, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for key, value in values:
        producer.produce(topic, key=key, value=value)
    producer.flush(10)


class Collector:
    """Reads a topic from the beginning in a thread, keeping every record by key."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.records: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": uuid.uuid4().hex,
                "auto.offset.reset": "earliest",
            }
        )
        self._consumer.subscribe([topic])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self._consumer.poll(0.2)
            if message is not None and not message.error():
                self.records.append(json.loads(message.value()))

    def keys(self) -> set[str]:
        return {record["key"] for record in list(self.records)}

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()


def start_job(
    dev_cluster: devenv.DevCluster,
    topics: dict[str, str],
    mock: str,
    checkpoint: pathlib.Path,
    log_dir: pathlib.Path,
) -> processes.Started:
    return processes.start(
        "stream-job",
        [sys.executable, "-m", "tiers.runtime.stream", "job",
         "--bootstrap", dev_cluster.kafka_bootstrap, "--input", topics["in"], "--output", topics["out"],
         "--dead-letter", topics["dlq"], "--backend", f"openai-compatible={mock}/v1",
         "--prompt", "Summarize: {text}", "--checkpoint", str(checkpoint), "--trigger-ms", "500",
         "--stats-redis", dev_cluster.redis_url, "--pipeline", "tests/job"],
        log_dir=log_dir,
        env={**os.environ, "TIERS_SPARK_JARS": ",".join(str(j) for j in jars.connector_jars())},
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
    events = [(f"e{i}", json.dumps({"text": f"review number {i}"}).encode()) for i in range(EVENTS)]
    poison = [("bad-json", b"{not json"), ("no-text", json.dumps({"body": "x"}).encode())]
    produce(dev_cluster.kafka_bootstrap, topics["in"], events[:150] + poison)
    job = start_job(dev_cluster, topics, mock, tmp_path / "checkpoint", tmp_path)
    services.logs.append(job.log)
    try:
        wait_for(lambda: len(results.keys()) >= 150, timeout_s=180, what="the first results")
        # Killed without warning mid-stream, restarted on the same checkpoint: nothing is lost.
        os.killpg(job.pid, signal.SIGKILL)
        produce(dev_cluster.kafka_bootstrap, topics["in"], events[150:])
        job = start_job(dev_cluster, topics, mock, tmp_path / "checkpoint", tmp_path)
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
    job = start_job(dev_cluster, topics, mock, tmp_path / "checkpoint", tmp_path)
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
