"""The Batch API's storage, the same contract on a folder (a claim) and on a Unity Catalog volume
reached through the Files API of the Databricks test server (a real HTTP server, over which
databricks-sdk speaks): files published whole, read back, sized and streamed; a missing file is
none; a refused token is a 502 that names the workspace, never the token."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Iterator

import pytest

from tiers.devenv import databricks
from tiers.runtime.gateway import batch_storage, config, errors

TOKEN = "dapi-storage"
ROOT = "/Volumes/main/tiers/batches/chat"


@pytest.fixture(scope="module")
def server() -> Iterator[databricks.Server]:
    with databricks.running(tokens={TOKEN}) as running:
        yield running


def volume(server: databricks.Server, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
           token: str = TOKEN) -> batch_storage.Volume:  # fmt: skip
    monkeypatch.setenv("TIERS_TEST_DATABRICKS_TOKEN", token)
    settings = config.VolumeConfig(host=server.url, token_env="TIERS_TEST_DATABRICKS_TOKEN",
                                   root=ROOT)  # fmt: skip
    return batch_storage.Volume(settings, scratch=tmp_path / "scratch")


@pytest.fixture(params=["folder", "volume"])
def storage(
    request: pytest.FixtureRequest, server: databricks.Server, tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> batch_storage.Storage:  # fmt: skip
    found: batch_storage.Storage
    if request.param == "folder":
        found = batch_storage.Folder(tmp_path / "claim")
    else:
        found = volume(server, tmp_path, monkeypatch)
    found.prepare()
    return found


def publish(storage: batch_storage.Storage, relative: str, data: bytes) -> None:
    spooled = storage.spool(relative)
    spooled.write_bytes(data)
    asyncio.run(storage.publish(spooled, relative))
    assert not spooled.exists()


def streamed(storage: batch_storage.Storage, relative: str) -> bytes:
    async def read() -> bytes:
        return b"".join([chunk async for chunk in storage.chunks(relative)])

    return asyncio.run(read())


def test_a_published_file_is_read_sized_and_streamed_back_whole(
    storage: batch_storage.Storage,
) -> None:
    data = b"".join(b'{"custom_id": "r%d"}\n' % i for i in range(200_000))  # ~4 MiB
    publish(storage, "files/file-a.jsonl", data)
    assert asyncio.run(storage.size("files/file-a.jsonl")) == len(data)
    assert streamed(storage, "files/file-a.jsonl") == data
    asyncio.run(storage.write("files/file-a.json", b'{"id": "file-a"}'))
    asyncio.run(storage.write("files/file-a.json", b'{"id": "file-a", "bytes": 1}'))
    assert asyncio.run(storage.read("files/file-a.json")) == b'{"id": "file-a", "bytes": 1}'


def test_a_missing_file_is_none(storage: batch_storage.Storage) -> None:
    assert asyncio.run(storage.read("files/file-none.json")) is None
    assert asyncio.run(storage.size("batches/batch-none/output.jsonl")) is None


def test_a_run_on_databricks_reads_the_volume_file_the_gateway_wrote(
    server: databricks.Server, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = volume(server, tmp_path, monkeypatch)
    store.prepare()
    publish(store, "files/file-b.jsonl", b"line\n")
    uri = store.uri("files/file-b.jsonl")
    assert uri == f"dbfs:{ROOT}/files/file-b.jsonl"
    # The test workspace's cluster sees dbfs:/ as its local DBFS folder.
    local = server.workspace.cluster_view(uri).removeprefix("file://")
    assert pathlib.Path(local).read_bytes() == b"line\n"
    assert pathlib.Path(local) == server.workspace.volumes.local(f"{ROOT}/files/file-b.jsonl")


def test_a_refused_token_is_a_502_naming_the_workspace_not_the_token(
    server: databricks.Server, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = volume(server, tmp_path, monkeypatch, token="dapi-revoked")
    with pytest.raises(errors.GatewayError) as refused:
        asyncio.run(store.read("files/file-c.json"))
    assert refused.value.status == 502 and server.url in refused.value.message
    assert "dapi-revoked" not in refused.value.message
