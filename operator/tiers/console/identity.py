"""Who the console is to the apiserver for each request: the caller, by their own bearer token.

A request with `Authorization: Bearer <token>` gets a client that sends exactly that token to
the apiserver of the console's kubeconfig (or in-cluster account), with none of the console's
own credentials, so a caller sees and changes only what their own RBAC allows. A request
without one is refused (401), unless the console was started with `--allow-anonymous-read`
(the local demo), when it reads with the console's own account; writes always need a token
then, except where that flag's owner also allowed them (`allow_anonymous_write`, demo only).

Clients are kept per token digest (a bounded LRU); tokens are never logged or stored elsewhere.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib

import httpx2
import lightkube
from lightkube.config import kubeconfig, models

from tiers.console import errors

MAX_CLIENTS = 64
TIMEOUT_S = 20.0


@dataclasses.dataclass(frozen=True)
class Caller:
    """The client to use for a request, and whether it is the caller's own identity."""

    client: lightkube.AsyncClient
    own_token: bool


class Identities:
    def __init__(
        self,
        config: kubeconfig.KubeConfig | None = None,
        *,
        allow_anonymous_read: bool = False,
        allow_anonymous_write: bool = False,
    ) -> None:
        single = (config or kubeconfig.KubeConfig.from_env()).get()
        if single is None:
            raise errors.ConsoleError(500, "NoConfig", "the kubeconfig names no current context")
        self._config = single
        self.allow_anonymous_read = allow_anonymous_read
        self.allow_anonymous_write = allow_anonymous_write
        self.console = lightkube.AsyncClient(self._config, timeout=_timeout())
        self._clients: collections.OrderedDict[str, lightkube.AsyncClient] = (
            collections.OrderedDict()
        )

    def caller(self, authorization: str | None, *, write: bool = False) -> Caller:
        token = bearer_token(authorization)
        if token is not None:
            return Caller(self._for_token(token), own_token=True)
        allowed = self.allow_anonymous_write if write else self.allow_anonymous_read
        if not allowed:
            raise errors.ConsoleError(
                401,
                "Unauthorized",
                "sign in: send your Kubernetes bearer token (Authorization: Bearer <token>)",
            )
        return Caller(self.console, own_token=False)

    def _for_token(self, token: str) -> lightkube.AsyncClient:
        digest = hashlib.sha256(token.encode()).hexdigest()
        found = self._clients.get(digest)
        if found is not None:
            self._clients.move_to_end(digest)
            return found
        config = kubeconfig.KubeConfig.from_one(
            cluster=self._config.cluster,
            user=models.User(token=token),
            namespace=self._config.context.namespace,
            fname=self._config.fname,
        )
        client = self._clients[digest] = lightkube.AsyncClient(config, timeout=_timeout())
        while len(self._clients) > MAX_CLIENTS:
            self._clients.popitem(last=False)
        return client


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; a malformed header is refused."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or any(c.isspace() for c in token):
        raise errors.ConsoleError(
            401, "Unauthorized", "the Authorization header must be 'Bearer <token>'"
        )
    return token


def _timeout() -> httpx2.Timeout:
    return httpx2.Timeout(TIMEOUT_S, connect=5.0)
