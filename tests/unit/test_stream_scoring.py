"""One micro-batch through the stream job's scoring function, against a real mock model server
(no Spark: the function takes the columns Spark hands it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pyarrow
import pytest

from tiers.runtime import mockllm, modelcall, providers
from tiers.runtime.stream import config, events, scoring


@pytest.fixture(scope="module")
def mock_url() -> Iterator[str]:
    with mockllm.running() as url:
        yield url


def settings(url: str, prompt: str = "Summarize: {text}") -> config.StreamJobConfig:
    backend = providers.BackendConfig(
        name="mock", provider="openai-compatible", model="*", base_url=url
    )
    return config.StreamJobConfig(
        bootstrap="unused:9092",
        input_topic="in",
        output_topic="out",
        dead_letter_topic="dlq",
        model=modelcall.ModelCallConfig(target=backend, model="gpt-4o-mini", prompt=prompt),
        checkpoint="/tmp/unused",
    )


def frame(*values: str | None) -> dict[str, list[Any]]:
    """One Arrow batch of Kafka records as `score_batches` hands it on: columns by name."""
    return {
        "key": [f"k{i}" for i in range(len(values))],
        "value": list(values),
        "partition": [0] * len(values),
        "offset": list(range(len(values))),
        "ts_ms": [1_700_000_000_000] * len(values),
    }


def test_every_event_gets_a_result_record_on_the_output_topic(mock_url: str) -> None:
    rows = scoring.score_frame(
        frame(orjson.dumps({"text": "the cat sat"}).decode(), '{"text": "a dog ran"}'),
        settings(mock_url),
    )
    assert [(key, topic) for key, _, topic in rows] == [("k0", "out"), ("k1", "out")]
    record = orjson.loads(rows[0][1])
    assert record["status"] == "ok" and record["output"]
    assert record["input"] == {"text": "the cat sat"}
    assert record["tokens_in"] > 0 and float(record["cost_usd"]) > 0
    assert record["ingest_ts"] == 1_700_000_000_000 and record["processed_ts"] > record["ingest_ts"]


def test_the_arrow_function_turns_record_batches_into_sink_rows(mock_url: str) -> None:
    columns = frame('{"text": "one"}', "not json", '{"text": "three"}')
    batch = pyarrow.RecordBatch.from_pydict(columns)
    score = scoring.score_batches(settings(mock_url).model_dump_json())
    [out] = list(score(iter([batch])))
    assert out.schema.names == ["key", "value", "topic"]
    assert out.schema.field("value").type == pyarrow.binary()
    assert out.column("key").to_pylist() == ["k0", "k1", "k2"]
    assert out.column("topic").to_pylist() == ["out", "dlq", "out"]
    assert orjson.loads(out.column("value")[2].as_py())["output"] == "Summarize: three"
    [empty] = list(score(iter([batch.slice(0, 0)])))
    assert empty.num_rows == 0


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("not json at all", "unparseable"),
        ("[1, 2, 3]", "unparseable"),
        (None, "unparseable"),
        ('{"body": "no text field"}', "invalid_event"),
    ],
)
def test_a_poison_event_goes_to_the_dead_letter_topic_with_its_reason(
    mock_url: str, value: str | None, reason: str
) -> None:
    rows = scoring.score_frame(frame('{"text": "fine"}', value), settings(mock_url))
    assert [topic for _, _, topic in rows] == ["out", "dlq"]
    dead = orjson.loads(rows[1][1])
    assert dead["reason"] == reason and dead["error"]
    assert dead["value"] == value, "the original event is kept for replay"
    assert (dead["partition"], dead["offset"]) == (0, 1)


def test_a_model_that_keeps_failing_dead_letters_the_event_without_failing_the_batch(
    mock_url: str,
) -> None:
    mockllm.control.fail_next(mock_url, 3, status=500)
    rows = scoring.score_frame(frame('{"text": "unlucky"}'), settings(mock_url))
    (row,) = rows
    dead = orjson.loads(row[1])
    assert row[2] == "dlq" and dead["reason"] == "model_error" and dead["attempts"] == 3


def test_an_event_without_a_key_is_keyed_by_its_position() -> None:
    event = events.Event(None, "{}", 3, 42, 0)
    assert event.id == "3-42"
