"""What a BatchJob's results download serves: the records of one outcome (`ok` or `error`) of
its run, as JSON lines whatever the output's format (`tiers.runtime.batch.layout` says where
they lie). `batch.results` calls it.

- jsonl: the part files as they are (already JSON lines), or an OpenAI batch's merged file;
- csv: each part's rows as JSON objects (the values as the CSV has them: text);
- parquet: each part's rows, a batch of `ROWS_PER_CHUNK` at a time, never a whole file;
- delta: the rows of the table's current version in the outcome's partition (`delta`), with
  the table's columns in its schema's order; staged attempts and removed files are not read.
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import pathlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal

import orjson

from tiers.console import delta
from tiers.runtime.batch import layout, records

CHUNK = 1024 * 1024
ROWS_PER_CHUNK = 1024


@dataclasses.dataclass(frozen=True)
class Part:
    """One file of results and how to read it."""

    path: pathlib.Path
    form: Literal["lines", "csv", "parquet"]
    columns: tuple[str, ...] = ()
    """The order of a row's columns (a Delta table's schema); empty: the file's own."""
    partition: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Columns that every row of the file has, from the folder it lies in."""


def parts(output: pathlib.Path, *, form: str, outcome: str) -> list[Part]:
    """The files that hold the run's records of `outcome`; empty when there are none yet.
    Raises `delta.Unreadable` for a Delta table this console cannot read."""
    if form == "delta":
        return _table_parts(output, outcome) if (output / delta.LOG).is_dir() else []
    merged = output / dict(layout.MERGED_FILES)[outcome]
    if merged.is_file():
        return [Part(merged, "lines")]
    found = sorted(glob.glob(layout.parts_glob(str(output), outcome)))
    kind: Literal["lines", "csv", "parquet"] = (
        "csv" if form == "csv" else "parquet" if form == "parquet" else "lines"
    )
    return [Part(pathlib.Path(path), kind) for path in found if pathlib.Path(path).is_file()]


def _table_parts(table: pathlib.Path, outcome: str) -> list[Part]:
    snapshot = delta.current(table)
    columns = {column.name: column for column in snapshot.columns}
    found = []
    for data_file in snapshot.files:
        if data_file.partition_values.get(records.OUTCOME) != outcome:
            continue
        partition = {
            name: delta.partition_value(value, columns.get(name, delta.Column(name, "string")))
            for name, value in data_file.partition_values.items()
        }
        path = delta.data_path(table, data_file)
        found.append(Part(path, "parquet", tuple(columns), partition))
    return found


def json_lines(found: Iterable[Part]) -> Iterator[bytes]:
    """The parts' records as JSON lines, in chunks of at most `CHUNK` bytes or
    `ROWS_PER_CHUNK` rows: what is held in memory at once."""
    for part in found:
        if part.form == "lines":
            with part.path.open("rb") as source:
                while chunk := source.read(CHUNK):
                    yield chunk
        elif part.form == "csv":
            with part.path.open(newline="", encoding="utf-8", errors="replace") as source:
                yield from _encoded(_batches(csv.DictReader(source)), part)
        else:
            yield from _encoded(_parquet_batches(part.path), part)


def _parquet_batches(path: pathlib.Path) -> Iterator[list[dict[str, Any]]]:
    import pyarrow.parquet as parquet

    for batch in parquet.ParquetFile(path).iter_batches(batch_size=ROWS_PER_CHUNK):
        yield batch.to_pylist()


def _batches(rows: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == ROWS_PER_CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def _encoded(batches: Iterable[list[dict[str, Any]]], part: Part) -> Iterator[bytes]:
    for batch in batches:
        lines = []
        for row in batch:
            row.update(part.partition)
            if part.columns:
                row = {name: row.get(name) for name in part.columns}
            lines.append(orjson.dumps(row, default=str))
        yield b"\n".join(lines) + b"\n"
