"""What the streaming job's micro-batches did, read from Spark's event log.

The bench turns on `spark.eventLog.enabled` for the job it starts; Spark then writes every
`StreamingQueryProgress` (one per micro-batch with data, and one per idle interval) as a
`QueryProgressEvent` line. `read(folder)` returns them; `summary(...)` sums up the batches that
started within a window of wall-clock time (one phase of the bench).
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import pathlib
import statistics
from collections.abc import Sequence
from typing import Any

import orjson

_PROGRESS_EVENT = b"QueryProgressEvent"


@dataclasses.dataclass(frozen=True)
class Batch:
    started_s: float
    """Wall-clock (time.time()) start of the trigger."""
    rows: int
    duration_ms: float
    """`batchDuration`: the whole trigger, from reading offsets to committing."""
    add_batch_ms: float
    """`durationMs.addBatch`: running the batch (reading Kafka, scoring, writing Kafka)."""


def spark_conf(folder: pathlib.Path) -> dict[str, str]:
    """The Spark settings that write the event log into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": folder.resolve().as_uri(),
        # Plain text in one file: the bench reads it line by line.
        "spark.eventLog.compress": "false",
        "spark.eventLog.rolling.enabled": "false",
    }


def read(folder: pathlib.Path) -> list[Batch]:
    """Every micro-batch with input rows that the job's event log(s) in `folder` recorded."""
    batches = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        with path.open("rb") as log:
            for line in log:
                if _PROGRESS_EVENT not in line:
                    continue
                try:
                    progress = orjson.loads(line)["progress"]
                except (orjson.JSONDecodeError, KeyError):
                    continue  # a line cut short by the job's stop
                batch = _batch(progress)
                if batch is not None and batch.rows > 0:
                    batches.append(batch)
    return sorted(batches, key=lambda batch: batch.started_s)


def _batch(progress: dict[str, Any]) -> Batch | None:
    try:
        started = datetime.datetime.fromisoformat(progress["timestamp"])
        durations = progress.get("durationMs") or {}
        # The event log has the rows per source only (the progress JSON sums them up too).
        rows = sum(int(source["numInputRows"]) for source in progress.get("sources") or [])
        return Batch(
            started_s=started.timestamp(),
            rows=rows,
            duration_ms=float(progress.get("batchDuration") or durations["triggerExecution"]),
            add_batch_ms=float(durations.get("addBatch", math.nan)),
        )
    except (KeyError, ValueError, TypeError):
        return None


@dataclasses.dataclass(frozen=True)
class Summary:
    batches: int
    rows: int
    rows_per_batch_p50: float
    duration_p50_ms: float
    duration_max_ms: float
    add_batch_share: float
    """Of the batches' total duration, the share spent in addBatch (the work itself)."""
    rows_per_s: float
    """Rows over the batches' summed durations: what Spark processed while it was busy."""


def summary(batches: Sequence[Batch], start_s: float, end_s: float) -> Summary | None:
    """The batches that started between `start_s` and `end_s` (time.time())."""
    within = [batch for batch in batches if start_s <= batch.started_s <= end_s]
    if not within:
        return None
    total_ms = sum(batch.duration_ms for batch in within)
    add_ms = sum(batch.add_batch_ms for batch in within if not math.isnan(batch.add_batch_ms))
    return Summary(
        batches=len(within),
        rows=sum(batch.rows for batch in within),
        rows_per_batch_p50=statistics.median(batch.rows for batch in within),
        duration_p50_ms=statistics.median(batch.duration_ms for batch in within),
        duration_max_ms=max(batch.duration_ms for batch in within),
        add_batch_share=add_ms / total_ms if total_ms > 0 else math.nan,
        rows_per_s=sum(batch.rows for batch in within) * 1000 / total_ms if total_ms else math.nan,
    )
