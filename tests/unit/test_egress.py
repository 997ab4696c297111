"""Where the operator may connect on a spec's say (`egress`): the name is checked before a call,
and each connection's address as the socket connects, so a name that answers a public address
to the check and loopback to the connection (DNS rebinding) reaches nothing."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterator

import pytest
from conftest import Rebinding

from tiers.api import batch
from tiers.devenv import databricks
from tiers.operator import batch_databricks, egress, kube
from tiers.operator.manifests import labels

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
TOKEN = "dapi-egress"


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(0.2)
        yield server


def accepted(server: socket.socket) -> bool:
    try:
        server.accept()[0].close()
    except TimeoutError:
        return False
    return True


def test_a_connection_to_a_refused_address_is_stopped_before_the_socket_connects(
    listener: socket.socket,
) -> None:
    address = listener.getsockname()
    with (
        egress.held("spec.x.url https://a.test", ()) as guard,
        pytest.raises(egress.NotAllowed) as refused,
        socket.socket() as sock,
    ):
        sock.connect(address)
    assert str(refused.value) == guard.refused
    assert str(refused.value).startswith("spec.x.url https://a.test: connecting to 127.0.0.1 ")
    assert "is not a public address (loopback)" in str(refused.value)
    assert not accepted(listener)
    with egress.held("spec.x.url", LOOPBACK), socket.create_connection(address):
        pass  # an allowed network
    with socket.create_connection(address):
        pass  # outside `held`, nothing is checked
    assert accepted(listener)


def test_held_covers_the_tasks_and_threads_it_starts_and_no_other(
    listener: socket.socket,
) -> None:
    address = listener.getsockname()

    async def connect() -> None:
        _, writer = await asyncio.open_connection(*address)
        writer.close()

    async def main() -> list[BaseException | None]:
        outside = asyncio.create_task(connect())  # started before: not held
        with egress.held("w", ()):
            inside = asyncio.create_task(connect())
            in_thread = asyncio.to_thread(socket.create_connection, address)
            results = await asyncio.gather(outside, inside, in_thread, return_exceptions=True)
        return [r if isinstance(r, BaseException) else None for r in results]

    outside, inside, in_thread = asyncio.run(main())
    assert outside is None
    assert isinstance(inside, egress.NotAllowed) and isinstance(in_thread, egress.NotAllowed)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local, where the cloud metadata service is"),
        ("::ffff:169.254.169.254", "link-local"),
        ("10.96.0.1", "private"),
        ("fd00::1", "private"),
        ("100.64.0.1", "shared, carrier-grade NAT"),
        ("0.0.0.0", "unspecified"),
        ("fe80::1%eth0", "link-local"),
    ],
)
def test_a_refusal_names_the_address_class(address: str, kind: str) -> None:
    why = egress.refused_address(address, ())
    assert why is not None and f"is not a public address ({kind}" in why
    assert egress.refused_address("93.184.215.14", ()) is None


@pytest.fixture
def server() -> Iterator[databricks.Server]:
    with databricks.running(tokens={TOKEN}) as running:
        yield running


def test_a_databricks_host_that_rebinds_to_loopback_is_never_called(
    rebinding: Rebinding, server: databricks.Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def secret_value(name: str, key: str, namespace: str) -> str:
        return TOKEN

    monkeypatch.setattr(kube, "secret_value", secret_value)
    host = f"http://{rebinding.name}:{server.url.rsplit(':', 1)[1]}"
    spec = batch.BatchJobSpec.model_validate(
        {
            "engine": "databricks",
            "input": {"uri": "dbfs:/in"},
            "output": {"uri": "dbfs:/out"},
            "model": {
                "backend": {"name": "openai", "provider": "openai", "model": "gpt-4o-mini",
                            "apiKeySecretRef": {"name": "openai", "key": "api-key"}},
                "prompt": "{text}",
            },
            "databricks": {"host": "https://x.cloud.databricks.com", "newCluster": {},
                           "tokenSecretRef": {"name": "databricks", "key": "token"}},
        }
    )  # fmt: skip
    assert spec.databricks is not None
    # The CRD takes http:// for loopback only; the fake workspace speaks plain HTTP.
    spec = spec.model_copy(update={"databricks": spec.databricks.model_copy(update={"host": host})})
    body = {"metadata": {"name": "triage", "namespace": "ns", "uid": "u", "generation": 1}}
    owner = labels.Owner("tiers.dev/v1alpha1", "BatchJob", "triage", "ns", "u")
    outcome = asyncio.run(batch_databricks.reconcile(owner, spec, body, {}, where=None))
    assert outcome.waiting is not None
    assert (outcome.waiting.status, outcome.waiting.reason) == ("False", "HostNotAllowed")
    message = outcome.waiting.message
    assert f"spec.databricks.host {host}: connecting to 127.0.0.1" in message
    assert "(loopback)" in message and "notifications.allowedNetworks" in message
    # The check before the calls saw the public answer; every connection after it was refused.
    assert rebinding.lookups >= 2 and server.workspace.requests == []
