"""The batch job end to end: real Spark (local[2]), real Redis, the mock model over HTTP.
Every record scored exactly once; a SIGKILL mid-run then a rerun loses nothing, doubles nothing
and repeats few model calls; failed records are retried by the next attempt; the estimate matches
the run's tokens; a budget refuses a run or stops it; progress reaches Redis; an OpenAI Batch API
file runs unchanged, its output and error files read back with the `openai` SDK's types, and a
rerun of it sends only what failed."""

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

import pydantic
import pytest
import redis
from conftest import wait_for
from openai.types import Completion, CreateEmbeddingResponse, ErrorObject
from openai.types.chat import ChatCompletion

from tiers.console import results as console_results
from tiers.devenv import jars, otlp_receiver
from tiers.devenv import redis_server as redis_server_module
from tiers.runtime import mockllm, modelcall, pricing
from tiers.runtime.batch import config, job, progress, scoring
from tiers.runtime.batch import records as batch_records
from tiers.runtime.tracing import config as tracing_config

PROMPT = "Classify this ticket: {text}"


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    """One Spark session for the module's in-process runs (each run leaves it running), with
    Delta Lake as a run with a Delta table sets it up."""
    settings = config.BatchJobConfig(
        input=config.InputConfig(uri="unused"),
        output=config.OutputConfig(uri="unused", format="delta"),
        jars=tuple(str(jar) for jar in jars.connector_jars(jars.SPARK_DELTA)),
        # A test table's log is a few commits: Delta's 50 tasks per log replay only cost time.
        spark_conf={"spark.databricks.delta.snapshotPartitions": "1"},
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
    assert published.interval_s == 0.2, "the interval the job published at, for the operator"


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
    ("input_format", "output_format"), [("csv", "parquet"), ("parquet", "csv"), ("delta", "delta")]
)
def test_csv_parquet_and_delta_in_and_out(
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


def interrupted_from(partition: int) -> Any:
    """A scorer whose tasks from `partition` on fail, as a run killed midway: the tasks before
    them have committed their results, the attempt has not finished."""

    def score(model_json: str, shape: scoring.Shape, tally: Any) -> Any:
        scored = scoring.score_partitions(model_json, shape, tally)

        def run(batches: Any) -> Any:
            from pyspark import TaskContext

            if TaskContext.get().partitionId() >= partition:
                raise RuntimeError("interrupted")
            yield from scored(batches)

        return run

    return score


def test_a_delta_table_gets_whole_attempts_and_a_rerun_scores_only_the_rest(
    spark: Any, mock: str, tmp_path: pathlib.Path
) -> None:
    count = 4000
    source = write_tickets(tmp_path / "tickets.jsonl", count)
    output = tmp_path / "scored"
    settings = settings_for(source, output, mock, output={"format": "delta"})

    with pytest.raises(job.Stopped) as stopped:
        job.run(settings, spark=spark, score=interrupted_from(2))
    interrupted = stopped.value.final
    assert interrupted.state == "Failed" and 0 < interrupted.done < count
    assert not (output / "_delta_log").exists()  # an unfinished attempt commits nothing
    final = job.run(settings, spark=spark)

    assert (final.attempt, final.skipped, final.done) == (2, interrupted.done, count)
    table = spark.read.format("delta").load(str(output))
    rows = [row.asDict() for row in table.collect()]
    assert sorted(ids_of(rows, "ok")) == sorted(f"t{i}" for i in range(count))  # each once
    rescored = [row for row in rows if row["attempt"] == 2]
    assert len(rescored) == count - interrupted.done  # the rerun scored only the rest
    assert sum(decimal.Decimal(row["cost_usd"]) for row in rows) == final.cost_usd
    history = spark.sql(f"DESCRIBE HISTORY delta.`{output}`").collect()
    assert [entry["operation"] for entry in history] == ["WRITE"]  # one version: attempt 2


def test_the_consoles_download_of_a_delta_table_is_what_spark_reads_of_its_current_version(
    spark: Any, tmp_path: pathlib.Path
) -> None:
    """The console reads a Delta output without Spark (tiers.console.results): after versions
    that replaced the table's contents as a run's commit does (job.commit_delta_table), and past
    a checkpoint, it serves exactly the rows Spark reads, and none of the removed files."""
    output = tmp_path / "scored"
    columns = f"{batch_records.spark_schema('id')}, `attempt` int"

    def commit(attempt: int, failed: int) -> None:
        rows = [(f"t{i}", "error" if i < failed else "ok", f"label {i}", None, 1, 5, 10, 2,
                 "0.000010", "stop", "error" if i < failed else "ok", attempt) for i in range(50)]  # fmt: skip
        frame = spark.createDataFrame(rows, columns)
        frame.write.format("delta").mode("overwrite").option("overwriteSchema", "true").partitionBy(
            batch_records.OUTCOME
        ).save(str(output))

    commit(1, failed=10)  # version 0
    spark.sql(f"ALTER TABLE delta.`{output}` SET TBLPROPERTIES ('delta.checkpointInterval' = '2')")
    commit(2, failed=4)  # version 2, checkpointed
    commit(3, failed=2)  # version 3

    assert list((output / "_delta_log").glob("*.checkpoint.parquet")), "a checkpoint to start from"
    table = spark.read.format("delta").load(str(output))
    for outcome, count in (("ok", 48), ("error", 2)):
        found = console_results.parts(output, form="delta", outcome=outcome)
        served = [json.loads(line) for line in b"".join(console_results.json_lines(found)).splitlines()]  # fmt: skip
        read = [row.asDict() for row in table.where(f"outcome = '{outcome}'").collect()]
        assert len(served) == count and {row["attempt"] for row in served} == {3}
        assert sorted(served, key=lambda row: row["id"]) == sorted(read, key=lambda row: row["id"])
    current = {part.path.name for part in console_results.parts(output, form="delta", outcome="ok")}
    on_disk = {path.name for path in output.glob("outcome=ok/*.parquet")}
    assert current < on_disk, "the earlier versions' files are still there, and not read"


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
    """Refused before scoring; traced, the stopped run's span still reaches the collector."""
    source = write_tickets(tmp_path / "tickets.jsonl", 1000)
    receiver = otlp_receiver.OtlpReceiver()
    try:
        settings = settings_for(
            source, tmp_path / "out", mock, max_usd=decimal.Decimal("0.001"), job="ns/refused",
            tracing=tracing_config.TracingConfig(otlp_endpoint=receiver.url),
        )  # fmt: skip

        with pytest.raises(job.Stopped) as stopped:
            job.run(settings, spark=spark)

        (span,) = receiver.spans()  # sent before run() raised
    finally:
        receiver.close()
    assert stopped.value.final.state == "OverBudget"
    assert "above the budget of $0.001000" in stopped.value.final.message
    assert mockllm.control.stats(mock)["total"] == 0
    assert (span.name, span.attributes["tiers.batch.state"]) == ("batch ns/refused", "OverBudget")
    assert span.status_code == 2 and "above the budget" in span.status_message


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
                timeout_s=300, what="two tasks to commit", interval_s=0.05,
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


OPENAI_TYPES: dict[str, type[pydantic.BaseModel]] = {
    "/v1/chat/completions": ChatCompletion,
    "/v1/completions": Completion,
    "/v1/embeddings": CreateEmbeddingResponse,
}
OUTPUT_LINE_KEYS = ["id", "custom_id", "response", "error"]


def write_openai_batch(path: pathlib.Path, count: int) -> dict[str, str]:
    """An OpenAI Batch API input file cycling through the three urls; custom_id -> url. The
    completions bodies name no model (the config's is sent)."""
    urls = list(OPENAI_TYPES)
    requests = {}
    with path.open("w") as out:
        for i in range(count):
            url, text = urls[i % 3], f"ticket {i}: " + " ".join(f"w{j}" for j in range(i % 7))
            body: dict[str, Any] = {
                "/v1/chat/completions": {
                    "model": "gpt-4o-mini",
                    "messages": [{"role": "system", "content": "Be brief."},
                                 {"role": "user", "content": text}],
                    "max_tokens": 8,
                },
                "/v1/completions": {"prompt": text, "max_tokens": 8},
                "/v1/embeddings": {"model": "text-embedding-3-small", "input": text},
            }[url]  # fmt: skip
            line = {"custom_id": f"req-{i}", "method": "POST", "url": url, "body": body}
            out.write(json.dumps(line) + "\n")
            requests[f"req-{i}"] = url
    return requests


def read_openai_files(output: pathlib.Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The output and error files, as `client.files.content(...)` would hand them over."""

    def lines(name: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in (output / name).read_text().splitlines()]

    return lines("output.jsonl"), lines("errors.jsonl")


def cost_of(body: dict[str, Any]) -> decimal.Decimal:
    """What a reply costs at the default prices of the model it names, worked out here."""
    usage = pricing.Usage.from_openai(body["usage"])
    return pricing.cost(usage, pricing.price_for(body["model"]))


def test_an_openai_batch_file_runs_unchanged_and_its_results_read_back_with_openais_types(
    spark: Any, mock: str, tmp_path: pathlib.Path
) -> None:
    source = tmp_path / "batch.jsonl"
    requests = write_openai_batch(source, 150)
    broken = {  # line -> its custom_id in the error file
        "not json": None,
        json.dumps([1, 2]): None,
        json.dumps({"method": "POST", "url": "/v1/completions", "body": {}}): None,
        json.dumps({"custom_id": "get", "method": "GET", "url": "/v1/completions", "body": {}}): "get",
        json.dumps({"custom_id": "responses", "method": "POST", "url": "/v1/responses", "body": {}}): "responses",
        json.dumps({"custom_id": "no-body", "method": "POST", "url": "/v1/embeddings"}): "no-body",
        json.dumps({"custom_id": "streamed", "method": "POST", "url": "/v1/completions",
                    "body": {"prompt": "x", "stream": True}}): "streamed",
    }  # fmt: skip
    # A request the model itself refuses (chat without messages): a 400 with its error body.
    refused = {"custom_id": "no-messages", "method": "POST", "url": "/v1/chat/completions",
               "body": {"model": "gpt-4o-mini"}}  # fmt: skip
    with source.open("a") as out:
        out.writelines(line + "\n" for line in [*broken, json.dumps(refused)])
    mockllm.control.fail_next(mock, 5, status=400)
    settings = settings_for(source, tmp_path / "out", mock, input={"format": "openai"})

    final = job.run(settings, spark=spark)

    output, errors = read_openai_files(tmp_path / "out")
    # Every custom_id exactly once across the two files; lines without one once each as null.
    ids = [line["custom_id"] for line in output + errors]
    expected = [*requests, "no-messages", *(i for i in broken.values() if i is not None)]
    assert sorted(i for i in ids if i is not None) == sorted(expected)
    assert ids.count(None) == 3
    assert all(list(line) == OUTPUT_LINE_KEYS for line in output + errors)
    assert len({line["id"] for line in output + errors}) == len(ids)
    assert all(line["id"].startswith("batch_req_") for line in output + errors)
    # The output file: 2xx answers whose bodies the SDK's own types read.
    assert len(output) == 145
    for line in output:
        response = line["response"]
        assert line["error"] is None and response["status_code"] == 200
        assert response["request_id"].startswith("req_")
        url = requests[line["custom_id"]]
        parsed = OPENAI_TYPES[url].model_validate(response["body"])
        if isinstance(parsed, ChatCompletion):
            assert parsed.choices[0].message.content
        elif isinstance(parsed, Completion):
            assert parsed.model == "gpt-4o-mini"  # the config's model: the body named none
            assert parsed.choices[0].text and parsed.usage is not None
        else:
            assert isinstance(parsed, CreateEmbeddingResponse)
            assert parsed.model == "text-embedding-3-small" and parsed.data[0].embedding
    # The error file: the model's refusals with their status and body, and the lines that got
    # no answer (here: were not requests) with an error instead.
    answered = [line for line in errors if line["response"] is not None]
    assert len(answered) == 6
    for line in answered:
        assert line["error"] is None and line["response"]["status_code"] == 400
        ErrorObject.model_validate(line["response"]["body"]["error"])
    (refusal,) = [line for line in answered if line["custom_id"] == "no-messages"]
    assert refusal["response"]["body"]["error"]["param"] == "messages"
    unanswered = {line["custom_id"]: line["error"] for line in errors if line["response"] is None}
    assert len(unanswered) == 5 and len(errors) - len(answered) == 7
    assert unanswered["responses"]["code"] == "invalid_request"
    assert unanswered["responses"]["message"].startswith(
        "'url' must be one of /v1/chat/completions"
    )
    assert unanswered["streamed"]["message"].startswith("'body.stream' must be false or absent")
    assert unanswered[None]["code"] in ("invalid_json_line", "invalid_request")
    # Counted as the files say: each request sent once, and its cost is its reply's usage.
    assert final.state == "Succeeded"
    assert (final.total, final.done, final.failed) == (158, 145, 13)
    assert mockllm.control.stats(mock)["total"] == 151
    assert final.cost_usd == sum(cost_of(line["response"]["body"]) for line in output)
    assert final.tokens_in == sum(
        line["response"]["body"]["usage"]["prompt_tokens"] for line in output
    )


def test_a_rerun_of_an_openai_batch_sends_only_what_failed_and_writes_the_files_again(
    spark: Any, mock: str, tmp_path: pathlib.Path
) -> None:
    source = tmp_path / "batch.jsonl"
    requests = write_openai_batch(source, 90)
    output_dir = tmp_path / "out"
    settings = settings_for(source, output_dir, mock, input={"format": "openai"},
                            model={"max_attempts": 1})  # fmt: skip
    mockllm.control.fail_next(mock, 6, status=500)

    first = job.run(settings, spark=spark)

    output, errors = read_openai_files(output_dir)
    assert (first.done, first.failed, len(output), len(errors)) == (84, 6, 84, 6)
    for line in errors:  # a 500 that outlived its (one) attempt: its status, OpenAI's error body
        assert line["response"]["status_code"] == 500 and line["error"] is None
        assert line["response"]["body"]["error"]["type"] == "server_error"
    calls_before = mockllm.control.stats(mock)["total"]
    # The rerun as a user runs it: the command line, the same file and output.
    second = subprocess.run(
        [sys.executable, "-m", "tiers.runtime.batch", "run", "--format", "openai",
         "--input", str(source), "--output", str(output_dir), "--endpoint", mock,
         "--model", "gpt-4o-mini"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert second.returncode == 0, second.stderr[-2000:]
    summary = json.loads(second.stdout.strip().splitlines()[-1])
    assert mockllm.control.stats(mock)["total"] - calls_before == 6  # only the failed ones
    assert (summary["attempt"], summary["skipped"], summary["done"], summary["failed"]) == (
        2,
        84,
        90,
        0,
    )
    output, errors = read_openai_files(output_dir)
    assert errors == []
    assert sorted(line["custom_id"] for line in output) == sorted(requests)
    assert not list(output_dir.glob("attempt=1/outcome=error/part-*"))  # superseded
    # The skipped lines' cost, read back from their replies, is what the first attempt counted.
    retried = [json.loads(line) for part in output_dir.glob("attempt=2/outcome=ok/part-*")
               for line in part.read_text().splitlines()]  # fmt: skip
    assert len(retried) == 6
    retried_cost = sum(cost_of(line["response"]["body"]) for line in retried)
    assert summary["costUSD"] == pricing.format_usd(first.cost_usd + retried_cost)


def test_a_traced_run_is_one_span_in_the_callers_trace_with_its_figures(
    spark: Any, mock: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = otlp_receiver.OtlpReceiver()
    try:
        trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
        monkeypatch.setenv("TRACEPARENT", f"00-{trace_id}-{parent}-01")
        source = write_tickets(tmp_path / "tickets.jsonl", 40)
        settings = settings_for(
            source, tmp_path / "out", mock, job="ns/traced", run="r1",
            tracing=tracing_config.TracingConfig(
                otlp_endpoint=receiver.url, service_name="tiers-batch"
            ),
        )  # fmt: skip

        final = job.run(settings, spark=spark)

        (span,) = receiver.spans()  # sent before run() returned
    finally:
        receiver.close()
    assert (span.trace_id, span.parent_id, span.name) == (trace_id, parent, "batch ns/traced")
    assert span.resource == {"service.name": "tiers-batch", "tiers.batch.job": "ns/traced"}
    assert span.attributes["tiers.batch.state"] == final.state == "Succeeded"
    assert span.attributes["tiers.batch.records_done"] == final.done == 40
    assert span.attributes["tiers.batch.records_failed"] == 0
    assert span.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert span.attributes["gen_ai.usage.input_tokens"] == final.tokens_in > 0
    assert span.attributes["tiers.cost_usd"] == float(final.cost_usd) > 0
    assert span.status_code == 0
