"""The Batch API's uploads on one gateway pod, against a real folder: the uploads in progress
never spool more than the scratch volume holds (`batch_files`)."""

from __future__ import annotations

import asyncio
import pathlib
from typing import Any

import pytest

from tiers.runtime import asgi
from tiers.runtime.gateway import batch_files, batch_objects, batch_storage, config, errors

BOUNDARY = b"upload-boundary"
CONTENT_TYPE = b"multipart/form-data; boundary=" + BOUNDARY
MAX_FILE = 64 * 1024


def form(data: bytes) -> bytes:
    return (
        b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="file"; '
        b'filename="in.jsonl"\r\nContent-Type: application/jsonl\r\n\r\n'
        + data + b"\r\n--" + BOUNDARY + b"--\r\n"
    )  # fmt: skip


class Client:
    """A client that sends the first half of its form, then the rest once `finish` is set."""

    def __init__(self, body: bytes) -> None:
        self.parts = [body[: len(body) // 2], body[len(body) // 2 :]]
        self.finish = asyncio.Event()
        self.sent_half = asyncio.Event()

    async def receive(self) -> asgi.Message:
        if len(self.parts) == 2:
            self.sent_half.set()
            return {"type": "http.request", "body": self.parts.pop(0), "more_body": True}
        await self.finish.wait()
        return {"type": "http.request", "body": self.parts.pop(0), "more_body": False}


def store(root: pathlib.Path, scratch_bytes: int) -> batch_files.FileStore:
    files = batch_files.FileStore(
        batch_storage.Folder(root), max_file_bytes=MAX_FILE, scratch_bytes=scratch_bytes
    )
    files.prepare()
    return files


def test_an_upload_beyond_the_scratch_room_is_refused_until_one_in_progress_ends(
    tmp_path: pathlib.Path,
) -> None:
    async def scenario() -> None:
        files = store(tmp_path, MAX_FILE + 1024)  # room for one file of the largest size
        big = form(b'{"custom_id": "a"}\n' * 3000)  # ~57 KiB: nearly the largest file
        first = Client(big)
        running = asyncio.create_task(
            files.upload(CONTENT_TYPE, len(big), first.receive, tenant="t1")
        )
        await first.sent_half.wait()
        # Unannounced length: it may be the largest file, which no longer fits beside the first.
        second = Client(big)
        with pytest.raises(errors.GatewayError) as refused:
            await asyncio.wait_for(files.upload(CONTENT_TYPE, None, second.receive, tenant="t1"), 5)
        assert refused.value.status == 429
        assert refused.value.code == "rate_limit_exceeded"
        assert "Too many uploads at once" in refused.value.message
        assert (b"retry-after", b"10") in refused.value.headers
        assert len(second.parts) == 2  # refused before its body was read
        first.finish.set()
        stored: dict[str, Any] = await running
        assert stored["bytes"] == len(b'{"custom_id": "a"}\n' * 3000)
        # The room is free again: the same upload is taken now.
        again = Client(big)
        again.finish.set()
        found = await files.upload(CONTENT_TYPE, None, again.receive, tenant="t1")
        assert found["status"] == "processed"
        assert files.scratch.held == 0

    asyncio.run(scenario())


def test_small_uploads_share_the_room_each_counting_its_announced_length(
    tmp_path: pathlib.Path,
) -> None:
    async def scenario() -> None:
        body = form(b'{"custom_id": "a"}\n' * 10)
        files = store(tmp_path, 3 * len(body))
        clients = [Client(body) for _ in range(3)]
        uploads = [
            asyncio.create_task(files.upload(CONTENT_TYPE, len(body), c.receive, tenant="t1"))
            for c in clients
        ]
        await asyncio.gather(*(c.sent_half.wait() for c in clients))
        assert files.scratch.held == 3 * min(len(body), MAX_FILE)
        with pytest.raises(errors.GatewayError) as refused:
            upload = files.upload(CONTENT_TYPE, len(body), Client(body).receive, tenant="t1")
            await asyncio.wait_for(upload, 5)
        assert refused.value.status == 429
        for c in clients:
            c.finish.set()
        assert {(await u)["bytes"] for u in uploads} == {len(b'{"custom_id": "a"}\n' * 10)}
        assert files.scratch.held == 0

    asyncio.run(scenario())


def test_a_failed_upload_gives_its_room_back(tmp_path: pathlib.Path) -> None:
    async def scenario() -> None:
        files = store(tmp_path, config.upload_scratch_bytes(MAX_FILE))
        bad = Client(form(b"x").replace(b"batch", b"other"))
        bad.finish.set()
        with pytest.raises(errors.GatewayError) as refused:
            await files.upload(CONTENT_TYPE, None, bad.receive, tenant="t1")
        assert refused.value.param == "purpose"
        assert files.scratch.held == 0

    asyncio.run(scenario())


def test_the_scratch_volume_is_sized_from_the_same_setting_the_gateway_bounds_uploads_by() -> None:
    settings = config.BatchConfig(
        namespace="prod", endpoint_name="chat", endpoint_uid="u", storage_dir=pathlib.Path("/b"),
        max_file_bytes=50 * 1024 * 1024,
    )  # fmt: skip
    assert settings.upload_scratch_bytes == 114 * 1024 * 1024  # the emptyDir's 114Mi


@pytest.mark.parametrize(
    "meta",
    [b"\xff\xfe{not utf-8}", b"{half a file", b'["not", "an", "object"]'],
    ids=["not-utf-8", "not-json", "not-an-object"],
)
def test_a_corrupt_file_object_is_a_file_not_found(tmp_path: pathlib.Path, meta: bytes) -> None:
    files = store(tmp_path, MAX_FILE)
    file_id = batch_objects.new_file_id()
    (tmp_path / batch_objects.FILES_DIR / f"{file_id}.json").write_bytes(meta)
    with pytest.raises(errors.GatewayError) as missing:
        asyncio.run(files.find(file_id, tenant="t1"))
    assert (missing.value.status, missing.value.code) == (404, "file_not_found")
    assert missing.value.message == f"No such File object: {file_id}"
