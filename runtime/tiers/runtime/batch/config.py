"""The batch job's configuration: what the operator renders into the job's ConfigMap, or what
the command line's flags build for a run outside Kubernetes."""

from __future__ import annotations

import decimal
import json
import pathlib
import types
from collections.abc import Mapping
from typing import Literal, Self

import pydantic

# The config module, not the package: the operator renders this config and must not reach the
# model client through the package's (lazy) names.
from tiers.runtime.batch import progress
from tiers.runtime.modelcall.config import ModelCallConfig
from tiers.runtime.tracing import config as tracing_config

InputFormat = Literal["jsonl", "csv", "parquet", "delta", "openai"]
OutputFormat = Literal["jsonl", "csv", "parquet", "delta"]

SPARK_CONF: Mapping[str, str] = types.MappingProxyType(
    {
        "spark.ui.enabled": "false",
        # The job draws its own progress line; Spark's stage bars would write over it.
        "spark.ui.showConsoleProgress": "false",
        # Shuffles are small (the ids an earlier attempt finished); Spark's 200 are too many.
        "spark.sql.shuffle.partitions": "8",
        # A speculative copy of a task would pay for the same model calls twice.
        "spark.speculation": "false",
        "spark.python.worker.reuse": "true",
        "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1",
        "spark.executor.extraJavaOptions": "-XX:TieredStopAtLevel=1",
    }
)
"""What every run's session sets, whoever starts it (the job itself or spark-submit)."""

WRITER_OPTIONS: Mapping[str, str] = types.MappingProxyType(
    {
        # Each task moves its own files into the output when it finishes (algorithm 2), so a run
        # killed halfway keeps every finished task's results instead of none of them.
        "mapreduce.fileoutputcommitter.algorithm.version": "2",
        "mapreduce.fileoutputcommitter.cleanup-failures.ignored": "true",
        # Spark's _SUCCESS marker says a whole write finished; a run's attempts write several.
        "mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
    }
)
"""Options of the results' write, which Spark hands to the Hadoop output committer."""

DELTA_CONF: Mapping[str, str] = types.MappingProxyType(
    {
        # Delta Lake's documented session setup (delta-spark's jars must be on `jars`).
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    }
)
"""What a run's session adds when its input or output is a Delta table."""


class _Config(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class InputConfig(_Config):
    uri: str = pydantic.Field(min_length=1)
    """A path, file:// URI, or any URI Spark's Hadoop file systems read (s3a://, abfss://)."""
    format: InputFormat = "jsonl"
    """`openai`: an OpenAI Batch API input file, whose results are OpenAI's output and error
    files (`<output>/output.jsonl`, `<output>/errors.jsonl`); the model's `prompt` is unused."""
    id_field: str = pydantic.Field(default="id", min_length=1)
    """The field that keys each record's result (OpenAI files always use `custom_id`)."""


class OutputConfig(_Config):
    uri: str = pydantic.Field(min_length=1)
    """The run's folder: every attempt of the run writes under it, and a rerun reads it back."""
    format: OutputFormat = "jsonl"


class BatchJobConfig(_Config):
    job: str = "local/batch"
    """namespace/name of the BatchJob: the key of its stats and progress."""
    run: str = "local"
    """The run's name (one per schedule time): the key of its progress."""
    input: InputConfig
    output: OutputConfig
    model: ModelCallConfig
    max_usd: decimal.Decimal | None = pydantic.Field(default=None, ge=0)
    """Refuse to start when the estimate is above it, and stop once the run has spent it."""
    stats_redis_url: str | None = None
    """Where progress and stats go for the operator to read; None: the terminal only."""
    stats_redis_password_env: str | None = None
    """The variable holding that Redis's password (from a Secret); the URL carries none."""
    master: str | None = "local[2]"
    """None: the master spark-submit was given (the Spark Operator's driver pod)."""
    spark_conf: dict[str, str] = pydantic.Field(default_factory=dict)
    jars: tuple[str, ...] = ()
    """Spark's connector jars (globs allowed), as `spark.jars`: delta-spark's for a Delta table,
    unless the image has them on its classpath (the Spark Operator's pods) or the cluster ships
    them (Databricks)."""
    partition_bytes: int = pydantic.Field(default=2 * 1024 * 1024, ge=64 * 1024)
    """Input bytes per Spark task. A task commits its results when it ends, so this bounds
    what a kill can take back (and so the model calls a rerun repeats)."""
    progress_interval_ms: int = pydantic.Field(
        default=round(progress.PUBLISH_INTERVAL_S * 1000), ge=100
    )
    """How often the driver publishes progress (and shows it on a terminal); the operator takes a
    running run's figures for stale after `progress.STALE_AFTER_INTERVALS` of these."""
    sample_records: int = pydantic.Field(default=1000, ge=1)
    """Records read by the estimate to measure prompt tokens."""
    assumed_latency_ms: int = pydantic.Field(default=1000, ge=1)
    """The model's latency per request that the estimate assumes for its duration."""
    tracing: tracing_config.TracingConfig | None = None
    """spec.telemetry: one span per run attempt, exported when it ends; None: none."""

    @pydantic.model_validator(mode="after")
    def _openai_files_keep_their_shape(self) -> Self:
        if self.openai_batch and self.output.format != "jsonl":
            raise ValueError(
                "output.format must be jsonl for an OpenAI batch input file: its results are "
                "written as OpenAI's output and error files"
            )
        return self

    @property
    def openai_batch(self) -> bool:
        """The input is an OpenAI Batch API file: its bodies are sent as they are, and its
        results are OpenAI's output and error lines (`openai_lines`)."""
        return self.input.format == "openai"

    @property
    def delta(self) -> bool:
        """The input or the output is a Delta table: the session needs Delta Lake."""
        return "delta" in (self.input.format, self.output.format)

    @property
    def id_field(self) -> str:
        return "custom_id" if self.openai_batch else self.input.id_field


def load(path: pathlib.Path) -> BatchJobConfig:
    return BatchJobConfig.model_validate(json.loads(path.read_text()))
