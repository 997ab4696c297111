"""The Batch API's files, on the volume `spec.batch.storage` names: no database.

    <storage>/files/<file id>.jsonl     an uploaded file, as it came
    <storage>/files/<file id>.json      its file object, with the tenant that owns it
    <storage>/batches/<batch job>/      a batch's run output (output.jsonl, errors.jsonl, parts)

An upload (`POST /v1/files`, multipart/form-data) is parsed as it arrives and its `file` part
streamed to a hidden file beside its final name, at most `max_file_bytes`, then renamed: a
reader never sees half a file, and the gateway never holds the file in memory. A batch's output
and error files get their file object (and a derived id) when a batch object first names them.
Disk I/O runs in threads, off the event loop. Called by `batches`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import pathlib
import time
from collections.abc import AsyncIterator
from typing import Any, BinaryIO

from python_multipart import exceptions, multipart

from tiers.runtime import asgi
from tiers.runtime.gateway import batch_objects, errors

FLUSH_BYTES = 1024 * 1024
"""What an upload buffers before writing it out."""
READ_BYTES = 1024 * 1024
MAX_FIELD_BYTES = 1024
"""A form field besides the file (`purpose`) is a short word."""
FORM_SLACK_BYTES = 64 * 1024
"""Room for the form's boundaries, part headers and fields around the file itself."""
PURPOSE = "batch"
PUBLIC_FIELDS = ("id", "object", "bytes", "created_at", "filename", "purpose", "status",
                 "status_details", "expires_at")  # fmt: skip
"""The file object a client sees; the rest of the stored JSON (tenant, path) stays here."""


@dataclasses.dataclass
class _Form:
    """What the parser callbacks collect: fields, and the file part's bytes not yet written."""

    fields: dict[str, bytearray] = dataclasses.field(default_factory=dict)
    filename: str | None = None
    file_bytes: int = 0
    pending: bytearray = dataclasses.field(default_factory=bytearray)
    has_file: bool = False
    _part: str | None = None
    _header: bytes = b""
    _headers: dict[bytes, bytes] = dataclasses.field(default_factory=dict)
    _limit: int = 0

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._begin,
            "on_header_field": self._field,
            "on_header_value": self._value,
            "on_headers_finished": self._headers_done,
            "on_part_data": self._data,
        }

    def _begin(self) -> None:
        self._part, self._headers, self._header = None, {}, b""

    def _field(self, data: bytes, start: int, end: int) -> None:
        self._header = data[start:end].lower()

    def _value(self, data: bytes, start: int, end: int) -> None:
        self._headers[self._header] = self._headers.get(self._header, b"") + data[start:end]

    def _headers_done(self) -> None:
        _, options = multipart.parse_options_header(self._headers.get(b"content-disposition", b""))
        self._part = options.get(b"name", b"").decode("utf-8", "replace")
        if self._part == "file":
            self.has_file = True
            self.filename = options.get(b"filename", b"upload.jsonl").decode("utf-8", "replace")

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._part == "file":
            self.file_bytes += end - start
            if self.file_bytes > self._limit:
                raise errors.GatewayError(
                    413, f"file: a file may have at most {self._limit} bytes.", param="file"
                )
            self.pending += data[start:end]
            return
        field = self.fields.setdefault(self._part or "", bytearray())
        field += data[start:end]
        if len(field) > MAX_FIELD_BYTES:
            raise errors.invalid(self._part or "form", f"at most {MAX_FIELD_BYTES} bytes")


class FileStore:
    """The files of one endpoint's Batch API under `root`."""

    def __init__(self, root: pathlib.Path, *, max_file_bytes: int) -> None:
        self.root = root
        self.max_file_bytes = max_file_bytes

    def prepare(self) -> None:
        for folder in (batch_objects.FILES_DIR, batch_objects.BATCHES_DIR):
            (self.root / folder).mkdir(parents=True, exist_ok=True)

    async def upload(
        self, content_type: bytes | None, length: int | None, receive: asgi.Receive, *, tenant: str
    ) -> dict[str, Any]:
        """Stores the `file` of a `POST /v1/files` form; its file object (public fields)."""
        kind, options = multipart.parse_options_header(content_type or b"")
        boundary = options.get(b"boundary")
        if kind != b"multipart/form-data" or not boundary:
            raise errors.GatewayError(
                400, "The body must be multipart/form-data with the fields purpose and file."
            )
        if length is not None and length > self.max_file_bytes + FORM_SLACK_BYTES:
            raise errors.GatewayError(
                413, f"file: a file may have at most {self.max_file_bytes} bytes.", param="file"
            )
        form = _Form(_limit=self.max_file_bytes)
        parser = multipart.MultipartParser(boundary, form.callbacks())  # type: ignore[arg-type]
        file_id = batch_objects.new_file_id()
        final = self.root / batch_objects.FILES_DIR / f"{file_id}.jsonl"
        partial = final.with_name(f".{final.name}.part")
        out = await asyncio.to_thread(partial.open, "wb")
        try:
            await _receive_form(receive, parser, form, out)
            out.close()
            purpose = bytes(form.fields.get("purpose", b"")).decode("utf-8", "replace")
            if purpose != PURPOSE:
                raise errors.invalid("purpose", f'must be "{PURPOSE}" (the Batch API\'s files)')
            if not form.has_file:
                raise errors.invalid("file", "the form has no file part")
            await asyncio.to_thread(partial.rename, final)
        except BaseException:
            out.close()
            await asyncio.to_thread(partial.unlink, missing_ok=True)
            raise
        stored = {
            "id": file_id,
            "object": "file",
            "bytes": form.file_bytes,
            "created_at": int(time.time()),
            "filename": form.filename or "upload.jsonl",
            "purpose": PURPOSE,
            "status": "processed",
            "status_details": None,
            "expires_at": None,
            "tenant": tenant,
            "path": f"{batch_objects.FILES_DIR}/{final.name}",
        }
        await asyncio.to_thread(self._write_meta, stored)
        return public(stored)

    async def find(self, file_id: str, *, tenant: str) -> dict[str, Any]:
        """The stored file object of a tenant's file (with its path); 404 for any other."""
        if not batch_objects.valid_id(file_id, "file-"):
            raise _not_found(file_id)
        meta = self.root / batch_objects.FILES_DIR / f"{file_id}.json"
        try:
            stored: dict[str, Any] = json.loads(await asyncio.to_thread(meta.read_bytes))
        except (OSError, json.JSONDecodeError):
            raise _not_found(file_id) from None
        if stored.get("tenant") != tenant:
            raise _not_found(file_id)
        return stored

    async def result_file(
        self, batch_id: str, name: str, *, tenant: str, created_at: int
    ) -> str | None:
        """The id of a batch's output or error file (`name` under its output) once it holds
        lines; its file object is written the first time, so `find` serves it."""
        relative = f"{batch_objects.output_dir_of(batch_id)}/{name}"
        path = self.root / relative
        try:
            size = (await asyncio.to_thread(path.stat)).st_size
        except OSError:
            return None
        if size == 0:
            return None
        file_id = batch_objects.result_file_id(batch_id, name)
        stored = {
            "id": file_id,
            "object": "file",
            "bytes": size,
            "created_at": created_at,
            "filename": f"{batch_id}_{name}",
            "purpose": "batch_output",
            "status": "processed",
            "status_details": None,
            "expires_at": None,
            "tenant": tenant,
            "path": relative,
        }
        await asyncio.to_thread(self._write_meta, stored, only_new=False)
        return file_id

    async def size(self, stored: dict[str, Any]) -> int:
        try:
            found = await asyncio.to_thread((self.root / stored["path"]).stat)
            return int(found.st_size)
        except OSError:
            raise _not_found(stored["id"]) from None

    async def chunks(self, stored: dict[str, Any]) -> AsyncIterator[bytes]:
        """A stored file's bytes, read a piece at a time."""
        source = await asyncio.to_thread((self.root / stored["path"]).open, "rb")
        try:
            while chunk := await asyncio.to_thread(source.read, READ_BYTES):
                yield chunk
        finally:
            source.close()

    def _write_meta(self, stored: dict[str, Any], *, only_new: bool = True) -> None:
        meta = self.root / batch_objects.FILES_DIR / f"{stored['id']}.json"
        text = json.dumps(stored)
        if meta.exists() and (only_new or meta.read_text() == text):
            return
        partial = meta.with_name(f".{meta.name}.{os.getpid()}.part")
        partial.write_text(text)
        partial.rename(meta)


def public(stored: dict[str, Any]) -> dict[str, Any]:
    return {name: stored.get(name) for name in PUBLIC_FIELDS}


async def _receive_form(
    receive: asgi.Receive, parser: multipart.MultipartParser, form: _Form, out: BinaryIO
) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("client went away")
        try:
            parser.write(message.get("body", b""))
        except exceptions.MultipartParseError as error:
            raise errors.GatewayError(400, f"The multipart body is malformed: {error}") from None
        if len(form.pending) >= FLUSH_BYTES or not message.get("more_body", False):
            data, form.pending = bytes(form.pending), bytearray()
            await asyncio.to_thread(out.write, data)
        if not message.get("more_body", False):
            parser.finalize()
            return


def _not_found(file_id: str) -> errors.GatewayError:
    return errors.GatewayError(
        404, f"No such File object: {file_id}", param="file_id", code="file_not_found"
    )
