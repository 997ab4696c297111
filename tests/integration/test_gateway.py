"""The realtime gateway as a client sees it: the official openai SDK against real gateway
processes, a real Redis and the mockllm backend (a real HTTP server)."""

from __future__ import annotations

import concurrent.futures
import json
import pathlib
import time
import urllib.error
import urllib.request
from decimal import Decimal
from typing import Any

import openai
import pytest
import redis
from conftest import Processes, wait_for

from tiers.devenv import redis_server as redis_server_module
from tiers.runtime.mockllm import control
from tiers.runtime.stats import spend, store, window

GATEWAY = "tiers.runtime.gateway"
MOCK = "tiers.runtime.mockllm"
HELLO = [{"role": "user", "content": "Say hello to the gateway tests"}]


def client(base_url: str, key: str = "unused", **options: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url + "/v1", api_key=key, max_retries=0, **options)


def post(
    url: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers={"content-type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, _lower(response.headers), json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, _lower(error.headers), json.loads(error.read())


def _lower(headers: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


@pytest.fixture
def mock(services: Processes) -> str:
    return services.start("mockllm", MOCK)


@pytest.fixture
def gateway(services: Processes, mock: str, redis_server: redis_server_module.RedisServer) -> str:
    return services.start(
        "gateway", GATEWAY, "--backend", f"openai-compatible={mock}/v1", "--redis", redis_server.url
    )


def upstream_calls(mock: str) -> int:
    return int(control.stats(mock)["requests"].get("chat.completions", 0))


def test_the_openai_sdk_gets_a_chat_completion_with_usage_and_cost(gateway: str) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO
    )
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    assert raw.headers["x-tiers-cache"] == "miss"
    expected = gpt_4o_mini_usd(completion.usage.prompt_tokens, completion.usage.completion_tokens)
    assert Decimal(raw.headers["x-tiers-cost-usd"]) == expected


def gpt_4o_mini_usd(prompt_tokens: int, completion_tokens: int) -> Decimal:
    """OpenAI's published price: $0.15 per million prompt tokens, $0.60 per million completion
    tokens (none cached here)."""
    return (
        Decimal(prompt_tokens) * Decimal("0.15") + Decimal(completion_tokens) * Decimal("0.60")
    ) / 1_000_000


def test_streaming_passes_chunks_through_and_reports_usage_when_asked(
    gateway: str, mock: str
) -> None:
    sdk = client(gateway)
    direct = client(mock)
    expected = (
        direct.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        .choices[0]
        .message.content
    )
    chunks = list(
        sdk.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected
    assert len(chunks) > 3, "the stream arrives in pieces"
    from_the_backend = direct.chat.completions.create(
        model="gpt-4o-mini", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    assert [deltas(c) for c in chunks] == [deltas(c) for c in from_the_backend], "unchanged"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    without_usage = list(
        sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)
    )
    assert all(c.usage is None for c in without_usage), "usage only for clients that asked"


def deltas(chunk: Any) -> tuple[Any, ...]:
    """What a streamed chunk says, without the id and time that differ between two calls."""
    return (
        chunk.object,
        chunk.model,
        [(c.index, c.delta.role, c.delta.content, c.finish_reason) for c in chunk.choices],
        chunk.usage,
    )


def sse_events(url: str, body: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """A raw streamed call: its headers and its events as the bytes on the wire say them."""
    request = urllib.request.Request(
        url + "/v1/chat/completions",
        data=json.dumps({**body, "stream": True}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read().decode()
        return _lower(response.headers), [e for e in text.split("\n\n") if e]


def cost_comment(events: list[str]) -> Decimal:
    """The cost a stream's comment carries; it must come just before [DONE] and only once."""
    comments = [e for e in events if e.startswith(": tiers-cost-usd=")]
    assert comments == [events[-2]] and events[-1] == "data: [DONE]", events[-3:]
    return Decimal(comments[0].removeprefix(": tiers-cost-usd="))


def test_a_streamed_answer_carries_its_cost_in_a_comment_before_done(
    services: Processes,
    mock: str,
    redis_server: redis_server_module.RedisServer,
    tmp_path: pathlib.Path,
) -> None:
    subject = "tests/streamed-cost"
    config_file = tmp_path / "gateway.json"
    config_file.write_text(
        json.dumps(
            {
                "endpoint": subject,
                "backends": [
                    {
                        "name": "mock",
                        "provider": "openai-compatible",
                        "model": "*",
                        "base_url": f"{mock}/v1",
                    }
                ],
                "redis_url": redis_server.url,
            }
        )
    )
    gateway = services.start("gateway", GATEWAY, "--config", str(config_file))
    ask = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What does it cost?"}]}

    headers, events = sse_events(gateway, {**ask, "stream_options": {"include_usage": True}})
    assert headers["x-tiers-cache"] == "miss" and "x-tiers-cost-usd" not in headers
    usage = json.loads(events[-3].removeprefix("data: "))["usage"]
    first = gpt_4o_mini_usd(usage["prompt_tokens"], usage["completion_tokens"])
    assert cost_comment(events) == first > 0

    # A client that did not ask for usage gets the cost all the same: the gateway asked for it.
    other = {**ask, "messages": [{"role": "user", "content": "And this one?"}]}
    _, events = sse_events(gateway, other)
    assert all('"usage":{' not in e for e in events)
    backend = client(mock).chat.completions.create(**other).usage
    assert backend is not None
    second = gpt_4o_mini_usd(backend.prompt_tokens, backend.completion_tokens)
    assert cost_comment(events) == second

    # A replay from the cache says what it cost: nothing.
    headers, events = sse_events(gateway, ask)
    assert headers["x-tiers-cache"] == "hit" and cost_comment(events) == 0

    # The endpoint's stats (what status reads) count the streamed spend to the nano-dollar.
    stats = redis.Redis.from_url(redis_server.url)

    def counted() -> tuple[int, int]:
        minute = int(time.time() // 60)
        rows = [stats.hgetall(store.key(subject, m)) for m in (minute - 1, minute)]
        counts = [
            window.Counts.from_fields({k.decode(): int(v) for k, v in r.items()}) for r in rows
        ]
        return sum(c.units for c in counts), sum(c.cost_nano_usd for c in counts)

    spent = int((first + second) * 1_000_000_000)
    wait_for(
        lambda: counted() == (3, spent), timeout_s=10, what=f"3 calls and {spent} nano-USD in stats"
    )


def test_a_repeated_request_is_served_from_the_cache(gateway: str, mock: str) -> None:
    sdk = client(gateway)
    first = sdk.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)
    second = sdk.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)
    assert (first.headers["x-tiers-cache"], second.headers["x-tiers-cache"]) == ("miss", "hit")
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert second.headers["x-tiers-cost-usd"] == "0.000000"
    assert upstream_calls(mock) == 1


def test_a_different_sampling_parameter_is_a_different_cache_entry(gateway: str, mock: str) -> None:
    sdk = client(gateway)
    sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO, temperature=0)
    other = sdk.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO, temperature=1
    )
    assert other.headers["x-tiers-cache"] == "miss"
    assert upstream_calls(mock) == 2


def test_a_streamed_response_is_cached_and_replayed_as_a_stream(gateway: str, mock: str) -> None:
    sdk = client(gateway)
    first = "".join(
        c.choices[0].delta.content or ""
        for c in sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)
    )
    replayed = sdk.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO, stream=True
    )
    assert replayed.headers["x-tiers-cache"] == "hit"
    text = "".join(c.choices[0].delta.content or "" for c in replayed.parse() if c.choices)
    assert text == first
    plain = sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert plain.choices[0].message.content == first
    assert upstream_calls(mock) == 1


def test_the_cache_is_shared_by_gateway_replicas(
    services: Processes, mock: str, redis_server: redis_server_module.RedisServer
) -> None:
    backend = f"openai-compatible={mock}/v1"
    a = services.start("gateway-a", GATEWAY, "--backend", backend, "--redis", redis_server.url)
    b = services.start("gateway-b", GATEWAY, "--backend", backend, "--redis", redis_server.url)
    client(a).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    from_b = client(b).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO
    )
    assert from_b.headers["x-tiers-cache"] == "hit"
    assert upstream_calls(mock) == 1


def test_identical_concurrent_misses_make_one_upstream_call(
    services: Processes, redis_server: redis_server_module.RedisServer
) -> None:
    slow = services.start("mockllm", MOCK, "--latency-ms", "300")
    gateway = services.start(
        "gateway", GATEWAY, "--backend", f"openai-compatible={slow}/v1", "--redis", redis_server.url
    )
    sdk = client(gateway)
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        replies = list(
            pool.map(
                lambda _: sdk.chat.completions.with_raw_response.create(
                    model="gpt-4o-mini", messages=HELLO
                ),
                range(20),
            )
        )
    assert upstream_calls(slow) == 1
    assert {r.parse().choices[0].message.content for r in replies} == {
        replies[0].parse().choices[0].message.content
    }
    assert sorted({r.headers["x-tiers-cache"] for r in replies}) == ["coalesced", "miss"]


def test_two_replicas_sharing_redis_never_admit_more_than_the_limit(
    services: Processes, mock: str, redis_server: redis_server_module.RedisServer
) -> None:
    limit = 30
    backend = f"openai-compatible={mock}/v1"
    common = ("--backend", backend, "--redis", redis_server.url, "--rpm", str(limit), "--no-cache")
    replicas = [services.start(f"gateway-{i}", GATEWAY, *common) for i in range(2)]
    started = time.monotonic()

    def call(i: int) -> tuple[int, dict[str, str]]:
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"request {i}"}]}
        status, headers, _ = post(replicas[i % 2] + "/v1/chat/completions", body)
        return status, headers

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(call, range(100)))
    elapsed = time.monotonic() - started
    admitted = sum(1 for status, _ in results if status == 200)
    # A token bucket: the full limit at once, then limit/60 per second refilled.
    assert limit <= admitted <= limit + int(elapsed * limit / 60) + 1
    rejected = [headers for status, headers in results if status == 429]
    assert len(rejected) == 100 - admitted
    assert all(int(headers["retry-after"]) >= 1 for headers in rejected)


def test_redis_going_away_under_load_fails_no_request(
    services: Processes, mock: str, redis_server: redis_server_module.RedisServer
) -> None:
    gateway = services.start(
        "gateway",
        GATEWAY,
        "--backend",
        f"openai-compatible={mock}/v1",
        "--redis",
        redis_server.url,
        "--rpm",
        "100000",
    )

    def call(i: int) -> int:
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"load {i % 50}"}]}
        return post(gateway + "/v1/chat/completions", body)[0]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        before = list(pool.map(call, range(150)))
        redis_server.stop()
        after = list(pool.map(call, range(150, 400)))
    assert set(before) == {200}
    assert set(after) == {200}
    health = json.load(urllib.request.urlopen(gateway + "/healthz", timeout=5))
    assert health["redis"] == "down"


def test_backend_errors_are_retried_until_one_succeeds(gateway: str, mock: str) -> None:
    control.fail_next(mock, 2, status=500)
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO
    )
    assert raw.http_response.status_code == 200
    assert upstream_calls(mock) == 3


def test_a_rate_limited_backend_is_retried_after_its_retry_after(gateway: str, mock: str) -> None:
    control.fail_next(mock, 1, status=429)
    started = time.monotonic()
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO
    )
    assert raw.http_response.status_code == 200
    assert time.monotonic() - started >= 0.9, "the mock's Retry-After of 1 s was honoured"


def test_a_failing_backend_falls_back_to_the_next(
    services: Processes, redis_server: redis_server_module.RedisServer
) -> None:
    primary = services.start("mock-primary", MOCK)
    secondary = services.start("mock-secondary", MOCK)
    control.set_faults(primary, fail_rate_500=1.0)
    gateway = services.start(
        "gateway", GATEWAY, "--redis", redis_server.url,
        "--backend", f"openai-compatible={primary}/v1", "--backend", f"openai-compatible={secondary}/v1",
    )  # fmt: skip
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO
    )
    assert raw.http_response.status_code == 200
    assert raw.headers["x-tiers-backend"] == "backend-1"
    assert upstream_calls(primary) == 3, "three attempts on the primary before the fallback"


def test_when_every_backend_fails_the_client_gets_a_clear_openai_error(
    gateway: str, mock: str
) -> None:
    control.set_faults(mock, fail_rate_500=1.0)
    with pytest.raises(openai.APIStatusError) as raised:
        client(gateway).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert raised.value.status_code == 502
    assert "All backends failed" in raised.value.message


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": HELLO}, "model"),
        ({"model": "gpt-4o-mini"}, "messages"),
        ({"model": "gpt-4o-mini", "messages": []}, "messages"),
        (
            {"model": "gpt-4o-mini", "messages": [{"role": "robot", "content": "hi"}]},
            "messages[0].role",
        ),
        ({"model": "gpt-4o-mini", "messages": HELLO, "temperature": 7}, "temperature"),
        ({"model": "gpt-4o-mini", "messages": HELLO, "max_tokens": 0}, "max_tokens"),
        ({"model": "gpt-4o-mini", "messages": HELLO, "stream": "yes"}, "stream"),
    ],
)
def test_a_malformed_request_gets_a_400_naming_the_field(
    gateway: str, body: dict[str, Any], param: str
) -> None:
    status, _, reply = post(gateway + "/v1/chat/completions", body)
    assert status == 400
    assert reply["error"]["param"] == param
    assert reply["error"]["type"] == "invalid_request_error"
    assert param in reply["error"]["message"]


def test_a_body_that_is_not_json_gets_a_400(gateway: str) -> None:
    status, _, reply = post(gateway + "/v1/chat/completions", b"{not json")
    assert status == 400 and "not valid JSON" in reply["error"]["message"]


def test_api_keys_are_required_when_configured(
    services: Processes, mock: str, tmp_path: pathlib.Path
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "team-a").write_text("sk-team-a-secret\n")
    gateway = services.start(
        "gateway", GATEWAY, "--backend", f"openai-compatible={mock}/v1", "--api-keys-dir", str(keys)
    )
    with pytest.raises(openai.AuthenticationError):
        client(gateway, key="sk-wrong").chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    ok = client(gateway, key="sk-team-a-secret").chat.completions.create(
        model="gpt-4o-mini", messages=HELLO
    )
    assert ok.choices[0].message.content
    log = (services.log_dir / "gateway.log").read_text()
    assert "sk-team-a-secret" not in log and "sk-wrong" not in log


def test_auth_fails_closed_and_follows_the_key_files_without_a_restart(
    services: Processes, mock: str, tmp_path: pathlib.Path
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "empty").write_text("")
    (keys / "blank").write_text(" \n")
    gateway = services.start(
        "gateway", GATEWAY, "--backend", f"openai-compatible={mock}/v1", "--api-keys-dir", str(keys)
    )
    url = gateway + "/v1/chat/completions"
    body = {"model": "gpt-4o-mini", "messages": HELLO}

    def status_with(key: str | None) -> int:
        return post(url, body, {"authorization": f"Bearer {key}"} if key else None)[0]

    # Blank keys are no keys: nobody is served as anonymous, whatever they send.
    assert [status_with(k) for k in (None, "", " ", "anything")] == [401] * 4
    (keys / "team-a").write_text("sk-team-a\n")
    wait_for(lambda: status_with("sk-team-a") == 200, timeout_s=10, what="a new key accepted")
    (keys / "team-a").write_text("sk-team-a-rotated\n")
    wait_for(lambda: status_with("sk-team-a") == 401, timeout_s=10, what="the old key refused")
    assert status_with("sk-team-a-rotated") == 200
    (keys / "team-a").unlink()
    wait_for(
        lambda: status_with("sk-team-a-rotated") == 401, timeout_s=10, what="a revoked key refused"
    )
    assert status_with(None) == 401
    log = (services.log_dir / "gateway.log").read_text()
    assert "sk-team-a" not in log


def test_a_model_the_endpoint_does_not_serve_is_a_404(services: Processes, mock: str) -> None:
    gateway = services.start(
        "gateway", GATEWAY, "--backend", f"openai-compatible={mock}/v1", "--model", "gpt-4o-mini"
    )
    with pytest.raises(openai.NotFoundError):
        client(gateway).chat.completions.create(model="gpt-4o", messages=HELLO)
    assert [m.id for m in client(gateway).models.list()] == ["gpt-4o-mini"]


def test_embeddings_and_completions_pass_through(gateway: str) -> None:
    sdk = client(gateway)
    vector = sdk.embeddings.create(model="text-embedding-3-small", input="hello").data[0].embedding
    assert len(vector) > 10
    text = sdk.completions.create(
        model="gpt-3.5-turbo-instruct", prompt="Once upon a time", max_tokens=5
    )
    assert text.choices[0].text


def test_many_prompts_in_one_request_get_one_choice_each(gateway: str) -> None:
    """What a stream or batch job with rowsPerRequest sends through an endpoint."""
    prompts = ["first prompt", "second prompt here", "third"]
    reply = client(gateway).completions.with_raw_response.create(
        model="gpt-4o-mini", prompt=prompts, max_tokens=8
    )
    choices = sorted(reply.parse().choices, key=lambda choice: choice.index)
    assert [choice.text for choice in choices] == prompts
    assert float(reply.headers["x-tiers-cost-usd"]) > 0


def test_metrics_count_requests_by_cache_outcome(gateway: str) -> None:
    sdk = client(gateway)
    for _ in range(3):
        sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    text = urllib.request.urlopen(gateway + "/metrics", timeout=5).read().decode()
    assert 'tiers_gateway_requests_total{cache="hit",route="chat",status="200"} 2.0' in text
    assert 'tiers_gateway_requests_total{cache="miss",route="chat",status="200"} 1.0' in text
    assert "tiers_gateway_cost_usd_total" in text


def test_a_spent_monthly_budget_answers_insufficient_quota_and_stops_upstream_calls(
    services: Processes,
    mock: str,
    redis_server: redis_server_module.RedisServer,
    tmp_path: pathlib.Path,
) -> None:
    settings = {
        "endpoint": "tests/budget",
        "backends": [
            {
                "name": "mock",
                "provider": "openai-compatible",
                "model": "*",
                "base_url": f"{mock}/v1",
            }
        ],
        "redis_url": redis_server.url,
        "budget_usd": "0.001",
    }
    config_file = tmp_path / "gateway.json"
    config_file.write_text(json.dumps(settings))
    gateway = services.start("gateway", GATEWAY, "--config", str(config_file))

    def call(i: int, url: str = gateway) -> tuple[int, Any]:
        # gpt-4o: $2.50 and $10 per million prompt and completion tokens; every prompt distinct.
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": f"spend {i}"}]}
        status, _, reply = post(url + "/v1/chat/completions", body)
        return status, reply

    answered = 0
    while (outcome := call(answered))[0] == 200:
        answered += 1
        assert answered < 100, "the budget never ran out"
    status, reply = outcome
    assert status == 429 and answered >= 1
    assert reply["error"]["type"] == reply["error"]["code"] == "insufficient_quota"
    assert "$0.001" in reply["error"]["message"]
    assert upstream_calls(mock) == answered
    assert {call(i)[0] for i in range(1000, 1005)} == {429}
    assert upstream_calls(mock) == answered, "no backend call once the budget is spent"

    # The spend is the endpoint's, in Redis: a replica started now refuses from its first call.
    month = redis.Redis.from_url(redis_server.url).get
    key = spend.month_key("tests/budget", time.time())
    wait_for(lambda: int(month(key) or 0) >= 1000, timeout_s=30, what="the spend in micro-USD")
    replica = services.start("gateway-b", GATEWAY, "--config", str(config_file))
    assert call(2000, replica)[0] == 429
    assert upstream_calls(mock) == answered
