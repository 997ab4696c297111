"""The model client scores rows against a real mockllm server: order, templates, retries, limits,
tokens and cost, the Azure URL form, and the blocking facade Spark workers call.

One keyed mock per module (faults reset before each test) plus a slow one for the concurrency
check. Async tests run the client under `asyncio.run`; the facade tests call it from threads.
The idempotency header is not checked here: mockllm does not expose the headers it receives.
"""

import asyncio
import concurrent.futures
import decimal
import os
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pydantic
import pytest

from tiers.runtime import mockllm, modelcall, pricing, providers
from tiers.runtime.mockllm import tokens
from tiers.runtime.modelcall import wire

KEY = "sk-modelcall-test"
KEY_ENV = "TIERS_MODELCALL_TEST_KEY"


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with mockllm.running(mockllm.MockConfig(api_key=KEY, seed=3)) as url:
        yield url
    modelcall.close_all()


@pytest.fixture(autouse=True)
def fresh_mock(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    if "base_url" in request.fixturenames:
        mockllm.control.reset(request.getfixturevalue("base_url"))


def settings(url: str, **changes: Any) -> modelcall.ModelCallConfig:
    fields: dict[str, Any] = {
        "target": modelcall.EndpointTarget(url=url, api_key_env=KEY_ENV),
        "model": "gpt-4o-mini",
        "prompt": "Summarise {text}",
        "initial_backoff_ms": 10,
    }
    return modelcall.ModelCallConfig(**(fields | changes))


def score(
    config: modelcall.ModelCallConfig,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str] | None = None,
) -> list[modelcall.RowResult]:
    async def run() -> list[modelcall.RowResult]:
        async with modelcall.ModelClient(config) as client:
            return await client.score(rows, keys=keys or [f"k{i}" for i in range(len(rows))])

    return asyncio.run(run())


def test_results_come_back_in_input_order_with_the_models_reply(base_url: str) -> None:
    rows = [{"text": f"record {i} says hello"} for i in range(50)]
    found = score(settings(base_url), rows, [f"orders/0/{i}" for i in range(50)])
    assert [r.key for r in found] == [f"orders/0/{i}" for i in range(50)]
    assert [r.output for r in found] == [f"Summarise record {i} says hello" for i in range(50)]
    assert {(r.status, r.error, r.attempts, r.finish_reason) for r in found} == {
        ("ok", None, 1, "stop")
    }


def test_prompt_template_fills_fields_from_the_row(base_url: str) -> None:
    config = settings(base_url, prompt="{title}: {body} (#{n:03d})")
    [found] = score(config, [{"title": "Invoice", "body": "is overdue", "n": 7, "unused": 1}])
    assert found.output == "Invoice: is overdue (#007)"


def test_a_missing_field_fails_only_its_row(base_url: str) -> None:
    rows: list[dict[str, Any]] = [{"text": "first"}, {"other": "x"}, {"text": None}, {"text": "z"}]
    found = score(settings(base_url), rows)
    assert [(r.status, r.error) for r in found] == [
        ("ok", None),
        ("error", "missing field 'text'"),
        ("error", "missing field 'text'"),
        ("ok", None),
    ]
    assert [r.output for r in found] == ["Summarise first", None, None, "Summarise z"]
    assert [r.attempts for r in found] == [1, 0, 0, 1]
    assert mockllm.control.stats(base_url)["total"] == 2, "rows that cannot be sent are not sent"


def test_a_bad_format_spec_is_a_row_error_too(base_url: str) -> None:
    [found] = score(settings(base_url, prompt="{n:d}"), [{"n": "not a number"}])
    assert found.status == "error"
    assert found.error is not None and found.error.startswith("prompt template: ValueError")


def test_a_transient_500_is_retried_until_it_succeeds(base_url: str) -> None:
    mockllm.control.fail_next(base_url, 2, status=500)
    [found] = score(settings(base_url), [{"text": "retry me"}])
    assert (found.status, found.attempts, found.output) == ("ok", 3, "Summarise retry me")


def test_a_persistent_500_becomes_an_error_row(base_url: str) -> None:
    mockllm.control.set_faults(base_url, fail_rate_500=1.0)
    [found] = score(settings(base_url, max_attempts=4), [{"text": "doomed"}])
    assert (found.status, found.attempts, found.output) == ("error", 4, None)
    assert found.error is not None and found.error.startswith("HTTP 500: The server had an error")
    assert (found.tokens_in, found.tokens_out, found.cost_usd) == (0, 0, "0.000000")


@pytest.mark.parametrize("status", [400, 404, 422])
def test_client_errors_are_not_retried(base_url: str, status: int) -> None:
    mockllm.control.fail_next(base_url, 1, status=status)
    [found] = score(settings(base_url), [{"text": "bad"}])
    assert (found.status, found.attempts) == ("error", 1)
    assert found.error is not None and found.error.startswith(f"HTTP {status}:")


def test_a_wrong_key_is_not_retried(base_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-wrong")
    [found] = score(settings(base_url), [{"text": "hello"}])
    assert (found.status, found.attempts) == ("error", 1)
    assert found.error == "HTTP 401: Incorrect API key provided."


def test_a_429_is_retried_after_the_wait_the_server_asks_for(base_url: str) -> None:
    mockllm.control.set_faults(base_url, retry_after_s=0.3)
    mockllm.control.fail_next(base_url, 1, status=429)
    [found] = score(settings(base_url), [{"text": "throttled"}])
    assert (found.status, found.attempts) == ("ok", 2)
    assert found.latency_ms >= 300


def test_a_retry_after_beyond_max_backoff_ends_the_retries(base_url: str) -> None:
    mockllm.control.set_faults(base_url, retry_after_s=30)
    mockllm.control.fail_next(base_url, 1, status=429)
    [found] = score(settings(base_url, max_backoff_ms=1000), [{"text": "throttled"}])
    assert (found.status, found.attempts) == ("error", 1)
    assert found.error is not None and "retry after 30 s" in found.error


def test_a_timed_out_attempt_is_retried(base_url: str) -> None:
    mockllm.control.fail_next(base_url, 1, status="timeout")
    [found] = score(settings(base_url, timeout_ms=300), [{"text": "slow"}])
    assert (found.status, found.attempts) == ("ok", 2)
    assert found.latency_ms >= 300


def test_an_unreachable_target_becomes_error_rows() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    found = score(settings(f"http://127.0.0.1:{port}/v1", max_attempts=2), [{"text": "a"}] * 3)
    assert {(r.status, r.attempts) for r in found} == {("error", 2)}
    assert all(r.error is not None and r.error.startswith("connection failed") for r in found)


def test_in_flight_requests_are_bounded_by_max_in_flight() -> None:
    slow = mockllm.MockConfig(latency=mockllm.Latency(fixed_ms=100))
    with mockllm.running(slow) as url:
        config = settings(url, max_in_flight=4)
        started = time.perf_counter()
        found = score(config, [{"text": f"row {i}"} for i in range(20)])
        elapsed = time.perf_counter() - started
    assert {r.status for r in found} == {"ok"}
    # 20 rows, 4 at a time, 100 ms each: five waves. One at a time would take 2 s.
    assert 0.45 <= elapsed < 1.5


def test_tokens_and_cost_come_from_the_reported_usage(base_url: str) -> None:
    [found] = score(settings(base_url), [{"text": "three more words"}])
    prompt = "Summarise three more words"
    assert (found.tokens_in, found.tokens_out) == (tokens.estimate_chat([prompt]), 4)
    expected = pricing.cost(
        pricing.Usage(prompt_tokens=found.tokens_in, completion_tokens=4),
        pricing.price_for("gpt-4o-mini"),
    )
    assert found.cost_usd == pricing.format_usd(expected)
    assert decimal.Decimal(found.cost_usd) > 0


def test_price_overrides_change_the_cost(base_url: str) -> None:
    price = providers.PriceConfig(input_per_m_tok_usd=1_000_000, output_per_m_tok_usd=0)
    [found] = score(settings(base_url, prices={"gpt-4o-mini": price}), [{"text": "hi"}])
    assert decimal.Decimal(found.cost_usd) == found.tokens_in


def test_max_tokens_truncates_the_reply(base_url: str) -> None:
    [found] = score(settings(base_url, max_tokens=2), [{"text": "a long reply here"}])
    assert (found.output, found.tokens_out, found.finish_reason) == ("Summarise a", 2, "length")


def test_completions_route_returns_the_text(base_url: str) -> None:
    [found] = score(settings(base_url, route="completions"), [{"text": "plain"}])
    assert (found.status, found.output) == ("ok", "Summarise plain")


def test_embeddings_route_returns_the_vector_as_json(base_url: str) -> None:
    config = settings(base_url, route="embeddings", model="text-embedding-3-small")
    [found] = score(config, [{"text": "embed me"}])
    assert found.status == "ok" and found.output is not None
    vector = pydantic.TypeAdapter(list[float]).validate_json(found.output)
    assert len(vector) == 256
    assert found.tokens_in > 0 and found.tokens_out == 0


def test_completions_send_rows_per_request_prompts_in_one_request(base_url: str) -> None:
    rows = [{"text": f"row {i}"} for i in range(50)]
    found = score(settings(base_url, route="completions", rows_per_request=16), rows)
    assert [r.output for r in found] == [f"Summarise row {i}" for i in range(50)]
    assert {(r.status, r.finish_reason) for r in found} == {("ok", "stop")}
    assert mockllm.control.stats(base_url)["total"] == 4, "50 rows in requests of 16, 16, 16, 2"


def test_rows_of_one_request_share_its_usage_exactly(base_url: str) -> None:
    rows = [{"text": "one two three"}, {"text": "four"}, {"text": "five six"}]
    alone = [score(settings(base_url, route="completions"), [row])[0] for row in rows]
    together = score(settings(base_url, route="completions", rows_per_request=3), rows)
    assert sum(r.tokens_in for r in together) == sum(r.tokens_in for r in alone)
    assert sum(r.tokens_out for r in together) == sum(r.tokens_out for r in alone)
    shares = [r.tokens_out for r in together]
    assert max(shares) - min(shares) <= 1, "an even split, the first rows taking the remainder"


def test_embeddings_in_one_request_come_back_per_row(base_url: str) -> None:
    config = settings(
        base_url, route="embeddings", model="text-embedding-3-small", rows_per_request=8
    )
    found = score(config, [{"text": f"embed {i}"} for i in range(8)])
    vectors = [pydantic.TypeAdapter(list[float]).validate_json(r.output or "") for r in found]
    assert len(vectors) == 8 and all(len(v) == 256 for v in vectors)
    assert len({tuple(v) for v in vectors}) == 8, "each row gets its own input's vector"
    assert mockllm.control.stats(base_url)["total"] == 1


def test_a_row_that_cannot_render_leaves_its_request_smaller(base_url: str) -> None:
    rows = [{"text": "a"}, {"other": "b"}, {"text": "c"}]
    found = score(settings(base_url, route="completions", rows_per_request=8), rows)
    assert [(r.status, r.output) for r in found] == [
        ("ok", "Summarise a"),
        ("error", None),
        ("ok", "Summarise c"),
    ]
    assert found[1].error == "missing field 'text'"


def test_a_failed_multi_row_request_fails_each_of_its_rows(base_url: str) -> None:
    mockllm.control.set_faults(base_url, fail_rate_500=1.0)
    found = score(
        settings(base_url, route="completions", rows_per_request=4, max_attempts=2),
        [{"text": str(i)} for i in range(6)],
    )
    assert [(r.status, r.attempts) for r in found] == [("error", 2)] * 6
    assert mockllm.control.stats(base_url)["total"] == 4, "two requests, two attempts each"


def test_a_reply_missing_a_row_fails_only_that_row() -> None:
    raw = b'{"choices": [{"index": 1, "text": "b", "finish_reason": "stop"}], "usage": {}}'
    replies = wire.parse_batch_reply("completions", raw, 2)
    assert replies[0] == "the reply has no choice for row 0 of 2"
    assert isinstance(replies[1], wire.Reply) and replies[1].output == "b"


def test_an_azure_backend_is_called_on_its_deployment_path_with_api_key(base_url: str) -> None:
    azure = providers.BackendConfig(
        name="azure",
        provider="azure-openai",
        model="*",
        # Without the deployment path this root would answer 404: no /chat/completions here.
        base_url=base_url.removesuffix("/v1"),
        deployment="gpt-4o-mini",
        api_version="2024-10-21",
        api_key_env=KEY_ENV,
    )
    [found] = score(settings(base_url, target=azure), [{"text": "from azure"}])
    assert (found.status, found.output) == ("ok", "Summarise from azure")


def test_the_blocking_facade_reuses_one_client_per_config(base_url: str) -> None:
    config = settings(base_url)
    client = modelcall.client_for(config)
    first = modelcall.score_batch(config, [{"text": "one"}], ["a"])
    second = modelcall.score_batch(config.model_dump_json(), [{"text": "two"}], ["b"])
    assert modelcall.client_for(config.model_dump_json()) is client
    assert modelcall.client_for(settings(base_url, max_tokens=5)) is not client
    assert [r.output for r in first + second] == ["Summarise one", "Summarise two"]


def test_the_blocking_facade_serves_two_threads_at_once(base_url: str) -> None:
    config_json = settings(base_url).model_dump_json()

    def batch(thread: int) -> list[modelcall.RowResult]:
        rows = [{"text": f"thread {thread} row {i}"} for i in range(100)]
        return modelcall.score_batch(config_json, rows, [f"{thread}/{i}" for i in range(100)])

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        left, right = pool.map(batch, [1, 2])
    for thread, found in ((1, left), (2, right)):
        assert [r.key for r in found] == [f"{thread}/{i}" for i in range(100)]
        assert [r.output for r in found] == [
            f"Summarise thread {thread} row {i}" for i in range(100)
        ]


def test_submitted_batches_run_while_the_caller_goes_on(base_url: str) -> None:
    config = settings(base_url)
    pending = [modelcall.submit_batch(config, [{"text": f"batch {i}"}], [str(i)]) for i in range(3)]
    assert [f.result(timeout=10)[0].output for f in pending] == [
        f"Summarise batch {i}" for i in range(3)
    ]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork, as pyspark's daemon uses")
def test_a_forked_worker_gets_its_own_loop(base_url: str) -> None:
    config = settings(base_url)
    modelcall.score_batch(config, [{"text": "parent"}], ["p"])
    pid = os.fork()
    if pid == 0:  # the child must leave through os._exit, whatever happens
        try:
            [found] = modelcall.score_batch(config, [{"text": "child"}], ["c"])
            os._exit(0 if found.output == "Summarise child" else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_results_turn_into_columns(base_url: str) -> None:
    found = modelcall.score_batch(settings(base_url), [{"text": "x"}, {}], ["a", "b"])
    columns = modelcall.as_columns(found)
    assert tuple(columns) == modelcall.COLUMNS
    assert columns["key"] == ["a", "b"]
    assert columns["status"] == ["ok", "error"]
    assert columns["error"] == [None, "missing field 'text'"]
    assert modelcall.as_columns([]) == {name: [] for name in modelcall.COLUMNS}
    ddl_names = tuple(part.split()[0] for part in modelcall.SPARK_DDL.split(","))
    assert ddl_names == modelcall.COLUMNS


def test_a_config_survives_json_with_either_target() -> None:
    endpoint = settings("http://chat-gateway.ns.svc:8080/v1")
    azure = settings(
        "unused",
        target=providers.BackendConfig(
            name="azure", provider="azure-openai", model="*", base_url="https://x.openai.azure.com",
            deployment="gpt-4o-mini", api_version="2024-10-21",
        ),
    )  # fmt: skip
    for config in (endpoint, azure):
        again = modelcall.ModelCallConfig.model_validate_json(config.model_dump_json())
        assert again == config
        assert type(again.target) is type(config.target)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"prompt": "Summarise {}"}, "placeholder {} is positional"),
        ({"prompt": "Summarise {text"}, "prompt"),
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"route": "images"}, "route"),
        ({"rows_per_request": 8}, "rows_per_request is 8 but route is chat"),
        ({"route": "completions", "rows_per_request": 0}, "rows_per_request"),
        (
            {"target": providers.BackendConfig(name="a", provider="azure-openai", model="*")},
            "an azure-openai target needs target.deployment and target.api_version",
        ),
        (
            {"target": providers.BackendConfig(name="a", provider="openai", model="gpt-4o")},
            "target.model is 'gpt-4o' but model is 'gpt-4o-mini'",
        ),
    ],
)
def test_a_bad_config_is_rejected_naming_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message.replace("{", r"\{")):
        settings("http://localhost/v1", **changes)


def test_the_public_surface_is_explicit() -> None:
    assert all(hasattr(modelcall, name) for name in modelcall.__all__)


def test_each_request_sends_its_first_rows_headers_and_tells_when_each_row_was_answered(
    base_url: str,
) -> None:
    rows = [{"text": "a"}, {"other": "no text"}, {"text": "c"}, {"text": "d"}]
    headers = [{"traceparent": f"00-{'1' * 32}-{i:016x}-01"} for i in range(1, 5)]
    answered: list[tuple[int, int, int]] = []

    async def run() -> list[modelcall.RowResult]:
        config = settings(base_url, route="completions", rows_per_request=2)
        async with modelcall.ModelClient(config) as client:
            return await client.score(
                rows, keys=["a", "b", "c", "d"], headers=headers,
                finished=lambda row, started, ended: answered.append((row, started, ended)),
            )  # fmt: skip

    found = asyncio.run(run())
    # Rows a and c (b cannot render) make one request, d another: each sends its first's headers.
    seen = mockllm.control.stats(base_url)["traceparents"]
    assert sorted(seen) == sorted([headers[0]["traceparent"], headers[3]["traceparent"]])
    assert sorted(row for row, _, _ in answered) == [0, 2, 3], "every row sent, none other"
    for row, started, ended in answered:
        assert ended - started == found[row].latency_ms * 1_000_000
