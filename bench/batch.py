"""The batch tier's benchmark: a JSON-lines file through the Spark job and the mock model, beside
Spark's own pass-through of the same file and a plain asyncio loop with the same client.

In one run, on this machine, with one Spark session (`local[2]`) that every Spark row shares:

- an untimed warm-up on a small file (JVM, Python workers, tokenizer), so every timed row sees a
  warm session;
- Spark's floors: a JSON copy of the file in the JVM alone, and `job.run` with the model taken
  out (`batch_passthrough.py`), which every job row is divided by;
- the job (`tiers.runtime.batch.job.run`) per variant: completions with 64 records per request
  and chat with one, each against the mock model at each latency (0 and 20 ms);
- the plain asyncio loop (`asyncio_loop.py`) over the same records, same client and config.

    .venv/bin/python bench/batch.py            # the full run, under 10 minutes on 2 cores
    .venv/bin/python bench/batch.py --quick    # a smoke run, about 2 minutes

It prints a Markdown report and writes it to --out. Every process it starts (the mock, the Spark
JVM and its workers) is stopped when it ends, also on Ctrl-C, SIGTERM or an error.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import pathlib
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from tiers.runtime.batch import config, job, scoring
from tiers.runtime.modelcall import EndpointTarget, ModelCallConfig

import asyncio_loop
import batch_passthrough
import machine
import options
import servers
import table

RECORDS_TARGET = 1_000_000
SECONDS_TARGET = 60.0
RATE_TARGET_PER_S = RECORDS_TARGET / SECONDS_TARGET
SHARE_TARGET = 0.85
"""Of Spark's pass-through of the same file, in the same run."""
PROMPT = "Classify: {text}"
MODEL = "gpt-4o-mini"
MAX_TOKENS = 16
WARMUP_RECORDS = 10_000
DEFAULT_OUT = pathlib.Path(__file__).resolve().parent / "results" / "batch.md"
NONE = table.NONE

Kind = Literal["copy", "passthrough", "job", "asyncio"]


@dataclasses.dataclass(frozen=True)
class Variant:
    kind: Kind
    records: int
    rows_per_request: int = 0
    """Records per model request: 1 calls chat, above 1 completions; 0 for Spark's floors."""
    mock_latency_ms: int = 0

    @property
    def route(self) -> Literal["chat", "completions"]:
        return "completions" if self.rows_per_request > 1 else "chat"

    @property
    def calls_model(self) -> bool:
        return self.kind in ("job", "asyncio")

    @property
    def name(self) -> str:
        """Unique per variant: it names the variant's output folder."""
        if not self.calls_model:
            return f"{self.kind}-{self.records}"
        return f"{self.kind}-{self.route}{self.rows_per_request}-mock{self.mock_latency_ms}ms"

    @property
    def label(self) -> str:
        if self.kind == "copy":
            return "Spark JSON copy (no Python worker)"
        if self.kind == "passthrough":
            return "Spark pass-through (the job, model taken out)"
        noun = "record" if self.rows_per_request == 1 else "records"
        runner = "job" if self.kind == "job" else "asyncio loop"
        return f"{runner}: {self.route}, {self.rows_per_request} {noun}/request"

    @property
    def mock(self) -> str:
        return f"{self.mock_latency_ms} ms" if self.calls_model else NONE


@dataclasses.dataclass(frozen=True)
class Settings:
    records: int
    chat_records: int
    """Chat variants' records (at most `records`): one request each, so far slower."""
    mock_latencies_ms: tuple[int, ...]
    rows_per_request: tuple[int, ...]
    max_in_flight: int
    partition_bytes: int
    spark_conf: dict[str, str]
    asyncio_latencies_ms: tuple[int, ...]
    """The mock latencies at which the asyncio loop's rows run too (none: no asyncio rows)."""
    repeat: int
    out: pathlib.Path
    workdir: pathlib.Path | None

    def records_for(self, rows_per_request: int) -> int:
        return min(self.records, self.chat_records) if rows_per_request == 1 else self.records

    @property
    def sizes(self) -> list[int]:
        """The input files' record counts: each variant reads the first N records of one file."""
        return sorted({self.records_for(rows) for rows in self.rows_per_request} | {self.records})

    @property
    def floors(self) -> list[Variant]:
        """Spark's JSON copy of the largest file; the pass-through of every file a job reads."""
        return [Variant("copy", self.records)] + [
            Variant("passthrough", size) for size in self.sizes
        ]

    def with_model(self, latency_ms: int) -> list[Variant]:
        """The rows against the mock at one latency: the job's, then the asyncio loop's."""
        kinds: tuple[Kind, ...] = ("job",)
        if latency_ms in self.asyncio_latencies_ms:
            kinds += ("asyncio",)
        return [
            Variant(kind, self.records_for(rows), rows, latency_ms)
            for kind in kinds
            for rows in self.rows_per_request
        ]

    @property
    def variants(self) -> list[Variant]:
        """Every row, in the order the runs go."""
        rows = list(self.floors)
        for latency in self.mock_latencies_ms:
            rows += self.with_model(latency)
        return rows


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(
        prog="bench/batch.py",
        description="A JSON-lines file through the batch job and the mock model, beside Spark's "
        "own pass-through and a plain asyncio loop.",
    )
    parser.add_argument(
        "--records", type=int, help="records in the file (1,000,000; quick 100,000)"
    )
    parser.add_argument(
        "--chat-records",
        type=int,
        help="records for the chat (1 record/request) variants (100,000; quick 20,000)",
    )
    parser.add_argument(
        "--mock-latency-ms",
        default="0,20",
        help="the mock model's fixed latency, ms, comma-separated: the model rows run at each "
        "(0,20)",
    )
    parser.add_argument(
        "--rows-per-request",
        default="64,1",
        help="records per model request, comma-separated: 1 calls chat once per record, above "
        "1 calls completions with a list of prompts (64,1)",
    )
    parser.add_argument(
        "--max-in-flight", type=int, default=256, help="model calls open per Python process (256)"
    )
    parser.add_argument(
        "--partition-bytes",
        type=int,
        default=config.BatchJobConfig.model_fields["partition_bytes"].default,
        help="input bytes per Spark task (the job's default, 2 MiB)",
    )
    parser.add_argument(
        "--spark-conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Spark setting over the job's own, for every Spark row (repeatable)",
    )
    parser.add_argument(
        "--asyncio-latency-ms",
        default="0",
        help="the mock latencies, of those above, at which the plain asyncio loop runs too, "
        "comma-separated (0)",
    )
    parser.add_argument(
        "--no-asyncio", action="store_true", help="skip the plain asyncio loop's rows"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of every row; the table shows medians (1)"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT, help="Markdown report")
    parser.add_argument(
        "--workdir",
        type=pathlib.Path,
        help="keep the input files and logs here (default: a temporary folder)",
    )
    args = parser.parse_args(argv)
    settings = Settings(
        records=args.records or (100_000 if args.quick else RECORDS_TARGET),
        chat_records=args.chat_records or (20_000 if args.quick else 100_000),
        mock_latencies_ms=options.numbers(
            parser, "--mock-latency-ms", args.mock_latency_ms, minimum=0
        ),
        rows_per_request=options.numbers(
            parser, "--rows-per-request", args.rows_per_request, minimum=1
        ),
        max_in_flight=args.max_in_flight,
        partition_bytes=args.partition_bytes,
        spark_conf=dict(pair.split("=", 1) for pair in args.spark_conf),
        asyncio_latencies_ms=()
        if args.no_asyncio
        else options.numbers(parser, "--asyncio-latency-ms", args.asyncio_latency_ms, minimum=0),
        repeat=args.repeat,
        out=args.out,
        workdir=args.workdir,
    )
    if min(settings.records, settings.chat_records, settings.repeat) < 1:
        parser.error("--records, --chat-records and --repeat must be at least 1")
    return settings


def write_records(path: pathlib.Path, count: int) -> pathlib.Path:
    """`count` JSON lines `{"id": "r0000042", "text": "record 42: word.. word.."}`, the same
    every run: 3 to 13 words each, about 100 bytes a line."""
    with path.open("w") as out:
        for i in range(count):
            words = " ".join(f"word{(i * 7 + j) % 97}" for j in range(i % 11 + 3))
            out.write(f'{{"id": "r{i:07d}", "text": "record {i}: {words}"}}\n')
    return path


def head(source: pathlib.Path, dest: pathlib.Path, count: int) -> pathlib.Path:
    """The first `count` lines of `source`."""
    with source.open("rb") as lines, dest.open("wb") as out:
        for _, line in zip(range(count), lines, strict=False):
            out.write(line)
    return dest


Snapshot = dict[int, tuple[str, float]]
"""pid: (the part of the run it is, the CPU seconds it has used so far)."""


@dataclasses.dataclass(frozen=True)
class Cpu:
    """CPU seconds (user + system) each part used during one row."""

    driver: float
    """This process: the job's driver (PySpark's Python side), or the whole asyncio loop."""
    jvm: float
    """The Spark JVM (driver and executor in one, `local[2]`)."""
    python_workers: float
    """Spark's Python daemon and workers (`mapInArrow`: parsing, the model client, results)."""
    mock: float

    @classmethod
    def between(cls, before: Snapshot, after: Snapshot) -> Cpu:
        """What each part used from one snapshot to the next. Counted per process: a process
        that ended in between takes its CPU with it (PySpark ends idle workers), so a sum of the
        whole tree's CPU could even go down."""
        parts = dict.fromkeys(("driver", "jvm", "python_workers", "mock"), 0.0)
        for pid, (part, seconds) in after.items():
            earlier = before.get(pid)
            parts[part] += seconds - (earlier[1] if earlier is not None else 0.0)
        return cls(**parts)

    @property
    def spark_job(self) -> float:
        return self.driver + self.jvm + self.python_workers


def cpu_snapshot(mock: servers.Server | None) -> Snapshot:
    """The CPU so far of every process in this process's tree, each named by its part."""
    own = os.getpid()
    mock_pids = {pid for pid, _, _ in machine.process_tree(mock.pid)} if mock else set()
    found: Snapshot = {}
    for pid, command, seconds in machine.process_tree(own):
        if pid in mock_pids:
            part = "mock"
        elif pid == own:
            part = "driver"
        else:
            part = "jvm" if command == "java" else "python_workers"
        found[pid] = (part, seconds)
    return found


@dataclasses.dataclass(frozen=True)
class Run:
    variant: Variant
    results: int
    """Records with a result: for a job row, done + failed; failures are in `failed`."""
    failed: int
    wall_s: float
    cpu: Cpu
    load_1min: float
    """The machine's 1-minute load average when the row ended."""

    @property
    def per_s(self) -> float:
        return self.results / self.wall_s if self.wall_s > 0 else math.nan

    def cpu_us_per_record(self, seconds: float) -> float:
        return seconds * 1e6 / max(1, self.results)

    @property
    def own_cpu_s(self) -> float:
        """The row's own processes: the Spark job's tree, or the asyncio loop's process."""
        return self.cpu.driver if self.variant.kind == "asyncio" else self.cpu.spark_job


class Bench:
    """One Spark session and the input files; runs each row and times it."""

    def __init__(self, settings: Settings, workdir: pathlib.Path, clock: machine.Clock) -> None:
        self.settings = settings
        self.workdir = workdir
        self.clock = clock
        self.logs = workdir / "logs"
        self.logs.mkdir(exist_ok=True)
        self.inputs: dict[int, pathlib.Path] = {}
        self.spark: Any = None
        self.count_s: float = math.nan

    def prepare_inputs(self) -> None:
        largest = max(self.settings.sizes)
        self.clock.say(f"writing {largest:,} records")
        full = write_records(self.workdir / f"records-{largest}.jsonl", largest)
        self.inputs[largest] = full
        for size in [*self.settings.sizes, WARMUP_RECORDS]:
            if size not in self.inputs:
                self.inputs[size] = head(full, self.workdir / f"records-{size}.jsonl", size)
        size_mb = full.stat().st_size / 1e6
        self.clock.say(f"  {full.name}: {size_mb:,.1f} MB")

    def start_spark(self) -> None:
        self.clock.say("starting the Spark session (local[2])")
        self.spark = job.session(self.job_config(Variant("passthrough", 0), "http://unused"))
        batch_passthrough.register_with_spark()

    def stop_spark(self) -> None:
        if self.spark is not None:
            self.spark.stop()
            self.spark = None

    def warm_up(self) -> None:
        """Untimed: the JVM's JIT, the Python workers and their imports, the tokenizer."""
        self.clock.say(f"warm-up (untimed): {WARMUP_RECORDS:,} records, every kind of row")
        with servers.mock_backend(self.logs, name="mockllm-warmup") as mock:
            for variant in [
                Variant("copy", WARMUP_RECORDS),
                Variant("passthrough", WARMUP_RECORDS),
                *(Variant("job", WARMUP_RECORDS, n) for n in self.settings.rows_per_request),
            ]:
                self.run(variant, mock)

    def time_count(self) -> None:
        """What the job's upfront `count()` of the input costs alone: a pass over the file."""
        source = self.inputs[self.settings.records]
        started = time.monotonic()
        self.spark.read.text(str(source)).count()
        self.count_s = time.monotonic() - started
        self.clock.say(f"  count() of {self.settings.records:,} records: {self.count_s:.1f} s")

    def job_config(self, variant: Variant, mock_url: str) -> config.BatchJobConfig:
        """What `run --input ... --backend openai-compatible=URL ...` builds from its flags."""
        model = ModelCallConfig(
            target=EndpointTarget(url=f"{mock_url}/v1"),
            model=MODEL,
            prompt=PROMPT,
            route=variant.route,
            rows_per_request=max(1, variant.rows_per_request),
            max_tokens=MAX_TOKENS,
            max_in_flight=self.settings.max_in_flight,
        )
        return config.BatchJobConfig(
            job="bench/batch",
            run=variant.name,
            input=config.InputConfig(uri=str(self.inputs.get(variant.records, "unused"))),
            output=config.OutputConfig(uri=str(self.workdir / f"out-{variant.name}")),
            model=model,
            partition_bytes=self.settings.partition_bytes,
            spark_conf=self.settings.spark_conf,
        )

    def run(self, variant: Variant, mock: servers.Server | None) -> Run:
        """One row, timed, with its CPU; its output is deleted afterwards."""
        settings = self.job_config(variant, mock.url if mock else "http://127.0.0.1:1")
        output = pathlib.Path(settings.output.uri)
        shutil.rmtree(output, ignore_errors=True)
        measure = self._measures()[variant.kind]
        before = cpu_snapshot(mock)
        started = time.monotonic()
        results, failed = measure(settings)
        wall_s = time.monotonic() - started
        cpu = Cpu.between(before, cpu_snapshot(mock))
        if variant.kind == "copy":  # counted after the clock stopped: Spark's copy counts none
            results = _lines_under(output)
        shutil.rmtree(output, ignore_errors=True)
        return Run(variant, results, failed, wall_s, cpu, os.getloadavg()[0])

    def _measures(self) -> dict[Kind, Callable[[config.BatchJobConfig], tuple[int, int]]]:
        return {
            "copy": self._copy,
            "passthrough": lambda settings: self._job(settings, batch_passthrough.passthrough),
            "job": self._job,
            "asyncio": self._asyncio,
        }

    def _job(
        self, settings: config.BatchJobConfig, score: Any = scoring.score_partitions
    ) -> tuple[int, int]:
        """`job.run` on the shared session; its progress lines go to the row's log."""
        with (self.logs / f"{settings.run}.log").open("a") as out:
            final = job.run(settings, out=out, spark=self.spark, score=score)
        return final.done + final.failed, final.failed

    def _copy(self, settings: config.BatchJobConfig) -> tuple[int, int]:
        """Spark's JSON reader and writer alone, with the job's input split size."""
        self.spark.conf.set("spark.sql.files.maxPartitionBytes", str(settings.partition_bytes))
        frame = self.spark.read.schema("id string, text string").json(settings.input.uri)
        frame.write.mode("overwrite").json(settings.output.uri)
        return 0, 0

    def _asyncio(self, settings: config.BatchJobConfig) -> tuple[int, int]:
        output = pathlib.Path(settings.output.uri)
        output.mkdir(parents=True)
        source = pathlib.Path(settings.input.uri)
        written = asyncio_loop.score_file(settings.model, source, output / "results.jsonl")
        return written, 0


def _lines_under(folder: pathlib.Path) -> int:
    count = 0
    for part in folder.rglob("part-*"):
        with part.open("rb") as lines:
            count += sum(1 for _ in lines)
    return count


def measure_all(settings: Settings, bench: Bench) -> list[list[Run]]:
    """Every row `settings.repeat` times, round-robin: the runs of each row, in row order."""
    runs: dict[Variant, list[Run]] = {variant: [] for variant in settings.variants}
    for repeat in range(settings.repeat):
        suffix = f" (run {repeat + 1} of {settings.repeat})" if settings.repeat > 1 else ""
        for variant in settings.floors:
            runs[variant].append(_say(bench, variant, None, suffix))
        for latency in settings.mock_latencies_ms:
            with servers.mock_backend(bench.logs, latency_ms=latency) as mock:
                for variant in settings.with_model(latency):
                    runs[variant].append(_say(bench, variant, mock, suffix))
    return list(runs.values())


def _say(bench: Bench, variant: Variant, mock: servers.Server | None, suffix: str) -> Run:
    bench.clock.say(f"{variant.label}, mock {variant.mock}, {variant.records:,} records{suffix}")
    run = bench.run(variant, mock)
    failed = f", {run.failed:,} failed" if run.failed else ""
    bench.clock.say(
        f"  {run.results:,} results{failed} in {run.wall_s:.1f} s: {run.per_s:,.0f} records/s, "
        f"{run.cpu_us_per_record(run.own_cpu_s):,.0f} CPU µs/record"
    )
    if run.results != variant.records:
        raise RuntimeError(f"{variant.label}: {run.results:,} results of {variant.records:,}")
    return run


def median_run(runs: Sequence[Run]) -> Run:
    """The run with the median wall time (the lower middle one of an even count)."""
    ordered = sorted(runs, key=lambda run: run.wall_s)
    return ordered[(len(ordered) - 1) // 2]


def machine_facts(settings: Settings) -> dict[str, str]:
    return {
        **machine.common_facts(),
        "pyspark": machine.package_version("pyspark"),
        "java": machine.first_line(["java", "-version"], stderr=True),
        "batch job measured": _code_version(pathlib.Path(job.__file__).parent),
        "runs per row": f"{settings.repeat} (the table shows the run with the median wall time)",
    }


def _code_version(package: pathlib.Path) -> str:
    """The commit of the checkout the job's code was imported from, and whether it had changes."""
    commit = machine.first_line(["git", "-C", str(package), "describe", "--always", "--dirty"])
    return f"{commit} ({package})"


def render(
    settings: Settings, facts: dict[str, str], rows: Sequence[Sequence[Run]], count_s: float
) -> str:
    medians = [median_run(runs) for runs in rows]
    sections = [
        "# Batch tier benchmark",
        table.facts(facts),
        "## Throughput",
        _throughput_table(medians, rows),
        _throughput_notes(settings),
        "## Where the CPU went",
        _cpu_table(medians, int(facts["cores (nproc)"])),
        f"CPU: user + system seconds per record over the row's wall time, from /proc, of this "
        "process (the job's Python driver; for the asyncio rows, the whole loop), the Spark JVM "
        "(driver and executor in one), Spark's Python daemon and workers, and the mock. Cores "
        "busy: the row's own processes' CPU seconds per wall second, the mock apart; "
        f"{facts['cores (nproc)']} cores give as many, shared with the mock and whatever else "
        "runs on the machine (see the load average). CPU-bound rec/s: what the row's CPU per "
        "record (its own and the mock's) would allow if it had every core to itself (the "
        "asyncio loop, one thread, at most one core): computed, not measured, and the figure "
        "to read when the load average says the cores were shared. The job's upfront "
        f"`count()` of the {settings.records:,}-record file, timed alone on the warm session: "
        f"{count_s:.1f} s.",
    ]
    return "\n\n".join(sections) + "\n"


def _throughput_notes(settings: Settings) -> str:
    chat = (
        f"Chat rows (one request per record) read the first {settings.records_for(1):,} "
        "records of the file, since at their few thousand records/s more would only make the "
        "run longer; each row is divided by the pass-through of the same records. "
        if 1 in settings.rows_per_request and settings.records_for(1) < settings.records
        else ""
    )
    return (
        "One Spark session (`local[2]`, the job's own settings) serves every Spark row; an "
        f"untimed warm-up on {WARMUP_RECORDS:,} records ran every kind of row first, so each "
        "timed row found the JVM, the Python workers and the tokenizer warm. Wall time is "
        "`job.run(...)` from call to return: the plan (the input's `count()`, a 1,000-record "
        "sample and the estimate), scoring, the write, and the commit of every task. The job "
        f"reads JSON lines of about 100 bytes (`id`, `text`), prompt `{PROMPT}`, model "
        f"`{MODEL}` with max_tokens {MAX_TOKENS}, {settings.max_in_flight} model calls in "
        f"flight per Python process, {settings.partition_bytes:,} input bytes per task, and "
        "writes JSON lines partitioned by outcome. 'Spark pass-through' is the same `job.run` "
        "with `score=` a function that calls no model (`bench/batch_passthrough.py`: each "
        "record parsed as the job parses it, its text as the output); '÷ Spark pass-through' "
        "divides by its records/s; '÷ pass-through by CPU' divides the pass-through's CPU per "
        "record by the job's and the mock's together, what the share would be if both were "
        "bound by the same cores' CPU (the figure that other load on the machine moves least). "
        "'CPU µs/record' is the row's own processes (the job's driver, JVM and Python "
        "workers; the asyncio loop's one process). 'Spark JSON copy' is Spark's JSON reader "
        "and writer alone, no Python worker. 'asyncio loop' is one Python process, no Spark "
        "(`bench/asyncio_loop.py`): orjson reads the file, `ModelClient.score` takes "
        f"{asyncio_loop.CHUNK_RECORDS:,} records at a time, {asyncio_loop.IN_FLIGHT_CHUNKS} "
        "chunks in flight, and each result is written as a JSON line. "
        + chat
        + f"Target (completions rows): {RECORDS_TARGET:,} records in ≤ {SECONDS_TARGET:g} s "
        f"({RATE_TARGET_PER_S:,.0f} records/s) and ≥ {SHARE_TARGET:.0%} of Spark's "
        "pass-through."
    )


def _throughput_table(medians: Sequence[Run], rows: Sequence[Sequence[Run]]) -> str:
    header = ["variant", "mock", "records", "wall s", "records/s", "CPU µs/record"]
    header += ["mock CPU µs/record", "÷ Spark pass-through", "÷ pass-through by CPU", "target"]
    floors = {run.variant.records: run for run in medians if run.variant.kind == "passthrough"}
    body = []
    for run, runs in zip(medians, rows, strict=True):
        floor = floors.get(run.variant.records)
        share = run.per_s / floor.per_s if floor is not None else math.nan
        body.append(
            [
                run.variant.label,
                run.variant.mock,
                f"{run.results:,}",
                f"{run.wall_s:,.1f}",
                _rate(run, runs),
                f"{run.cpu_us_per_record(run.own_cpu_s):,.0f}",
                f"{run.cpu_us_per_record(run.cpu.mock):,.0f}" if run.variant.calls_model else NONE,
                NONE if run.variant.kind == "passthrough" or math.isnan(share) else f"{share:.1%}",
                _share_by_cpu(run, floor),
                _verdict(run, share),
            ]
        )
    return table.markdown_table(header, body)


def _share_by_cpu(run: Run, floor: Run | None) -> str:
    """The share of the pass-through's records/s that a job row would reach if both were bound
    by CPU on the same cores: the pass-through's CPU per record over the job's and the mock's.
    Other load on the machine moves it far less than the measured share."""
    if run.variant.kind != "job" or floor is None:
        return NONE
    cost = run.cpu_us_per_record(run.own_cpu_s + run.cpu.mock)
    return f"{floor.cpu_us_per_record(floor.own_cpu_s) / cost:.1%}" if cost > 0 else NONE


def _rate(run: Run, runs: Sequence[Run]) -> str:
    if len(runs) < 2:
        return f"{run.per_s:,.0f}"
    rates = [other.per_s for other in runs]
    return f"{run.per_s:,.0f} ({min(rates):,.0f} to {max(rates):,.0f})"


def _verdict(run: Run, share: float) -> str:
    """Against the design's targets: completions rows of the job only."""
    if run.variant.kind != "job" or run.variant.route != "completions":
        return NONE
    rate_met = run.per_s >= RATE_TARGET_PER_S
    share_met = share >= SHARE_TARGET
    both = "met" if rate_met and share_met else "not met"
    return (
        f"{run.per_s / RATE_TARGET_PER_S:.2f}x of {RATE_TARGET_PER_S:,.0f}/s, "
        f"{share:.0%} vs {SHARE_TARGET:.0%} ({both})"
    )


def _cpu_table(medians: Sequence[Run], cores: int) -> str:
    header = ["variant", "mock", "cores busy", "driver µs/rec", "JVM µs/rec", "Py workers µs/rec"]
    header += ["mock µs/rec", "CPU-bound rec/s", "load 1 min"]
    body = []
    for run in medians:
        cpu = run.cpu
        ceiling = cores / (run.own_cpu_s + cpu.mock) * run.results
        if run.variant.kind == "asyncio":  # one thread: at most one core
            ceiling = min(ceiling, run.results / run.own_cpu_s)
        body.append(
            [
                run.variant.label,
                run.variant.mock,
                f"{run.own_cpu_s / run.wall_s:.2f}",
                *(
                    f"{run.cpu_us_per_record(seconds):,.0f}"
                    for seconds in (cpu.driver, cpu.jvm, cpu.python_workers, cpu.mock)
                ),
                f"{ceiling:,.0f}",
                f"{run.load_1min:.2f}",
            ]
        )
    return table.markdown_table(header, body)


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    clock = machine.Clock()
    facts = machine_facts(settings)
    print(table.facts(facts), file=sys.stderr, flush=True)
    try:
        with (
            machine.sigterm_unwinds(),
            options.workdir(settings.workdir, prefix="tiers-bench-batch-") as workdir,
        ):
            bench = Bench(settings, workdir, clock)
            bench.prepare_inputs()
            bench.start_spark()
            try:
                bench.warm_up()
                bench.time_count()
                rows = measure_all(settings, bench)
            finally:
                bench.stop_spark()
    except servers.ServerFailed as failed:
        print(f"a process did not start or died: {failed}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; every process the bench started is stopped", file=sys.stderr)
        return 130
    facts["load average after the run"] = machine.load_average()
    facts["bench wall time"] = f"{time.monotonic() - clock.started:,.0f} s"
    table.publish(render(settings, facts, rows, bench.count_s), settings.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
