"""The operator's calls to a Databricks workspace, through databricks-sdk: I/O only.

The SDK blocks, so every call runs in a thread. A client is kept per host and token (a rotated
token makes a new one); its retries of 429/503 and refused connections are bounded by
`RETRY_SECONDS`, so a workspace that does not answer costs one reconcile that long, never a
stuck operator. Failures come back as `Refused` (the token: 401/403), `HostNotAllowed` (a
connection `egress` refused) or `Unavailable` (anything else), whose messages never hold the token.

A workspace whose host a spec names is called under `egress.held`: every connection the SDK
makes for it goes to a public address or an allowed network, whatever the name resolves to then.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import requests

from tiers.operator import bounded, egress

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient

RETRY_SECONDS = int(os.environ.get("TIERS_DATABRICKS_RETRY_SECONDS", "30"))
HTTP_TIMEOUT_SECONDS = 30
LOOKUP_LIMIT = 500
"""One-time runs read at most when looking one up by name (newest first, 25 a page)."""

T = TypeVar("T")


class Failure(Exception):
    """A call that did not succeed; the message is safe for a condition."""


class Refused(Failure):
    """The workspace refused the token (expired, revoked, or without the permission)."""


class Unavailable(Failure):
    """The workspace did not answer, or answered with an error other than the token's."""


class HostNotAllowed(Failure):
    """A connection went to an address the operator may not call (`egress`); nothing was sent."""


class NotFound(Failure):
    """The run (or scope, or file) does not exist."""


KEPT = 256
"""Clients kept at most (hosts and tokens come from specs); past that the oldest go first."""
_clients: dict[tuple[str, str, bool], WorkspaceClient] = {}
"""Kept per host, token digest and whether guarded (a pooled connection made unchecked is never
reused where connections are checked), at most `KEPT`; touched in worker threads only (a dict's get
and set are atomic, and two clients made at once for one key are both good)."""


class Workspace:
    """One workspace, as one token sees it. `guard`: (what names the host in a refusal, the
    networks allowed besides public ones) where a spec named the host, for `egress.held`; None
    where it did not (Azure's answer)."""

    def __init__(
        self, host: str, token: str, *, guard: tuple[str, tuple[egress.Network, ...]] | None
    ) -> None:
        self.host = host.rstrip("/")
        self._key = (self.host, hashlib.sha256(token.encode()).hexdigest(), guard is not None)
        self._token = token
        self._guard = guard

    async def _call(self, what: str, call: Callable[[WorkspaceClient], T]) -> T:
        return await asyncio.to_thread(self._blocking, what, call)

    def _blocking(self, what: str, call: Callable[[WorkspaceClient], T]) -> T:
        if self._guard is None:
            return self._unguarded(what, call)
        with egress.held(*self._guard):
            return self._unguarded(what, call)

    def _unguarded(self, what: str, call: Callable[[WorkspaceClient], T]) -> T:
        # databricks-sdk is imported here, in a worker thread, on the first call: it takes
        # seconds to import, which neither the operator's start nor its event loop should wait.
        from databricks.sdk import WorkspaceClient, errors
        from databricks.sdk.config import Config

        try:
            client = _clients.get(self._key)
            if client is None:
                config = Config(
                    host=self.host, token=self._token, auth_type="pat",
                    retry_timeout_seconds=RETRY_SECONDS, http_timeout_seconds=HTTP_TIMEOUT_SECONDS,
                )  # fmt: skip
                client = WorkspaceClient(config=config)
                bounded.keep(_clients, self._key, client, limit=KEPT)
            return call(client)
        except egress.NotAllowed as error:
            raise HostNotAllowed(f"{what}: {error}") from None
        except (errors.Unauthenticated, errors.PermissionDenied) as error:
            bounded.drop(_clients, self._key)
            raise Refused(f"{what}: {self.host} refused the token ({_first_line(error)})") from None
        except (errors.NotFound, errors.ResourceDoesNotExist) as error:
            raise NotFound(f"{what}: {_first_line(error)}") from None
        except errors.base.DatabricksError as error:
            if error.error_code == "INVALID_PARAMETER_VALUE" and "does not exist" in str(error):
                raise NotFound(f"{what}: {_first_line(error)}") from None
            raise Unavailable(f"{what}: {self.host} answered {_first_line(error)}") from None
        except (TimeoutError, requests.RequestException, OSError, ValueError) as error:
            bounded.drop(_clients, self._key)
            raise Unavailable(
                f"{what}: {self.host} did not answer within {RETRY_SECONDS} s "
                f"({type(error).__name__})"
            ) from None

    async def submit(self, body: dict[str, Any]) -> int:
        """A one-time run (`jobs/runs/submit`); the same idempotency token gives the same run."""

        def call(client: WorkspaceClient) -> int:
            from databricks.sdk.service import jobs

            waiter = client.jobs.submit(
                run_name=body["run_name"],
                tasks=[jobs.SubmitTask.from_dict(task) for task in body["tasks"]],
                idempotency_token=body["idempotency_token"],
                timeout_seconds=body.get("timeout_seconds"),
            )
            return int(waiter.run_id)

        return await self._call("submitting the run", call)

    async def get_run(self, run_id: int) -> dict[str, Any]:
        return await self._call(
            f"reading run {run_id}", lambda client: client.jobs.get_run(run_id).as_dict()
        )

    async def find_run(self, run_name: str, *, submitted_from_ms: int) -> int | None:
        """The newest one-time run of that name submitted since then (`jobs/runs/list`): how
        a submit whose answer was lost is found again. None: there is none."""

        def call(client: WorkspaceClient) -> int | None:
            from databricks.sdk.service import jobs

            runs = client.jobs.list_runs(
                run_type=jobs.RunType.SUBMIT_RUN, start_time_from=submitted_from_ms, limit=25
            )
            for run in itertools.islice(runs, LOOKUP_LIMIT):
                if run.run_name == run_name and run.run_id is not None:
                    return int(run.run_id)
            return None

        return await self._call(f"looking up the run {run_name!r}", call)

    async def cancel(self, run_id: int) -> None:
        """Asks for the run's cancellation (asynchronous: it goes TERMINATING, then CANCELED)."""
        await self._call(f"cancelling run {run_id}", lambda client: client.jobs.cancel_run(run_id))

    async def output_logs(self, task_run_id: int) -> str:
        """What the task wrote to stdout (its tail): the batch job ends with its summary."""
        return await self._call(
            f"reading the output of run {task_run_id}",
            lambda client: client.jobs.get_run_output(task_run_id).logs or "",
        )

    async def put_secrets(self, scope: str, values: dict[str, str]) -> None:
        """Writes each value into the secret scope, making the scope when it is missing."""

        def call(client: WorkspaceClient) -> None:
            from databricks.sdk import errors

            with contextlib.suppress(errors.ResourceAlreadyExists):
                client.secrets.create_scope(scope=scope)
            for key, value in values.items():
                client.secrets.put_secret(scope=scope, key=key, string_value=value)

        await self._call(f"writing secrets to scope {scope}", call)

    async def upload(self, path: str, source: str) -> None:
        """A workspace file (not a notebook: no notebook header), replaced when it exists."""

        def call(client: WorkspaceClient) -> None:
            from databricks.sdk.service import workspace

            folder = path.rsplit("/", 1)[0]
            client.workspace.mkdirs(folder)
            client.workspace.import_(
                path=path, content=base64.b64encode(source.encode()).decode(),
                format=workspace.ImportFormat.AUTO, overwrite=True,
            )  # fmt: skip

        await self._call(f"uploading {path}", call)


def _first_line(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    # The SDK appends its config ("Config: host=..., token=***"): the host is said already.
    return text.split(" Config: ")[0][:300]
