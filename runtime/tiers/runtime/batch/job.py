"""The batch job's driver: one attempt of a run, from reading the input to the last commit.

    estimate -> refuse when over budget -> skip what earlier attempts scored -> score the rest
    in Spark tasks that each commit their own results -> drop superseded errors -> (an OpenAI
    batch file: merge its output and error files; a Delta table: commit the results to it)
    -> summary

While the tasks run, a monitor thread reads the accumulator the tasks add to, shows a progress
line, publishes progress and stats for the operator, and cancels the run once it has spent its
budget. Outcomes a caller must tell apart are exit codes (`progress.EXIT_CODES`).
"""

from __future__ import annotations

import dataclasses
import decimal
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from tiers.runtime.batch import (
    config,
    estimate,
    layout,
    openai_lines,
    progress,
    publisher,
    records,
    scoring,
    storage,
    traces,
)
from tiers.runtime.modelcall import prompts
from tiers.runtime.stats import window

log = logging.getLogger(__name__)

JOB_GROUP = "tiers-batch"


class Stopped(Exception):
    """The attempt ended without scoring everything; `progress.state` says why."""

    def __init__(self, final: progress.Progress) -> None:
        super().__init__(final.message)
        self.final = final


@dataclasses.dataclass
class Attempt:
    """What the driver knows before scoring starts."""

    attempt: int
    total: int
    skipped: int
    skipped_cost_usd: decimal.Decimal
    estimate: progress.Estimate


def session(settings: config.BatchJobConfig) -> Any:
    """The job's own Spark session."""
    from pyspark.sql import SparkSession

    # Workers must run this interpreter (its packages, tiers among them), not PATH's python3.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(f"tiers-batch-{settings.job.replace('/', '-')}")
    if settings.master is not None:
        builder = builder.master(settings.master)
    if settings.jars:
        builder = builder.config("spark.jars", ",".join(settings.jars))
    delta = config.DELTA_CONF if settings.delta else {}
    for key, value in {**config.SPARK_CONF, **delta, **settings.spark_conf}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def read_input(spark: Any, settings: config.BatchJobConfig) -> tuple[Any, scoring.Shape]:
    """The input as a DataFrame, and how its rows reach the scorer."""
    uri, form = settings.input.uri, settings.input.format
    if form in ("jsonl", "openai"):
        return spark.read.text(uri), "lines"
    if form == "csv":
        return spark.read.option("header", "true").csv(uri), "rows"
    return spark.read.format(form).load(uri), "rows"


def id_column(source: Any, shape: scoring.Shape, id_field: str) -> Any:
    from pyspark.sql import functions

    if shape == "lines":
        return functions.get_json_object(source["value"], f"$.{id_field}")
    return source[id_field].cast("string")


def done_results(spark: Any, settings: config.BatchJobConfig, files: storage.FileSystem) -> Any:
    """The good results of earlier attempts (id and cost), or None when there are none.

    An OpenAI batch file's are output lines: their custom_id, and their replies priced again as
    the run priced them (the lines keep OpenAI's shape, so there is no cost column to read)."""
    pattern = layout.ok_glob(_attempts_root(settings))
    if not files.matches(pattern):
        return None
    if settings.openai_batch:
        lines = spark.read.text(pattern).select("value")
        return lines.mapInArrow(
            scoring.done_costs(settings.model_dump_json()), "`custom_id` string, `cost_usd` string"
        )
    schema = records.spark_schema(settings.id_field).rsplit(", ", 1)[0]  # less the outcome
    reader = spark.read.format(_staged_format(settings.output.format)).schema(schema)
    if settings.output.format == "csv":
        reader = reader.option("header", "true")
    return reader.load(pattern).select(settings.id_field, "cost_usd")


def plan(spark: Any, settings: config.BatchJobConfig, source: Any, shape: scoring.Shape) -> Any:
    """Counts the work and estimates it; returns (Attempt, the DataFrame of records to score)."""
    from pyspark.sql import functions

    files = storage.FileSystem(spark, settings.output.uri)
    attempt = layout.next_attempt(files.children(_attempts_root(settings)))
    total = source.count()
    done = done_results(spark, settings, files)
    todo, skipped, skipped_cost = source, 0, decimal.Decimal(0)
    if done is not None:
        done = done.cache()
        totals = done.agg(
            functions.count("*"), functions.sum(functions.col("cost_usd").cast("decimal(30,9)"))
        ).first()
        skipped, skipped_cost = int(totals[0]), decimal.Decimal(totals[1] or 0)
        keyed = source.withColumn("_tiers_id", id_column(source, shape, settings.id_field))
        done_ids = done.select(functions.col(settings.id_field).alias("_tiers_id"))
        # Broadcast: the input keeps its partitions (one commit each) instead of a shuffle's.
        todo = keyed.join(functions.broadcast(done_ids), "_tiers_id", "left_anti").drop("_tiers_id")
    sample = _sample_prompts(source, shape, settings)
    found = estimate.estimate(
        settings.model,
        sample,
        records=max(total - skipped, 0),
        parallelism=spark.sparkContext.defaultParallelism,
        latency_ms=settings.assumed_latency_ms,
    )
    return Attempt(attempt, total, skipped, skipped_cost, found), todo


def _sample_prompts(
    source: Any, shape: scoring.Shape, settings: config.BatchJobConfig
) -> list[str]:
    rows = source.limit(settings.sample_records).collect()
    if settings.openai_batch:
        requests = (openai_lines.read(row[0]).request for row in rows)
        return [openai_lines.prompt_text(request) for request in requests if request is not None]
    if shape == "lines":
        sampled = records.from_lines([row[0] for row in rows], settings.id_field)
    else:
        sampled = records.from_rows([row.asDict() for row in rows], settings.id_field)
    rendered = []
    for record in sampled:
        if record.fields is None:
            continue
        try:
            rendered.append(prompts.render(settings.model.prompt, record.fields))
        except prompts.PromptError:
            continue
    return rendered


def run(
    settings: config.BatchJobConfig,
    *,
    out: IO[str] = sys.stderr,
    estimate_only: bool = False,
    score: Callable[[str, scoring.Shape, Any], Any] = scoring.score_partitions,
    spark: Any = None,
) -> progress.Progress:
    """One attempt of the run; the final progress. Raises `Stopped` when it did not finish.

    Without `spark`, the run starts a session of its own and stops it at the end. With
    `settings.tracing`, the attempt is one span (`traces`), exported when it ends."""
    traced = traces.start(settings)
    if traced is None:
        return _run(settings, out=out, estimate_only=estimate_only, score=score, spark=spark)
    final: progress.Progress | None = None
    error: BaseException | None = None
    try:
        final = _run(settings, out=out, estimate_only=estimate_only, score=score, spark=spark)
        return final
    except Stopped as stopped:
        final, error = stopped.final, stopped
        raise
    except BaseException as failed:
        error = failed
        raise
    finally:
        traces.end(settings, *traced, final, error)


def _run(
    settings: config.BatchJobConfig,
    *,
    out: IO[str],
    estimate_only: bool,
    score: Callable[[str, scoring.Shape, Any], Any],
    spark: Any,
) -> progress.Progress:
    own_session = spark is None
    if own_session:
        spark = session(settings)
    # Input bytes per task: set on the session, so that a shared one gets it too.
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(settings.partition_bytes))
    sink = publisher.Publisher(settings)
    try:
        source, shape = read_input(spark, settings)
        begun = time.time()
        interval_s = settings.progress_interval_ms / 1000
        estimating = progress.Progress.starting(
            state="Estimating", attempt=0, total=None, skipped=0,
            skipped_cost_usd=decimal.Decimal(0), now_s=begun, interval_s=interval_s,
        )  # fmt: skip
        sink.publish(estimating)
        attempt, todo = plan(spark, settings, source, shape)
        start = progress.Progress.starting(
            state="Estimated" if estimate_only else "Running", attempt=attempt.attempt,
            total=attempt.total, skipped=attempt.skipped,
            skipped_cost_usd=attempt.skipped_cost_usd, now_s=time.time(),
            estimate=attempt.estimate, interval_s=interval_s,
        )  # fmt: skip
        if estimate_only:
            sink.publish(start, final=True)
            return start
        limit = settings.max_usd
        if limit is not None and attempt.skipped_cost_usd + attempt.estimate.cost_usd > limit:
            refused = dataclasses.replace(
                start,
                state="OverBudget",
                message=f"the estimate, ${_usd(attempt.estimate.cost_usd)} for "
                f"{attempt.estimate.records:,} records (plus ${_usd(attempt.skipped_cost_usd)} "
                f"already spent), is above the budget of ${_usd(limit)}",
            )
            sink.publish(refused, final=True)
            raise Stopped(refused)
        sink.publish(start)
        return _score(spark, settings, attempt, todo, shape, start, sink, out, score)
    finally:
        sink.close()
        if own_session:
            spark.stop()


def _score(
    spark: Any,
    settings: config.BatchJobConfig,
    attempt: Attempt,
    todo: Any,
    shape: scoring.Shape,
    start: progress.Progress,
    sink: publisher.Publisher,
    out: IO[str],
    score: Callable[[str, scoring.Shape, Any], Any],
) -> progress.Progress:
    context = spark.sparkContext
    tally = context.accumulator(window.Counts(), scoring.CountsParam())
    monitor = Monitor(settings, start, tally, sink, out, cancel=context.cancelJobGroup)
    schema = (
        openai_lines.SPARK_SCHEMA
        if settings.openai_batch
        else records.spark_schema(settings.id_field)
    )
    scored = todo.mapInArrow(score(settings.model_dump_json(), shape, tally), schema)
    writer = (
        scored.write.mode("append").options(**config.WRITER_OPTIONS).partitionBy(records.OUTCOME)
    )
    if settings.output.format == "csv":
        writer = writer.option("header", "true")
    if settings.output.format == "jsonl" and not settings.openai_batch:
        writer = writer.option("ignoreNullFields", "false")  # every line has every field
    context.setJobGroup(JOB_GROUP, f"{settings.job} run {settings.run}", interruptOnCancel=True)
    monitor.start()
    try:
        writer.format(_result_format(settings)).save(
            layout.attempt_uri(_attempts_root(settings), attempt.attempt)
        )
    except Exception as error:
        final = monitor.stop()
        if final.state == "BudgetSpent":
            sink.publish(final, final=True)
            raise Stopped(final) from None
        failed = dataclasses.replace(final, state="Failed", message=_first_line(error))
        sink.publish(failed, final=True)
        raise Stopped(failed) from error
    final = monitor.stop()
    files = storage.FileSystem(spark, settings.output.uri)
    root = _attempts_root(settings)
    for stale in layout.superseded_errors(root, files.children(root), finished=attempt.attempt):
        files.delete(stale)
    if settings.openai_batch:
        write_openai_files(files, settings.output.uri)
    if settings.output.format == "delta":
        commit_delta_table(spark, settings, files)
    done = dataclasses.replace(final, state="Succeeded")
    sink.publish(done, final=True)
    return done


class Monitor:
    """Reads the accumulator on a timer: the progress line, what the operator reads, and the
    budget (cancelling the job group once it is spent). The tasks' additions arrive as each task
    ends, so a budget can be overshot by what the running tasks spend."""

    def __init__(
        self,
        settings: config.BatchJobConfig,
        start: progress.Progress,
        tally: Any,
        sink: publisher.Publisher,
        out: IO[str],
        *,
        cancel: Callable[[str], None],
    ) -> None:
        self._settings = settings
        self._latest = start
        self._tally = tally
        self._sink = sink
        self._out = out
        self._cancel = cancel
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tiers-batch-monitor", daemon=True)
        self._tty = out.isatty()
        self._printed_s = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> progress.Progress:
        self._stopping.set()
        self._thread.join()
        return self._tick(final=True)

    def _loop(self) -> None:
        while not self._stopping.wait(self._latest.interval_s):
            self._tick(final=False)

    def _tick(self, *, final: bool) -> progress.Progress:
        now = time.time()
        counts = self._tally.value
        latest = self._latest.counted(counts, now_s=now)
        limit = self._settings.max_usd
        if latest.state == "Running" and limit is not None and latest.cost_usd >= limit:
            latest = dataclasses.replace(
                latest,
                state="BudgetSpent",
                message=f"the run has spent ${_usd(latest.cost_usd)}, its budget is ${_usd(limit)}",
            )
            self._cancel(JOB_GROUP)
        self._latest = latest
        self._sink.publish(latest, counts=counts)
        self._show(latest, now, final=final)
        return latest

    def _show(self, latest: progress.Progress, now: float, *, final: bool) -> None:
        line = progress.render_line(latest)
        if self._tty:
            self._out.write("\r" + line + ("\n" if final else ""))
        elif final or now - self._printed_s >= 10:
            self._out.write(line + "\n")
            self._printed_s = now
        self._out.flush()


def write_openai_files(files: storage.FileSystem, output: str) -> None:
    """`output.jsonl` and `errors.jsonl` of a finished attempt, replacing the last ones: what
    code written for OpenAI's Batch API reads (`layout`)."""
    for outcome, name in layout.MERGED_FILES:
        files.concatenate(layout.parts_glob(output, outcome), layout.merged_uri(output, name))


def commit_delta_table(
    spark: Any, settings: config.BatchJobConfig, files: storage.FileSystem
) -> None:
    """Every staged result, as the Delta table at the output: one transaction that replaces the
    last finished attempt's, so the table holds each id once and a reader sees whole attempts
    (`layout`). Delta keeps the earlier versions until they are vacuumed."""
    from pyspark.sql import functions

    root = _attempts_root(settings)
    columns = f"{records.spark_schema(settings.id_field)}, `{layout.ATTEMPT}` int"
    staged = (
        spark.read.schema(columns).parquet(root)
        if files.exists(root)
        else spark.createDataFrame([], columns)
    )
    ordered = staged.select(*(functions.col(f"`{name}`") for name in staged.columns))
    ordered.write.format("delta").mode("overwrite").option("overwriteSchema", "true").partitionBy(
        records.OUTCOME
    ).save(settings.output.uri)


def _attempts_root(settings: config.BatchJobConfig) -> str:
    return layout.attempts_root(settings.output.uri, settings.output.format)


def _result_format(settings: config.BatchJobConfig) -> str:
    """How results are written: OpenAI's lines as they are (text), records in the output format
    (Parquet for a Delta table's staged attempts)."""
    return "text" if settings.openai_batch else _staged_format(settings.output.format)


def _staged_format(form: str) -> str:
    """Spark's name for the format of the attempts' part files."""
    return {"jsonl": "json", "delta": "parquet"}.get(form, form)


def _usd(amount: decimal.Decimal) -> str:
    from tiers.runtime import pricing

    return pricing.format_usd(amount)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:500] if text else type(error).__name__
