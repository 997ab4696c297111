"""The Spark Structured Streaming job: Kafka in, the model on each event, Kafka out.

Micro-batches every `trigger_interval_ms`; `mapInArrow` scores each Arrow batch with the shared
model client; result records go to the output topic and failures to the dead-letter topic, both
through Spark's Kafka sink. The checkpoint makes a restart resume where the last batch ended.
The driver times each event to when its task's results were written, and publishes the stats
(`written`).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from tiers.runtime.stream import config, scoring, traces, written

log = logging.getLogger(__name__)


SINK_PRODUCER = {
    # A task hands the sink all its rows at once; the Java client's defaults (16 KB batches, no
    # linger) would send them as thousands of small produce requests that cost the JVM and the
    # broker more CPU than the scoring itself. Large batches filled for a few ms cost no latency.
    "kafka.batch.size": str(512 * 1024),
    "kafka.linger.ms": "5",
}
"""Options of the Kafka sink's producer."""

SOURCE_CONSUMER = {
    # A task's consumer, having read its offset range, has already asked the broker for what
    # follows; with no data the broker holds that fetch for fetch.max.wait.ms (500 ms by
    # default) and the next task on the partition waits it out before it can seek. Measured
    # here: half a second added to most small micro-batches.
    "kafka.fetch.max.wait.ms": "10",
}
"""Options of the Kafka source's consumers."""


def session(settings: config.StreamJobConfig) -> Any:
    from pyspark.sql import SparkSession

    # Workers must run this interpreter (its packages, tiers among them), not PATH's python3;
    # Spark reads the variable, not the equivalent conf, when it forks local workers.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(f"tiers-stream-{settings.pipeline.replace('/', '-')}")
    if settings.master is not None:
        builder = builder.master(settings.master)
    if settings.jars:
        builder = builder.config("spark.jars", ",".join(settings.jars))
    for key, value in {**config.SPARK_CONF, **settings.spark_conf}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def start(
    spark: Any,
    settings: config.StreamJobConfig,
    score: Any = None,
    stats: written.Publisher | None = None,
) -> Any:
    """Starts the query and returns it (a `StreamingQuery`). `score` is the `mapInArrow`
    function from Kafka records to (key, value, topic) rows; the model scorer unless given (the
    stream benchmark gives a pass-through, to measure Spark's own floor), counting into `stats`'
    accumulator. A traced job's records carry their trace context from the input's headers to
    the output's (`traces`)."""
    if score is None:
        tally = None if stats is None else stats.accumulator(spark)
        score = scoring.score_batches(settings.model_dump_json(), tally)
    bootstrap = settings.bootstrap_servers()
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .options(**SOURCE_CONSUMER)
        .option("subscribe", settings.input_topic)
        .option("startingOffsets", settings.starting_offsets)
        .option("failOnDataLoss", "false")
    )
    if settings.max_offsets_per_trigger is not None:
        reader = reader.option("maxOffsetsPerTrigger", str(settings.max_offsets_per_trigger))
    traced = settings.tracing is not None
    if traced:
        # Only a traced job reads the records' headers: Spark copies them into every row.
        reader = reader.option("includeHeaders", "true")
    records = reader.load().selectExpr(
        "CAST(key AS STRING) AS key",
        "CAST(value AS STRING) AS value",
        "partition",
        "offset",
        "unix_millis(timestamp) AS ts_ms",
        *(traces.INPUT_COLUMNS if traced else ()),
    )
    # One task per core rather than per Kafka partition: each task has a fixed cost (launch,
    # Python round trip, sink flush) that waves of small tasks would pay several times a batch.
    scored = records.coalesce(spark.sparkContext.defaultParallelism).mapInArrow(
        score, scoring.output_schema(settings)
    )
    if traced:
        scored = scored.selectExpr("key", "value", "topic", traces.OUTPUT_HEADERS)
    writer = (
        scored.writeStream.format("kafka")
        .options(**SINK_PRODUCER)
        .option("kafka.bootstrap.servers", bootstrap)
        .option("checkpointLocation", settings.checkpoint)
        .trigger(processingTime=f"{settings.trigger_interval_ms} milliseconds")
        .queryName(settings.pipeline.replace("/", "_").replace("-", "_"))
    )
    if settings.async_progress:
        writer = writer.option("asyncProgressTrackingEnabled", "true")
    return writer.start()


def warm_workers(spark: Any) -> None:
    """Starts the Python workers (pyarrow and this package imported) before the first
    micro-batch, so the first events after a (re)start do not wait seconds for them."""

    def touch(frames: Any) -> Any:
        import gc

        from tiers.runtime.stream import scoring as _  # noqa: F401

        # PySpark collects garbage after every task of a reused worker; freezing what the imports
        # made turns that from tens of milliseconds into microseconds.
        gc.freeze()
        yield from frames

    parallelism = spark.sparkContext.defaultParallelism
    spark.range(parallelism, numPartitions=parallelism).mapInArrow(touch, "id long").collect()


def run(settings: config.StreamJobConfig, score: Any = None) -> None:
    """Runs until the process is stopped; a SIGTERM stops the query between batches."""
    spark = session(settings)
    warm_workers(spark)
    stats = written.Publisher(settings)
    stats.start()
    query = start(spark, settings, score, stats)
    log.warning("streaming %s -> %s every %d ms", settings.input_topic, settings.output_topic,
                settings.trigger_interval_ms)  # fmt: skip
    try:
        query.awaitTermination()
    finally:
        spark.stop()
        stats.stop()
