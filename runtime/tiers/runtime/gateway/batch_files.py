"""The Batch API's files, in the storage `spec.batch.storage` names: no database.

    <storage>/files/<file id>.jsonl     an uploaded file, as it came
    <storage>/files/<file id>.json      its file object, with the tenant that owns it
    <storage>/batches/<batch job>/      a batch's run output (output.jsonl, errors.jsonl, parts)

An upload (`POST /v1/files`, multipart/form-data) is parsed as it arrives and its `file` part
streamed to a spool file (`batch_storage`), at most `max_file_bytes`, then published whole: a
reader never sees half a file, and the gateway never holds the file in memory. The uploads in
progress spool at most `scratch_bytes` together (each counts its Content-Length, or the largest
file when it sends none): one more is refused with a 429 the OpenAI SDKs retry. A file is known
once its file object is written, after the file itself. A batch's output and error files get
their file object (and a derived id) when a batch object first names them. The storage's I/O
runs in threads, off the event loop (`batch_storage`). Called by `batches`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from typing import Any, BinaryIO

from python_multipart import exceptions, multipart

from tiers.runtime import asgi
from tiers.runtime.gateway import batch_objects, batch_storage, errors

FLUSH_BYTES = 1024 * 1024
"""What an upload buffers before writing it out."""
MAX_FIELD_BYTES = 1024
"""A form field besides the file (`purpose`) is a short word."""
FORM_SLACK_BYTES = 64 * 1024
"""Room for the form's boundaries, part headers and fields around the file itself."""
PURPOSE = "batch"
PUBLIC_FIELDS = ("id", "object", "bytes", "created_at", "filename", "purpose", "status",
                 "status_details", "expires_at")  # fmt: skip
"""The file object a client sees; the rest of the stored JSON (tenant, path, the number of
requests in an upload) stays here."""


@dataclasses.dataclass
class _Form:
    """What the parser callbacks collect: fields, and the file part's bytes not yet written."""

    fields: dict[str, bytearray] = dataclasses.field(default_factory=dict)
    filename: str | None = None
    file_bytes: int = 0
    lines: int = 0
    """Lines of the file with something on them (its requests), counted as they pass."""
    _line_open: bool = False
    pending: bytearray = dataclasses.field(default_factory=bytearray)
    has_file: bool = False
    _part: str | None = None
    _header: bytes = b""
    _headers: dict[bytes, bytes] = dataclasses.field(default_factory=dict)
    _limit: int = 0

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._begin,
            "on_header_begin": self._header_begin,
            "on_header_field": self._field,
            "on_header_value": self._value,
            "on_headers_finished": self._headers_done,
            "on_part_data": self._data,
        }

    def _begin(self) -> None:
        self._part, self._headers, self._header = None, {}, b""

    def _header_begin(self) -> None:
        self._header = b""

    def _field(self, data: bytes, start: int, end: int) -> None:
        # A header's name may come in pieces, as the body's chunks split it.
        self._header += data[start:end].lower()

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
            self._count_lines(data[start:end])
            return
        field = self.fields.setdefault(self._part or "", bytearray())
        field += data[start:end]
        if len(field) > MAX_FIELD_BYTES:
            raise errors.invalid(self._part or "form", f"at most {MAX_FIELD_BYTES} bytes")

    def _count_lines(self, piece: bytes) -> None:
        *ended, last = piece.split(b"\n")
        for line in ended:
            if self._line_open or line.strip():
                self.lines += 1
            self._line_open = False
        self._line_open = self._line_open or bool(last.strip())

    @property
    def requests(self) -> int:
        """The file's non-blank lines: each is a request of a batch input file."""
        return self.lines + int(self._line_open)


class FileStore:
    """The files of one endpoint's Batch API in `storage`."""

    def __init__(
        self, storage: batch_storage.Storage, *, max_file_bytes: int, scratch_bytes: int
    ) -> None:
        self.storage = storage
        self.max_file_bytes = max_file_bytes
        self.scratch = _Room(scratch_bytes)

    def prepare(self) -> None:
        self.storage.prepare()

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
        # The file part is no longer than the body the client announced.
        spooled = min(self.max_file_bytes, length if length is not None else self.max_file_bytes)
        self.scratch.take(spooled)
        try:
            form = _Form(_limit=spooled)
            parser = multipart.MultipartParser(boundary, form.callbacks())  # type: ignore[arg-type]
            file_id = batch_objects.new_file_id()
            relative = f"{batch_objects.FILES_DIR}/{file_id}.jsonl"
            partial = self.storage.spool(relative)
            out = await asyncio.to_thread(partial.open, "wb")
            try:
                await _receive_form(receive, parser, form, out)
                out.close()
                purpose = bytes(form.fields.get("purpose", b"")).decode("utf-8", "replace")
                if purpose != PURPOSE:
                    raise errors.invalid("purpose", f'must be "{PURPOSE}" (the Batch API\'s files)')
                if not form.has_file:
                    raise errors.invalid("file", "the form has no file part")
                await self.storage.publish(partial, relative)
            except BaseException:
                out.close()
                await asyncio.to_thread(partial.unlink, missing_ok=True)
                raise
        finally:
            self.scratch.free(spooled)
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
            "path": relative,
            "requests": form.requests,
        }
        await self._write_meta(stored)
        return public(stored)

    async def find(self, file_id: str, *, tenant: str) -> dict[str, Any]:
        """The stored file object of a tenant's file (with its path); 404 for any other."""
        if not batch_objects.valid_id(file_id, "file-"):
            raise _not_found(file_id)
        raw = await self.storage.read(_meta_path(file_id))
        try:
            stored = json.loads(raw) if raw is not None else {}
        except ValueError:  # not JSON, or not text at all: a corrupt file object
            raise _not_found(file_id) from None
        if not isinstance(stored, dict) or stored.get("tenant") != tenant:
            raise _not_found(file_id)
        return stored

    async def result_file(
        self, batch_id: str, name: str, *, tenant: str, created_at: int
    ) -> str | None:
        """The id of a batch's output or error file (`name` under its output) once it holds
        lines; its file object is written the first time, so `find` serves it."""
        relative = f"{batch_objects.output_dir_of(batch_id)}/{name}"
        size = await self.storage.size(relative)
        if not size:
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
        await self._write_meta(stored, only_new=False)
        return file_id

    async def size(self, stored: dict[str, Any]) -> int:
        found = await self.storage.size(stored["path"])
        if found is None:
            raise _not_found(stored["id"])
        return found

    def chunks(self, stored: dict[str, Any]) -> AsyncIterator[bytes]:
        """A stored file's bytes, read a piece at a time."""
        return self.storage.chunks(stored["path"])

    async def _write_meta(self, stored: dict[str, Any], *, only_new: bool = True) -> None:
        relative = _meta_path(stored["id"])
        text = json.dumps(stored).encode()
        found = await self.storage.read(relative)
        if found is not None and (only_new or found == text):
            return
        await self.storage.write(relative, text)


class _Room:
    """The bytes the uploads in progress may spool together; one event loop, so no lock."""

    RETRY_AFTER_S = 10

    def __init__(self, total: int) -> None:
        self.total = total
        self.held = 0

    def take(self, size: int) -> None:
        """Holds `size` bytes for an upload (`free` gives them back); a 429 when they do not fit."""
        if self.held + size > self.total:
            raise errors.GatewayError(
                429,
                f"Too many uploads at once: this gateway spools at most {self.total} bytes of "
                f"uploads together, {self.held} are taken and this one may need {size}. "
                f"Try again in {self.RETRY_AFTER_S}s, once an upload has finished.",
                type="requests",
                code="rate_limit_exceeded",
                headers=((b"retry-after", str(self.RETRY_AFTER_S).encode()),),
            )
        self.held += size

    def free(self, size: int) -> None:
        self.held -= size


def _meta_path(file_id: str) -> str:
    return f"{batch_objects.FILES_DIR}/{file_id}.json"


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
