"""The batch job's pure parts: reading records, the output layout, progress and the estimate."""

from __future__ import annotations

import decimal

import pytest

from tiers.runtime.batch import config, estimate, layout, progress, records
from tiers.runtime.modelcall import results
from tiers.runtime.modelcall.config import EndpointTarget, ModelCallConfig
from tiers.runtime.stats import window


def call(**changes: object) -> ModelCallConfig:
    fields: dict[str, object] = {
        "target": EndpointTarget(url="http://127.0.0.1:1/v1"),
        "model": "gpt-4o-mini",
        "prompt": "Classify: {text}",
        "max_tokens": 10,
        **changes,
    }
    return ModelCallConfig.model_validate(fields)


@pytest.mark.parametrize(
    ("line", "expected_id", "error"),
    [
        ('{"id": "a", "text": "x"}', "a", None),
        ('{"id": 7, "text": "x"}', "7", None),
        ('{"id": true}', "true", None),
        ('{"id": 1.5}', "1.5", None),
        ('{"text": "x"}', None, "the record has no id: field 'id' is missing or empty"),
        ('{"id": ""}', None, "the record has no id: field 'id' is missing or empty"),
        ("[1, 2]", None, "a JSON line must be an object, not an array"),
        ("not json", None, "not a JSON line"),
        (None, None, "not a JSON line"),
    ],
)
def test_a_json_line_becomes_a_record_or_says_why_not(
    line: str | None, expected_id: str | None, error: str | None
) -> None:
    (record,) = records.from_lines([line], "id")
    assert record.id == expected_id
    if error is None:
        assert record.error is None
    else:
        assert record.error is not None and record.error.startswith(error)


def test_a_record_without_a_result_is_an_error_row_and_a_scored_one_keeps_its_result() -> None:
    found = records.from_rows([{"rid": "r1", "text": "a"}, {"text": "b"}], "rid")
    scored = {
        0: results.RowResult(
            key="r1", status="ok", output="A", error=None, attempts=1, latency_ms=5,
            tokens_in=3, tokens_out=1, cost_usd="0.000001", finish_reason="stop",
        )
    }  # fmt: skip
    columns = records.result_columns(found, scored)
    rows = list(zip(*columns, strict=True))
    assert rows[0] == ("r1", "ok", "A", None, 1, 5, 3, 1, "0.000001", "stop", "ok")
    assert rows[1][0] is None and rows[1][1] == "error" and rows[1][-1] == "error"
    assert "no id" in rows[1][3]


def test_attempts_are_numbered_from_the_folders_and_earlier_errors_are_superseded() -> None:
    names = ["attempt=1", "attempt=3", "_temporary", "attempt=x", ".hidden"]
    assert layout.attempts(names) == [1, 3]
    assert layout.next_attempt(names) == 4
    assert layout.next_attempt([]) == 1
    assert layout.superseded_errors("s3a://b/out/", names, finished=3) == [
        "s3a://b/out/attempt=1/outcome=error"
    ]
    assert layout.ok_glob("/data/out/") == "/data/out/attempt=*/outcome=ok"


def test_a_delta_tables_attempts_are_staged_in_a_folder_delta_ignores() -> None:
    assert layout.attempts_root("s3a://b/scored/", "delta") == "s3a://b/scored/_tiers_attempts"
    assert layout.attempts_root("s3a://b/out/", "parquet") == "s3a://b/out/"
    assert layout.DELTA_STAGING.startswith("_")  # Delta neither reads nor vacuums it


def started(**changes: object) -> progress.Progress:
    base = progress.Progress.starting(
        state="Running", attempt=2, total=1000, skipped=100,
        skipped_cost_usd=decimal.Decimal("0.5"), now_s=1000.0,
    )  # fmt: skip
    return base if not changes else progress.Progress(**{**base.__dict__, **changes})


def test_progress_counts_this_attempt_on_top_of_what_earlier_ones_did() -> None:
    counts = window.Counts()
    counts.record_many([10] * 300, errors=20, tokens_in=900, cost_usd=decimal.Decimal("0.25"))
    now = started().counted(counts, now_s=1010.0)
    assert (now.done, now.failed, now.scored) == (380, 20, 300)
    assert now.cost_usd == decimal.Decimal("0.75")
    assert now.percent == 40
    assert now.records_per_second == 30
    assert now.eta_seconds == 20  # 600 left at 30/s
    assert now.per_record_usd == decimal.Decimal("0.001973684")


def test_progress_survives_the_trip_through_redis_fields() -> None:
    found = estimate.estimate(call(), ["Classify: hello world"], records=10, parallelism=2,
                              latency_ms=500)  # fmt: skip
    counts = window.Counts()
    counts.record_many([10] * 5, errors=1, tokens_in=50, tokens_out=5, cost_usd=decimal.Decimal(1))
    now = progress.Progress(**{**started().__dict__, "estimate": found}).counted(counts, now_s=1005)
    assert progress.from_fields(progress.to_fields(now)) == now


def test_progress_carries_its_publish_interval_and_an_older_jobs_has_the_default() -> None:
    every_5_s = started(interval_s=5.0)
    assert progress.from_fields(progress.to_fields(every_5_s)).interval_s == 5.0
    older = {k: v for k, v in progress.to_fields(every_5_s).items() if k != "interval_s"}
    assert progress.from_fields(older).interval_s == progress.PUBLISH_INTERVAL_S
    default_ms = config.BatchJobConfig.model_fields["progress_interval_ms"].default
    assert default_ms / 1000 == progress.PUBLISH_INTERVAL_S, "one setting, read by both sides"


def test_unknown_states_in_redis_are_refused() -> None:
    fields = progress.to_fields(started())
    with pytest.raises(ValueError, match="unknown batch state"):
        progress.from_fields({**fields, "state": "Exploded"})


def test_the_progress_line_shows_counts_rate_cost_and_eta() -> None:
    counts = window.Counts()
    counts.record_many([10] * 300, errors=20, cost_usd=decimal.Decimal("0.25"))
    line = progress.render_line(started().counted(counts, now_s=1010.0), width=10)
    assert line.startswith("[####......]  40%")
    assert "380/1,000 done" in line and "20 failed" in line and "30 rec/s" in line
    assert "$0.750000" in line and "ETA 0:00:20" in line


def test_the_estimate_counts_tokens_with_the_models_tokenizer_when_it_is_known() -> None:
    tokens, exact = estimate.prompt_tokens(call(route="completions"), ["Hello world, how are you?"])
    assert exact and tokens == 7
    approx, exact = estimate.prompt_tokens(call(model="llama-3.1-8b", route="completions"),
                                           ["12345678"])  # fmt: skip
    assert not exact and approx == 2


def test_chat_prompts_pay_the_message_overhead() -> None:
    plain, _ = estimate.prompt_tokens(call(route="completions"), ["hi"])
    chat, _ = estimate.prompt_tokens(call(route="chat"), ["hi"])
    assert chat - plain == estimate.TOKENS_PER_MESSAGE + estimate.TOKENS_PER_CHAT


def test_the_estimate_scales_the_sample_and_bounds_output_by_max_tokens() -> None:
    settings = call(route="completions", rows_per_request=50, max_in_flight=4)
    found = estimate.estimate(settings, ["Classify: " + "word " * 20] * 10, records=100_000,
                              parallelism=2, latency_ms=800)  # fmt: skip
    per_prompt, _ = estimate.prompt_tokens(settings, ["Classify: " + "word " * 20])
    assert found.input_tokens == per_prompt * 100_000
    assert found.output_tokens == 10 * 100_000
    # 2,000 requests, 8 at a time, 0.8 s each
    assert found.duration_seconds == 200
    # gpt-4o-mini: $0.15 in, $0.60 out per million tokens
    expected = (
        decimal.Decimal(found.input_tokens) * decimal.Decimal("0.15")
        + decimal.Decimal(found.output_tokens) * decimal.Decimal("0.60")
    ) / 1_000_000
    assert found.cost_usd == expected.quantize(decimal.Decimal("0.000000001"))
    table = estimate.render_table(found, settings)
    assert "records" in table and "100,000" in table and "model gpt-4o-mini" in table
    assert estimate.as_json(found)["records"] == 100_000


def test_embeddings_have_no_output_tokens() -> None:
    found = estimate.estimate(call(route="embeddings", model="text-embedding-3-small"), ["a b"],
                              records=10, parallelism=1, latency_ms=100)  # fmt: skip
    assert found.output_tokens == 0
