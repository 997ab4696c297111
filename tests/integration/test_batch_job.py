"""The batch job end to end: real Spark (local[2]), real Redis, the mock model over HTTP.
Every record scored exactly once; a SIGKILL mid-run then a rerun loses nothing, doubles nothing
and repeats few model calls; failed records are retried by the next attempt; the estimate matches
the run's tokens; a budget refuses a run or stops it; progress reaches Redis."""

from __future__ import annotations

import decimal
import json
import os
import pathlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from conftest import wait_for

from tiers.devenv import redis_server as redis_server_module
from tiers.runtime import mockllm, modelcall, pricing
from tiers.runtime.batch import config, job, progress
from tiers.runtime.batch import records as batch_records

PROMPT = "Classify this ticket: {text}"


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    """One Spark session for the module's in-process runs (each run leaves it running)."""
    settings = config.BatchJobConfig(
        input=config.InputConfig(uri="unused"),
        output=config.OutputConfig(uri="unused"),
        model=modelcall.ModelCallConfig(
            target=modelcall.EndpointTarget(url="http://127.0.0.1:1/v1"), model="m", prompt="{x}"
        ),
    )
    session = job.session(settings)
    yield session
    session.stop()


@pytest.fixture
def mock() -> Iterator[str]:
    with mockllm.running() as url:
        yield url


def write_tickets(path: pathlib.Path, count: int, *, start: int = 0) -> pathlib.Path:
    with path.open("w") as out:
        for i in range(start, start + count):
            words = " ".join(f"word{(i * 7 + j) % 97}" for j in range(i % 11 + 3))
            out.write(json.dumps({"id": f"t{i}", "text": f"ticket {i}: {words}"}) + "\n")
    return path


def settings_for(
    input_path: pathlib.Path,
    output_dir: pathlib.Path,
    mock: str,
    **changes: Any,
) -> config.BatchJobConfig:
    model = {
        "target": modelcall.EndpointTarget(url=mock),
        "model": "gpt-4o-mini",
        "prompt": PROMPT,
        "max_tokens": 16,
        **changes.pop("model", {}),
    }
    return config.BatchJobConfig(
        input=config.InputConfig(uri=str(input_path), **changes.pop("input", {})),
        output=config.OutputConfig(uri=str(output_dir), **changes.pop("output", {})),
        model=modelcall.ModelCallConfig(**model),
        partition_bytes=64 * 1024,
        progress_interval_ms=200,
        **changes,
    )


def read_output(spark: Any, output: pathlib.Path, fmt: str = "json") -> list[dict[str, Any]]:
    reader = spark.read.format(fmt)
    if fmt == "csv":
        reader = reader.option("header", "true")
    return [row.asDict() for row in reader.load(str(output)).collect()]


def ids_of(rows: list[dict[str, Any]], outcome: str | None = None) -> list[str]:
    return [row["id"] for row in rows if outcome is None or row["outcome"] == outcome]


def test_every_record_is_scored_once_and_progress_reaches_redis(
    spark: Any, mock: str, tmp_path: pathlib.Path, redis_server: redis_server_module.RedisServer
) -> None:
    source = write_tickets(tmp_path / "tickets.jsonl", 3000)
    with source.open("a") as out:  # lines the job cannot score, each an error of its own
        out.write("not json\n")
        out.write(json.dumps({"text": "a ticket without an id"}) + "\n")
        out.write(json.dumps({"id": "t-empty", "body": "no text field"}) + "\n")
    settings = settings_for(
        source, tmp_path / "out", mock,
        model={"route": "completions", "rows_per_request": 16},
        stats_redis_url=redis_server.url, job="ns/triage", run="r1",
    )  # fmt: skip

    final = job.run(settings, spark=spark)

    rows = read_output(spark, tmp_path / "out")
    good = ids_of(rows, "ok")
    assert sorted(good) == sorted(f"t{i}" for i in range(3000))
    errors = sorted((row["id"] or "", row["error"]) for row in rows if row["outcome"] == "error")
    assert [id_ for id_, _ in errors] == ["", "", "t-empty"]
    assert "not a JSON line" in errors[0][1] + errors[1][1]
    assert "the record has no id: field 'id'" in errors[0][1] + errors[1][1]
    assert "missing field 'text'" in errors[2][1]
    assert final.state == "Succeeded"
    assert (final.total, final.done, final.failed) == (3003, 3000, 3)
    tokens_in = sum(row["tokens_in"] for row in rows)
    cost = sum(decimal.Decimal(row["cost_usd"]) for row in rows)
    assert (final.tokens_in, final.cost_usd) == (tokens_in, cost)
    published = progress.from_fields(
        {k.decode(): v.decode() for k, v in redis.Redis.from_url(redis_server.url)
         .hgetall(progress.key("ns/triage", "r1")).items()}
    )  # fmt: skip
    assert (published.state, published.done, published.failed) == ("Succeeded", 3000, 3)
    assert published.cost_usd == cost
    assert published.estimate is not None and published.estimate.records == 3003


def test_a_rerun_retries_only_failed_records_and_leaves_each_id_once(
    spark: Any, mock: str, tmp_path: pathlib.Path
) -> None:
    source = write_tickets(tmp_path / "tickets.jsonl", 400)
    settings = settings_for(source, tmp_path / "out", mock, model={"max_attempts": 1})
    mockllm.control.fail_next(mock, 25, status=500)

    first = job.run(settings, spark=spark)
    assert (first.done, first.failed) == (375, 25)
    calls_before = mockllm.control.stats(mock)["total"]
    second = job.run(settings, spark=spark)

    assert mockllm.control.stats(mock)["total"] - calls_before == 25  # only the failed ones
    assert (second.attempt, second.skipped, second.done, second.failed) == (2, 375, 400, 0)
    rows = read_output(spark, tmp_path / "out")
    assert sorted(ids_of(rows)) == sorted(f"t{i}" for i in range(400))  # each exactly once
    assert {row["attempt"] for row in rows if row["id"] in ids_of(rows, "ok")} == {1, 2}


@pytest.mark.parametrize(
    ("input_format", "output_format"), [("csv", "parquet"), ("parquet", "csv")]
)
def test_csv_and_parquet_in_and_out(
    spark: Any, mock: str, tmp_path: pathlib.Path, input_format: str, output_format: str
) -> None:
    frame = spark.createDataFrame(
        [(f"r{i}", f"review {i} was fine", i) for i in range(200)], "rid string, text string, n int"
    )
    source = tmp_path / f"in.{input_format}"
    writer = frame.coalesce(1).write.option("header", "true")
    writer.format(input_format).save(str(source))
    settings = settings_for(
        source, tmp_path / "out", mock,
        input={"format": input_format, "id_field": "rid"}, output={"format": output_format},
    )  # fmt: skip

    final = job.run(settings, spark=spark)

    rows = read_output(spark, tmp_path / "out", output_format)
    assert final.done == 200
    assert sorted(row["rid"] for row in rows) == sorted(f"r{i}" for i in range(200))
    assert {row["status"] for row in rows} == {"ok"}
    assert all(row["output"].startswith("Classify this ticket: review") for row in rows)


def test_the_estimate_is_within_ten_percent_of_the_runs_tokens(
    spark: Any, mock: str, tmp_path: pathlib.Path
) -> None:
    source = write_tickets(tmp_path / "tickets.jsonl", 2000)
    # A model the tokenizer does not know: the estimate approximates, as the mock counts.
    settings = settings_for(
        source, tmp_path / "out", mock, model={"model": "mock-model"}, sample_records=200
    )

    estimated = job.run(settings, spark=spark, estimate_only=True)
    assert not (tmp_path / "out").exists()  # an estimate scores nothing
    final = job.run(settings, spark=spark)

    assert estimated.estimate is not None
    assert estimated.estimate.records == 2000
    ratio = estimated.estimate.input_tokens / final.tokens_in
    assert 0.9 <= ratio <= 1.1, (estimated.estimate.input_tokens, final.tokens_in)


def test_a_run_estimated_above_its_budget_does_not_start(
    spark: Any, mock: str, tmp_path: pathlib.Path
) -> None:
    source = write_tickets(tmp_path / "tickets.jsonl", 1000)
    settings = settings_for(source, tmp_path / "out", mock, max_usd=decimal.Decimal("0.001"))

    with pytest.raises(job.Stopped) as stopped:
        job.run(settings, spark=spark)

    assert stopped.value.final.state == "OverBudget"
    assert "above the budget of $0.001000" in stopped.value.final.message
    assert mockllm.control.stats(mock)["total"] == 0


def test_a_run_that_spends_its_budget_stops_and_keeps_what_it_scored(
    spark: Any, tmp_path: pathlib.Path
) -> None:
    # The estimate samples the first records, which are short; the rest are long, so the run
    # spends more than estimated (the case the stop is for).
    source = write_tickets(tmp_path / "tickets.jsonl", 100)
    with source.open("a") as out:
        for i in range(100, 4000):
            out.write(json.dumps({"id": f"t{i}", "text": "long " * 400}) + "\n")
    with mockllm.running(mockllm.MockConfig(latency=mockllm.Latency(fixed_ms=15))) as slow:
        settings = settings_for(
            source, tmp_path / "out", slow, model={"max_in_flight": 8}, sample_records=50
        )
        estimated = job.run(settings, spark=spark, estimate_only=True).estimate
        assert estimated is not None
        budget = estimated.cost_usd * 3
        with pytest.raises(job.Stopped) as stopped:
            job.run(settings.model_copy(update={"max_usd": budget}), spark=spark)

    final = stopped.value.final
    assert final.state == "BudgetSpent"
    assert final.cost_usd >= budget
    assert f"its budget is ${pricing.format_usd(budget)}" in final.message
    assert 0 < final.done < 4000
    rows = read_output(spark, tmp_path / "out")
    good = ids_of(rows, "ok")
    assert len(good) == len(set(good)) > 0  # what finished tasks scored is kept, once


def test_a_run_killed_midway_resumes_with_nothing_lost_or_doubled(tmp_path: pathlib.Path) -> None:
    count = 6000
    source = write_tickets(tmp_path / "tickets.jsonl", count)
    output = tmp_path / "out"
    with mockllm.running(mockllm.MockConfig(latency=mockllm.Latency(fixed_ms=10))) as slow:
        settings = settings_for(source, output, slow, model={"max_in_flight": 4})
        config_path = tmp_path / "batch.json"
        config_path.write_text(settings.model_dump_json())
        command = [sys.executable, "-m", "tiers.runtime.batch", "run", "--config", str(config_path)]
        log = (tmp_path / "first.log").open("w")
        first = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
        try:
            wait_for(
                lambda: len(list(output.glob("attempt=1/outcome=ok/part-*"))) >= 2,
                timeout_s=120, what="two tasks to commit", interval_s=0.05,
            )  # fmt: skip
        finally:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
        calls_first = mockllm.control.stats(slow)["total"]
        assert calls_first < count, "the run had finished before the kill"
        second = subprocess.run(command, capture_output=True, text=True, timeout=300)
        calls = mockllm.control.stats(slow)["total"]

    assert second.returncode == 0, second.stderr[-2000:]
    summary = json.loads(second.stdout.strip().splitlines()[-1])
    assert summary["state"] == "Succeeded" and summary["done"] == count
    lines = [
        json.loads(line)
        for part in output.glob("attempt=*/outcome=*/part-*")
        for line in part.read_text().splitlines()
    ]
    assert sorted(line["id"] for line in lines) == sorted(f"t{i}" for i in range(count))
    # Repeated calls: at most the records of the tasks that ran when the kill came (two task
    # slots, each one input split of partition_bytes).
    per_task = settings.partition_bytes // min(len(x) + 1 for x in source.read_text().splitlines())
    assert calls - count <= 2 * per_task, (calls, count, per_task)


def test_result_columns_keep_the_input_id_name() -> None:
    schema = batch_records.spark_schema("ticket_id")
    assert schema.startswith("`ticket_id` string, `status` string")
    assert schema.endswith("`outcome` string")
