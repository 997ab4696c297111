"""The streaming job's configuration: what the operator renders into the job's ConfigMap, or
what flags build for a run outside Kubernetes."""

from __future__ import annotations

import json
import pathlib

import pydantic

from tiers.runtime import modelcall


class StreamJobConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    pipeline: str = "local/pipeline"
    """namespace/name of the StreamPipeline: the key of its stats."""
    bootstrap: str
    input_topic: str
    output_topic: str
    dead_letter_topic: str
    model: modelcall.ModelCallConfig
    checkpoint: str
    """A folder or URI where Spark keeps offsets: a restart resumes from it."""
    trigger_interval_ms: int = 500
    max_offsets_per_trigger: int | None = None
    starting_offsets: str = "earliest"
    stats_redis_url: str | None = None
    master: str = "local[2]"
    jars: tuple[str, ...] = ()
    """Spark's Kafka connector jars (globs allowed), unless the image has them on its classpath."""
    spark_conf: dict[str, str] = pydantic.Field(default_factory=dict)
    async_progress: bool = True
    """Commit offsets off the critical path (Kafka sink only): halves the per-batch floor."""


def load(path: pathlib.Path) -> StreamJobConfig:
    return StreamJobConfig.model_validate(json.loads(path.read_text()))
