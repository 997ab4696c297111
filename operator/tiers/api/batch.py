"""BatchJob: a dataset scored by the model on Databricks or Spark, once or on a schedule."""

from __future__ import annotations

import datetime
from typing import Literal

import pydantic

from tiers.api import common

# Five cron fields (minute hour day-of-month month day-of-week) or a macro such as @daily.
CRON_RULE = (
    r"self.matches('^(@(yearly|annually|monthly|weekly|daily|hourly)"
    r"|([0-9*/,?-]+ +){2}[0-9*/,?LW-]+ +[0-9A-Za-z*/,-]+ +[0-9A-Za-z*/,?L#-]+)$')"
)

BatchEngine = Literal["databricks", "spark"]
DataFormat = Literal["jsonl", "parquet", "csv"]


class Dataset(common.Model):
    uri: str = pydantic.Field(
        max_length=2048,
        pattern=r"^((s3a?|gs|abfss|hdfs|file)://|dbfs:/)\S+$",
        description="Data URI: s3://, s3a://, gs://, abfss://, hdfs://, file:// or dbfs:/",
    )
    format: DataFormat = "jsonl"


class Input(Dataset):
    id_field: str = pydantic.Field(
        default="id", max_length=128, description="Unique record key; reruns skip done ids."
    )


class Databricks(common.Model):
    """Where and on what the Databricks job runs."""

    host: str = pydantic.Field(max_length=2048, pattern=r"^https?://\S+$")
    token_secret_ref: common.SecretKeyRef
    spark_version: str = pydantic.Field(default="15.4.x-scala2.12", max_length=64)
    node_type_id: str = pydantic.Field(default="i3.xlarge", max_length=64)
    num_workers: int = pydantic.Field(default=2, ge=0, le=10000)


class Spark(common.Model):
    """A Spark batch job on this cluster."""

    image: str | None = pydantic.Field(default=None, max_length=512)
    executors: int = pydantic.Field(default=2, ge=1, le=10000)
    executor_cores: int = pydantic.Field(default=2, ge=1, le=256)
    executor_memory: str = pydantic.Field(default="4Gi", pattern=r"^[0-9]+(Mi|Gi)$", max_length=16)


class Budget(common.Model):
    """Refuse to start a run whose cost estimate is above the cap."""

    max_usd: common.DecimalUSD = pydantic.Field(alias="maxUSD")


class Notification(common.Model):
    """Where the completion notice goes."""

    webhook_url: str = pydantic.Field(
        alias="webhookURL", max_length=2048, pattern=r"^https?://\S+$"
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
        )
    )

    engine: BatchEngine = pydantic.Field(
        description="databricks (Jobs API) or spark (on this cluster); immutable.",
        json_schema_extra=common.validations(
            common.cel("self == oldSelf", "engine is immutable", reason="FieldValueForbidden")
        ),
    )
    input: Input
    output: Dataset
    model: common.ModelCall
    schedule: str | None = pydantic.Field(
        default=None,
        max_length=128,
        description='Cron schedule ("0 2 * * *") or @hourly/@daily/@weekly/@monthly/@yearly.',
        json_schema_extra=common.validations(
            common.cel(
                CRON_RULE,
                "schedule must be a cron expression of five fields, e.g. '0 2 * * *',"
                " or one of @hourly, @daily, @weekly, @monthly, @yearly",
            )
        ),
    )
    concurrency_policy: Literal["Forbid", "Allow", "Replace"] = "Forbid"
    suspend: bool = False
    databricks: Databricks | None = None
    spark: Spark = pydantic.Field(default_factory=Spark)
    budget: Budget | None = None
    notification: Notification | None = None
    timeout_seconds: int | None = pydantic.Field(default=None, ge=60, le=604800)


class Progress(common.Model):
    records_total: int | None = pydantic.Field(default=None, ge=0)
    records_done: int = pydantic.Field(ge=0)
    records_failed: int = pydantic.Field(ge=0)
    percent: int = pydantic.Field(ge=0, le=100)


class BatchCost(common.CostStatus):
    per_record_usd: common.DecimalUSD = pydantic.Field(alias="perRecordUSD")
    estimate_usd: common.DecimalUSD | None = pydantic.Field(
        default=None, alias="estimateUSD", description="Estimated before the run started."
    )


class BatchJobStatus(common.Status):
    progress: Progress | None = None
    cost: BatchCost | None = None
    run_id: str | None = pydantic.Field(default=None, max_length=128)
    start_time: datetime.datetime | None = None
    completion_time: datetime.datetime | None = None
    next_run: datetime.datetime | None = None
