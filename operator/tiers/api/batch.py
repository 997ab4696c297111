"""BatchJob: a dataset scored by the model on Databricks or Spark, once or on a schedule."""

from __future__ import annotations

import datetime
from typing import Any, Literal

import pydantic

from tiers.api import common


def _cron_field(value: str, *, day: bool = False) -> str:
    """One cron field as a regular expression: lists of `*`, values or ranges, each with an
    optional step; `?` in the day fields. `value` matches one value of the field's range."""
    item = rf"(\\*|{value}(-{value})?)(/[1-9][0-9]{{0,2}})?"
    any_day = "[?]|" if day else ""
    return rf"({any_day}{item}(,{item})*)"


_MINUTE = _cron_field("[0-5]?[0-9]")
_HOUR = _cron_field("([01]?[0-9]|2[0-3])")
_DAY_OF_MONTH = _cron_field("(0?[1-9]|[12][0-9]|3[01])", day=True)
_MONTH = _cron_field("(0?[1-9]|1[0-2]|(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec))")
_DAY_OF_WEEK = _cron_field("([0-7]|(?i:sun|mon|tue|wed|thu|fri|sat))", day=True)
# Five cron fields (minute hour day-of-month month day-of-week), each value within its field's
# range, or a macro such as @daily.
CRON_RULE = (
    r"self.matches('^(@(yearly|annually|monthly|weekly|daily|hourly)"
    rf"|{_MINUTE} +{_HOUR} +{_DAY_OF_MONTH} +{_MONTH} +{_DAY_OF_WEEK})$')"
)

BatchEngine = Literal["databricks", "spark"]
InputFormat = Literal["jsonl", "parquet", "csv", "delta", "openai"]
OutputFormat = Literal["jsonl", "parquet", "csv", "delta"]
URI_PATTERN = r"^((s3a?|gs|abfss|hdfs)://[^/\s]+(/\S*)?|file:///\S*|dbfs:/[^/\s]\S*)$"
URI_DESCRIPTION = (
    "Data URI: s3://, s3a://, gs://, abfss:// or hdfs:// with a bucket or host, file:///path"
    " or dbfs:/path"
)
# IANA time zone names: Area/Location[/Sublocation], or UTC-like names such as UTC or Etc/GMT+5.
TIME_ZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$"


def _delta_is_a_folder(field: str) -> dict[str, Any]:
    """A Delta table is a folder (its files and `_delta_log/`), never one data file."""
    return common.validations(
        common.cel(
            r"self.format != 'delta' || !self.uri.matches('[.](jsonl?|csv|parquet|txt)/?$')",
            f"{field}.uri of format delta is the Delta table's folder, not a file (it must not "
            "end in .jsonl, .json, .csv, .parquet or .txt)",
            reason="FieldValueInvalid",
        )
    )


class Input(common.Model):
    model_config = pydantic.ConfigDict(json_schema_extra=_delta_is_a_folder("input"))

    uri: str = pydantic.Field(max_length=2048, pattern=URI_PATTERN, description=URI_DESCRIPTION)
    format: InputFormat = pydantic.Field(
        default="jsonl",
        description="jsonl, csv, parquet, delta (a Delta Lake table: the uri is its folder), or "
        "openai: an OpenAI Batch API input file (custom_id, method, url, body per line), "
        "answered by OpenAI's output and error files.",
    )
    id_field: str = pydantic.Field(
        default="id",
        min_length=1,
        max_length=128,
        pattern=common.TRIMMED_PATTERN,
        description="Unique record key; reruns skip done ids (custom_id for openai files).",
    )


class Output(common.Model):
    model_config = pydantic.ConfigDict(json_schema_extra=_delta_is_a_folder("output"))

    uri: str = pydantic.Field(
        max_length=2048,
        pattern=URI_PATTERN,
        description=URI_DESCRIPTION + ". A scheduled job writes each run under run=<run name>/.",
    )
    format: OutputFormat = pydantic.Field(
        default="jsonl",
        description="jsonl, csv or parquet part files per attempt, or delta: the uri is a Delta "
        "Lake table, replaced in one transaction with every result when an attempt finishes "
        "(a rerun skips the ids already scored).",
    )


DATABRICKS_HOST_PATTERN = r"^(https://[^/\s?#@]+|http://(127\.0\.0\.1|localhost)(:[0-9]{1,5})?)/?$"
WORKSPACE_PATH_PATTERN = r"^/[^\s]*[^/\s]$"
WORKSPACE_RESOURCE_ID_PATTERN = (
    r"^/subscriptions/[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}"
    r"/resourceGroups/[-\w.()]{1,90}/providers/Microsoft\.Databricks/workspaces/[A-Za-z0-9_-]{3,64}$"
)


class NewCluster(common.Model):
    """A job cluster made for each run and ended with it."""

    spark_version: str = pydantic.Field(
        default="15.4.x-scala2.12", min_length=1, max_length=64, pattern=common.TRIMMED_PATTERN
    )
    node_type_id: str = pydantic.Field(
        default="i3.xlarge", min_length=1, max_length=64, pattern=common.TRIMMED_PATTERN
    )
    num_workers: int = pydantic.Field(default=2, ge=0, le=10000)


class Databricks(common.Model):
    """Where and on what the Databricks job runs."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.validations(
            common.cel(
                "has(self.newCluster) != has(self.existingClusterId)",
                "exactly one of databricks.newCluster (a job cluster per run) or "
                "databricks.existingClusterId is required",
                reason="FieldValueInvalid",
            ),
            common.cel(
                "has(self.host) != has(self.workspaceResourceId)",
                "exactly one of databricks.host (the workspace URL) or "
                "databricks.workspaceResourceId (an Azure Databricks workspace) is required",
                reason="FieldValueInvalid",
            ),
            common.cel(
                "!has(self.azure) || has(self.workspaceResourceId)",
                "databricks.azure is only for databricks.workspaceResourceId",
                reason="FieldValueForbidden",
            ),
        )
    )

    host: str | None = pydantic.Field(
        default=None,
        max_length=2048,
        pattern=DATABRICKS_HOST_PATTERN,
        description="The workspace URL, https://NAME.cloud.databricks.com (no API path); "
        "http:// only for a workspace on this machine's loopback (tests, make demo).",
    )
    workspace_resource_id: str | None = pydantic.Field(
        default=None,
        max_length=512,
        pattern=WORKSPACE_RESOURCE_ID_PATTERN,
        description="An Azure Databricks workspace's resource ID, /subscriptions/<subscription "
        "id>/resourceGroups/<group>/providers/Microsoft.Databricks/workspaces/<name>: the "
        "operator reads its URL from Azure Resource Manager as databricks.azure (or its "
        "workload identity) and caches it.",
    )
    azure: common.EntraIdentity | None = pydantic.Field(
        default=None,
        description="Who reads the workspace from Azure Resource Manager (the Reader role on it "
        "is enough); unset: the operator's workload identity.",
    )
    token_secret_ref: common.SecretKeyRef = pydantic.Field(
        description="A personal access token or a service principal's OAuth token."
    )
    new_cluster: NewCluster | None = None
    existing_cluster_id: str | None = pydantic.Field(
        default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$"
    )
    secret_scope: str = pydantic.Field(
        default="tiers",
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="The Databricks secret scope the operator copies the model's API key into "
        "(made when missing; the token needs MANAGE on it); the run reads it with "
        "dbutils.secrets, never from its parameters.",
    )
    wheel: str | None = pydantic.Field(
        default=None,
        min_length=1,
        max_length=1024,
        pattern=r"^(/Volumes/|/Workspace/|dbfs:/)\S+\.whl$",
        description="The tiers wheel the run installs as its library (/Volumes/..., "
        "/Workspace/... or dbfs:/...whl); unset: the cluster has tiers installed already.",
    )
    workspace_path: str = pydantic.Field(
        default="/Shared/tiers",
        max_length=512,
        pattern=WORKSPACE_PATH_PATTERN,
        description="The workspace folder the operator uploads the run's launcher to.",
    )


class Spark(common.Model):
    """How a run uses Spark on this cluster."""

    mode: Literal["local", "spark-operator"] = pydantic.Field(
        default="local",
        description="local: each run is a Job, one pod running Spark in local mode with "
        "executorCores cores; spark-operator: each run is a SparkApplication (the Kubeflow Spark "
        "Operator must be installed) with `executors` executor pods.",
    )
    image: str | None = pydantic.Field(
        default=None, min_length=1, max_length=512, pattern=common.IMAGE_PATTERN
    )
    executors: int = pydantic.Field(
        default=2, ge=1, le=10000, description="Executor pods (spark-operator mode)."
    )
    executor_cores: int = pydantic.Field(default=2, ge=1, le=256)
    executor_memory: str = pydantic.Field(
        default="4Gi", pattern=common.MEMORY_PATTERN, max_length=16
    )


class Volume(common.Model):
    """A PersistentVolumeClaim mounted read-write in every pod of a run (the driver and, with the
    Spark Operator, the executors), for file:// input and output on it."""

    claim_name: common.ResourceName = pydantic.Field(description="The claim, in this namespace.")
    mount_path: str = pydantic.Field(
        max_length=1024,
        pattern=r"^/[A-Za-z0-9._/-]*$",
        description="Where the pods see it, e.g. /var/lib/tiers/batch.",
    )


class Budget(common.Model):
    """A run whose estimate is above the cap does not start; one that spends it stops."""

    max_usd: common.DecimalUSD = pydantic.Field(
        alias="maxUSD", json_schema_extra=common.validations(common.POSITIVE_AMOUNT_RULE)
    )


class Notification(common.Model):
    """Where the completion notice of each run goes, besides an Event on the BatchJob."""

    webhook_url: str = pydantic.Field(
        alias="webhookURL",
        max_length=2048,
        pattern=common.HTTP_URL_PATTERN,
        description="POSTed {name, namespace, run, state, records, failed, costUSD, "
        "durationSeconds, outputURI} when a run ends; retried with backoff.",
    )
    signing_secret_ref: common.SecretKeyRef | None = pydantic.Field(
        default=None,
        description="Signs each notice: X-Tiers-Signature: sha256=HMAC(secret, timestamp.body).",
    )


class BatchJobSpec(common.Model):
    model_config = pydantic.ConfigDict(
        json_schema_extra=common.validations(
            common.cel(
                "self.engine != 'databricks' || has(self.databricks)",
                "databricks is required when engine is databricks",
                reason="FieldValueRequired",
            ),
            common.cel(
                "self.engine == 'databricks' || !has(self.databricks)",
                "databricks is only allowed when engine is databricks",
            ),
            common.cel(
                "self.input.format != 'openai' || self.output.format == 'jsonl'",
                "output.format must be jsonl when input.format is openai (OpenAI's output and "
                "error files are JSON lines)",
                reason="FieldValueInvalid",
            ),
            common.cel(
                "self.engine == 'databricks' || (!self.input.uri.startsWith('dbfs:/')"
                " && !self.output.uri.startsWith('dbfs:/'))",
                "dbfs:/ URIs need engine databricks; engine spark reads file://, s3a://, "
                "abfss://, gs:// or hdfs://",
                reason="FieldValueInvalid",
            ),
            common.cel(
                "self.input.uri != self.output.uri",
                "output.uri must differ from input.uri",
                reason="FieldValueInvalid",
            ),
            common.cel(
                "has(self.schedule) || (!has(self.timeZone) && !has(self.startingDeadlineSeconds))",
                "timeZone and startingDeadlineSeconds need a schedule",
                reason="FieldValueInvalid",
            ),
        )
    )

    engine: BatchEngine = pydantic.Field(
        description="databricks (Jobs API) or spark (on this cluster); immutable.",
        json_schema_extra=common.validations(
            common.cel("self == oldSelf", "engine is immutable", reason="FieldValueForbidden")
        ),
    )
    input: Input
    output: Output
    model: common.ModelCall
    schedule: str | None = pydantic.Field(
        default=None,
        max_length=128,
        description='Cron schedule ("0 2 * * *") or @hourly/@daily/@weekly/@monthly/@yearly.',
        json_schema_extra=common.validations(
            common.cel(
                CRON_RULE,
                "schedule must be a cron expression of five fields, e.g. '0 2 * * *', each within"
                " its range (minute 0-59, hour 0-23, day of month 1-31, month 1-12 or JAN-DEC,"
                " day of week 0-7 or SUN-SAT), or one of @hourly, @daily, @weekly, @monthly,"
                " @yearly",
            )
        ),
    )
    time_zone: str | None = pydantic.Field(
        default=None,
        max_length=64,
        pattern=TIME_ZONE_PATTERN,
        description="IANA time zone of the schedule, e.g. Europe/Berlin; UTC when unset.",
    )
    concurrency_policy: Literal["Forbid", "Allow", "Replace"] = pydantic.Field(
        default="Forbid",
        description="When a run is due while another runs: Forbid skips it, Allow starts it, "
        "Replace stops the running one first.",
    )
    starting_deadline_seconds: int | None = pydantic.Field(
        default=None,
        ge=10,
        le=86400,
        description="A run that could not start within this many seconds of its time is missed.",
    )
    successful_runs_history_limit: int = pydantic.Field(
        default=3, ge=0, le=100, description="Finished runs kept (Jobs and status.runs)."
    )
    failed_runs_history_limit: int = pydantic.Field(default=1, ge=0, le=100)
    suspend: bool = pydantic.Field(
        default=False,
        description="Stops a running run (its results so far are kept) and starts no new one; "
        "false again resumes where it stopped.",
    )
    dry_run: bool = pydantic.Field(
        default=False, description="Only estimate: records, tokens, cost and duration in status."
    )
    backoff_limit: int = pydantic.Field(
        default=3,
        ge=0,
        le=100,
        description="Retries of a failed run; each resumes where the last stopped.",
    )
    active_deadline_seconds: int | None = pydantic.Field(
        default=None, ge=60, le=604800, description="A run still going after this long fails."
    )
    databricks: Databricks | None = None
    spark: Spark = pydantic.Field(default_factory=Spark)
    volume: Volume | None = None
    budget: Budget | None = None
    notification: Notification | None = None
    telemetry: common.Telemetry | None = pydantic.Field(
        default=None,
        description="Send one span per run attempt (state, records, tokens, cost) to an"
        " OpenTelemetry collector, in the trace of the driver's TRACEPARENT if set.",
    )


class Progress(common.Windowed):
    """The latest run's counts (`window: run`), as its job last published them."""

    total: int | None = pydantic.Field(default=None, ge=0, description="Records in the input.")
    done: int = pydantic.Field(ge=0, description="Records scored (earlier attempts included).")
    failed: int = pydantic.Field(ge=0, description="Records that failed in the latest attempt.")
    percent: int = pydantic.Field(ge=0, le=100)
    records_per_second: int = pydantic.Field(default=0, ge=0)


class BatchCost(common.Windowed):
    """The latest run's spend so far (`window: run`)."""

    total_usd: common.DecimalUSD = pydantic.Field(alias="totalUSD")
    per_record_usd: common.DecimalUSD = pydantic.Field(alias="perRecordUSD")
    estimate_usd: common.DecimalUSD | None = pydantic.Field(
        default=None, alias="estimateUSD", description="Estimated before the run started."
    )


class Estimate(common.Model):
    """Measured on a sample before the run: output tokens and cost are upper bounds."""

    records: int = pydantic.Field(ge=0)
    input_tokens: int = pydantic.Field(ge=0)
    output_tokens: int = pydantic.Field(ge=0)
    cost_usd: common.DecimalUSD = pydantic.Field(alias="costUSD")
    duration_seconds: int = pydantic.Field(ge=0)
    tokens_exact: bool = pydantic.Field(
        description="Counted with the model's tokenizer; otherwise approximated."
    )


RunState = Literal[
    "Pending", "Estimating", "Running", "Succeeded", "Failed", "Suspended", "Stopped"
]


class DatabricksRun(common.Model):
    """A run's Databricks run: its latest attempt, claimed before it is submitted and its run id
    written before the operator polls it."""

    run_id: int | None = pydantic.Field(
        default=None, ge=0,
        description="None: submitted, the workspace's answer not yet recorded (the operator "
        "looks the run up by its name, or submits it again with the same idempotency token).",
    )  # fmt: skip
    run_page_url: str | None = pydantic.Field(default=None, alias="runPageURL", max_length=2048)
    attempt: int = pydantic.Field(
        ge=0, description="Attempts before this one (a retry resumes where the last stopped)."
    )
    failures: int = pydantic.Field(default=0, ge=0, description="Failed attempts so far.")
    stopped: bool = pydantic.Field(
        default=False, description="The operator cancelled this attempt for spec.suspend."
    )
    life_cycle_state: str | None = pydantic.Field(default=None, max_length=64)
    result_state: str | None = pydantic.Field(default=None, max_length=64)
    termination_code: str | None = pydantic.Field(default=None, max_length=64)


class Run(common.Model):
    """One run: the only one of a one-off job, or one scheduled time of a scheduled one."""

    name: str = pydantic.Field(max_length=63, description="Its Kubernetes Job's name.")
    scheduled_time: datetime.datetime | None = None
    state: RunState
    reason: str = pydantic.Field(default="", max_length=64)
    start_time: datetime.datetime | None = None
    completion_time: datetime.datetime | None = None
    records: int | None = pydantic.Field(default=None, ge=0)
    failed: int | None = pydantic.Field(default=None, ge=0)
    cost_usd: common.DecimalUSD | None = pydantic.Field(default=None, alias="costUSD")
    output_uri: str | None = pydantic.Field(default=None, alias="outputURI", max_length=2300)
    notified: bool = pydantic.Field(
        default=False, description="Its completion notice was sent (Event, and webhook if set)."
    )
    databricks: DatabricksRun | None = None


class BatchJobStatus(common.Status):
    progress: Progress | None = None
    cost: BatchCost | None = None
    estimate: Estimate | None = None
    last_run: Run | None = None
    runs: list[Run] = pydantic.Field(default_factory=list, max_length=202)
    last_schedule_time: datetime.datetime | None = None
    next_run: datetime.datetime | None = None
    start_time: datetime.datetime | None = None
    completion_time: datetime.datetime | None = None
    duration_seconds: int | None = pydantic.Field(default=None, ge=0)
