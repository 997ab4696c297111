"""A BatchJob through the console: upload its input, see its estimate and budget, start it,
download its results.

The console reaches a job's storage only where it is a `file://` URI under `--batch-root` (a
volume the console and the job's pods share; the local demo's folder): anything else is refused
with a message that says so. Reads need the caller to read the BatchJob; the upload and the
start need them to be allowed to update it (asked of the apiserver as the caller: a
SelfSubjectAccessReview, and the start's patch itself is sent as the caller).
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import pathlib
import shutil
import tempfile
import urllib.parse
from collections.abc import AsyncIterator
from typing import IO, Annotated, Any

import fastapi
from fastapi import responses
from lightkube.models import authorization_v1 as authorization
from lightkube.resources import authorization_v1
from lightkube.types import PatchType
from starlette import datastructures

from tiers.console import errors, identity, objects, resources, state
from tiers.runtime.batch import layout

router = fastapi.APIRouter(prefix="/api/v1/batch")

CHUNK = 1024 * 1024


async def _job(
    request: fastapi.Request, namespace: str, name: str, *, write: bool = False
) -> tuple[identity.Caller, dict[str, Any]]:
    caller = resources.caller(request, write=write)
    obj = await objects.get(caller.client, "batchjobs", namespace, name)
    if write and caller.own_token:
        review = authorization_v1.SelfSubjectAccessReview(
            spec=authorization.SelfSubjectAccessReviewSpec(
                resourceAttributes=authorization.ResourceAttributes(
                    group="tiers.dev",
                    resource="batchjobs",
                    verb="update",
                    namespace=namespace,
                    name=name,
                )
            )
        )
        answer = await caller.client.create(review)
        if answer.status is None or not answer.status.allowed:
            raise errors.ConsoleError(
                403, "Forbidden", f"you may not update BatchJob {name!r} in namespace"
                f" {namespace!r}: uploading its input and starting it need that",
            )  # fmt: skip
    return caller, obj


def local_path(request: fastapi.Request, uri: str, *, what: str) -> pathlib.Path:
    """The file a `file://` URI names, when it lies under the console's --batch-root."""
    root = state.of(request).settings.batch_root
    parsed = urllib.parse.urlparse(uri)
    if root is None or parsed.scheme != "file":
        where = "no --batch-root" if root is None else f"file:// URIs under {root}"
        raise errors.ConsoleError(
            409, "StorageNotReachable",
            f"{what} is {uri!r}: the console reaches BatchJob storage only at {where}",
        )  # fmt: skip
    path = pathlib.Path(urllib.parse.unquote(parsed.path)).resolve()
    if not path.is_relative_to(root):
        raise errors.ConsoleError(
            409, "StorageNotReachable",
            f"{what} is {uri!r}: the console reaches file:// URIs under {root} only",
        )  # fmt: skip
    return path


@router.post("/{namespace}/{name}/input")
async def upload(request: fastapi.Request, namespace: str, name: str) -> dict[str, Any]:
    _, obj = await _job(request, namespace, name, write=True)
    source = (obj.get("spec") or {}).get("input") or {}
    target = local_path(request, str(source.get("uri", "")), what="spec.input.uri")
    form = await request.form(max_files=1, max_fields=4)
    try:
        upload = form.get("file")
        if not isinstance(upload, datastructures.UploadFile):
            raise errors.ConsoleError(
                422, "Invalid", "send the input as a multipart form field named 'file'"
            )
        if target.is_dir() or str(source.get("uri", "")).endswith("/"):
            target = target / pathlib.Path(upload.filename or "input").name
        fmt = str(source.get("format", "jsonl"))
        written, records = await asyncio.to_thread(_store, upload.file, target, fmt)
    finally:
        await form.close()
    return {"bytes": written, "records": records, "uri": target.as_uri()}


def _store(source: IO[bytes], target: pathlib.Path, fmt: str) -> tuple[int, int]:
    """Copies the upload next to `target`, checks and counts its records, then moves it into
    place (a reader never sees half a file)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w+b", dir=target.parent, delete=False) as out:
        try:
            shutil.copyfileobj(source, out, CHUNK)
            written = out.tell()
            out.seek(0)
            records = count_records(out, fmt)
        except BaseException:
            os.unlink(out.name)
            raise
    os.replace(out.name, target)
    return written, records


def count_records(lines: IO[bytes], fmt: str) -> int:
    """Records in an input file of the job's format; a file that is not of it is refused."""
    count = 0
    first = True
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if first and fmt in ("jsonl", "openai"):
            try:
                parsed = json.loads(line)
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict):
                raise errors.ConsoleError(
                    422, "Invalid", f"line {number} is not a JSON object: spec.input.format is"
                    f" {fmt}, one JSON object per line",
                )  # fmt: skip
        first = False
        count += 1
    return max(count - 1, 0) if fmt == "csv" else count


@router.get("/{namespace}/{name}/estimate")
async def estimate(request: fastapi.Request, namespace: str, name: str) -> dict[str, Any]:
    """The run's estimate from status once the job measured it, else the input's record count."""
    _, obj = await _job(request, namespace, name)
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    budget = (spec.get("budget") or {}).get("maxUSD")
    measured = status.get("estimate")
    if measured:
        return {"records": measured.get("records"), "estimatedCostUsd": measured.get("costUSD"),
                "budgetUsd": budget, "source": "status"}  # fmt: skip
    source = (spec.get("input") or {}).get("uri", "")
    path = local_path(request, str(source), what="spec.input.uri")
    fmt = str((spec.get("input") or {}).get("format", "jsonl"))
    if not path.is_file():
        raise errors.ConsoleError(404, "NotFound", f"no input at {source}: upload it first")
    records = await asyncio.to_thread(_count_file, path, fmt)
    return {"records": records, "estimatedCostUsd": None, "budgetUsd": budget, "source": "input"}


def _count_file(path: pathlib.Path, fmt: str) -> int:
    with path.open("rb") as lines:
        return count_records(lines, fmt)


@router.post("/{namespace}/{name}/start")
async def start(request: fastapi.Request, namespace: str, name: str) -> dict[str, Any]:
    caller, obj = await _job(request, namespace, name, write=True)
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if not spec.get("suspend"):
        state_now = status.get("state") or "Pending"
        raise errors.ConsoleError(
            409, "AlreadyStarted", f"BatchJob {name!r} is not suspended (state {state_now}):"
            " a one-off job runs once; create a new BatchJob to run again",
        )  # fmt: skip
    await caller.client.patch(
        objects.RESOURCES["batchjobs"], name, {"spec": {"suspend": False}},
        namespace=namespace, patch_type=PatchType.MERGE,
    )  # fmt: skip
    return {"started": True}


@router.get("/{namespace}/{name}/results")
async def results(
    request: fastapi.Request,
    namespace: str,
    name: str,
    file: Annotated[str, fastapi.Query(pattern="^(output|errors)$")] = "output",
) -> fastapi.Response:
    _, obj = await _job(request, namespace, name)
    last_run = (obj.get("status") or {}).get("lastRun") or {}
    uri = last_run.get("outputURI") or ((obj.get("spec") or {}).get("output") or {}).get("uri")
    output = local_path(request, str(uri or ""), what="the run's output URI")
    # (outcome, merged file): ("ok", "output.jsonl") or ("error", "errors.jsonl").
    outcome, merged = layout.MERGED_FILES[0 if file == "output" else 1]
    whole = output / merged
    parts = [pathlib.Path(p) for p in sorted(glob.glob(layout.parts_glob(str(output), outcome)))]
    files = [whole] if whole.is_file() else [p for p in parts if p.is_file()]
    if not files:
        raise errors.ConsoleError(404, "NotFound", f"no {file} under {uri} yet")
    return responses.StreamingResponse(
        _concatenated(files),
        media_type="application/x-ndjson",
        headers={"content-disposition": f'attachment; filename="{name}-{file}.jsonl"',
                 "cache-control": "no-store"},
    )  # fmt: skip


async def _concatenated(files: list[pathlib.Path]) -> AsyncIterator[bytes]:
    for path in files:
        with path.open("rb") as source:
            while chunk := await asyncio.to_thread(source.read, CHUNK):
                yield chunk
