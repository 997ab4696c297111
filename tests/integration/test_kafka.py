"""The dev Kafka broker is a real one, and Spark's Kafka connector jars fit the installed pyspark.

The Spark job runs in its own process (this file, run as a script): `spark.jars` only reaches the
driver's classpath when the JVM starts, so a session in the test process could inherit a JVM that
another test started without the connector.
"""

from __future__ import annotations

import collections
import json
import os
import pathlib
import re
import subprocess
import sys
import uuid

from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic
from conftest import wait_for

from tiers import devenv
from tiers.devenv import jars, kafka


def _admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def _create_topic(bootstrap: str, partitions: int) -> str:
    topic = f"t-{uuid.uuid4().hex[:10]}"
    admin = _admin(bootstrap)  # kept until the result is in: a dropped client cancels it
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)]
    )
    futures[topic].result(timeout=30)
    return topic


def _produce(bootstrap: str, topic: str, records: list[tuple[str, str]]) -> None:
    failures: list[KafkaError] = []

    def delivered(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            failures.append(error)

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"})
    for key, value in records:
        producer.produce(topic, key=key, value=value, on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(30) == 0, "messages still queued after 30 s"
    assert failures == []


def _consume(bootstrap: str, topic: str, count: int, timeout_s: float = 60) -> list[Message]:
    """Reads `count` messages from the start of `topic` in a new consumer group."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages: list[Message] = []
    try:
        for _ in range(int(timeout_s)):
            for message in consumer.consume(num_messages=count, timeout=1):
                assert message.error() is None, message.error()
                messages.append(message)
            if len(messages) >= count:
                break
    finally:
        consumer.close()
    assert len(messages) == count, f"read {len(messages)} of {count} messages from {topic}"
    return messages


def test_a_topic_keeps_every_message_in_key_order_and_grows(
    dev_cluster: devenv.DevCluster,
) -> None:
    bootstrap = dev_cluster.kafka_bootstrap
    topic = _create_topic(bootstrap, partitions=3)
    sent = [(f"user-{i % 50}", str(i)) for i in range(1000)]
    _produce(bootstrap, topic, sent)

    received = _consume(bootstrap, topic, len(sent))

    pairs = [(m.key().decode(), m.value().decode()) for m in received]  # type: ignore[union-attr]
    assert sorted(pairs) == sorted(sent)  # none lost, none duplicated
    by_key: dict[str, list[int]] = collections.defaultdict(list)
    partitions_of_key: dict[str, set[int]] = collections.defaultdict(set)
    for message, (key, value) in zip(received, pairs, strict=True):
        by_key[key].append(int(value))
        partitions_of_key[key].add(message.partition())  # type: ignore[arg-type]
    assert all(values == sorted(values) for values in by_key.values())  # per key, in order
    assert all(len(parts) == 1 for parts in partitions_of_key.values())
    assert {m.partition() for m in received} == {0, 1, 2}

    admin = _admin(bootstrap)
    admin.create_partitions([NewPartitions(topic, 6)])[topic].result(timeout=30)
    wait_for(
        lambda: len(admin.list_topics(topic=topic, timeout=10).topics[topic].partitions) == 6,
        timeout_s=30,
        what="6 partitions in the topic's metadata",
    )


def test_dev_env_exports_the_bootstrap_address(dev_cluster: devenv.DevCluster) -> None:
    tiers = [sys.executable, "-m", "tiers.cli", "dev", "--state-dir", str(dev_cluster.state_dir)]
    exports = subprocess.run([*tiers, "env"], capture_output=True, text=True, check=True).stdout
    assert f"export KAFKA_BOOTSTRAP={dev_cluster.kafka_bootstrap}\n" in exports
    assert kafka.serves_metadata(dev_cluster.kafka_bootstrap)


def test_spark_moves_a_topic_through_the_kafka_connector(
    dev_cluster: devenv.DevCluster, tmp_path: pathlib.Path
) -> None:
    bootstrap = dev_cluster.kafka_bootstrap
    source, sink = _create_topic(bootstrap, partitions=2), _create_topic(bootstrap, partitions=1)
    sent = [(f"k{i}", f"event {i}") for i in range(200)]
    _produce(bootstrap, source, sent)

    job = subprocess.run(
        [sys.executable, __file__, bootstrap, source, sink, str(tmp_path / "checkpoint"),
         ",".join(str(jar) for jar in jars.connector_jars())],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"},
    )  # fmt: skip
    assert job.returncode == 0, job.stderr[-6000:]
    assert json.loads(job.stdout.strip().splitlines()[-1]) == {"rows": len(sent)}

    received = _consume(bootstrap, sink, len(sent))
    pairs = {(m.key().decode(), m.value().decode()) for m in received}  # type: ignore[union-attr]
    assert pairs == {(key, value.upper()) for key, value in sent}


def test_the_connector_jars_add_only_what_pyspark_lacks() -> None:
    import pyspark

    def artifacts(folder: pathlib.Path) -> set[str]:
        return {re.sub(r"-\d[^-]*(-\d+)?\.jar$", "", jar.name) for jar in folder.glob("*.jar")}

    connector = {re.sub(r"-\d[^-]*\.jar$", "", jar.name) for jar in jars.connector_jars()}
    assert connector == {
        "spark-sql-kafka-0-10_2.13",
        "spark-token-provider-kafka-0-10_2.13",
        "kafka-clients",
        "commons-pool2",
    }
    assert not connector & artifacts(pathlib.Path(pyspark.__file__).parent / "jars")


def test_a_restarted_broker_keeps_its_address_and_data(tmp_path: pathlib.Path) -> None:
    broker = kafka.start(tmp_path / "logs", tmp_path / "kafka", name="kafka-restart")
    try:
        topic = _create_topic(broker.bootstrap, partitions=1)
        _produce(broker.bootstrap, topic, [("a", "1"), ("b", "2")])
    finally:
        broker.stop()

    again = kafka.start(tmp_path / "logs", tmp_path / "kafka", name="kafka-restart")
    try:
        assert again.bootstrap == broker.bootstrap
        received = _consume(again.bootstrap, topic, 2)
        assert [m.value() for m in received] == [b"1", b"2"]
    finally:
        again.stop()


def _spark_job(bootstrap: str, source: str, sink: str, checkpoint: str, jar_list: str) -> int:
    """Upper-cases every value of `source` into `sink` with Structured Streaming; returns rows."""
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("tiers-kafka-smoke")
        .config("spark.jars", jar_list)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    try:
        events = (
            spark.readStream.format("kafka")
            .option("kafka.bootstrap.servers", bootstrap)
            .option("subscribe", source)
            .option("startingOffsets", "earliest")
            .load()
        )
        upper = events.select("key", F.upper(F.col("value").cast("string")).alias("value"))
        query = (
            upper.writeStream.format("kafka")
            .option("kafka.bootstrap.servers", bootstrap)
            .option("topic", sink)
            .option("checkpointLocation", checkpoint)
            .trigger(availableNow=True)
            .start()
        )
        query.awaitTermination(180)
        if query.exception() is not None:
            raise RuntimeError(str(query.exception()))
        return sum(int(progress["numInputRows"]) for progress in query.recentProgress)
    finally:
        spark.stop()


if __name__ == "__main__":
    rows = _spark_job(*sys.argv[1:6])
    print(json.dumps({"rows": rows}))
