"""The gateway serving HTTPS (`spec.tls`): a real gateway process with a certificate the operator's
self-signed generator made, called by clients that verify it (the openai SDK, the model client of
the stream and batch jobs). TLS 1.1, plain HTTP and a certificate from another CA are refused; a
renewed certificate (the kubelet swapping the mounted Secret's files) is served without a restart.
"""

from __future__ import annotations

import asyncio
import datetime
import http.client
import os
import pathlib
import socket
import ssl
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator

import openai
import pytest
from conftest import Processes, wait_for

from tiers.operator.manifests import self_signed, serving_tls
from tiers.runtime import modelcall

NAMES = ["localhost"]
HELLO = [{"role": "user", "content": "Say hello over TLS"}]


def write_pair(folder: pathlib.Path) -> pathlib.Path:
    """A new self-signed CA and serving certificate for localhost into `folder`; the CA's path.
    The files are swapped in by rename, as the kubelet swaps a Secret volume's."""
    folder.mkdir(parents=True, exist_ok=True)
    data = self_signed.issue(NAMES, now=datetime.datetime.now(datetime.UTC))
    for key, value in data.items():
        (folder / f"{key}.new").write_text(value)
        os.replace(folder / f"{key}.new", folder / key)
    return folder / serving_tls.CA_KEY


def verifying(ca: pathlib.Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca)


def healthz(url: str, context: ssl.SSLContext) -> int:
    with urllib.request.urlopen(url + "/healthz", timeout=5, context=context) as response:
        return int(response.status)


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, pathlib.Path, pathlib.Path]]:
    """(the gateway's https URL, the folder of its mounted pair, the CA that signed it): one
    gateway for the module's tests (the renewal test, last, swaps its pair)."""
    tmp_path = tmp_path_factory.mktemp("gateway-tls")
    services = Processes(tmp_path / "logs", [])
    try:
        yield _serve(services, tmp_path)
    finally:
        services.stop_all()


def _serve(services: Processes, tmp_path: pathlib.Path) -> tuple[str, pathlib.Path, pathlib.Path]:
    mock = services.start("mockllm", "tiers.runtime.mockllm")
    mounted = tmp_path / "tls"
    ca = write_pair(mounted)
    url = services.start(
        "gateway",
        "tiers.runtime.gateway",
        "--backend",
        f"openai-compatible={mock}/v1",
        "--no-cache",
        "--tls-cert-file",
        str(mounted / serving_tls.CERT_KEY),
        "--tls-key-file",
        str(mounted / serving_tls.KEY_KEY),
        tls_ca=ca,
    )
    return url, mounted, ca


def test_a_client_that_verifies_the_gateway_gets_its_answer_over_tls(
    served: tuple[str, pathlib.Path, pathlib.Path],
) -> None:
    url, _, ca = served
    http = openai.DefaultHttpxClient(verify=verifying(ca))
    sdk = openai.OpenAI(base_url=url + "/v1", api_key="unused", http_client=http, max_retries=0)
    answer = sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)  # type: ignore[arg-type]
    assert answer.choices[0].message.content
    port = int(url.rsplit(":", 1)[1])
    with (
        socket.create_connection(("localhost", port), timeout=5) as raw,
        verifying(ca).wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_the_model_client_verifies_the_gateway_against_the_published_ca(
    served: tuple[str, pathlib.Path, pathlib.Path], tmp_path: pathlib.Path
) -> None:
    url, _, ca = served
    other_ca = write_pair(tmp_path / "other")

    def score(ca_file: pathlib.Path) -> modelcall.RowResult:
        target = modelcall.EndpointTarget(url=url + "/v1", ca_file=ca_file)
        config = modelcall.ModelCallConfig(
            target=target, model="gpt-4o-mini", prompt="Echo {text}", max_attempts=1
        )

        async def run() -> list[modelcall.RowResult]:
            async with modelcall.ModelClient(config) as client:
                return await client.score([{"text": "hi"}], keys=["k0"])

        (result,) = asyncio.run(run())
        return result

    assert score(ca).status == "ok"
    refused = score(other_ca)
    assert refused.status != "ok"
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.error)


def test_a_certificate_from_another_ca_tls_1_1_and_plain_http_are_refused(
    served: tuple[str, pathlib.Path, pathlib.Path], tmp_path: pathlib.Path
) -> None:
    url, _, _ = served
    other_ca = write_pair(tmp_path / "other")
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        healthz(url, verifying(other_ca))
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")  # this client may offer TLS 1.1; the gateway refuses it
    with pytest.raises((urllib.error.URLError, ConnectionError), match=r"(?i)version|protocol"):
        healthz(url, old)
    plain = url.replace("https://", "http://") + "/healthz"
    with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
        urllib.request.urlopen(plain, timeout=5)


def test_a_renewed_certificate_is_served_without_a_restart(
    served: tuple[str, pathlib.Path, pathlib.Path],
) -> None:
    url, mounted, _ = served
    renewed_ca = write_pair(mounted)

    def serves_the_renewed_one() -> bool:
        try:
            return healthz(url, verifying(renewed_ca)) == 200
        except urllib.error.URLError:
            return False

    wait_for(serves_the_renewed_one, timeout_s=30, what="the renewed certificate")
