"""A Delta table's current version, read without Spark: which Parquet files hold its rows, from
its `_delta_log` as the Delta protocol defines it (the newest complete checkpoint, then each
commit after it in order: an `add` puts a file in the table, a `remove` takes it out). Files
that a later version removed are never read. `results` calls it for a BatchJob whose output is
a Delta table (`tiers.runtime.batch.layout`).

Reads tables of reader version 1 (what delta-spark writes by default), or of reader version 3
with no reader feature but those that change nothing for a reader of whole Parquet files
(`READABLE_FEATURES`); anything else (column mapping, deletion vectors, v2 checkpoints) is
refused as `Unreadable`, with what the table needs.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

LOG = "_delta_log"
READABLE_FEATURES = frozenset({"timestampNtz", "vacuumProtocolCheck"})
"""Reader features whose tables a reader of whole Parquet files reads as they are."""
_COMMIT = re.compile(r"^([0-9]{20})\.json$")
_CHECKPOINT = re.compile(r"^([0-9]{20})\.checkpoint(?:\.([0-9]{10})\.([0-9]{10}))?\.parquet$")
_CHECKPOINT_COLUMNS = ["add", "metaData", "protocol"]


class Unreadable(Exception):
    """The table is not one this reader can read (its message says why)."""


@dataclasses.dataclass(frozen=True)
class DataFile:
    path: str
    """As the log writes it: a URI relative to the table's folder (or absolute)."""
    partition_values: Mapping[str, str | None]


@dataclasses.dataclass(frozen=True)
class Column:
    name: str
    type: str
    """The Delta type's name (`string`, `long`, ...; a complex type's JSON)."""


@dataclasses.dataclass(frozen=True)
class Snapshot:
    version: int
    files: tuple[DataFile, ...]
    columns: tuple[Column, ...]
    partition_columns: tuple[str, ...]


@dataclasses.dataclass
class Replay:
    """The table's state as the log's actions are applied, oldest first. Pure."""

    files: dict[str, DataFile] = dataclasses.field(default_factory=dict)
    metadata: Mapping[str, Any] | None = None
    protocol: Mapping[str, Any] | None = None

    def apply(self, action: Mapping[str, Any]) -> None:
        if (added := action.get("add")) is not None:
            values = added.get("partitionValues") or {}
            # A checkpoint read with Arrow gives a map as (key, value) pairs.
            values = dict(values) if not isinstance(values, Mapping) else values
            self.files[_key(added["path"])] = DataFile(added["path"], values)
        elif (removed := action.get("remove")) is not None:
            self.files.pop(_key(removed["path"]), None)
        elif (metadata := action.get("metaData")) is not None:
            self.metadata = metadata
        elif (protocol := action.get("protocol")) is not None:
            self.protocol = protocol

    def snapshot(self, version: int) -> Snapshot:
        check_protocol(self.protocol)
        if self.metadata is None:
            raise Unreadable(f"version {version} of the table has no metadata in its log")
        schema = json.loads(self.metadata.get("schemaString") or "{}")
        columns = tuple(
            Column(str(field["name"]), _type_name(field.get("type")))
            for field in schema.get("fields") or ()
        )
        partitions = tuple(str(name) for name in self.metadata.get("partitionColumns") or ())
        ordered = tuple(self.files[path] for path in sorted(self.files))
        return Snapshot(version, ordered, columns, partitions)


def check_protocol(protocol: Mapping[str, Any] | None) -> None:
    """Refuses a table whose readers need what this reader does not do."""
    version = int((protocol or {}).get("minReaderVersion", 1))
    features = set((protocol or {}).get("readerFeatures") or ())
    if version == 1 or (version == 3 and features <= READABLE_FEATURES):
        return
    needs = ", ".join(sorted(features - READABLE_FEATURES)) or f"reader version {version}"
    raise Unreadable(f"the Delta table needs a reader with {needs}; read it with Spark")


def current(table: pathlib.Path) -> Snapshot:
    """The table's newest version: its checkpoint's actions, then each later commit's."""
    log = table / LOG
    try:
        names = [entry.name for entry in log.iterdir()]
    except FileNotFoundError:
        raise Unreadable(f"{table} has no {LOG}: not a Delta table (yet)") from None
    commits = {int(m.group(1)): name for name in names if (m := _COMMIT.match(name))}
    checkpoint, parts = newest_checkpoint(names)
    latest = max(commits, default=checkpoint if checkpoint is not None else -1)
    if latest < 0:
        raise Unreadable(f"{table}/{LOG} holds no commit yet")
    replay = Replay()
    start = 0
    if checkpoint is not None and checkpoint <= latest:
        for part in parts:
            for action in _checkpoint_actions(log / part):
                replay.apply(action)
        start = checkpoint + 1
    for version in range(start, latest + 1):
        if version not in commits:
            raise Unreadable(f"{table}/{LOG} lacks commit {version} (cleaned up?)")
        with (log / commits[version]).open("rb") as lines:
            for line in lines:
                if line.strip():
                    replay.apply(json.loads(line))
    return replay.snapshot(latest)


def newest_checkpoint(names: Iterable[str]) -> tuple[int | None, list[str]]:
    """The newest checkpoint whose parts are all there, and its files' names, in order."""
    found: dict[int, dict[int, str]] = {}
    totals: dict[tuple[int, int], dict[int, str]] = {}
    for name in names:
        match = _CHECKPOINT.match(name)
        if match is None:
            continue
        version = int(match.group(1))
        if match.group(2) is None:
            found[version] = {1: name}
        else:
            part, total = int(match.group(2)), int(match.group(3))
            totals.setdefault((version, total), {})[part] = name
    for (version, total), parts in totals.items():
        if len(parts) == total and version not in found:
            found[version] = parts
    if not found:
        return None, []
    version = max(found)
    return version, [found[version][part] for part in sorted(found[version])]


def _checkpoint_actions(path: pathlib.Path) -> Iterator[Mapping[str, Any]]:
    import pyarrow.parquet as parquet

    source = parquet.ParquetFile(path)
    present = [name for name in _CHECKPOINT_COLUMNS if name in source.schema_arrow.names]
    for batch in source.iter_batches(batch_size=4096, columns=present):
        for row in batch.to_pylist():
            for name, value in row.items():
                if value is not None:
                    yield {name: value}


def data_path(table: pathlib.Path, data_file: DataFile) -> pathlib.Path:
    """Where a data file lies: under the table's folder, or the table is refused (a log that
    names a file elsewhere is not read from here)."""
    parsed = urllib.parse.urlparse(data_file.path)
    if parsed.scheme not in ("", "file"):
        raise Unreadable(f"the table names a file at {data_file.path}, not in its own folder")
    relative = urllib.parse.unquote(parsed.path)
    path = (table / relative).resolve() if not parsed.scheme else pathlib.Path(relative).resolve()
    if not path.is_relative_to(table.resolve()):
        raise Unreadable(f"the table names a file at {data_file.path}, not in its own folder")
    return path


def partition_value(text: str | None, column: Column) -> Any:
    """A partition value as the column's type has it (the log writes them all as text)."""
    if text is None:
        return None
    if column.type in ("long", "integer", "short", "byte"):
        return int(text)
    if column.type in ("double", "float"):
        return float(text)
    if column.type == "boolean":
        return text == "true"
    return text


def _key(path: str) -> str:
    return urllib.parse.unquote(path)


def _type_name(kind: Any) -> str:
    return kind if isinstance(kind, str) else json.dumps(kind, sort_keys=True)
