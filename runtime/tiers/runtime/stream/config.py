"""The streaming job's configuration: what the operator renders into the job's ConfigMap, or
what flags build for a run outside Kubernetes."""

from __future__ import annotations

import json
import os
import pathlib
import types
from collections.abc import Mapping

import pydantic

# The config module, not the package: the operator renders this config and must not reach the
# model client through the package's (lazy) names, not even on paper (see pyproject's contracts).
from tiers.runtime.modelcall.config import ModelCallConfig
from tiers.runtime.tracing import config as tracing_config

SPARK_CONF: Mapping[str, str] = types.MappingProxyType(
    {
        "spark.ui.enabled": "false",
        # A speculative copy of a task would pay for the same model calls twice.
        "spark.speculation": "false",
        "spark.sql.shuffle.partitions": "2",
        "spark.sql.streaming.stopGracefullyOnShutdown": "true",
        "spark.python.worker.reuse": "true",
        "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1",
        "spark.executor.extraJavaOptions": "-XX:TieredStopAtLevel=1",
    }
)
"""What every run of the job sets, whoever starts it: the job's own session, and the operator's
SparkApplication (where spark-submit starts the JVM before the job's code runs)."""


class PushConfig(pydantic.BaseModel):
    """Who may use the push gateway, and how much one request may carry."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    api_keys_dir: pathlib.Path | None = None
    """A mounted Secret, one accepted key per file (see `tiers.runtime.apikeys`). None: no auth;
    set: every call needs `Authorization: Bearer <key>`, and each key sees only its own events."""
    allowed_origins: tuple[str, ...] = ()
    """Web pages (`https://host[:port]`) whose scripts may call it (CORS, WebSocket Origin);
    a request from any other page is refused. Clients that send no Origin are not browsers."""
    max_body_bytes: int = pydantic.Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    max_events_per_request: int = pydantic.Field(default=1000, ge=1, le=100_000)
    max_message_bytes: int = pydantic.Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    """The largest WebSocket message a client may send."""


class StreamJobConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    pipeline: str = "local/pipeline"
    """namespace/name of the StreamPipeline: the key of its stats."""
    bootstrap: str | None = None
    """Kafka's host:port[,host:port]; None: `bootstrap_env` names the variable that holds them
    (the operator's pods read bootstrap servers kept in a Secret from it)."""
    bootstrap_env: str | None = None
    input_topic: str
    output_topic: str
    dead_letter_topic: str
    model: ModelCallConfig
    checkpoint: str
    """A folder or URI where Spark keeps offsets: a restart resumes from it."""
    trigger_interval_ms: int = 500
    max_offsets_per_trigger: int | None = None
    starting_offsets: str = "earliest"
    stats_redis_url: str | None = None
    stats_redis_password_env: str | None = None
    """The variable holding the stats Redis's password (from a Secret); the URL carries none."""
    master: str | None = "local[2]"
    """None: the master spark-submit was given (the Spark Operator's driver pod)."""
    jars: tuple[str, ...] = ()
    """Spark's Kafka connector jars (globs allowed), unless the image has them on its classpath."""
    spark_conf: dict[str, str] = pydantic.Field(default_factory=dict)
    push: PushConfig = PushConfig()
    async_progress: bool = True
    """Commit offsets off the critical path (Kafka sink only): halves the per-batch floor."""
    tracing: tracing_config.TracingConfig | None = None
    """spec.telemetry: a span per event's model call, in the trace of the input record's
    `traceparent` header, whose context the output record's headers carry on; None: none."""

    @pydantic.model_validator(mode="after")
    def _one_bootstrap(self) -> StreamJobConfig:
        if (self.bootstrap is None) == (self.bootstrap_env is None):
            raise ValueError("give exactly one of bootstrap or bootstrap_env")
        return self

    def bootstrap_servers(self) -> str:
        """Kafka's bootstrap servers: the config's own, or those in `bootstrap_env`."""
        if self.bootstrap is not None:
            return self.bootstrap
        assert self.bootstrap_env is not None
        value = os.environ.get(self.bootstrap_env, "").strip()
        if not value:
            raise RuntimeError(f"${self.bootstrap_env} (Kafka's bootstrap servers) is not set")
        return value


def load(path: pathlib.Path) -> StreamJobConfig:
    return StreamJobConfig.model_validate(json.loads(path.read_text()))
