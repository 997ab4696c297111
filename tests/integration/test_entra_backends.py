"""Azure OpenAI backends that authenticate with a Microsoft Entra ID token instead of a key
(`entraID`): the model client (stream and batch jobs) and the gateway's backend get the token
from Entra ID's token endpoint (the fake Azure of `tiers.devenv.azure`, over HTTPS) with the
application's client secret or the pod's workload identity, send it to mockllm (which accepts
that token only), keep it until near its expiry, and never log it."""

from __future__ import annotations

import asyncio
import logging
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest

from tiers.devenv import azure
from tiers.runtime import mockllm, modelcall, providers
from tiers.runtime.providers import backends, entra, failures, http1

APP = "22222222-3333-4444-8555-666666666666"
SECRET = "entra-client-secret-for-tests"
POD_APP = "22222222-3333-4444-8555-777777777777"
FEDERATED = "projected-service-account-token"
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.entra-access-token."
SECRET_ENV = "TIERS_ENTRA_TEST_CLIENT_SECRET"


@pytest.fixture(scope="module")
def entra_id() -> Iterator[azure.Server]:
    with azure.running(
        workspaces={}, clients={APP: SECRET, POD_APP: FEDERATED}, mint=lambda client: TOKEN
    ) as server:
        yield server


@pytest.fixture(scope="module")
def mock() -> Iterator[str]:
    # mockllm takes this bearer token and nothing else: no token, no answer.
    with mockllm.running(mockllm.MockConfig(api_key=TOKEN)) as url:
        yield url
    modelcall.close_all()


@pytest.fixture(autouse=True)
def azure_env(
    entra_id: azure.Server, monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    entra_id.cloud.requests.clear()
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text(FEDERATED)
    for name, value in {
        "AZURE_AUTHORITY_HOST": entra_id.url, "TIERS_AZURE_CA_BUNDLE": str(entra_id.ca_cert),
        "AZURE_FEDERATED_TOKEN_FILE": str(token_file), SECRET_ENV: SECRET,
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)


def azure_backend(
    entra_id: azure.Server, mock: str, client: str = APP, *, with_secret: bool = True
) -> providers.BackendConfig:
    return providers.BackendConfig(
        name="azure", provider="azure-openai", model="*", base_url=mock.removesuffix("/v1"),
        deployment="gpt-4o-mini", api_version="2024-10-21",
        api_key_env=SECRET_ENV if with_secret else None,
        entra=providers.EntraConfig(tenant_id=entra_id.tenant, client_id=client),
    )  # fmt: skip


def token_requests(entra_id: azure.Server) -> int:
    return sum(1 for method, _ in entra_id.cloud.requests if method == "POST")


def score(target: providers.BackendConfig, rows: int) -> list[modelcall.RowResult]:
    config = modelcall.ModelCallConfig(
        target=target, model="gpt-4o-mini", prompt="Summarise {text}", initial_backoff_ms=10,
        max_attempts=2,
    )  # fmt: skip

    async def run() -> list[modelcall.RowResult]:
        async with modelcall.ModelClient(config) as client:
            return await client.score(
                [{"text": f"row {i}"} for i in range(rows)], keys=[f"k{i}" for i in range(rows)]
            )

    return asyncio.run(run())


def test_the_model_client_calls_with_one_token_for_many_requests(
    entra_id: azure.Server, mock: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    found = score(azure_backend(entra_id, mock), rows=20)
    assert [(row.status, row.output) for row in found[:2]] == [
        ("ok", "Summarise row 0"), ("ok", "Summarise row 1")
    ]  # fmt: skip
    assert all(row.status == "ok" for row in found)
    assert token_requests(entra_id) == 1
    assert TOKEN not in caplog.text and SECRET not in caplog.text


def test_the_pods_workload_identity_gets_the_token_without_a_secret(
    entra_id: azure.Server, mock: str
) -> None:
    [found] = score(azure_backend(entra_id, mock, POD_APP, with_secret=False), rows=1)
    assert (found.status, found.output) == ("ok", "Summarise row 0")


def test_a_refused_application_is_an_error_row_naming_it_not_its_secret(
    entra_id: azure.Server, mock: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, "not-the-secret")
    found = score(azure_backend(entra_id, mock), rows=20)
    assert {row.status for row in found} == {"error"}
    assert f"Microsoft Entra ID refused application {APP}" in (found[0].error or "")
    assert "invalid_client" in (found[0].error or "")
    assert all("not-the-secret" not in (row.error or "") for row in found)
    # The refusal is the answer for a while: not one token request per row and retry.
    assert token_requests(entra_id) == 1


def test_the_gateways_backend_streams_with_the_token(entra_id: azure.Server, mock: str) -> None:
    backend = backends.Backend(azure_backend(entra_id, mock))
    body: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}

    async def run() -> tuple[int, bytes, int]:
        pool = http1.Pool()
        try:
            whole = await backend.request(pool, "chat", backend.payload(body))
            streamed_body = {**body, "stream": True}
            stream = await backend.open_stream(
                pool, "chat", backend.payload(streamed_body, stream=True)
            )
            assert not isinstance(whole, failures.Failure), whole
            assert not isinstance(stream, failures.Failure), stream
            async with stream:
                streamed = await stream.read()
            return whole.status, streamed, stream.status
        finally:
            await pool.close()

    status, streamed, stream_status = asyncio.run(run())
    assert (status, stream_status) == (200, 200)
    assert b"data: [DONE]" in streamed
    assert token_requests(entra_id) == 1
    # The backend's own headers (which every key-auth call sends as they are) hold no token.
    assert "authorization" not in backend.headers and "api-key" not in backend.headers


def test_a_token_is_replaced_only_near_its_expiry(entra_id: azure.Server) -> None:
    now = [1000.0]
    tokens = entra.Tokens(
        providers.EntraConfig(tenant_id=entra_id.tenant, client_id=APP), SECRET,
        clock=lambda: now[0],
    )  # fmt: skip

    async def twice() -> list[str]:
        return [await tokens.authorization(), await tokens.authorization()]

    assert asyncio.run(twice()) == [f"Bearer {TOKEN}"] * 2
    assert token_requests(entra_id) == 1
    now[0] += azure.TOKEN_LIFETIME_S - entra.REFRESH_BEFORE_S - 1
    asyncio.run(tokens.authorization())
    assert token_requests(entra_id) == 1, "still fresh"
    now[0] += 2
    asyncio.run(tokens.authorization())
    assert token_requests(entra_id) == 2, "near its expiry: a new one"
