"""Where the Batch API's files are kept: a folder (the claim `spec.batch.storage.claimName`, engine
spark) or a Unity Catalog volume (`spec.batch.storage.uri`, engine databricks) read and written
through the workspace's Files API. `batch_files` names every file by its path relative to the
storage; these classes do the I/O, never on the event loop.

An upload arrives in a local `spool` file first (beside its final name in a folder, so that the
rename publishes it whole; in the gateway's scratch folder for a volume, whence one PUT of a
known length sends it: the workspace never sees half a file either, and the upload can be
retried as it is read again from the start).

The volume is reached with databricks-sdk's plain Files API client (`PUT`, `GET` and `HEAD` on
`/api/2.0/fs/files{path}`, `PUT /api/2.0/fs/directories{path}`): the workspace host only, no
presigned cloud storage URLs, so the gateway needs no route to the workspace's storage.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import pathlib
import threading
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, BinaryIO, Protocol, TypeVar

import requests

from tiers.runtime.gateway import batch_objects, config, errors

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient

READ_BYTES = 1024 * 1024
RETRY_SECONDS = 30
"""How long the SDK retries a workspace's 429/503 before a call fails as a 502."""
HTTP_TIMEOUT_SECONDS = 60

T = TypeVar("T")


class Storage(Protocol):
    """The files of one endpoint's Batch API, by path relative to the storage."""

    def prepare(self) -> None: ...

    def spool(self, relative: str) -> pathlib.Path:
        """The local file an upload to `relative` is written to before `publish`."""
        ...

    async def publish(self, spooled: pathlib.Path, relative: str) -> None: ...

    async def read(self, relative: str) -> bytes | None:
        """The whole (small) file; None when there is none."""
        ...

    async def write(self, relative: str, data: bytes) -> None: ...

    async def size(self, relative: str) -> int | None: ...

    def chunks(self, relative: str) -> AsyncIterator[bytes]: ...

    def uri(self, relative: str) -> str:
        """How a batch's run names the file (its BatchJob's input and output URIs)."""
        ...


def of(settings: config.BatchConfig) -> Storage:
    """The storage `settings` name: the volume, or else the folder."""
    if settings.volume is not None:
        return Volume(settings.volume, scratch=settings.storage_dir)
    return Folder(settings.storage_dir)


class Folder:
    """A folder on a mounted volume, shared with every batch's run pods."""

    def __init__(self, root: pathlib.Path) -> None:
        self.root = root

    def prepare(self) -> None:
        for folder in (batch_objects.FILES_DIR, batch_objects.BATCHES_DIR):
            (self.root / folder).mkdir(parents=True, exist_ok=True)

    def spool(self, relative: str) -> pathlib.Path:
        final = self.root / relative
        return final.with_name(f".{final.name}.part")

    async def publish(self, spooled: pathlib.Path, relative: str) -> None:
        await asyncio.to_thread(spooled.rename, self.root / relative)

    async def read(self, relative: str) -> bytes | None:
        try:
            return await asyncio.to_thread((self.root / relative).read_bytes)
        except OSError:
            return None

    async def write(self, relative: str, data: bytes) -> None:
        def write() -> None:
            final = self.root / relative
            partial = final.with_name(f".{final.name}.{os.getpid()}.part")
            partial.write_bytes(data)
            partial.rename(final)

        await asyncio.to_thread(write)

    async def size(self, relative: str) -> int | None:
        try:
            return int((await asyncio.to_thread((self.root / relative).stat)).st_size)
        except OSError:
            return None

    async def chunks(self, relative: str) -> AsyncIterator[bytes]:
        source = await asyncio.to_thread((self.root / relative).open, "rb")
        try:
            while chunk := await asyncio.to_thread(source.read, READ_BYTES):
                yield chunk
        finally:
            source.close()

    def uri(self, relative: str) -> str:
        return (self.root / relative).as_uri()


_clients: dict[tuple[str, str], WorkspaceClient] = {}
_clients_lock = threading.Lock()


class Volume:
    """A Unity Catalog volume folder, through the workspace's Files API; uploads are spooled in
    the local `scratch` folder on their way there."""

    def __init__(self, settings: config.VolumeConfig, *, scratch: pathlib.Path) -> None:
        self.settings = settings
        self.scratch = scratch
        self._folders: set[str] = set()
        """Folders made (or found) already: made once per replica, before their first file."""

    def prepare(self) -> None:
        self.scratch.mkdir(parents=True, exist_ok=True)

    def spool(self, relative: str) -> pathlib.Path:
        return self.scratch / f".{pathlib.PurePosixPath(relative).name}.part"

    async def publish(self, spooled: pathlib.Path, relative: str) -> None:
        def upload(client: WorkspaceClient) -> None:
            self._folder(client, relative)
            with spooled.open("rb") as source:
                client.files.upload(self._path(relative), source, overwrite=True)

        try:
            await self._call(f"writing {relative}", upload)
        finally:
            await asyncio.to_thread(spooled.unlink, missing_ok=True)

    async def read(self, relative: str) -> bytes | None:
        def download(client: WorkspaceClient) -> bytes:
            found = client.files.download(self._path(relative)).contents
            assert found is not None
            try:
                return found.read()
            finally:
                found.close()

        return await self._call(f"reading {relative}", download, missing=True)

    async def write(self, relative: str, data: bytes) -> None:
        def upload(client: WorkspaceClient) -> None:
            self._folder(client, relative)
            client.files.upload(self._path(relative), io.BytesIO(data), overwrite=True)

        await self._call(f"writing {relative}", upload)

    async def size(self, relative: str) -> int | None:
        def head(client: WorkspaceClient) -> int:
            return int(client.files.get_metadata(self._path(relative)).content_length or 0)

        return await self._call(f"reading {relative}", head, missing=True)

    async def chunks(self, relative: str) -> AsyncIterator[bytes]:
        def download(client: WorkspaceClient) -> BinaryIO | None:
            return client.files.download(self._path(relative)).contents

        source = await self._call(f"reading {relative}", download, missing=True)
        if source is None:
            raise FileNotFoundError(relative)
        try:
            while chunk := await self._call(
                f"reading {relative}", lambda _: source.read(READ_BYTES)
            ):
                yield chunk
        finally:
            await asyncio.to_thread(source.close)

    def uri(self, relative: str) -> str:
        return f"dbfs:{self._path(relative)}"

    def _path(self, relative: str) -> str:
        return f"{self.settings.root.rstrip('/')}/{relative}"

    def _folder(self, client: WorkspaceClient, relative: str) -> None:
        """Makes the file's folder (mkdir -p, idempotent) the first time this replica writes
        there: an upload into a folder that does not exist is not promised to make it."""
        folder = self._path(relative).rsplit("/", 1)[0]
        if folder not in self._folders:
            client.files.create_directory(folder)
            self._folders.add(folder)

    async def _call(
        self, what: str, call: Callable[[WorkspaceClient], T], *, missing: bool = False
    ) -> T | None:
        return await asyncio.to_thread(self._blocking, what, call, missing)

    def _blocking(self, what: str, call: Callable[[WorkspaceClient], T], missing: bool) -> T | None:
        # databricks-sdk takes seconds to import: here, in a worker thread, on the first call.
        from databricks.sdk import errors as sdk_errors

        try:
            return call(self._client())
        except (sdk_errors.NotFound, sdk_errors.ResourceDoesNotExist):
            if missing:
                return None
            raise _unavailable(what, self.settings.host, "the folder does not exist") from None
        except sdk_errors.base.DatabricksError as error:
            raise _unavailable(what, self.settings.host, _first_line(error)) from None
        except (requests.RequestException, OSError, ValueError) as error:
            raise _unavailable(what, self.settings.host, type(error).__name__) from None

    def _client(self) -> WorkspaceClient:
        from databricks.sdk import WorkspaceClient
        from databricks.sdk.config import Config

        token = os.environ.get(self.settings.token_env, "")
        key = (self.settings.host, hashlib.sha256(token.encode()).hexdigest())
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                settings = Config(
                    host=self.settings.host, token=token, auth_type="pat",
                    disable_experimental_files_api_client=True,
                    retry_timeout_seconds=RETRY_SECONDS, http_timeout_seconds=HTTP_TIMEOUT_SECONDS,
                )  # fmt: skip
                client = _clients[key] = WorkspaceClient(config=settings)
            return client


def _unavailable(what: str, host: str, detail: str) -> errors.GatewayError:
    # The message names the workspace and the file, never the token.
    return errors.GatewayError(
        502, f"The batch storage is unavailable: {what} at {host}: {detail}", type="api_error"
    )


def _first_line(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text.split(" Config: ")[0][:300]
