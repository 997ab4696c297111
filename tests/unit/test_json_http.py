"""The stand-ins for remote services (`tiers.devenv.azure`, `tiers.devenv.databricks`) bound
what a client may send: a body past the limit is refused from its Content-Length alone, in the
service's own error shape, and a connection that sends nothing is closed after the read timeout.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tiers.devenv import azure, databricks, json_http
from tiers.devenv.databricks import server as databricks_server


@pytest.fixture(scope="module")
def workspace() -> Iterator[databricks.Server]:
    with databricks.running(tokens={"dapi-token"}) as server:
        yield server


@pytest.fixture(scope="module")
def arm() -> Iterator[azure.Server]:
    with azure.running(workspaces={}, clients={"app": "secret"}) as server:
        yield server


def headers_only(connection: http.client.HTTPConnection, path: str, length: str) -> tuple[int, Any]:
    """A POST whose body is never sent: the answer must come from the headers alone."""
    try:
        connection.putrequest("POST", path)
        connection.putheader("authorization", "Bearer dapi-token")
        connection.putheader("content-length", length)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_databricks_refuses_a_body_past_its_limit_in_its_error_shape(
    workspace: databricks.Server,
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", workspace.server_address[1], timeout=10)
    too_large = str(databricks_server.MAX_BODY_BYTES + 1)
    status, body = headers_only(connection, "/api/2.2/jobs/runs/submit", too_large)
    assert (status, body["error_code"]) == (413, "REQUEST_LIMIT_EXCEEDED")


def test_databricks_refuses_a_content_length_that_is_not_a_count(
    workspace: databricks.Server,
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", workspace.server_address[1], timeout=10)
    status, body = headers_only(connection, "/api/2.2/jobs/runs/submit", "-1")
    assert (status, body["error_code"]) == (400, "MALFORMED_REQUEST")
    assert "Content-Length" in body["message"]


def test_azure_refuses_a_token_request_past_its_limit_in_its_error_shape(
    arm: azure.Server,
) -> None:
    context = ssl.create_default_context(cafile=str(arm.ca_cert))
    connection = http.client.HTTPSConnection(
        "127.0.0.1", arm.server_address[1], timeout=10, context=context
    )
    too_large = str(json_http.Handler.max_body_bytes + 1)
    status, body = headers_only(connection, f"/{arm.tenant}/oauth2/v2.0/token", too_large)
    assert (status, body["error"]["code"]) == (413, "RequestEntityTooLarge")
    status, body = headers_only(
        http.client.HTTPSConnection("127.0.0.1", arm.server_address[1], timeout=10,
                                    context=context),
        f"/{arm.tenant}/oauth2/v2.0/token", "ten",
    )  # fmt: skip
    assert status == 400 and "Content-Length" in body["error"]["message"]


def test_a_connection_that_sends_nothing_is_closed_after_the_read_timeout(
    workspace: databricks.Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(databricks_server._Handler, "timeout", 0.5)
    began = time.monotonic()
    with socket.create_connection(("127.0.0.1", workspace.server_address[1]), timeout=10) as idle:
        assert idle.recv(1) == b""  # the server closed it
    assert time.monotonic() - began < 5
