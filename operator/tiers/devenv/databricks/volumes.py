"""The test workspace's storage: DBFS as one local folder, `root`, with the Unity Catalog volumes
under `root/Volumes/`, which the Files API serves (`/api/2.0/fs/files{path}`,
`/api/2.0/fs/directories{path}`) and a run's task reads and writes at `dbfs:/...`.

A Databricks cluster reads `dbfs:/Volumes/<catalog>/<schema>/<volume>/...` natively; local Spark
has no `dbfs` file system, so `cluster_view` turns each `dbfs:/` in a task's parameters into
the `file://` URI of the same file under `root`, as the cluster would see it. Any volume path
is accepted (every catalog, schema and volume exists here); a file's folder must exist before it
is written, as a directory is made with `PUT /api/2.0/fs/directories` (mkdir -p).
"""

from __future__ import annotations

import contextlib
import email.utils
import io
import os
import pathlib
import urllib.parse
from collections.abc import Iterator
from typing import BinaryIO

from tiers.devenv.databricks import workspace

MAX_FILE_BYTES = 5 * 1024 * 1024 * 1024
"""The Files API takes a file of up to 5 GiB in one request."""
COPY_BYTES = 1024 * 1024
VOLUME_DEPTH = 4
"""/Volumes/<catalog>/<schema>/<volume>: a file or folder path is below it."""


class Volumes:
    def __init__(self, root: pathlib.Path) -> None:
        self.root = root
        (root / "Volumes").mkdir(parents=True, exist_ok=True)

    def local(self, api_path: str) -> pathlib.Path:
        """The local file of a Files API path (URL-escaped, as the request names it)."""
        path = urllib.parse.unquote(api_path)
        parts = [part for part in path.split("/") if part]
        if (
            not path.startswith("/Volumes/")
            or len(parts) <= VOLUME_DEPTH
            or any(part in (".", "..") for part in parts)
        ):
            raise workspace.ApiError(
                400, "INVALID_PARAMETER_VALUE",
                f"{path} is not a path in a volume: /Volumes/<catalog>/<schema>/<volume>/<path>",
            )  # fmt: skip
        return self.root.joinpath(*parts)

    def make_directory(self, api_path: str) -> None:
        target = self.local(api_path)
        if target.is_file():
            raise workspace.ApiError(409, "RESOURCE_ALREADY_EXISTS", f"{api_path} is a file.")
        target.mkdir(parents=True, exist_ok=True)

    def write(
        self, api_path: str, source: io.BufferedIOBase, length: int, *, overwrite: bool
    ) -> None:
        """Writes `length` bytes of `source` whole: a reader never sees half of them."""
        target = self.local(api_path)
        if length > MAX_FILE_BYTES:
            raise workspace.ApiError(
                413, "REQUEST_LIMIT_EXCEEDED", "A file may have at most 5 GiB."
            )
        if not target.parent.is_dir():
            raise workspace.ApiError(
                404, "NOT_FOUND", f"The parent directory of {target.name} does not exist."
            )
        if target.is_dir() or (target.exists() and not overwrite):
            raise workspace.ApiError(409, "ALREADY_EXISTS", f"{target.name} already exists.")
        partial = target.with_name(f".{target.name}.{os.getpid()}.part")
        left = length
        with partial.open("wb") as out:
            while left > 0:
                chunk = source.read(min(COPY_BYTES, left))
                if not chunk:
                    partial.unlink()
                    raise workspace.ApiError(400, "MALFORMED_REQUEST", "The body was cut short.")
                out.write(chunk)
                left -= len(chunk)
        partial.rename(target)

    def metadata(self, api_path: str) -> dict[str, str]:
        """The headers of `HEAD` and `GET` on a file."""
        target = self.local(api_path)
        if not target.is_file():
            raise workspace.ApiError(404, "NOT_FOUND", f"{target.name} does not exist.")
        found = target.stat()
        return {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(found.st_size),
            "Last-Modified": email.utils.formatdate(found.st_mtime, usegmt=True),
        }

    @contextlib.contextmanager
    def read(self, api_path: str) -> Iterator[BinaryIO]:
        self.metadata(api_path)
        with self.local(api_path).open("rb") as source:
            yield source

    def delete(self, api_path: str) -> None:
        target = self.local(api_path)
        if not target.is_file():
            raise workspace.ApiError(404, "NOT_FOUND", f"{target.name} does not exist.")
        target.unlink()

    def cluster_view(self, value: str) -> str:
        """A task parameter as local Spark must read it: `dbfs:/x` is `file://<root>/x`."""
        return value.replace("dbfs:/", f"{self.root.as_uri()}/")
