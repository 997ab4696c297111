"""The batch bench's other baseline: a plain asyncio loop over the same records with the same
model client and config as the job, in one Python process and no Spark.

It reads the JSON lines, hands `CHUNK_RECORDS` at a time to `ModelClient.score` (two chunks in
flight, as the job's worker scores one Arrow batch while it parses the next), and writes one
JSON line per result with the job's columns. What it reaches is what the model client itself
does on one core; the job adds Spark's read, tasks, Arrow transfer and write around it.
"""

from __future__ import annotations

import asyncio
import collections
import pathlib
from collections.abc import Iterator
from typing import Any

import orjson
from tiers.runtime.modelcall import ModelCallConfig, ModelClient, RowResult

CHUNK_RECORDS = 10_000
"""The same as Spark's Arrow batch (`spark.sql.execution.arrow.maxRecordsPerBatch`)."""
IN_FLIGHT_CHUNKS = 2


def score_file(
    settings: ModelCallConfig, source: pathlib.Path, dest: pathlib.Path, *, id_field: str = "id"
) -> int:
    """Scores every line of `source` into `dest`; the number of results written."""
    return asyncio.run(_score_file(settings, source, dest, id_field))


async def _score_file(
    settings: ModelCallConfig, source: pathlib.Path, dest: pathlib.Path, id_field: str
) -> int:
    written = 0
    pending: collections.deque[tuple[list[str], asyncio.Task[list[RowResult]]]] = (
        collections.deque()
    )
    async with ModelClient(settings) as client:
        with dest.open("wb") as out:
            for chunk in _chunks(source, CHUNK_RECORDS):
                keys = [str(row[id_field]) for row in chunk]
                pending.append((keys, asyncio.create_task(client.score(chunk, keys=keys))))
                if len(pending) >= IN_FLIGHT_CHUNKS:
                    written += await _write(out, *pending.popleft())
            while pending:
                written += await _write(out, *pending.popleft())
    return written


def _chunks(source: pathlib.Path, size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    with source.open("rb") as lines:
        for line in lines:
            chunk.append(orjson.loads(line))
            if len(chunk) == size:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


async def _write(out: Any, keys: list[str], task: asyncio.Task[list[RowResult]]) -> int:
    found = await task
    out.write(b"".join(_line(key, result) for key, result in zip(keys, found, strict=True)))
    return len(found)


def _line(key: str, result: RowResult) -> bytes:
    """The job's columns: the id, the result less its key, the outcome."""
    fields = result._asdict()
    del fields["key"]
    return orjson.dumps({"id": key, **fields, "outcome": result.status}) + b"\n"
