"""Azure on this machine, for tests and `make demo`: a real HTTPS server (a CA of its own) that
speaks the two things the operator asks Azure: Microsoft Entra ID's token endpoint (OAuth 2.0
client credentials, with a client secret or, as workload identity does, a federated client
assertion) and Azure Resource Manager's GET of a resource by ID, which for a Databricks workspace
answers its `properties.workspaceUrl`. azure-identity and azure-mgmt-resource talk to it over
HTTPS: the SDKs accept no plain-HTTP authority nor bearer tokens over HTTP.

    with azure.running(workspaces={RESOURCE_ID: "adb-1.2.azuredatabricks.net"},
                       clients={"app-id": "secret"}) as arm:
        ClientSecretCredential(arm.tenant, "app-id", "secret", authority=arm.url,
                               connection_verify=str(arm.ca_cert))

A client may read only the resources listed for it in `grants` (all when it has no entry); others
answer 403 `AuthorizationFailed`, as ARM does for a principal without a role on the resource.
Bodies are bounded and every connection has a read timeout.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import pathlib
import secrets
import ssl
import tempfile
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

from tiers.devenv import json_http, pki

TENANT = "72f988bf-0000-4000-8000-00000000a1b2"
TOKEN_LIFETIME_S = 3600
ARM_SCOPE = "https://management.azure.com/.default"


@dataclasses.dataclass
class Cloud:
    """What the server knows: principals, resources, and the tokens it gave out."""

    workspaces: dict[str, str]
    """Databricks workspace resource ID (lower case) → its workspace URL's host."""
    clients: dict[str, str]
    """client id → its secret, or the federated assertion it presents (workload identity)."""
    grants: dict[str, set[str]] = dataclasses.field(default_factory=dict)
    token_lifetime_s: int = TOKEN_LIFETIME_S
    mint: Callable[[str], str] = lambda client: secrets.token_urlsafe(32)
    """The access token for a client (a test that checks a backend sees it fixes it)."""
    tokens: dict[str, str] = dataclasses.field(default_factory=dict)
    """access token → client id."""
    requests: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, cloud: Cloud, credentials: pki.Credentials) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.cloud = cloud
        self.ca_cert = credentials.ca_cert
        self.tenant = TENANT
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._tls.load_cert_chain(credentials.serving_cert, credentials.serving_key)

    def get_request(self) -> tuple[Any, Any]:
        # The TLS handshake happens on the connection's own thread, at its first read (bounded
        # by the handler's timeout), never in the accepting loop.
        connection, address = self.socket.accept()
        return self._tls.wrap_socket(
            connection, server_side=True, do_handshake_on_connect=False
        ), address

    @property
    def url(self) -> str:
        """Both the authority host and the Resource Manager endpoint."""
        return f"https://127.0.0.1:{self.server_address[1]}"


class _Handler(json_http.Handler):
    server: Server

    def do_GET(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        parts = parsed.path.strip("/").split("/")
        with self.server.cloud.lock:
            self.server.cloud.requests.append(("GET", parsed.path))
        if parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            self.answer(200, _openid_configuration(self.server.url, parts[0]))
        elif parts and parts[0] == "subscriptions":
            self._resource(parsed.path)
        else:
            self._error(404, "NotFound", f"no route for GET {parsed.path}")

    def do_POST(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        with self.server.cloud.lock:
            self.server.cloud.requests.append(("POST", parsed.path))
        try:
            form = dict(urllib.parse.parse_qsl(self.read_body().decode(errors="replace")))
        except json_http.BodyRefused as refused:
            code = "RequestEntityTooLarge" if refused.status == 413 else "InvalidRequest"
            self._error(refused.status, code, refused.message)
            return
        if parsed.path.strip("/").split("/")[1:] != ["oauth2", "v2.0", "token"]:
            self._error(404, "NotFound", f"no route for POST {parsed.path}")
            return
        self._token(form)

    def _token(self, form: dict[str, str]) -> None:
        """Entra ID's client-credentials grant: a client secret, or a client assertion."""
        cloud = self.server.cloud
        client = form.get("client_id", "")
        presented = form.get("client_secret") or form.get("client_assertion") or ""
        if form.get("grant_type") != "client_credentials":
            self._oauth_error(400, "unsupported_grant_type", "AADSTS70003")
        elif client not in cloud.clients or not secrets.compare_digest(
            cloud.clients[client], presented
        ):
            self._oauth_error(401, "invalid_client", "AADSTS7000215: Invalid client secret.")
        else:
            token = cloud.mint(client)
            with cloud.lock:
                cloud.tokens[token] = client
            self.answer(200, {
                "token_type": "Bearer", "expires_in": cloud.token_lifetime_s,
                "ext_expires_in": cloud.token_lifetime_s, "access_token": token,
            })  # fmt: skip

    def _resource(self, path: str) -> None:
        """ARM's GET of a resource by ID: 401 without a good token, 403 without a grant."""
        cloud = self.server.cloud
        header = self.headers.get("Authorization") or ""
        with cloud.lock:
            client = cloud.tokens.get(header.removeprefix("Bearer "))
        if client is None:
            self._error(401, "InvalidAuthenticationToken", "The access token is invalid.")
            return
        key = path.rstrip("/").lower()
        allowed = cloud.grants.get(client)
        if allowed is not None and key not in {grant.lower() for grant in allowed}:
            self._error(
                403, "AuthorizationFailed",
                f"The client '{client}' does not have authorization to perform action "
                f"'Microsoft.Databricks/workspaces/read' over scope '{path}'.",
            )  # fmt: skip
            return
        host = {rid.lower(): url for rid, url in cloud.workspaces.items()}.get(key)
        if host is None:
            self._error(404, "ResourceNotFound", f"The Resource '{path}' was not found.")
            return
        name = path.rstrip("/").rsplit("/", 1)[-1]
        self.answer(200, {
            "id": path, "name": name, "type": "Microsoft.Databricks/workspaces",
            "location": "westeurope",
            "properties": {"workspaceUrl": host, "workspaceId": "7474650000000000",
                           "provisioningState": "Succeeded"},
        })  # fmt: skip

    def _oauth_error(self, status: int, code: str, description: str) -> None:
        self.answer(status, {"error": code, "error_description": description})

    def _error(self, status: int, code: str, message: str) -> None:
        self.answer(status, {"error": {"code": code, "message": message}})


def _openid_configuration(base: str, tenant: str) -> dict[str, Any]:
    return {
        "issuer": f"{base}/{tenant}/v2.0",
        "token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token",
        "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
        "response_types_supported": ["code", "id_token", "token"],
        "tenant_region_scope": "EU",
    }


@contextlib.contextmanager
def running(
    *,
    workspaces: dict[str, str],
    clients: dict[str, str],
    grants: dict[str, set[str]] | None = None,
    **options: Any,
) -> Iterator[Server]:
    """Fake Azure on a free loopback port, with a CA of its own (`server.ca_cert`); `options`
    are `Cloud`'s (token_lifetime_s, mint)."""
    with tempfile.TemporaryDirectory(prefix="tiers-azure-") as folder:
        credentials = pki.create(pathlib.Path(folder))
        cloud = Cloud(
            workspaces=dict(workspaces), clients=dict(clients), grants=grants or {}, **options
        )
        server = Server(cloud, credentials)
        with json_http.serving(server, "azure"):
            yield server
