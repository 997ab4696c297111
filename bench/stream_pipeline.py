"""The stream benchmark's measurements: Kafka's own ceiling, and one pipeline run per variant (the
input preloaded, the job started, its results counted, then latency at constant rates).

Whether a run kept up at a rate is decided here too: a rate the job fell behind at makes it skip
the higher ones, and the report says why."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import pathlib
import sys
import time
from collections.abc import Iterator, Sequence

from tiers.devenv import jars
from tiers.runtime import providers
from tiers.runtime.modelcall import ModelCallConfig
from tiers.runtime.stream import config as stream_config

import kafka_load
import machine
import servers
import spark_progress
import stream_cpu
import stream_options

PROMPT = "Summarize: {text}"
JOB_READY_LOG = "streaming "
"""What the job logs once its query has started (tiers.runtime.stream.job.run)."""
JOB_STARTUP_TIMEOUT_S = 240.0
FIRST_RESULT_TIMEOUT_S = 180.0
STALL_TIMEOUT_S = 60.0
MAX_BACKLOG_S = 5.0
"""A constant-rate phase stops sending once this many seconds' worth of sends await results."""
DRAIN_TIMEOUT_S = 90.0
PASSTHROUGH_JOB = pathlib.Path(__file__).with_name("passthrough_job.py")
"""Spark's own pass-through: the same job with the model taken out."""


@dataclasses.dataclass(frozen=True)
class Ceiling:
    produce: kafka_load.Produced
    consume: kafka_load.Produced

    @property
    def per_s(self) -> float:
        """The lower of the two: a pipeline both reads and writes every event."""
        return min(self.produce.per_s, self.consume.per_s)


@dataclasses.dataclass(frozen=True)
class AtRate:
    """One constant-rate phase of a pipeline run, or the record that it was skipped."""

    rate_per_s: int
    measured: kafka_load.Paced | None = None
    """None: skipped, because the job did not keep up at `skipped_after`, a lower rate."""
    skipped_after: int | None = None
    window: tuple[float, float] | None = None
    """Wall-clock time from the first send to the last result: which batches were its own."""
    batches: spark_progress.Summary | None = None


@dataclasses.dataclass(frozen=True)
class PipelineRun:
    variant: stream_options.Variant
    preload: kafka_load.Produced
    job_start_s: float
    """From launching the job to its query having started (JVM, session, workers, query)."""
    counted: kafka_load.Counted
    dead_letters: int
    launched_s: float
    """time.monotonic() when the job was launched."""
    cpu: stream_cpu.Cpu
    batches: spark_progress.Summary | None
    latencies: list[AtRate]

    @property
    def scored_s(self) -> float:
        """From the first result to the last."""
        return self.counted.last_s - self.counted.first_s

    @property
    def after_query_start_s(self) -> float:
        """From the query having started (the job's JVM and workers up) to the last result."""
        return self.counted.last_s - self.launched_s - self.job_start_s

    @property
    def with_start_s(self) -> float:
        return self.counted.last_s - self.launched_s


def measure_all(
    settings: stream_options.Settings, workdir: pathlib.Path, clock: machine.Clock
) -> tuple[Ceiling, list[PipelineRun]]:
    """Kafka's ceiling, then every variant's pipeline run, on one broker started for them."""
    clock.say("starting a Kafka broker (KRaft, one node)")
    with kafka_load.broker(workdir) as broker:
        bootstrap = broker.bootstrap
        ceiling = kafka_ceiling(bootstrap, settings, clock)
        runs = [
            pipeline(kafka_load.broker_server(broker), bootstrap, settings, variant, workdir, clock)
            for variant in settings.variants
        ]
    return ceiling, runs


def kafka_ceiling(
    bootstrap: str, settings: stream_options.Settings, clock: machine.Clock
) -> Ceiling:
    topic = "bench-ceiling"
    kafka_load.create_topics(bootstrap, [topic], settings.partitions)
    clock.say(f"Kafka ceiling: producing {settings.ceiling_events:,} events")
    produced = kafka_load.produce_bulk(bootstrap, topic, settings.ceiling_events, tag="ceiling")
    clock.say(f"  produced {produced.per_s:,.0f} events/s; consuming them back")
    counted = kafka_load.count(
        bootstrap,
        [topic],
        settings.ceiling_events,
        first_timeout_s=30,
        stall_timeout_s=30,
    )
    consumed = kafka_load.Produced(counted.total, counted.last_s - counted.started_s)
    clock.say(f"  consumed {consumed.per_s:,.0f} events/s")
    return Ceiling(produced, consumed)


def pipeline(
    broker: servers.Server,
    bootstrap: str,
    settings: stream_options.Settings,
    variant: stream_options.Variant,
    workdir: pathlib.Path,
    clock: machine.Clock,
) -> PipelineRun:
    name = variant.name
    events = settings.events_for(variant)
    topics = [f"bench-{name}-in", f"bench-{name}-out", f"bench-{name}-dead"]
    input_topic, result_topics = topics[0], topics[1:]
    kafka_load.create_topics(bootstrap, topics, settings.partitions)
    clock.say(f"pipeline, {variant.calls}, mock {variant.mock}: loading {events:,} events")
    preload = kafka_load.produce_bulk(bootstrap, input_topic, events, tag="bulk")
    event_log = workdir / f"events-{name}"
    logs = workdir / "logs"
    with (
        servers.mock_backend(
            logs, latency_ms=variant.mock_latency_ms, name=f"mockllm-{name}"
        ) as mock,
        servers.redis(logs) as stats,
    ):
        job_config = _job_config(
            settings, variant, bootstrap, topics, mock, workdir / f"ckpt-{name}"
        )
        # As the operator runs it: the job publishes its stats (what status shows) to a Redis.
        job_config = job_config.model_copy(
            update={"stats_redis_url": f"redis://{servers.HOST}:{stats.port}/0"}
        )
        # The flags' settings, plus Spark's event log (what `--config` allows and flags do not).
        job_config = job_config.model_copy(
            update={"spark_conf": {**job_config.spark_conf, **spark_progress.spark_conf(event_log)}}
        )
        config_path = workdir / f"job-{name}.json"
        config_path.write_text(job_config.model_dump_json())
        clock.say("  starting the Spark job (JVM, session, Python workers)")
        launched = time.monotonic()
        with stream_job(config_path, logs, f"job-{name}", passthrough=variant.passthrough) as job:
            job_start_s = time.monotonic() - launched
            ready_wall = time.time()
            clock.say(f"  query started after {job_start_s:.1f} s; counting results")
            cpu_before = stream_cpu.cpu_now(job, mock, broker)
            counted = kafka_load.count(
                bootstrap,
                result_topics,
                events,
                first_timeout_s=FIRST_RESULT_TIMEOUT_S,
                stall_timeout_s=STALL_TIMEOUT_S,
                is_alive=lambda: _alive(job.pid),
                on_progress=lambda done: clock.say(f"  {done:,} of {events:,} results"),
            )
            cpu = stream_cpu.cpu_now(job, mock, broker).minus(cpu_before)
            scored_window = (ready_wall, time.time())
            if not _alive(job.pid):
                raise servers.ServerFailed(
                    f"the job exited:\n{servers.log_tail(logs / f'job-{name}.log')}"
                )
            dead_letters = counted.by_topic[result_topics[1]]
            rate = counted.total / max(1e-9, counted.last_s - launched - job_start_s)
            clock.say(
                f"  {counted.total:,} results ({dead_letters:,} dead letters), "
                f"{rate:,.0f} events/s from the query's start"
            )
            latencies: list[AtRate] = []
            # The pass-through writes the events themselves, not results the latency runs read.
            for rate_per_s in () if variant.passthrough else settings.rates:
                # A higher rate than one the job fell behind at would only measure the backlog.
                missed = [at.rate_per_s for at in latencies if fell_behind(at)]
                if missed and rate_per_s > min(missed):
                    latencies.append(AtRate(rate_per_s, skipped_after=min(missed)))
                    clock.say(f"  {rate_per_s:,} events/s {kept_up(latencies[-1])}")
                    continue
                if not kafka_load.caught_up(
                    bootstrap, input_topic, result_topics, timeout_s=DRAIN_TIMEOUT_S
                ):
                    clock.say(f"  still behind after {DRAIN_TIMEOUT_S:g} s; measuring anyway")
                clock.say(
                    f"  {rate_per_s:,} events/s: {settings.warmup_s:g} s warm-up, then "
                    f"{settings.duration_s:g} s timed"
                )
                window_start = time.time()
                measured = kafka_load.paced(
                    bootstrap,
                    input_topic,
                    result_topics,
                    rate_per_s=rate_per_s,
                    duration_s=settings.duration_s,
                    warmup_s=settings.warmup_s,
                    tag=f"rate{rate_per_s}",
                    max_backlog_s=MAX_BACKLOG_S,
                    drain_timeout_s=DRAIN_TIMEOUT_S,
                )
                latencies.append(AtRate(rate_per_s, measured, window=(window_start, time.time())))
                clock.say(
                    f"    sent {measured.sent:,} ({measured.sent_per_s:,.0f}/s), "
                    f"{measured.results:,} results, p95 "
                    f"{kafka_load.percentile(measured.end_to_end_ms, 0.95):,.0f} ms, "
                    f"kept up: {kept_up(latencies[-1])}"
                )
    batches = spark_progress.read(event_log)
    return PipelineRun(
        variant=variant,
        preload=preload,
        job_start_s=job_start_s,
        counted=counted,
        dead_letters=dead_letters,
        launched_s=launched,
        cpu=cpu,
        batches=spark_progress.summary(batches, *scored_window),
        latencies=[
            at
            if at.window is None
            else dataclasses.replace(at, batches=spark_progress.summary(batches, *at.window))
            for at in latencies
        ],
    )


def _job_config(
    settings: stream_options.Settings,
    variant: stream_options.Variant,
    bootstrap: str,
    topics: Sequence[str],
    mock: servers.Server,
    checkpoint: pathlib.Path,
) -> stream_config.StreamJobConfig:
    """What `job --bootstrap ... --backend openai-compatible=URL ...` builds from its flags."""
    return stream_config.StreamJobConfig(
        pipeline="bench/stream",
        bootstrap=bootstrap,
        input_topic=topics[0],
        output_topic=topics[1],
        dead_letter_topic=topics[2],
        model=ModelCallConfig(
            target=providers.parse_backend_flag(f"openai-compatible={mock.url}/v1", 0),
            model="gpt-4o-mini",
            prompt=PROMPT,
            route=variant.route,
            rows_per_request=max(1, variant.rows_per_request),
            max_in_flight=settings.max_in_flight,
        ),
        checkpoint=str(checkpoint),
        trigger_interval_ms=settings.trigger_ms,
        max_offsets_per_trigger=settings.max_offsets,
        starting_offsets="earliest",
        master="local[2]",
        jars=tuple(str(jar) for jar in jars.connector_jars()),
        spark_conf=settings.spark_conf,
    )


@contextlib.contextmanager
def stream_job(
    config_path: pathlib.Path, logs: pathlib.Path, name: str, *, passthrough: bool = False
) -> Iterator[servers.Server]:
    """The Spark job as a subprocess in its own process group (the JVM and workers in it)."""
    command = [str(PASSTHROUGH_JOB)] if passthrough else ["-m", "tiers.runtime.stream", "job"]
    argv = [sys.executable, *command, "--config", str(config_path)]
    ready = servers.log_says(logs / f"{name}.log", JOB_READY_LOG)
    with servers.running(
        name, argv, port=0, is_ready=ready, logs=logs, startup_timeout_s=JOB_STARTUP_TIMEOUT_S
    ) as job:
        yield job


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (exited, not yet reaped by `servers.running`)."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def kept_up(at: AtRate) -> str:
    if at.measured is None:
        return f"skipped: did not keep up at {at.skipped_after:,}/s"
    why = shortfall(at.measured)
    return "yes" if why is None else f"no: {why}"


def fell_behind(at: AtRate) -> bool:
    return at.measured is not None and shortfall(at.measured) is not None


def shortfall(measured: kafka_load.Paced) -> str | None:
    """Why the job did not keep up at the phase's rate; None when it did."""
    if measured.stopped_early:
        return f"{MAX_BACKLOG_S:g} s behind after {measured.send_seconds:.1f} s"
    if measured.sent_per_s < 0.95 * measured.rate_per_s:
        return f"the producer sent {measured.sent_per_s:,.0f}/s"
    if math.isnan(measured.caught_up_s):
        return f"{measured.sent - measured.results - measured.dead_letters:,} missing"
    if measured.caught_up_s > MAX_BACKLOG_S:
        return f"last result {measured.caught_up_s:.1f} s after the last send"
    return None
