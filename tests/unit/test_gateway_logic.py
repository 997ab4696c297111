"""The gateway's pure parts: the order of its backends, SSE, cache keys, L1, pricing, parsing,
the budget."""

from __future__ import annotations

import asyncio
import decimal
import random
import socket

import orjson
import pytest
import redis.asyncio as aioredis
from redis import backoff
from redis.asyncio import retry

from tiers.runtime import pricing, providers
from tiers.runtime.gateway import budget, cache, config, errors, requests, sse, upstream
from tiers.runtime.providers import http1
from tiers.runtime.stats import spend


def chat(**fields: object) -> requests.ModelRequest:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], **fields}
    return requests.parse("chat", orjson.dumps(body))


def test_backends_are_tried_by_priority_then_weight() -> None:
    backends = tuple(
        providers.BackendConfig(
            name=name, provider="openai", model="m", priority=priority, weight=weight
        )
        for name, priority, weight in (("fallback", 1, 1), ("a", 0, 3), ("b", 0, 1))
    )
    settings = config.GatewayConfig(backends=backends)
    plans = [
        [b.name for b in upstream.Backends(settings, None, rng=random.Random(seed)).plan()]  # type: ignore[arg-type]
        for seed in range(400)
    ]
    assert all(plan[-1] == "fallback" for plan in plans)
    first_a = sum(plan[0] == "a" for plan in plans) / len(plans)
    assert 0.65 < first_a < 0.85, "weights 3:1 put a first about 75% of the time"


class ScriptedPool:
    """Answers each upstream request by the backend it goes to; counts the requests."""

    def __init__(self, statuses: dict[str, list[int]]) -> None:
        self.statuses = statuses
        self.calls: list[str] = []

    async def request(self, method: str, url: str, **_: object) -> http1.Response:
        host = url.split("/")[2]
        self.calls.append(host)
        status = self.statuses[host].pop(0)
        return http1.Response(status, {"retry-after": "1"}, b'{"error": {"message": "busy"}}')


def gateway_backends(pool: ScriptedPool) -> upstream.Backends:
    settings = config.GatewayConfig(
        backends=tuple(
            providers.BackendConfig(
                name=name, provider="openai-compatible", model="*",
                base_url=f"http://{name}/v1", priority=priority,
            )
            for priority, name in enumerate(pool.statuses)
        ),
        retries=providers.RetryConfig(max_attempts=2, initial_backoff_ms=1),
    )  # fmt: skip

    async def no_wait(_: float) -> None:
        return None

    return upstream.Backends(settings, pool, sleep=no_wait, rng=random.Random(1))  # type: ignore[arg-type]


def test_a_failing_backend_falls_back_to_the_next_after_its_retries() -> None:
    pool = ScriptedPool({"primary": [503, 503], "secondary": [200]})
    reply = asyncio.run(gateway_backends(pool).complete(chat()))
    assert (reply.status, reply.backend, reply.attempts) == (200, "secondary", 3)
    assert pool.calls == ["primary", "primary", "secondary"]


def test_a_client_error_is_passed_on_without_a_retry_or_a_fallback() -> None:
    pool = ScriptedPool({"primary": [400], "secondary": [200]})
    reply = asyncio.run(gateway_backends(pool).complete(chat()))
    assert (reply.status, reply.backend, reply.attempts) == (400, "primary", 1)


def test_when_every_backend_is_rate_limited_the_client_gets_a_429_to_retry_after() -> None:
    pool = ScriptedPool({"primary": [429, 429], "secondary": [429, 429]})
    with pytest.raises(errors.GatewayError) as raised:
        asyncio.run(gateway_backends(pool).complete(chat()))
    assert raised.value.status == 429 and raised.value.code == "rate_limit_exceeded"
    assert "secondary: HTTP 429: busy" in raised.value.message
    assert dict(raised.value.headers) == {b"retry-after": b"1"}


def test_sse_events_are_split_whatever_the_chunking() -> None:
    stream = b'data: {"a": 1}\n\ndata: {"a": 2}\r\n\r\n: comment\n\ndata: [DONE]\n\n'
    splitter = sse.EventSplitter()
    events = [event for i in range(0, len(stream), 5) for event in splitter.feed(stream[i : i + 5])]
    assert [sse.event_data(e) for e in events] == [b'{"a": 1}', b'{"a": 2}', None, b"[DONE]"]


def test_a_stream_is_rebuilt_into_the_response_it_replays() -> None:
    whole = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hello there"},
             "finish_reason": "stop", "logprobs": None}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }  # fmt: skip
    accumulator = sse.ChatAccumulator()
    for event in sse.replay(whole, include_usage=True):
        data = sse.event_data(event)
        if data == b"[DONE]":
            accumulator.mark_done()
        else:
            accumulator.add(orjson.loads(data))
    assert accumulator.response() == whole


def rebuilt(events: list[bytes]) -> dict | None:
    accumulator = sse.ChatAccumulator()
    for event in events:
        data = sse.event_data(event)
        if data == b"[DONE]":
            accumulator.mark_done()
        elif data is not None:
            accumulator.add(orjson.loads(data))
    return accumulator.response()


def test_streamed_tool_calls_are_rebuilt_and_replayed_as_tool_call_deltas() -> None:
    def chunk(delta: dict, finish: str | None = None) -> bytes:
        body = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
        return b"data: " + orjson.dumps(body) + b"\n\n"

    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}  # fmt: skip
    events = [
        chunk({"role": "assistant", "content": None}),
        chunk({"tool_calls": [call]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": " 1}"}}]}),
        chunk({}, "tool_calls"),
        sse.DONE,
    ]
    whole = rebuilt(events)
    assert whole is not None
    message = whole["choices"][0]["message"]
    assert message == {
        "role": "assistant", "content": None,
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}],
    }  # fmt: skip
    assert whole["choices"][0]["finish_reason"] == "tool_calls"
    assert rebuilt(list(sse.replay(whole, include_usage=False))) == whole


def test_a_cached_completion_is_replayed_as_completion_chunks() -> None:
    whole = {
        "id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "text": "one two", "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4},
    }  # fmt: skip
    events = list(sse.replay(whole, include_usage=True))
    chunks = [orjson.loads(data) for e in events if (data := sse.event_data(e)) != b"[DONE]"]
    assert {c["object"] for c in chunks} == {"text_completion"}
    assert all("delta" not in choice for c in chunks for choice in c["choices"])
    assert "".join(choice["text"] for c in chunks for choice in c["choices"]) == "one two"
    assert rebuilt(events) == whole


def test_chunks_of_the_wrong_shape_are_skipped_and_a_huge_event_cuts_the_stream() -> None:
    accumulator = sse.ChatAccumulator()
    for odd in ([1], "x", {"choices": "x"}, {"choices": [1, {"index": "0"}]}, {"usage": [1]}):
        accumulator.add(odd)
    splitter = sse.EventSplitter(max_event_bytes=1024)
    assert splitter.feed(b"data: 1\n\n") == [b"data: 1\n\n"]
    with pytest.raises(sse.EventTooLarge):
        splitter.feed(b"data: " + b"x" * 2000)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"messages": [{"role": ["user"], "content": "x"}]}, "messages[0].role"),
        ({"stream_options": [1]}, "stream_options"),
        ({"stream_options": {"include_usage": 1}}, "stream_options.include_usage"),
        ({"tool_choice": 3}, "tool_choice"),
        ({"logit_bias": []}, "logit_bias"),
        ({"presence_penalty": 3}, "presence_penalty"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_a_field_of_the_wrong_type_is_refused_by_name(fields: dict, param: str) -> None:
    with pytest.raises(errors.GatewayError) as raised:
        chat(**fields)
    assert raised.value.status == 400 and raised.value.param == param


def test_a_body_nested_deeper_than_the_bound_is_refused_before_anything_reads_it() -> None:
    deep: object = "x"
    for _ in range(requests.MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(errors.GatewayError, match="deep"):
        chat(extra=deep)
    shallow: object = "x"
    for _ in range(requests.MAX_DEPTH - 2):
        shallow = [shallow]
    assert chat(extra=shallow).model == "gpt-4o-mini"


def test_an_unfinished_stream_is_not_cacheable() -> None:
    accumulator = sse.ChatAccumulator()
    accumulator.add(
        {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "x"}}]}
    )
    assert accumulator.response() is None


def test_cache_keys_ignore_delivery_but_not_content() -> None:
    key = cache.cache_key("ns/e", "t1", chat())
    assert cache.cache_key("ns/e", "t1", chat(stream=True, user="u")) == key
    assert cache.cache_key("ns/e", "t1", chat(temperature=0.5)) != key
    assert cache.cache_key("ns/e", "t2", chat()) != key, "tenants never share entries"
    assert cache.cache_key("ns/other", "t1", chat()) != key


def test_l1_evicts_the_least_recently_used_and_expires_entries() -> None:
    l1 = cache.L1Cache(max_entries=2, ttl_seconds=10)
    l1.put("a", b"1", now=0)
    l1.put("b", b"2", now=0)
    assert l1.get("a", now=1) == b"1"
    l1.put("c", b"3", now=1)
    assert l1.get("b", now=1) is None and len(l1) == 2
    assert l1.get("a", now=11) is None


def test_cost_bills_cached_prompt_tokens_at_the_cached_rate() -> None:
    price = pricing.price_for("gpt-4o-mini-2024-07-18")
    usage = pricing.Usage(
        prompt_tokens=1_000_000, completion_tokens=1_000_000, cached_tokens=500_000
    )
    assert pricing.cost(usage, price) == decimal.Decimal("0.7125")  # 0.075 + 0.0375 + 0.60
    assert pricing.format_usd(pricing.cost(pricing.Usage(10, 5), price)) == "0.0000045"
    assert pricing.price_for("my-local-llama") == pricing.ZERO


def test_reasoning_tokens_are_billed_as_output_once() -> None:
    """OpenAI counts a reasoning model's hidden tokens in completion_tokens and reports them
    again in completion_tokens_details: billed at the output rate, not a second time."""
    usage = pricing.Usage.from_openai(
        {
            "prompt_tokens": 2048,
            "completion_tokens": 1500,
            "prompt_tokens_details": {"cached_tokens": 1024},
            "completion_tokens_details": {"reasoning_tokens": 1200},
        }
    )
    assert (usage.cached_tokens, usage.reasoning_tokens) == (1024, 1200)
    # o3-mini: $1.10 per million fresh input, $0.55 cached, $4.40 output (reasoning included).
    expected = (1024 * decimal.Decimal("1.10") + 1024 * decimal.Decimal("0.55")
                + 1500 * decimal.Decimal("4.40")) / 1_000_000  # fmt: skip
    assert pricing.cost(usage, pricing.price_for("o3-mini-2025-01-31")) == expected


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"n": 0}, "n"),
        ({"top_p": True}, "top_p"),
    ],
)
def test_parsing_names_the_bad_field(body: dict, param: str) -> None:
    with pytest.raises(errors.GatewayError) as raised:
        chat(**body)
    assert raised.value.param == param and raised.value.status == 400


def test_embeddings_cannot_be_streamed() -> None:
    with pytest.raises(errors.GatewayError, match="stream"):
        requests.parse("embeddings", b'{"model": "e", "input": "x", "stream": true}')


def test_the_budget_counts_by_utc_calendar_month() -> None:
    last_second_of_january = 1_769_903_999  # 2026-01-31T23:59:59Z
    assert spend.month_key("ns/e", last_second_of_january) == "tiers:budget:ns/e:2026-01"
    assert spend.month_key("ns/e", last_second_of_january + 1) == "tiers:budget:ns/e:2026-02"


def test_spend_goes_to_redis_in_whole_micro_dollars_and_keeps_the_rest() -> None:
    micro, rest = spend.whole_micro_usd(decimal.Decimal("0.0000123456"))
    assert (micro, rest) == (12, decimal.Decimal("0.0000003456"))


def test_a_spent_budget_refuses_with_insufficient_quota_naming_it() -> None:
    spend = budget.Budget(decimal.Decimal("0.001"), "ns/e")
    spend.add(decimal.Decimal("0.0006"))
    spend.check()
    spend.add(decimal.Decimal("0.0004"))
    with pytest.raises(errors.GatewayError) as raised:
        spend.check()
    error = orjson.loads(raised.value.body())["error"]
    assert raised.value.status == 429
    assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
    assert "$0.001" in error["message"] and "monthlyUSD" in error["message"]


def test_without_a_budget_nothing_is_refused_or_counted() -> None:
    spend = budget.Budget(None, "ns/e")
    spend.add(decimal.Decimal("1000000"))
    spend.check()
    assert spend.spent_usd == 0


def test_spend_stays_counted_while_redis_is_unreachable() -> None:
    spend = budget.Budget(decimal.Decimal("0.01"), "ns/e")
    spend.add(decimal.Decimal("0.02"))

    async def flush_to_nowhere() -> None:
        unreachable = aioredis.Redis(port=_closed_port(), retry=retry.Retry(backoff.NoBackoff(), 0))
        await spend.flush(unreachable)
        await unreachable.aclose()

    asyncio.run(flush_to_nowhere())
    assert spend.spent_usd == decimal.Decimal("0.02")
    with pytest.raises(errors.GatewayError):
        spend.check()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
