"""OpenAI Batch API files in the batch job: input lines read into requests (or each into its own
error), replies written as OpenAI's output and error lines, replies priced the same way when a
rerun reads them back; and the model client sending prepared bodies as they are, against a real
mockllm (routes, the model, a refusal passed on, retries, no answer)."""

from __future__ import annotations

import decimal
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from tiers.runtime import mockllm, modelcall, pricing, providers
from tiers.runtime.batch import layout, openai_lines
from tiers.runtime.modelcall import raw, results
from tiers.runtime.providers import failures, http1


def call(url: str = "http://127.0.0.1:1/v1", **changes: Any) -> modelcall.ModelCallConfig:
    fields: dict[str, Any] = {
        "target": modelcall.EndpointTarget(url=url),
        "model": "gpt-4o-mini",
        "prompt": "{body}",
        "initial_backoff_ms": 1,
        **changes,
    }
    return modelcall.ModelCallConfig(**fields)


def line(**fields: Any) -> str:
    base = {"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions", "body": {}}
    return orjson.dumps({**base, **fields}).decode()


def reply(
    status: int | None = 200,
    body: Any = None,
    *,
    error: str | None = None,
    cost: str = "0.000001",
) -> raw.RawReply:
    data = body if isinstance(body, bytes) else orjson.dumps(body or {"object": "x"})
    return raw.RawReply(
        key="r1", status_code=status, body=data if status is not None else b"",
        request_id="req_abc", error=error, attempts=1, latency_ms=3, tokens_in=2, tokens_out=1,
        cost_usd=cost,
    )  # fmt: skip


# Reading input lines


@pytest.mark.parametrize(
    ("url", "route"),
    [
        ("/v1/chat/completions", "chat"),
        ("/v1/completions", "completions"),
        ("/v1/embeddings", "embeddings"),
    ],
)
def test_each_lines_url_picks_its_route_and_the_body_is_kept_as_it_is(url: str, route: str) -> None:
    body = {"model": "my-model", "messages": [{"role": "user", "content": "hi"}], "seed": 7}
    read = openai_lines.read(line(url=url, body=body))
    assert read == openai_lines.Line("r1", raw.RawRequest("r1", route, body))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "custom_id", "code", "message"),
    [
        ("not json", None, "invalid_json_line", "not a JSON line"),
        (None, None, "invalid_json_line", "not a JSON line"),
        ("[1, 2]", None, "invalid_json_line", "a line must be a JSON object, not [1,2]"),
        (
            line(custom_id=None),
            None,
            "invalid_request",
            "'custom_id' must be a non-empty string, but it is missing",
        ),
        (
            line(custom_id=7),
            None,
            "invalid_request",
            "'custom_id' must be a non-empty string, not 7",
        ),
        (line(custom_id=""), None, "invalid_request", "'custom_id' must be a non-empty string"),
        (line(method="GET"), "r1", "invalid_request", '\'method\' must be "POST", not "GET"'),
        (
            line(url="/v1/responses"),
            "r1",
            "invalid_request",
            "'url' must be one of /v1/chat/completions, /v1/completions, /v1/embeddings, not \"/v1/responses\"",
        ),
        (line(url=None), "r1", "invalid_request", "'url' must be one of"),
        (
            line(body=None),
            "r1",
            "invalid_request",
            "'body' must be a JSON object, but it is missing",
        ),
        (
            line(body="hello"),
            "r1",
            "invalid_request",
            "'body' must be a JSON object, not \"hello\"",
        ),
        (
            line(body={"stream": True}),
            "r1",
            "invalid_request",
            "'body.stream' must be false or absent",
        ),
    ],
)
def test_a_line_that_is_not_a_request_is_its_own_error_naming_the_field(
    text: str | None, custom_id: str | None, code: str, message: str
) -> None:
    read = openai_lines.read(text)
    assert (read.custom_id, read.request, read.code) == (custom_id, None, code)
    assert read.error is not None and read.error.startswith(message), read.error
    assert code in openai_lines.ERROR_CODES


def test_the_estimate_counts_the_text_the_model_reads() -> None:
    def text(url: str, body: dict[str, Any]) -> str:
        request = openai_lines.read(line(url=url, body=body)).request
        assert request is not None
        return openai_lines.prompt_text(request)

    parts = [{"type": "text", "text": "b"}, {"type": "image_url", "image_url": {"url": "x"}}]
    messages = [{"role": "system", "content": "a"}, {"role": "user", "content": parts}]
    assert text("/v1/chat/completions", {"messages": messages}) == "a\nb"
    assert text("/v1/completions", {"prompt": ["x", "y"]}) == "x\ny"
    assert text("/v1/embeddings", {"input": "z"}) == "z"
    assert text("/v1/embeddings", {"input": [1, 2]}) == ""


# Writing output and error lines


def test_a_2xx_reply_is_an_output_line_in_openais_shape() -> None:
    body = {"id": "chatcmpl-1", "object": "chat.completion", "choices": []}
    written = openai_lines.written(openai_lines.read(line()), reply(200, body))
    assert written.outcome == "ok"
    found = orjson.loads(written.line)
    assert list(found) == ["id", "custom_id", "response", "error"]
    assert found["id"].startswith("batch_req_") and len(found["id"]) > len("batch_req_") + 16
    assert found["custom_id"] == "r1" and found["error"] is None
    assert found["response"] == {"status_code": 200, "request_id": "req_abc", "body": body}
    assert "\n" not in written.line


def test_every_line_gets_an_id_of_its_own() -> None:
    read = openai_lines.read(line())
    ids = {orjson.loads(openai_lines.written(read, reply()).line)["id"] for _ in range(100)}
    assert len(ids) == 100


def test_a_refusal_is_an_error_line_with_the_status_and_the_servers_error_body() -> None:
    error = {
        "error": {"message": "bad", "type": "invalid_request_error", "param": "x", "code": None}
    }
    written = openai_lines.written(openai_lines.read(line()), reply(400, error))
    found = orjson.loads(written.line)
    assert written.outcome == "error"
    assert found["response"] == {"status_code": 400, "request_id": "req_abc", "body": error}
    assert found["error"] is None


def test_an_error_body_that_is_not_json_is_wrapped_in_openais_error_shape() -> None:
    written = openai_lines.written(
        openai_lines.read(line()), reply(502, b"<html>Bad Gateway</html>")
    )
    body = orjson.loads(written.line)["response"]["body"]
    assert body == {
        "error": {
            "message": "<html>Bad Gateway</html>",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }


def test_a_request_that_got_no_answer_is_an_error_line_without_a_response() -> None:
    no_answer = reply(None, error="timed out after 300 ms")
    found = orjson.loads(openai_lines.written(openai_lines.read(line()), no_answer).line)
    assert found["response"] is None
    assert found["error"] == {"code": "no_response", "message": "timed out after 300 ms"}
    useless = reply(200, b"[]", error="the 200 reply's body is not a JSON object (a JSON list)")
    found = orjson.loads(openai_lines.written(openai_lines.read(line()), useless).line)
    assert found["response"] is None and found["error"]["code"] == "invalid_response"


def test_a_line_that_was_not_a_request_is_written_as_its_error() -> None:
    written = openai_lines.written(openai_lines.read(line(method="GET")), None)
    found = orjson.loads(written.line)
    assert written.outcome == "error"
    assert (found["custom_id"], found["response"]) == ("r1", None)
    assert found["error"]["code"] == "invalid_request"
    assert found["error"]["message"].startswith("'method' must be")
    unreadable = orjson.loads(openai_lines.written(openai_lines.read("{"), None).line)
    assert unreadable["custom_id"] is None and unreadable["error"]["code"] == "invalid_json_line"


# Replies, their prices, and pricing them again on a rerun


def test_the_final_answer_becomes_the_reply_whatever_its_status() -> None:
    prices = raw.ReplyPrices(call())
    usage = {"prompt_tokens": 1000, "completion_tokens": 100}
    answered = http1.Response(
        200, {"x-request-id": "req_from_server"}, orjson.dumps({"model": "gpt-4o", "usage": usage})
    )
    got = raw.reply("k", answered, attempts=2, latency_ms=9, prices=prices)
    assert (got.status_code, got.error, got.attempts) == (200, None, 2)
    assert got.request_id == "req_from_server"
    assert (got.tokens_in, got.tokens_out) == (1000, 100)
    # priced as gpt-4o, the model that answered: $2.50 in and $10.00 out per million tokens
    assert got.cost_usd == "0.003500"
    assert got.succeeded

    refused = raw.reply(
        "k", http1.Response(404, {}, b"nope"), attempts=1, latency_ms=1, prices=prices
    )
    assert (refused.status_code, refused.body, refused.error) == (404, b"nope", None)
    assert refused.request_id.startswith("req_") and refused.cost_usd == results.NO_COST
    assert not refused.succeeded


def test_a_retryable_status_that_outlived_its_retries_keeps_its_status() -> None:
    failure = failures.Failure("HTTP 429: slow down", 429, retry_after_s=1.0)
    got = raw.reply("k", failure, attempts=3, latency_ms=50, prices=raw.ReplyPrices(call()))
    assert (got.status_code, got.error) == (429, None)
    assert got.json_body() == {
        "error": {
            "message": "HTTP 429: slow down",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }


def test_no_answer_and_a_2xx_that_is_not_an_object_are_errors() -> None:
    prices = raw.ReplyPrices(call())
    lost = raw.reply("k", failures.Failure("connection failed: OSError: refused"), attempts=3,
                     latency_ms=5, prices=prices)  # fmt: skip
    assert (lost.status_code, lost.body) == (None, b"")
    assert lost.error == "connection failed: OSError: refused"
    assert lost.json_body() == {}
    odd = raw.reply("k", http1.Response(200, {}, b"[1]"), attempts=1, latency_ms=1, prices=prices)
    assert odd.status_code == 200 and odd.error is not None and "not a JSON object" in odd.error
    assert not odd.succeeded


def test_a_reply_without_a_model_is_priced_as_the_configs_and_overrides_apply() -> None:
    llama = providers.PriceConfig(
        input_per_m_tok_usd=decimal.Decimal(1), output_per_m_tok_usd=decimal.Decimal(2)
    )
    settings = call(prices={"my-llama": llama})
    prices = raw.ReplyPrices(settings)
    usage = {"prompt_tokens": 1_000_000, "completion_tokens": 0}
    assert prices.cost({"usage": usage})[1] == pricing.format_usd(decimal.Decimal("0.15"))
    assert prices.cost({"model": "my-llama", "usage": usage})[1] == "1.000000"
    assert prices.cost({"model": "my-llama-2025-01-01", "usage": usage})[1] == "1.000000"


def test_a_rerun_prices_an_output_line_as_the_run_priced_its_reply() -> None:
    body = {
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 12345, "total_tokens": 12345},
    }
    prices = raw.ReplyPrices(call())
    answered = raw.reply("r1", http1.Response(200, {}, orjson.dumps(body)), attempts=1,
                         latency_ms=1, prices=prices)  # fmt: skip
    written = openai_lines.written(openai_lines.read(line(url="/v1/embeddings")), answered)
    again = openai_lines.done_cost(written.line, raw.ReplyPrices(call()))
    assert again == ("r1", answered.cost_usd)
    assert answered.cost_usd == "0.0002469"  # 12,345 tokens of text-embedding-3-small at $0.02/M
    assert openai_lines.done_cost("garbage", prices) == (None, "0.000000")


def test_the_merged_files_sit_beside_the_attempts() -> None:
    assert layout.parts_glob("s3a://b/out/", "ok") == "s3a://b/out/attempt=*/outcome=ok/part-*"
    assert layout.merged_uri("s3a://b/out/", layout.OUTPUT_FILE) == "s3a://b/out/output.jsonl"
    assert dict(layout.MERGED_FILES) == {"ok": "output.jsonl", "error": "errors.jsonl"}
    assert layout.attempts(["output.jsonl", "errors.jsonl", "attempt=2"]) == [2]


# Sending prepared bodies with the model client (a real mockllm)


@pytest.fixture(scope="module")
def mock() -> Iterator[str]:
    with mockllm.running(mockllm.MockConfig(seed=5)) as url:
        yield url
    modelcall.close_all()


@pytest.fixture
def url(mock: str) -> str:
    mockllm.control.reset(mock)
    return mock


def send(settings: modelcall.ModelCallConfig, *requests: raw.RawRequest) -> list[raw.RawReply]:
    return modelcall.send_raw_batch(settings, list(requests))


def chat(key: str, **body: Any) -> raw.RawRequest:
    return raw.RawRequest(key, "chat", {"messages": [{"role": "user", "content": key}], **body})


def test_bodies_for_every_route_are_sent_as_they_are_and_replies_come_back_in_order(
    url: str,
) -> None:
    replies = send(
        call(url),
        chat("c1", max_tokens=3),
        raw.RawRequest("p1", "completions", {"model": "gpt-4.1-nano", "prompt": "hello there"}),
        raw.RawRequest(
            "e1", "embeddings", {"model": "text-embedding-3-small", "input": ["a", "b"]}
        ),
    )
    assert [r.key for r in replies] == ["c1", "p1", "e1"]
    assert all(r.succeeded and r.status_code == 200 and r.attempts == 1 for r in replies)
    bodies = [orjson.loads(r.body) for r in replies]
    assert [b["object"] for b in bodies] == ["chat.completion", "text_completion", "list"]
    # the body's model is kept; a body without one gets the config's
    assert [b["model"] for b in bodies] == ["gpt-4o-mini", "gpt-4.1-nano", "text-embedding-3-small"]
    assert len(bodies[2]["data"]) == 2
    for got, body in zip(replies, bodies, strict=True):
        usage, cost = raw.ReplyPrices(call(url)).cost(body)
        expected = (usage.prompt_tokens, usage.completion_tokens, cost)
        assert (got.tokens_in, got.tokens_out, got.cost_usd) == expected
    assert mockllm.control.stats(url)["total"] == 3


def test_a_backend_pinned_to_a_model_gets_its_own_model(url: str) -> None:
    pinned = providers.BackendConfig(
        name="b", provider="openai-compatible", model="gpt-4o-mini", base_url=url
    )
    (got,) = send(call(url, target=pinned), chat("c1", model="someone-elses-model"))
    assert orjson.loads(got.body)["model"] == "gpt-4o-mini"


def test_a_refused_body_is_passed_on_not_retried(url: str) -> None:
    (got,) = send(call(url), raw.RawRequest("bad", "chat", {"max_tokens": 3}))
    assert (got.status_code, got.attempts, got.error, got.cost_usd) == (400, 1, None, "0.000000")
    assert orjson.loads(got.body)["error"]["param"] == "messages"


def test_a_retryable_failure_is_retried_and_one_that_outlives_its_retries_keeps_its_status(
    url: str,
) -> None:
    mockllm.control.fail_next(url, 1, status=503)
    (got,) = send(call(url, max_attempts=3), chat("c1"))
    assert (got.status_code, got.attempts) == (200, 2)
    mockllm.control.fail_next(url, 2, status=500)
    (got,) = send(call(url, max_attempts=2), chat("c2"))
    assert (got.status_code, got.attempts, got.error) == (500, 2, None)
    assert got.json_body()["error"]["type"] == "server_error"


def test_a_request_that_times_out_has_no_answer(url: str) -> None:
    mockllm.control.fail_next(url, 1, status="timeout")
    (got,) = send(call(url, max_attempts=1, timeout_ms=300), chat("slow"))
    assert got.status_code is None and got.body == b""
    assert got.error == "timed out after 300 ms"
