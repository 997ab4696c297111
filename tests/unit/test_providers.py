"""The provider layer every caller of a model shares: backoff, Retry-After, the breaker, error
bodies, a backend's URL, headers and payload, one attempt, and the one send-with-retries.

Attempts go to a scripted pool (the seam under `Backend.request`), and waits to a list, so
nothing here touches the network or sleeps.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable
from typing import Any

import orjson
import pytest

from tiers.runtime import pricing, providers
from tiers.runtime.providers import backends, breakers, failures, http1, retries

RETRIES = providers.RetryConfig(max_attempts=3, initial_backoff_ms=100, max_backoff_ms=2000)


class ScriptedPool:
    """Answers each request with the next response (or raises the next exception)."""

    def __init__(self, answers: Iterable[http1.Response | BaseException]) -> None:
        self.answers = list(answers)
        self.sent: list[dict[str, Any]] = []

    async def request(self, method: str, url: str, **sent: Any) -> http1.Response:
        self.sent.append({"method": method, "url": url, **sent})
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


def reply(status: int, body: Any = None, **headers: str) -> http1.Response:
    return http1.Response(status, headers, orjson.dumps(body if body is not None else {}))


def backend(**changes: Any) -> backends.Backend:
    fields = {"name": "b", "provider": "openai-compatible", "model": "*", "base_url": "http://m/v1"}
    return backends.Backend(providers.BackendConfig(**(fields | changes)))


def send(
    pool: ScriptedPool,
    target: backends.Backend,
    *,
    policy: providers.RetryConfig = RETRIES,
    breaker: breakers.CircuitBreaker | None = None,
) -> tuple[retries.Tried[http1.Response], list[float]]:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def run() -> retries.Tried[http1.Response]:
        return await retries.send_with_retries(
            target.request,
            pool,  # type: ignore[arg-type]
            "chat",
            b"{}",
            policy=policy,
            rng=random.Random(1),
            sleep=sleep,
            breaker=breaker,
            clock=lambda: 0.0,
        )

    return asyncio.run(run()), waits


def test_backoff_grows_exponentially_with_full_jitter() -> None:
    rng = random.Random(7)
    for attempt, ceiling in ((1, 0.1), (2, 0.2), (3, 0.4), (10, 2.0)):
        waits = [retries.backoff_seconds(attempt, RETRIES, rng=rng) for _ in range(200)]
        assert min(waits) >= 0 and max(waits) <= ceiling
        assert max(waits) > ceiling / 2, "jitter spreads over the whole range"


def test_retry_after_wins_when_longer_but_stays_capped() -> None:
    assert retries.backoff_seconds(1, RETRIES, retry_after_s=1.5) == 1.5
    assert retries.backoff_seconds(1, RETRIES, retry_after_s=30) == 2.0


def test_retry_after_headers_are_read_in_ms_and_seconds() -> None:
    assert failures.parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert failures.parse_retry_after({"retry-after": "2"}) == 2.0
    assert failures.parse_retry_after({"retry-after": "Wed, 21 Oct 2026 07:28:00 GMT"}) is None


def test_the_breaker_opens_after_consecutive_failures_and_lets_one_trial_through() -> None:
    breaker = breakers.CircuitBreaker(
        providers.CircuitBreakerConfig(failure_threshold=2, open_seconds=10)
    )
    breaker.record_failure(0)
    assert breaker.allows(0)
    breaker.record_failure(1)
    assert not breaker.allows(5)
    assert breaker.allows(12), "half-open after open_seconds"
    assert not breaker.allows(12), "only one trial at a time"
    breaker.record_success()
    assert breaker.allows(13) and not breaker.is_open


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'{"error": {"message": "Rate limit reached", "type": "requests"}}',
            "HTTP 429: Rate limit reached",
        ),
        (b"upstream connect error\n", "HTTP 429: upstream connect error"),
        (b"", "HTTP 429"),
    ],
)
def test_an_error_body_is_read_the_same_way_for_every_caller(body: bytes, message: str) -> None:
    assert failures.error_message(429, body) == message


def test_openai_and_compatible_backends_take_a_bearer_key_at_the_route_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KEY", "sk-1")
    compatible = backend(api_key_env="KEY")
    assert compatible.url("completions") == "http://m/v1/completions"
    assert compatible.headers["authorization"] == "Bearer sk-1"
    openai = backend(provider="openai", base_url=None)
    assert openai.url("chat") == "https://api.openai.com/v1/chat/completions"
    assert "authorization" not in openai.headers, "no key configured, none sent"


def test_azure_backends_take_an_api_key_on_the_deployment_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KEY", "az-1")
    azure = backend(
        provider="azure-openai", base_url="https://x.openai.azure.com/", deployment="gpt4o",
        api_version="2024-10-21", api_key_env="KEY",
    )  # fmt: skip
    assert azure.url("embeddings") == (
        "https://x.openai.azure.com/openai/deployments/gpt4o/embeddings?api-version=2024-10-21"
    )
    assert azure.headers["api-key"] == "az-1" and "authorization" not in azure.headers


def test_a_key_with_a_trailing_newline_is_sent_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEY", "  sk-1\r\n")
    assert backend(api_key_env="KEY").headers["authorization"] == "Bearer sk-1"
    monkeypatch.setenv("KEY", "az-1\n")
    azure = backend(
        provider="azure-openai", base_url="https://x", deployment="d", api_version="v",
        api_key_env="KEY",
    )  # fmt: skip
    assert azure.headers["api-key"] == "az-1"
    monkeypatch.setenv("KEY", " \n")
    assert "authorization" not in backend(api_key_env="KEY").headers, "a blank key is no key"


def test_an_azure_deployment_name_cannot_reach_another_path_or_query() -> None:
    azure = backend(
        provider="azure-openai", base_url="https://x.openai.azure.com", deployment="../a/b?c=#d",
        api_version="2024-10-21&x=1",
    )  # fmt: skip
    assert azure.url("chat") == (
        "https://x.openai.azure.com/openai/deployments/..%2Fa%2Fb%3Fc%3D%23d/chat/completions"
        "?api-version=2024-10-21%26x%3D1"
    )


def test_a_payload_names_the_backends_model_and_asks_a_stream_for_usage() -> None:
    pinned = backend(model="llama")
    assert orjson.loads(pinned.payload({"model": "chat", "prompt": "x"})) == {
        "model": "llama",
        "prompt": "x",
    }
    streamed = orjson.loads(backend().payload({"model": "m", "stream": True}, stream=True))
    assert streamed == {"model": "m", "stream": True, "stream_options": {"include_usage": True}}


def test_a_retryable_status_is_a_failure_and_a_client_error_a_response() -> None:
    async def attempt(answer: http1.Response) -> http1.Response | failures.Failure:
        return await backend().request(ScriptedPool([answer]), "chat", b"{}")  # type: ignore[arg-type]

    throttled = asyncio.run(
        attempt(reply(429, {"error": {"message": "slow down"}}, **{"retry-after": "2"}))
    )
    assert throttled == failures.Failure("HTTP 429: slow down", 429, 2.0)
    bad = asyncio.run(attempt(reply(400, {"error": {"message": "no"}})))
    assert isinstance(bad, http1.Response) and bad.status == 400


def test_a_timeout_or_a_broken_connection_is_a_failure_that_says_which() -> None:
    async def attempt(error: BaseException) -> http1.Response | failures.Failure:
        pool = ScriptedPool([error])
        return await backend(timeout_ms=250).request(pool, "chat", b"{}")  # type: ignore[arg-type]

    assert asyncio.run(attempt(TimeoutError())) == failures.Failure("timed out after 250 ms")
    broken = asyncio.run(attempt(http1.ClientError("reset")))
    assert isinstance(broken, failures.Failure)
    assert broken.message == "connection failed: ClientError: reset" and broken.status is None


def test_failures_are_retried_with_backoff_until_an_answer_comes() -> None:
    pool = ScriptedPool([reply(500), http1.ClientError("reset"), reply(200, {"ok": True})])
    tried, waits = send(pool, backend())
    assert isinstance(tried.outcome, http1.Response) and tried.outcome.status == 200
    assert tried.attempts == 3 and len(waits) == 2


def test_a_client_error_is_never_retried() -> None:
    tried, waits = send(ScriptedPool([reply(404)]), backend())
    assert (tried.attempts, waits) == (1, [])


def test_retries_end_after_max_attempts_with_the_last_failure() -> None:
    pool = ScriptedPool([reply(503)] * 3)
    tried, waits = send(pool, backend())
    assert tried.outcome == failures.Failure("HTTP 503: {}", 503)
    assert tried.attempts == 3 and len(waits) == 2, "no wait after the last attempt"


def test_the_wait_a_server_asks_for_is_honoured() -> None:
    pool = ScriptedPool([reply(429, **{"retry-after-ms": "1500"}), reply(200)])
    tried, waits = send(pool, backend())
    assert tried.attempts == 2 and waits == [1.5]


def test_a_retry_after_beyond_max_backoff_ends_the_retries_saying_so() -> None:
    pool = ScriptedPool([reply(429, {"error": {"message": "quota"}}, **{"retry-after": "30"})])
    tried, waits = send(pool, backend())
    assert isinstance(tried.outcome, failures.Failure) and waits == []
    assert tried.outcome.message == (
        "HTTP 429: quota (the server asks to retry after 30 s, longer than max_backoff_ms)"
    )


def test_an_open_breaker_ends_the_retries_and_a_success_closes_it() -> None:
    breaker = breakers.CircuitBreaker(providers.CircuitBreakerConfig(failure_threshold=2))
    tried, waits = send(ScriptedPool([reply(502)] * 3), backend(), breaker=breaker)
    assert (tried.attempts, len(waits), breaker.is_open) == (2, 1, True)
    tried, _ = send(ScriptedPool([reply(200)]), backend(), breaker=breaker)
    assert tried.attempts == 1 and not breaker.is_open


def test_usage_is_read_from_an_openai_reply_and_missing_usage_costs_nothing() -> None:
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 4,
        "prompt_tokens_details": {"cached_tokens": 6},
    }
    assert pricing.Usage.from_openai(usage) == pricing.Usage(10, 4, 6)
    assert pricing.Usage.from_openai(None) == pricing.Usage()
    assert pricing.Usage.from_openai({"prompt_tokens": None}) == pricing.Usage()


def test_a_backend_flag_names_the_key_variable_by_position() -> None:
    flag = providers.parse_backend_flag("azure-openai=https://x.openai.azure.com", 2)
    assert (flag.provider, flag.base_url, flag.api_key_env) == (
        "azure-openai", "https://x.openai.azure.com", providers.backend_key_env(2),
    )  # fmt: skip
    with pytest.raises(ValueError, match="provider must be"):
        providers.parse_backend_flag("anthropic=https://x", 0)


def test_the_public_surface_is_explicit() -> None:
    assert all(hasattr(providers, name) for name in providers.__all__)
