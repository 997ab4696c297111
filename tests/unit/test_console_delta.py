"""The console's Delta table reader without Spark: which files the log's actions leave in the
table, which checkpoint it starts from, the tables it refuses, and the rows it serves (a table
written here as the Delta protocol lays it out; test_batch_job.py reads delta-spark's own)."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tiers.console import delta, results

SCHEMA = {"type": "struct", "fields": [
    {"name": "id", "type": "string", "nullable": True, "metadata": {}},
    {"name": "output", "type": "string", "nullable": True, "metadata": {}},
    {"name": "attempt", "type": "integer", "nullable": True, "metadata": {}},
    {"name": "outcome", "type": "string", "nullable": True, "metadata": {}},
]}  # fmt: skip
PROTOCOL = {"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}}
METADATA = {"metaData": {"id": "t", "format": {"provider": "parquet", "options": {}},
                         "schemaString": json.dumps(SCHEMA), "partitionColumns": ["outcome"],
                         "configuration": {}}}  # fmt: skip


def add(path: str, outcome: str = "ok") -> dict[str, Any]:
    return {"add": {"path": path, "partitionValues": {"outcome": outcome}, "size": 1,
                    "modificationTime": 0, "dataChange": True}}  # fmt: skip


def remove(path: str) -> dict[str, Any]:
    return {"remove": {"path": path, "deletionTimestamp": 0, "dataChange": True}}


def test_a_file_removed_by_a_later_version_is_not_in_the_table() -> None:
    replay = delta.Replay()
    for action in (PROTOCOL, METADATA, add("outcome=ok/a.parquet"), add("outcome=error/b.parquet", "error"),
                   remove("outcome=ok/a.parquet"), add("outcome=ok/c%20d.parquet")):  # fmt: skip
        replay.apply(action)
    snapshot = replay.snapshot(2)
    paths = [f.path for f in snapshot.files]
    assert paths == ["outcome=error/b.parquet", "outcome=ok/c%20d.parquet"]
    assert [c.name for c in snapshot.columns] == ["id", "output", "attempt", "outcome"]
    assert snapshot.partition_columns == ("outcome",)
    # A remove names the path as its add did, encoded or not.
    replay.apply(remove("outcome=ok/c d.parquet"))
    assert [f.path for f in replay.snapshot(3).files] == ["outcome=error/b.parquet"]


def test_the_newest_complete_checkpoint_is_where_the_replay_starts() -> None:
    names = [
        "00000000000000000010.checkpoint.parquet",
        "00000000000000000020.checkpoint.0000000001.0000000002.parquet",
        "00000000000000000020.checkpoint.0000000002.0000000002.parquet",
        "00000000000000000030.checkpoint.0000000001.0000000002.parquet",  # half written
        "00000000000000000030.json",
        "_last_checkpoint",
    ]
    assert delta.newest_checkpoint(names) == (20, names[1:3])
    assert delta.newest_checkpoint(["00000000000000000000.json"]) == (None, [])


@pytest.mark.parametrize(
    ("protocol", "needs"),
    [
        ({"minReaderVersion": 2, "minWriterVersion": 5}, "reader version 2"),
        ({"minReaderVersion": 3, "minWriterVersion": 7, "readerFeatures": ["deletionVectors"]},
         "deletionVectors"),
    ],
)  # fmt: skip
def test_a_table_that_needs_more_of_its_reader_is_refused_with_what_it_needs(
    protocol: dict[str, Any], needs: str
) -> None:
    with pytest.raises(delta.Unreadable, match=needs):
        delta.check_protocol(protocol)
    delta.check_protocol({"minReaderVersion": 3, "readerFeatures": ["timestampNtz"]})


def write_table(table: pathlib.Path, commits: list[list[dict[str, Any]]]) -> None:
    (table / delta.LOG).mkdir(parents=True)
    for version, actions in enumerate(commits):
        text = "".join(json.dumps(action) + "\n" for action in actions)
        (table / delta.LOG / f"{version:020d}.json").write_text(text)


def write_rows(path: pathlib.Path, ids: list[str], attempt: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = {"id": ids, "output": [f"scored {i}" for i in ids], "attempt": [attempt] * len(ids)}
    pq.write_table(pa.table(rows), path)


def served(output: pathlib.Path, form: str, outcome: str = "ok") -> list[dict[str, Any]]:
    found = results.parts(output, form=form, outcome=outcome)
    return [json.loads(line) for line in b"".join(results.json_lines(found)).splitlines()]


def test_the_current_versions_rows_of_one_outcome_are_served_as_json_lines(
    tmp_path: pathlib.Path,
) -> None:
    table = tmp_path / "scored"
    write_rows(table / "outcome=ok" / "v0.parquet", ["a", "b"], 1)
    write_rows(table / "outcome=ok" / "v1.parquet", ["a", "b", "c"], 2)
    write_rows(table / "outcome=error" / "v1.parquet", ["d"], 2)
    write_table(table, [
        [PROTOCOL, METADATA, add("outcome=ok/v0.parquet")],
        [remove("outcome=ok/v0.parquet"), add("outcome=ok/v1.parquet"),
         add("outcome=error/v1.parquet", "error")],
    ])  # fmt: skip

    expected = [{"id": i, "output": f"scored {i}", "attempt": 2, "outcome": "ok"} for i in "abc"]
    assert served(table, "delta") == expected
    assert [row["id"] for row in served(table, "delta", "error")] == ["d"]
    assert results.parts(tmp_path / "not-yet", form="delta", outcome="ok") == []


def test_a_log_that_names_a_file_outside_its_table_is_refused(tmp_path: pathlib.Path) -> None:
    table = tmp_path / "scored"
    write_rows(tmp_path / "elsewhere.parquet", ["x"], 1)
    write_table(table, [[PROTOCOL, METADATA, add("../elsewhere.parquet")]])
    with pytest.raises(delta.Unreadable, match="not in its own folder"):
        results.parts(table, form="delta", outcome="ok")


def test_csv_and_parquet_outputs_are_served_as_json_lines_too(tmp_path: pathlib.Path) -> None:
    for attempt in (1, 2):
        folder = tmp_path / "csv" / f"attempt={attempt}" / "outcome=ok"
        folder.mkdir(parents=True)
        (folder / "part-0.csv").write_text(f"id,output\nr{attempt},yes\n")
        write_rows(tmp_path / "pq" / f"attempt={attempt}" / "outcome=ok" / "part-0.parquet",
                   [f"r{attempt}"], attempt)  # fmt: skip
    assert served(tmp_path / "csv", "csv") == [{"id": "r1", "output": "yes"},
                                               {"id": "r2", "output": "yes"}]  # fmt: skip
    assert [row["attempt"] for row in served(tmp_path / "pq", "parquet")] == [1, 2]
