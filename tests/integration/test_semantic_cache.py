"""The semantic cache as a client sees it: real gateway processes configured the way the operator
renders it, a real Redis and the mockllm backend, whose embeddings keep similar texts similar."""

from __future__ import annotations

import asyncio
import json
import pathlib
import urllib.request
from decimal import Decimal
from typing import Any

import openai
import pytest
import redis
from conftest import Processes, wait_for

from tiers.devenv import redis_server as redis_server_module
from tiers.runtime.gateway import rediswire, semantic
from tiers.runtime.mockllm import control

GATEWAY = "tiers.runtime.gateway"
MOCK = "tiers.runtime.mockllm"
EMBEDDER = "text-embedding-3-small"
QUESTION = "What is the capital of France?"
SAME_QUESTION = "what is the capital of france"  # another exact key, the same bag of words


def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0)


def ask(base_url: str, text: str, **options: Any) -> Any:
    messages = [{"role": "user", "content": text}]
    return client(base_url).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=messages, **options
    )


def calls(mock: str, route: str) -> int:
    return int(control.stats(mock)["requests"].get(route, 0))


def stored_prompts(redis_url: str) -> int:
    """Entries in every semantic scope: the gateway adds them just after it has answered."""
    with redis.Redis.from_url(redis_url) as r:
        lists = [k for k in r.scan_iter("tiers:semantic:*") if not k.endswith(b":seq")]
        return sum(int(r.llen(k)) for k in lists)


def start_gateway(
    services: Processes, mock: str, redis_url: str, tmp_path: pathlib.Path, name: str = "gateway"
) -> str:
    """A gateway from a config file like the one the operator renders: a backend pinned to its
    chat model, and the semantic cache on at 90 %."""
    settings = {
        "endpoint": "prod/chat",
        "backends": [
            {
                "name": "mock",
                "provider": "openai-compatible",
                "model": "gpt-4o-mini",
                "base_url": f"{mock}/v1",
            }
        ],
        "redis_url": redis_url,
        "cache": {"semantic": {"enabled": True, "threshold": 0.9, "embedding_model": EMBEDDER}},
    }
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(settings))
    return services.start(name, GATEWAY, "--config", str(path))


@pytest.fixture
def mock(services: Processes) -> str:
    return services.start("mockllm", MOCK)


@pytest.fixture
def gateway(
    services: Processes,
    mock: str,
    redis_server: redis_server_module.RedisServer,
    tmp_path: pathlib.Path,
) -> str:
    return start_gateway(services, mock, redis_server.url, tmp_path)


def remembered(
    gateway: str, redis_server: redis_server_module.RedisServer, text: str, **options: Any
) -> Any:
    """Asks once and waits until the prompt is in the semantic cache."""
    before = stored_prompts(redis_server.url)
    first = ask(gateway, text, **options)
    assert first.headers["x-tiers-cache"] == "miss"
    wait_for(
        lambda: stored_prompts(redis_server.url) > before,
        timeout_s=10,
        what="the prompt to be stored",
    )
    return first


def test_a_near_duplicate_prompt_is_answered_from_the_semantic_cache(
    gateway: str, mock: str, redis_server: redis_server_module.RedisServer
) -> None:
    first = remembered(gateway, redis_server, QUESTION)
    second = ask(gateway, SAME_QUESTION)

    assert second.headers["x-tiers-cache"] == "semantic-hit"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert (calls(mock, "chat.completions"), calls(mock, "embeddings")) == (1, 2)
    # The completion is free; the embedding that found it is not.
    tokens = client(mock).embeddings.create(model=EMBEDDER, input=SAME_QUESTION).usage.prompt_tokens
    assert Decimal(second.headers["x-tiers-cost-usd"]) == Decimal(tokens) * Decimal("0.02") / 10**6
    metrics = urllib.request.urlopen(gateway + "/metrics", timeout=5).read().decode()
    assert 'tiers_gateway_semantic_lookups_total{outcome="hit"} 1.0' in metrics
    assert 'tiers_gateway_semantic_lookups_total{outcome="miss"} 1.0' in metrics


def test_a_different_prompt_or_temperature_goes_upstream(
    gateway: str, mock: str, redis_server: redis_server_module.RedisServer
) -> None:
    remembered(gateway, redis_server, QUESTION, temperature=0.2)

    other_question = ask(gateway, "How do I bake sourdough bread?", temperature=0.2)
    other_temperature = ask(gateway, SAME_QUESTION, temperature=1.0)

    assert other_question.headers["x-tiers-cache"] == "miss"
    assert other_temperature.headers["x-tiers-cache"] == "miss"
    assert calls(mock, "chat.completions") == 3


def test_a_streamed_near_duplicate_is_replayed_as_a_stream(
    gateway: str, mock: str, redis_server: redis_server_module.RedisServer
) -> None:
    first = remembered(gateway, redis_server, QUESTION, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in first.parse() if c.choices)

    replayed = ask(gateway, SAME_QUESTION, stream=True)

    assert replayed.headers["x-tiers-cache"] == "semantic-hit"
    assert "".join(c.choices[0].delta.content or "" for c in replayed.parse() if c.choices) == text
    assert calls(mock, "chat.completions") == 1


def test_a_single_completion_prompt_is_answered_from_the_semantic_cache(
    gateway: str, mock: str, redis_server: redis_server_module.RedisServer
) -> None:
    sdk = client(gateway).completions.with_raw_response
    first = sdk.create(model="gpt-4o-mini", prompt=QUESTION)
    wait_for(lambda: stored_prompts(redis_server.url) == 1, timeout_s=10, what="a stored prompt")

    second = sdk.create(model="gpt-4o-mini", prompt=SAME_QUESTION)

    assert (first.headers["x-tiers-cache"], second.headers["x-tiers-cache"]) == (
        "miss",
        "semantic-hit",
    )
    assert second.parse().choices[0].text == first.parse().choices[0].text
    assert calls(mock, "completions") == 1


def test_replicas_share_the_semantic_cache(
    services: Processes,
    mock: str,
    redis_server: redis_server_module.RedisServer,
    tmp_path: pathlib.Path,
) -> None:
    a = start_gateway(services, mock, redis_server.url, tmp_path, name="gateway-a")
    b = start_gateway(services, mock, redis_server.url, tmp_path, name="gateway-b")
    assert ask(b, "How do I bake sourdough bread?").headers["x-tiers-cache"] == "miss"
    remembered(a, redis_server, QUESTION)

    assert ask(b, SAME_QUESTION).headers["x-tiers-cache"] == "semantic-hit"
    assert calls(mock, "chat.completions") == 2


def test_the_semantic_cache_is_off_by_default(
    services: Processes, mock: str, redis_server: redis_server_module.RedisServer
) -> None:
    gateway = services.start(
        "gateway", GATEWAY, "--backend", f"openai-compatible={mock}/v1", "--redis", redis_server.url
    )
    ask(gateway, QUESTION)
    assert ask(gateway, SAME_QUESTION).headers["x-tiers-cache"] == "miss"
    assert calls(mock, "embeddings") == 0
    assert calls(mock, "chat.completions") == 2


def test_a_failing_embedding_call_only_skips_the_semantic_cache(gateway: str, mock: str) -> None:
    control.fail_next(mock, 3, status=500)  # every attempt of the embedding call

    answered = ask(gateway, QUESTION)

    assert answered.http_response.status_code == 200
    assert answered.headers["x-tiers-cache"] == "miss"
    assert calls(mock, "embeddings") == 3 and calls(mock, "chat.completions") == 1
    metrics = urllib.request.urlopen(gateway + "/metrics", timeout=5).read().decode()
    assert 'tiers_gateway_semantic_lookups_total{outcome="error"} 1.0' in metrics


def test_without_redis_requests_are_still_answered(
    gateway: str, mock: str, redis_server: redis_server_module.RedisServer
) -> None:
    remembered(gateway, redis_server, QUESTION)
    redis_server.stop()

    near_duplicate = ask(gateway, SAME_QUESTION)
    new_question = ask(gateway, "How do I bake sourdough bread?")

    assert near_duplicate.http_response.status_code == 200
    assert new_question.http_response.status_code == 200
    assert near_duplicate.headers["x-tiers-cache"] == "bypass"
    assert calls(mock, "chat.completions") == 3


def test_every_replica_sees_the_newest_entries_of_a_scope_and_only_those(
    redis_server: redis_server_module.RedisServer,
) -> None:
    """The storage alone, as two replicas use it: capped lists, deltas, a scope that expired."""

    def vector(*values: float) -> semantic.Vector:
        found = semantic.normalize(values)
        assert found is not None
        return found

    async def scenario() -> None:
        wire = rediswire.Client(redis_server.url)
        a, b = (semantic.SharedIndex(wire, max_entries=3, ttl_seconds=60) for _ in range(2))
        scope = "tiers:semantic:prod/chat:team-a:chat:{test}"
        for i in range(5):
            await a.add(scope, f"ref-{i}", vector(1, i))
        assert await b.nearest(scope, vector(1, 0)) == ("ref-2", pytest.approx(0.447, abs=1e-3))
        assert await wire.call("LLEN", scope) == 3, "capped at max_entries"

        await a.add(scope, "ref-new", vector(-1, 0))
        assert await b.nearest(scope, vector(-1, 0)) == ("ref-new", pytest.approx(1.0))

        # The scope expires; a new entry must not be mistaken for the ones B already holds.
        await wire.call("DEL", scope, scope + semantic.SEQ_SUFFIX)
        await a.add(scope, "ref-after", vector(0, 1))
        assert await b.nearest(scope, vector(-1, 0)) == ("ref-after", pytest.approx(0.0))
        await wire.close()

    asyncio.run(scenario())
