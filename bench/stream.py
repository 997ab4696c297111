"""The stream tier's benchmark: Kafka -> Spark job -> mock model -> Kafka, beside Kafka alone.

In one run, on this machine, with a real single-node Kafka broker on 127.0.0.1:

- Kafka's own ceiling: one producer writes N ~200-byte events, one consumer reads them back;
- sustained throughput of the pipeline: the input topic is loaded with N events first, then the
  Spark job (`python -m tiers.runtime.stream job`, `local[2]`) starts and scores them against
  the mock model; the bench counts the results in the output (and dead-letter) topic. One run
  per variant: each events-per-request (default 1: chat, one request per event; and 64:
  completions, a list of prompts per request), and within it each mock latency (0 and 20 ms);
- latency at constant rates: with the job caught up, events go in at each rate with their send
  time in them; each result is timed when the bench reads it back. A variant that does not keep
  up at one rate skips the higher ones.

    .venv/bin/python bench/stream.py           # the full run, under 10 minutes
    .venv/bin/python bench/stream.py --quick   # a smoke run, 2-3 minutes

It prints a Markdown report and writes it to --out. Every process it starts (broker, mock, job)
is stopped when it ends, also on Ctrl-C, SIGTERM or an error.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import pathlib
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Literal

from tiers.devenv import jars
from tiers.runtime import providers
from tiers.runtime.modelcall import ModelCallConfig
from tiers.runtime.stream import config as stream_config

import kafka_load
import machine
import options
import servers
import spark_progress
import table

THROUGHPUT_TARGET_PER_S = 50_000
LATENCY_TARGET_RATE_PER_S = 10_000
P95_TARGET_MS = 1_000.0
PROMPT = "Summarize: {text}"
JOB_READY_LOG = "streaming "
"""What the job logs once its query has started (tiers.runtime.stream.job.run)."""
JOB_STARTUP_TIMEOUT_S = 240.0
FIRST_RESULT_TIMEOUT_S = 180.0
STALL_TIMEOUT_S = 60.0
MAX_BACKLOG_S = 5.0
"""A constant-rate phase stops sending once this many seconds' worth of sends await results."""
DRAIN_TIMEOUT_S = 90.0
CHAT_EVENTS_CAP = 100_000
PASSTHROUGH_JOB = pathlib.Path(__file__).with_name("passthrough_job.py")
"""Events preloaded for a one-request-per-event variant: at its few thousand events/s, more
events only make the run longer, not the figure steadier."""
DEFAULT_OUT = pathlib.Path(__file__).resolve().parent / "results" / "stream.md"
NONE = table.NONE


@dataclasses.dataclass(frozen=True)
class Variant:
    """One pipeline run: how the job calls the model, and the mock model's latency."""

    rows_per_request: int
    """Events per model request: 1 calls chat, above 1 calls completions with a list of prompts;
    0 calls no model at all (`passthrough_job.py`: Spark's own floor)."""
    mock_latency_ms: int

    @property
    def passthrough(self) -> bool:
        return self.rows_per_request == 0

    @property
    def route(self) -> Literal["chat", "completions"]:
        return "completions" if self.rows_per_request > 1 else "chat"

    @property
    def name(self) -> str:
        """Unique per variant: it names the run's topics, checkpoint, event log, config and logs."""
        if self.passthrough:
            return "passthrough"
        return f"{self.route}{self.rows_per_request}-mock{self.mock_latency_ms}ms"

    @property
    def calls(self) -> str:
        if self.passthrough:
            return "none: Spark pass-through"
        noun = "event" if self.rows_per_request == 1 else "events"
        return f"{self.route}, {self.rows_per_request} {noun}/request"

    @property
    def mock(self) -> str:
        return "-" if self.passthrough else f"{self.mock_latency_ms} ms"


@dataclasses.dataclass(frozen=True)
class Settings:
    ceiling_events: int
    events: int
    partitions: int
    mock_latencies_ms: tuple[int, ...]
    rates: tuple[int, ...]
    duration_s: float
    warmup_s: float
    """Seconds at each rate before the timed part: the job settles into the rate first."""
    trigger_ms: int
    max_offsets: int
    max_in_flight: int
    rows_per_request: tuple[int, ...]
    """Events per model request, one variant each: 1 calls chat, above 1 calls completions."""
    out: pathlib.Path
    workdir: pathlib.Path | None
    """Where logs, checkpoints and Spark's event logs go and stay; None: a temporary folder."""
    spark_conf: dict[str, str]
    """Spark settings over the job's own, e.g. to compare JIT or batch-size choices."""
    passthrough: bool
    """Also run the job with the model taken out, the ceiling the real job is divided by."""

    @property
    def variants(self) -> list[Variant]:
        """Spark's pass-through first (no model, so one run), then events per request outer and
        mock latency inner: the order the runs go and the rows read."""
        floor = [Variant(0, 0)] if self.passthrough else []
        return floor + [
            Variant(rows, latency)
            for rows in self.rows_per_request
            for latency in self.mock_latencies_ms
        ]

    def events_for(self, variant: Variant) -> int:
        """The events preloaded for a variant's run: chat's are capped at CHAT_EVENTS_CAP."""
        if variant.route == "chat" and not variant.passthrough:
            return min(self.events, CHAT_EVENTS_CAP)
        return self.events


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(
        prog="bench/stream.py",
        description="Kafka -> Spark -> mock model -> Kafka: throughput and latency beside Kafka.",
    )
    parser.add_argument(
        "--events",
        type=int,
        help=f"events for the pipeline (400,000; quick 20,000); chat variants take at most "
        f"{CHAT_EVENTS_CAP:,}",
    )
    parser.add_argument(
        "--ceiling-events", type=int, help="events for Kafka's own ceiling (500,000; quick 100,000)"
    )
    parser.add_argument("--partitions", type=int, default=6, help="partitions per topic (6)")
    parser.add_argument(
        "--mock-latency-ms",
        default="0,20",
        help="the mock model's fixed latency, ms, comma-separated: one pipeline run each (0,20)",
    )
    parser.add_argument(
        "--rates",
        help="constant rates for latency, events/s, comma-separated (1000,10000,20000; quick "
        "500,2000); a variant that does not keep up at one rate skips the higher ones",
    )
    parser.add_argument("--duration", type=float, help="timed seconds per rate (20; quick 5)")
    parser.add_argument(
        "--warmup",
        type=float,
        help="seconds at each rate before the timed part, not timed (5; quick 2)",
    )
    parser.add_argument("--trigger-ms", type=int, default=500, help="the job's trigger (500)")
    parser.add_argument(
        "--max-offsets", type=int, default=25_000, help="maxOffsetsPerTrigger (25,000)"
    )
    parser.add_argument(
        "--max-in-flight", type=int, default=256, help="model calls open per Python worker (256)"
    )
    parser.add_argument(
        "--rows-per-request",
        default="1,64",
        help="events per model request, comma-separated: one variant each, every mock latency "
        "within it; 1 calls chat once per event, above 1 calls completions with a list of "
        "prompts (1,64)",
    )
    parser.add_argument(
        "--no-passthrough",
        action="store_true",
        help="skip the run with the model taken out (Spark's own pass-through floor)",
    )
    parser.add_argument(
        "--spark-conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Spark setting over the job's own (repeatable)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT, help="Markdown report")
    parser.add_argument(
        "--workdir",
        type=pathlib.Path,
        help="keep the logs, checkpoints and Spark event logs here (default: a temporary folder)",
    )
    args = parser.parse_args(argv)
    settings = Settings(
        ceiling_events=args.ceiling_events or (100_000 if args.quick else 500_000),
        events=args.events or (20_000 if args.quick else 400_000),
        partitions=args.partitions,
        mock_latencies_ms=options.numbers(
            parser, "--mock-latency-ms", args.mock_latency_ms, minimum=0
        ),
        rates=options.numbers(
            parser,
            "--rates",
            args.rates or ("500,2000" if args.quick else "1000,10000,20000"),
            minimum=1,
        ),
        duration_s=args.duration or (5.0 if args.quick else 20.0),
        warmup_s=args.warmup if args.warmup is not None else (2.0 if args.quick else 5.0),
        trigger_ms=args.trigger_ms,
        max_offsets=args.max_offsets,
        max_in_flight=args.max_in_flight,
        rows_per_request=options.numbers(
            parser, "--rows-per-request", args.rows_per_request, minimum=1
        ),
        out=args.out,
        workdir=args.workdir,
        spark_conf=dict(pair.split("=", 1) for pair in args.spark_conf),
        passthrough=not args.no_passthrough,
    )
    if min(settings.events, settings.ceiling_events, settings.partitions) < 1:
        parser.error("--events, --ceiling-events and --partitions must be at least 1")
    return settings


@dataclasses.dataclass(frozen=True)
class Ceiling:
    produce: kafka_load.Produced
    consume: kafka_load.Produced

    @property
    def per_s(self) -> float:
        """The lower of the two: a pipeline both reads and writes every event."""
        return min(self.produce.per_s, self.consume.per_s)


@dataclasses.dataclass(frozen=True)
class Cpu:
    """CPU seconds (user + system) each part used while the pipeline worked through the events."""

    jvm: float
    """The job's Spark JVM (driver and executor in one, `local[2]`)."""
    python_workers: float
    """Spark's Python daemon and workers (`mapInArrow`: parsing, model calls, records)."""
    driver: float
    """The job's own Python process (PySpark's driver side: it mostly waits)."""
    mock: float
    kafka: float
    bench: float

    def minus(self, earlier: Cpu) -> Cpu:
        return Cpu(
            *(
                now - then
                for now, then in zip(
                    dataclasses.astuple(self), dataclasses.astuple(earlier), strict=True
                )
            )
        )


def cpu_now(job: servers.Server, mock: servers.Server, broker: servers.Server) -> Cpu:
    """The CPU time so far of each part. The job is a process tree, not one process group:
    PySpark's daemon makes a group of its own for the workers it forks."""
    jvm = workers = driver = 0.0
    for pid, command, seconds in machine.process_tree(job.pid):
        if pid == job.pid:
            driver += seconds
        elif command == "java":
            jvm += seconds
        else:
            workers += seconds
    return Cpu(
        jvm=jvm,
        python_workers=workers,
        driver=driver,
        mock=servers.cpu_seconds(mock),
        kafka=servers.cpu_seconds(broker),
        bench=_own_cpu(),
    )


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
    variant: Variant
    preload: kafka_load.Produced
    job_start_s: float
    """From launching the job to its query having started (JVM, session, workers, query)."""
    counted: kafka_load.Counted
    dead_letters: int
    launched_s: float
    """time.monotonic() when the job was launched."""
    cpu: Cpu
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


def kafka_ceiling(bootstrap: str, settings: Settings, clock: machine.Clock) -> Ceiling:
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
    settings: Settings,
    variant: Variant,
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
    with servers.mock_backend(
        logs, latency_ms=variant.mock_latency_ms, name=f"mockllm-{name}"
    ) as mock:
        job_config = _job_config(
            settings, variant, bootstrap, topics, mock, workdir / f"ckpt-{name}"
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
            cpu_before = cpu_now(job, mock, broker)
            counted = kafka_load.count(
                bootstrap,
                result_topics,
                events,
                first_timeout_s=FIRST_RESULT_TIMEOUT_S,
                stall_timeout_s=STALL_TIMEOUT_S,
                is_alive=lambda: _alive(job.pid),
                on_progress=lambda done: clock.say(f"  {done:,} of {events:,} results"),
            )
            cpu = cpu_now(job, mock, broker).minus(cpu_before)
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
                missed = [at.rate_per_s for at in latencies if _fell_behind(at)]
                if missed and rate_per_s > min(missed):
                    latencies.append(AtRate(rate_per_s, skipped_after=min(missed)))
                    clock.say(f"  {rate_per_s:,} events/s {_kept_up(latencies[-1])}")
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
                    f"kept up: {_kept_up(latencies[-1])}"
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
    settings: Settings,
    variant: Variant,
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


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def measure_all(settings: Settings, workdir: pathlib.Path, clock: machine.Clock) -> tuple[
    Ceiling, list[PipelineRun]
]:  # fmt: skip
    clock.say("starting a Kafka broker (KRaft, one node)")
    with kafka_load.broker(workdir) as broker:
        bootstrap = broker.bootstrap
        ceiling = kafka_ceiling(bootstrap, settings, clock)
        runs = [
            pipeline(kafka_load.broker_server(broker), bootstrap, settings, variant, workdir, clock)
            for variant in settings.variants
        ]
    return ceiling, runs


def machine_facts() -> dict[str, str]:
    return {
        **machine.common_facts(),
        "pyspark": machine.package_version("pyspark"),
        "java": machine.first_line(["java", "-version"], stderr=True),
        "kafka broker": f"{jars.KAFKA.version} (KRaft, 1 node, 127.0.0.1)",
        "confluent-kafka (bench client)": machine.package_version("confluent-kafka"),
    }


def _variants_phrase(settings: Settings) -> str:
    """How each variant calls the mock, in the words of the tables' calls column."""
    phrases = []
    for rows in settings.rows_per_request:
        variant = Variant(rows, 0)
        if variant.route == "chat":
            phrases.append(
                f"'{variant.calls}' sends one chat request per event; its input holds "
                f"min(--events, {CHAT_EVENTS_CAP:,}) events, since at its few thousand events/s "
                "more would only make the run longer"
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
    settings: Settings, facts: dict[str, str], ceiling: Ceiling, runs: Sequence[PipelineRun]
) -> str:
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
        f"in flight per Python worker; {_variants_phrase(settings)}. 'none: Spark pass-through' "
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
        f"result arrived within {MAX_BACKLOG_S:g} s of the last send and the producer held the "
        f"rate; a rate stops early once {MAX_BACKLOG_S:g} s of sends await results, and a "
        "variant that did not keep up at one rate skips the higher ones (they would measure "
        "only its backlog). "
        f"Target: p95 ≤ {P95_TARGET_MS:,.0f} ms at {LATENCY_TARGET_RATE_PER_S:,} events/s.",
    ]
    return "\n\n".join(sections) + "\n"


def _throughput_table(ceiling: Ceiling, runs: Sequence[PipelineRun]) -> str:
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


def _spans(run: PipelineRun) -> list[tuple[str, float]]:
    """The spans a run's throughput is measured over, each ending at its last result."""
    return [
        ("query start", run.after_query_start_s),
        ("first result", run.scored_s),
        ("job launch", run.with_start_s),
    ]


def _throughput_row(
    name: str,
    variant: Variant | None,
    measured: kafka_load.Produced,
    ceiling: Ceiling | None,
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


def _variant_cells(variant: Variant | None) -> list[str]:
    """The calls and mock columns that every table starts its pipeline rows with."""
    return [NONE, NONE] if variant is None else [variant.calls, variant.mock]


def _details_table(runs: Sequence[PipelineRun]) -> str:
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


def _latency_table(runs: Sequence[PipelineRun]) -> str:
    header = ["calls", "mock", "rate/s", "sent/s", "results", "e2e p50 ms", "e2e p95 ms"]
    header += ["e2e p99 ms", "e2e max ms", "in job p50", "in job p95", "batch ms p50", "kept up"]
    header += ["p95 vs 1 s"]
    rows = []
    for run in runs:
        for at in run.latencies:
            measured, batches = at.measured, at.batches
            if measured is None:
                cells = [f"{at.rate_per_s:,}", *[NONE] * 9, _kept_up(at), NONE]
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
                    _kept_up(at),
                    _p95_verdict(measured.rate_per_s, p95),
                ]
            )
    return table.markdown_table(header, rows)


def _kept_up(at: AtRate) -> str:
    if at.measured is None:
        return f"skipped: did not keep up at {at.skipped_after:,}/s"
    shortfall = _shortfall(at.measured)
    return "yes" if shortfall is None else f"no: {shortfall}"


def _fell_behind(at: AtRate) -> bool:
    return at.measured is not None and _shortfall(at.measured) is not None


def _shortfall(measured: kafka_load.Paced) -> str | None:
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


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    clock = machine.Clock()
    facts = machine_facts()
    print(table.facts(facts), file=sys.stderr, flush=True)
    try:
        with (
            machine.sigterm_unwinds(),
            options.workdir(settings.workdir, prefix="tiers-bench-stream-") as workdir,
        ):
            ceiling, runs = measure_all(settings, workdir, clock)
    except servers.ServerFailed as failed:
        print(f"a process did not start or died: {failed}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; every process the bench started is stopped", file=sys.stderr)
        return 130
    facts["load average after the run"] = machine.load_average()
    facts["bench wall time"] = f"{time.monotonic() - clock.started:,.0f} s"
    table.publish(render(settings, facts, ceiling, runs), settings.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
