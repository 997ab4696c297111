"""mockllm speaks the OpenAI wire format well enough for the official SDK, and obeys its controls.

One real server per module, on a free loopback port; each test starts from reset stats and faults.
Raw requests (bad bodies, SSE framing) go through urllib so that what is sent is exactly what we
wrote.
"""

import asyncio
import base64
import contextlib
import json
import math
import random
import statistics
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tiers.runtime import mockllm
from tiers.runtime.mockllm import __main__ as cli
from tiers.runtime.mockllm import latency

KEY = "sk-test-key"
PROMPT = "Summarise the quarterly report for the board"
USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": PROMPT}]


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with mockllm.running(mockllm.MockConfig(api_key=KEY, seed=7)) as url:
        yield url


@pytest.fixture(autouse=True)
def fresh_mock(request: pytest.FixtureRequest) -> None:
    if "base_url" in request.fixturenames:
        mockllm.control.reset(request.getfixturevalue("base_url"))


@pytest.fixture
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=10)


def post_raw(
    url: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    all_headers = {"content-type": "application/json", "authorization": f"Bearer {KEY}"}
    request = urllib.request.Request(url, data=body, headers=all_headers | (headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_chat_reply_is_derived_from_the_last_user_message(client: openai.OpenAI) -> None:
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "Be brief."},
        *USER,
    ]
    first = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    second = client.chat.completions.create(model="gpt-4o-mini", messages=messages)

    assert first.choices[0].message.content == PROMPT
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.choices[0].finish_reason == "stop"
    assert first.id.startswith("chatcmpl-") and first.id != second.id
    assert first.model == "gpt-4o-mini"
    assert first.system_fingerprint
    assert first.created > 0


def test_chat_usage_counts_prompt_and_reply_tokens(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="gpt-4o", messages=USER)

    usage = reply.usage
    assert usage is not None
    assert usage.completion_tokens == 7
    assert 10 < usage.prompt_tokens < 40
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 0


@pytest.mark.parametrize("limit", ["max_tokens", "max_completion_tokens"])
def test_token_limit_truncates_the_reply(client: openai.OpenAI, limit: str) -> None:
    reply = client.chat.completions.create(model="m", messages=USER, extra_body={limit: 2})

    assert reply.choices[0].message.content == "Summarise the"
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 2


def test_streaming_chat_sends_role_content_finish_and_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    assert chunks[0].choices[0].delta.role == "assistant"
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == PROMPT
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7
    assert {c.id for c in chunks} == {chunks[0].id}
    assert all(c.object == "chat.completion.chunk" and c.model == "gpt-4o-mini" for c in chunks)


def test_stream_is_sse_framed_and_ends_with_done(base_url: str) -> None:
    body = {"model": "m", "messages": USER, "stream": True}
    status, headers, raw = post_raw(f"{base_url}/chat/completions", json.dumps(body).encode())

    assert status == 200
    assert headers["content-type"] == "text/event-stream"
    events = raw.decode().split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    assert all(e.startswith("data: ") for e in events[:-1])
    assert all("usage" not in json.loads(e[6:]) for e in events[:-2])


def test_text_completion_gives_one_choice_per_prompt(client: openai.OpenAI) -> None:
    reply = client.completions.create(model="gpt-3.5-turbo-instruct", prompt=["one two", "three"])

    assert [c.text for c in reply.choices] == ["one two", "three"]
    assert reply.object == "text_completion"
    assert reply.usage is not None and reply.usage.completion_tokens == 3


def test_streaming_text_completion_sends_the_same_text(client: openai.OpenAI) -> None:
    stream = client.completions.create(model="m", prompt="alpha beta gamma", stream=True)

    assert "".join(c.choices[0].text for c in stream) == "alpha beta gamma"


def test_embeddings_are_deterministic_unit_vectors(client: openai.OpenAI) -> None:
    first = client.embeddings.create(model="text-embedding-3-small", input=["cat", "dog"])
    again = client.embeddings.create(model="text-embedding-3-small", input="cat")

    cat, dog = (d.embedding for d in first.data)
    assert len(cat) == 256
    assert math.isclose(math.fsum(v * v for v in cat), 1.0, rel_tol=1e-6)
    assert again.data[0].embedding == cat
    assert cat != dog
    assert [d.index for d in first.data] == [0, 1]
    assert first.usage.prompt_tokens == 2


def test_embeddings_keep_near_duplicate_texts_close_and_unrelated_texts_apart(
    client: openai.OpenAI,
) -> None:
    texts = [
        "What is the capital of France?",
        "what is the capital of france",
        "What's the capital of France?",
        "How do I bake sourdough bread?",
    ]
    reply = client.embeddings.create(model="text-embedding-3-small", input=texts)
    same, case, rephrased, unrelated = (d.embedding for d in reply.data)

    def cosine(a: list[float], b: list[float]) -> float:
        return math.fsum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(same, case) == pytest.approx(1.0)
    assert 0.75 < cosine(same, rephrased) < 0.99
    assert abs(cosine(same, unrelated)) < 0.2


def test_embeddings_honour_dimensions_and_base64(base_url: str) -> None:
    body = {"model": "e", "input": "cat", "dimensions": 8, "encoding_format": "base64"}
    status, _, raw = post_raw(f"{base_url}/embeddings", json.dumps(body).encode())
    floats = {"model": "e", "input": "cat", "dimensions": 8}
    _, _, raw_floats = post_raw(f"{base_url}/embeddings", json.dumps(floats).encode())

    assert status == 200
    packed = base64.b64decode(json.loads(raw)["data"][0]["embedding"])
    decoded = struct.unpack("<8f", packed)
    expected = json.loads(raw_floats)["data"][0]["embedding"]
    assert decoded == pytest.approx(expected, rel=1e-6)


def test_models_list_names_the_configured_models(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == list(mockllm.MockConfig().models)


def test_azure_path_serves_the_deployment_with_an_api_key_header(base_url: str) -> None:
    azure = openai.AzureOpenAI(
        azure_endpoint=base_url.removesuffix("/v1"),
        api_version="2024-10-21",
        api_key=KEY,
        max_retries=0,
    )

    reply = azure.chat.completions.create(model="my-gpt4o", messages=USER)
    embedded = azure.embeddings.create(model="my-embedder", input="cat")

    assert reply.model == "my-gpt4o"
    assert reply.choices[0].message.content == PROMPT
    assert len(embedded.data[0].embedding) == 256
    assert mockllm.control.stats(base_url)["requests"] == {"chat.completions": 1, "embeddings": 1}


def test_azure_path_without_api_version_is_rejected(base_url: str) -> None:
    url = base_url.removesuffix("/v1") + "/openai/deployments/d/chat/completions"
    status, _, raw = post_raw(url, json.dumps({"messages": USER}).encode(), {"api-key": KEY})

    assert status == 400
    assert json.loads(raw)["error"]["param"] == "api-version"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"[]", None),
        (json.dumps({"messages": USER}).encode(), "model"),
        (json.dumps({"model": "m"}).encode(), "messages"),
        (json.dumps({"model": "m", "messages": []}).encode(), "messages"),
        (json.dumps({"model": "m", "messages": "hi"}).encode(), "messages"),
        (json.dumps({"model": 5, "messages": USER}).encode(), "model"),
        (json.dumps({"model": "m", "messages": [{"content": "x"}]}).encode(), "messages[0].role"),
        (
            json.dumps({"model": "m", "messages": [{"role": "boss", "content": "x"}]}).encode(),
            "messages[0].role",
        ),
        (
            json.dumps({"model": "m", "messages": [{"role": "user", "content": 3}]}).encode(),
            "messages[0].content",
        ),
        (json.dumps({"model": "m", "messages": USER, "max_tokens": "ten"}).encode(), "max_tokens"),
        (json.dumps({"model": "m", "messages": USER, "max_tokens": 0}).encode(), "max_tokens"),
        (json.dumps({"model": "m", "messages": USER, "stream": "yes"}).encode(), "stream"),
        (
            json.dumps(
                {"model": "m", "messages": USER, "stream_options": {"include_usage": True}}
            ).encode(),
            "stream_options",
        ),
    ],
)
def test_bad_chat_body_gets_400_naming_the_field(
    base_url: str, body: bytes, param: str | None
) -> None:
    status, _, raw = post_raw(f"{base_url}/chat/completions", body)

    assert status == 400
    error = json.loads(raw)["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"]
    assert mockllm.control.stats(base_url)["outcomes"] == {"400": 1}


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/embeddings", {"model": "e"}, "input"),
        ("/embeddings", {"model": "e", "input": []}, "input"),
        ("/embeddings", {"model": "e", "input": "x", "encoding_format": "hex"}, "encoding_format"),
        ("/completions", {"model": "m", "prompt": 5}, "prompt"),
    ],
)
def test_bad_embedding_or_completion_body_names_the_field(
    base_url: str, path: str, body: dict[str, Any], param: str
) -> None:
    status, _, raw = post_raw(base_url + path, json.dumps(body).encode())

    assert status == 400
    assert json.loads(raw)["error"]["param"] == param


def test_wrong_api_key_gets_401(base_url: str) -> None:
    wrong = openai.OpenAI(base_url=base_url, api_key="sk-wrong", max_retries=0)

    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.chat.completions.create(model="m", messages=USER)

    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    assert "sk-wrong" not in caught.value.message


def test_missing_key_and_azure_key_on_openai_path_get_401(base_url: str) -> None:
    body = json.dumps({"model": "m", "messages": USER}).encode()

    no_key, _, _ = post_raw(f"{base_url}/chat/completions", body, {"authorization": ""})
    azure_style, _, _ = post_raw(
        f"{base_url}/chat/completions", body, {"authorization": "", "api-key": KEY}
    )

    assert (no_key, azure_style) == (401, 401)


def test_injected_429_carries_retry_after(base_url: str, client: openai.OpenAI) -> None:
    mockllm.control.set_faults(base_url, fail_rate_429=1.0, retry_after_s=0.05)

    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="m", messages=USER)

    headers = caught.value.response.headers
    assert headers["retry-after"] == "0.05"
    assert headers["retry-after-ms"] == "50"
    assert caught.value.code == "rate_limit_exceeded"


def test_fail_next_fails_exactly_that_many_requests(base_url: str, client: openai.OpenAI) -> None:
    mockllm.control.fail_next(base_url, 2, status=503)

    outcomes = []
    for _ in range(3):
        try:
            client.chat.completions.create(model="m", messages=USER)
            outcomes.append(200)
        except openai.APIStatusError as e:
            outcomes.append(e.status_code)

    assert outcomes == [503, 503, 200]
    stats = mockllm.control.stats(base_url)
    assert stats["by_endpoint"]["chat.completions"] == {"200": 1, "503": 2}


def test_sdk_retries_honour_retry_after_and_stats_count_each_call(base_url: str) -> None:
    mockllm.control.set_faults(base_url, retry_after_s=0.01)
    mockllm.control.fail_next(base_url, 2, status=429)
    retrying = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=2)

    reply = retrying.chat.completions.create(model="m", messages=USER)

    assert reply.choices[0].finish_reason == "stop"
    assert mockllm.control.stats(base_url)["outcomes"] == {"200": 1, "429": 2}


def test_timeout_fault_holds_the_request_until_the_client_gives_up(
    base_url: str, client: openai.OpenAI
) -> None:
    mockllm.control.fail_next(base_url, 1, status="timeout")

    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.3).chat.completions.create(model="m", messages=USER)
    after = client.chat.completions.create(model="m", messages=USER)

    assert after.choices[0].finish_reason == "stop"
    assert mockllm.control.stats(base_url)["outcomes"] == {"200": 1, "timeout": 1}


def test_random_fault_rate_fails_about_that_share(base_url: str, client: openai.OpenAI) -> None:
    mockllm.control.set_faults(base_url, fail_rate_500=0.5)

    for _ in range(100):
        with contextlib.suppress(openai.InternalServerError):
            client.embeddings.create(model="e", input="x")

    outcomes = mockllm.control.stats(base_url)["outcomes"]
    assert outcomes["200"] + outcomes["500"] == 100
    assert 25 <= outcomes["500"] <= 75


def test_stats_count_per_endpoint_and_reset_clears_them(
    base_url: str, client: openai.OpenAI
) -> None:
    client.chat.completions.create(model="m", messages=USER)
    client.embeddings.create(model="e", input="x")
    client.models.list()

    stats = mockllm.control.stats(base_url)
    mockllm.control.reset(base_url)

    assert stats["total"] == 3
    assert stats["requests"] == {"chat.completions": 1, "embeddings": 1, "models": 1}
    assert mockllm.control.stats(base_url)["total"] == 0


def test_reset_restores_the_starting_faults(base_url: str, client: openai.OpenAI) -> None:
    mockllm.control.set_faults(base_url, fail_rate_500=1.0)
    mockllm.control.fail_next(base_url, 5)

    mockllm.control.reset(base_url)

    assert client.embeddings.create(model="e", input="x").data
    faults = mockllm.control.set_faults(base_url)
    assert faults["fail_rate_500"] == 0.0
    assert faults["fail_next"]["count"] == 0


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"fail_rate_404": 0.1}, "fail_rate_404"),
        ({"fail_rate_500": 1.5}, "fail_rate_500"),
        ({"fail_rate_500": "high"}, "fail_rate_500"),
        ({"fail_next": {"count": 1, "status": 200}}, "fail_next.status"),
    ],
)
def test_bad_fault_change_is_rejected_naming_the_field(
    base_url: str, changes: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        mockllm.control.set_faults(base_url, **changes)


def test_latency_and_chunk_delay_slow_replies_down() -> None:
    slow = mockllm.MockConfig(latency=mockllm.Latency(fixed_ms=60, chunk_delay_ms=10))
    with mockllm.running(slow) as url:
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
        started = time.perf_counter()
        client.chat.completions.create(model="m", messages=USER)
        plain_s = time.perf_counter() - started
        started = time.perf_counter()
        chunks = list(client.chat.completions.create(model="m", messages=USER, stream=True))
        stream_s = time.perf_counter() - started

    # A millisecond of slack: the event loop's timers may fire that much early.
    assert plain_s >= 0.059
    gaps = len(chunks)  # one fewer than the events, which end with [DONE]
    assert stream_s >= 0.059 + 0.009 * gaps
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == PROMPT


def test_lognormal_latency_matches_the_configured_percentiles() -> None:
    sampler = latency.LatencySampler(mockllm.Latency(p50_ms=20, p95_ms=80), rng=random.Random(1))

    draws = sorted(sampler.first_byte_s() for _ in range(4000))

    assert statistics.median(draws) == pytest.approx(0.020, rel=0.1)
    assert draws[int(0.95 * len(draws))] == pytest.approx(0.080, rel=0.15)


def test_concurrent_async_clients_are_all_served(base_url: str) -> None:
    async def many() -> list[str | None]:
        async with openai.AsyncOpenAI(base_url=base_url, api_key=KEY, max_retries=0) as client:
            replies = await asyncio.gather(
                *(
                    client.chat.completions.create(
                        model="m", messages=[{"role": "user", "content": f"request {i}"}]
                    )
                    for i in range(50)
                )
            )
        return [r.choices[0].message.content for r in replies]

    assert asyncio.run(many()) == [f"request {i}" for i in range(50)]


def test_a_repeated_long_prefix_is_billed_as_cached_and_reasoning_as_output() -> None:
    """As OpenAI bills: a prompt of 1,024 tokens or more whose prefix an earlier prompt shared
    reports that prefix (in 128-token steps) as cached; a reasoning model's hidden tokens are
    in completion_tokens and again in reasoning_tokens. The bill in stats adds them up."""
    settings = mockllm.MockConfig(prompt_cache=True, reasoning_tokens=40)
    shared = "policy " * 1200  # about 2,100 tokens
    with mockllm.running(settings) as url:
        sdk = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
        usages = []
        for question in ("first question", "second question", "short"):
            content = shared + question if question != "short" else question
            reply = sdk.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": content}], max_tokens=3
            )
            assert reply.usage is not None
            usages.append(reply.usage)
        billed = mockllm.control.stats(url)["billed"]["gpt-4o-mini"]
    first, second, short = usages
    assert first.prompt_tokens_details is not None and second.prompt_tokens_details is not None
    assert first.prompt_tokens_details.cached_tokens == 0
    cached = second.prompt_tokens_details.cached_tokens
    assert cached % 128 == 0 and 1024 <= cached <= second.prompt_tokens
    assert second.prompt_tokens - cached < 128 + 8  # the shared part, to the last whole step
    assert short.prompt_tokens < 1024 and short.prompt_tokens_details.cached_tokens == 0
    for usage, visible in zip(usages, (3, 3, 1), strict=True):  # max_tokens 3; "short": 1 word
        assert usage.completion_tokens_details is not None
        assert usage.completion_tokens_details.reasoning_tokens == 40
        assert usage.completion_tokens == visible + 40
    assert billed == {
        "prompt_tokens": sum(u.prompt_tokens for u in usages),
        "completion_tokens": sum(u.completion_tokens for u in usages),
        "cached_tokens": cached,
        "reasoning_tokens": 120,
    }


def test_command_line_flags_become_the_config() -> None:
    cfg, log_level = cli.parse_config(
        [
            "--port",
            "0",
            "--api-key",
            "k",
            "--latency-ms",
            "20",
            "--jitter-ms",
            "10",
            "--fail-rate-429",
            "0.1",
            "--retry-after",
            "0.05",
            "--model",
            "a",
            "--model",
            "b",
            "--log-level",
            "warning",
            "--prompt-cache",
            "--reasoning-tokens",
            "64",
        ]
    )

    assert (cfg.port, cfg.api_key, cfg.models, log_level) == (0, "k", ("a", "b"), "warning")
    assert (cfg.prompt_cache, cfg.reasoning_tokens) == (True, 64)
    assert (cfg.latency.fixed_ms, cfg.latency.jitter_ms) == (20, 10)
    assert (cfg.faults.fail_rate_429, cfg.faults.retry_after_s) == (0.1, 0.05)


def test_command_line_rejects_an_impossible_rate(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.parse_config(["--fail-rate-500", "2"])

    assert "fail_rate_500" in capsys.readouterr().err


def test_module_runs_as_a_server_from_the_shell() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tiers.runtime.mockllm", "--port", "0", "--log-level", "warning"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = line.split()[-1]
        with urllib.request.urlopen(url.removesuffix("/v1") + "/healthz", timeout=5) as reply:
            assert json.load(reply) == {"status": "ok"}
    finally:
        process.terminate()
        process.wait(timeout=10)

    assert line.startswith("mockllm listening on http://127.0.0.1:")


def test_public_surface_is_explicit() -> None:
    assert all(hasattr(mockllm, name) for name in mockllm.__all__)
    assert {"MockConfig", "running", "build_app", "control"} <= set(mockllm.__all__)
