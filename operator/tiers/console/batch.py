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
import csv
import itertools
import json
import logging
import os
import pathlib
import shutil
import tempfile
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from typing import IO, Annotated, Any

import fastapi
import httpx2
import pydantic
import yaml
from fastapi import responses
from lightkube import ApiError
from lightkube.models import authorization_v1 as authorization
from lightkube.resources import authorization_v1
from lightkube.types import CascadeType, PatchType
from starlette import datastructures

from tiers.api import common
from tiers.console import delta, errors, identity, objects, resources, state
from tiers.console import results as result_files
from tiers.operator.manifests import labels, model_client
from tiers.runtime import pricing
from tiers.runtime.batch import estimate as run_estimate
from tiers.runtime.batch import openai_lines, records
from tiers.runtime.modelcall import prompts

router = fastapi.APIRouter(prefix="/api/v1/batch")

CHUNK = 1024 * 1024
log = logging.getLogger(__name__)


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
    cost = await _cost_before_the_run(resources.caller(request).client, obj, path, fmt, records)
    return {"records": records, "estimatedCostUsd": cost, "budgetUsd": budget, "source": "input"}


SAMPLE_RECORDS = 200
"""Records whose prompts the console counts before a run (the job's own estimate counts more)."""


async def _cost_before_the_run(
    client: Any, obj: dict[str, Any], path: pathlib.Path, fmt: str, records: int
) -> str | None:
    """The cost as the job's own estimate computes it (tiers.runtime.batch.estimate: prompt
    tokens of a sample scaled to the input, every reply at max_tokens, the model's list price),
    from the uploaded input, before the run; None when the model is not known yet (its
    RealtimeEndpoint missing or not readable) or the spec is one the job would refuse."""
    spec = obj.get("spec") or {}
    try:
        call = common.ModelCall.model_validate(spec.get("model") or {})
    except pydantic.ValidationError:
        return None
    endpoint_model = None
    if call.endpoint_ref is not None:
        namespace = obj["metadata"]["namespace"]
        try:
            endpoint = await objects.get(
                client, "realtimeendpoints", namespace, call.endpoint_ref.name
            )
        except (errors.ConsoleError, ApiError):
            return None
        endpoint_model = (endpoint.get("spec") or {}).get("model")
        if not endpoint_model:
            return None
    metadata = obj["metadata"]
    owner = labels.Owner(obj["apiVersion"], obj["kind"], metadata["name"], metadata["namespace"],
                         metadata.get("uid", ""))  # fmt: skip
    settings = model_client.model_call(owner, call, endpoint_model=endpoint_model)
    id_field = (
        "custom_id" if fmt == "openai" else str((spec.get("input") or {}).get("idField", "id"))
    )
    sample = await asyncio.to_thread(sample_prompts, path, fmt, call.prompt, id_field)
    found = await asyncio.to_thread(
        run_estimate.estimate, settings, sample, records=records, parallelism=1, latency_ms=1000
    )
    return pricing.format_usd(found.cost_usd)


def sample_prompts(path: pathlib.Path, fmt: str, template: str, id_field: str) -> list[str]:
    """The prompts of the input's first records, as the job renders them for its estimate."""
    with path.open("rb") as source:
        lines = [
            line.decode(errors="replace") for line in itertools.islice(source, SAMPLE_RECORDS + 1)
        ]
    if fmt == "openai":
        requests = (openai_lines.read(line).request for line in lines[:SAMPLE_RECORDS])
        return [openai_lines.prompt_text(request) for request in requests if request is not None]
    if fmt == "csv":
        sampled = records.from_rows(csv.DictReader(lines), id_field)
    else:
        sampled = records.from_lines([line for line in lines if line.strip()], id_field)
    rendered = []
    for record in sampled[:SAMPLE_RECORDS]:
        if record.fields is None:
            continue
        try:
            rendered.append(prompts.render(template, record.fields))
        except prompts.PromptError:
            continue
    return rendered


def _count_file(path: pathlib.Path, fmt: str) -> int:
    with path.open("rb") as lines:
        return count_records(lines, fmt)


FINISHED = frozenset({"Succeeded", "Failed"})
RERUN_WAIT_S = 60.0
"""How long a re-run waits for the finished job itself to be deleted (only a finalizer holds it:
its run's Job and pods go afterwards, in the background)."""
NOT_RECREATED = ("kopf.zalando.org/", "kubectl.kubernetes.io/last-applied-configuration")


@router.post("/{namespace}/{name}/start")
async def start(request: fastapi.Request, namespace: str, name: str) -> dict[str, Any]:
    """Starts a suspended job; runs a finished one-off job again. The operator runs a one-off
    job once, so running it again is deleting it and creating it anew (as the caller, who needs
    both rights): the new run scores what has no good result yet, e.g. a new upload's records."""
    caller, obj = await _job(request, namespace, name, write=True)
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if not spec.get("suspend"):
        state_now = status.get("state") or "Pending"
        if spec.get("schedule") is None and state_now in FINISHED:
            await _recreate(caller, obj)
            return {"started": True, "rerun": True}
        why = "it runs on its schedule" if spec.get("schedule") else "wait for its run to finish"
        raise errors.ConsoleError(
            409, "AlreadyStarted", f"BatchJob {name!r} is not suspended (state {state_now}): {why}"
        )
    await caller.client.patch(
        objects.RESOURCES["batchjobs"], name, {"spec": {"suspend": False}},
        namespace=namespace, patch_type=PatchType.MERGE,
    )  # fmt: skip
    return {"started": True}


def rerun_body(obj: dict[str, Any]) -> dict[str, Any]:
    """The finished job as it is to be created again: its name, labels, annotations (not those
    kopf and kubectl keep of the old object) and spec, unsuspended; no status."""
    metadata = obj.get("metadata") or {}
    annotations = {
        key: value
        for key, value in (metadata.get("annotations") or {}).items()
        if not key.startswith(NOT_RECREATED)
    }
    kept = {"name": metadata["name"], "namespace": metadata["namespace"],
            "labels": metadata.get("labels") or {}, "annotations": annotations}  # fmt: skip
    spec = {**(obj.get("spec") or {}), "suspend": False}
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": kept, "spec": spec}


async def _recreate(caller: identity.Caller, obj: dict[str, Any]) -> None:
    """Deletes the job and creates it anew as soon as its name is free. The deletion is in the
    background: the job goes at once (unless a finalizer holds it) and Kubernetes deletes its
    run's Job and pods after it, however long their pods take to stop; meanwhile the new job's
    status says that its run waits for the old Job to be gone (reason PreviousRunDeleting).

    The job is never lost: a dry-run create of the new body first (the caller's rights,
    admission and validation; only its name being taken is expected), and a create refused
    after the deletion all the same is retried in the background for `RECREATE_RETRY_S`, the
    answer carrying the job's manifest for the user to apply."""
    body = rerun_body(obj)
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    resource = objects.RESOURCES["batchjobs"]
    try:
        await caller.client.create(resource.from_dict(body), dry_run=True)
    except ApiError as error:
        if error.status.code != 409:  # AlreadyExists: it would be created once the name is free
            raise
    await caller.client.delete(resource, name, namespace=namespace, cascade=CascadeType.BACKGROUND)
    deadline = asyncio.get_running_loop().time() + RERUN_WAIT_S
    pause = 0.05
    while True:
        try:
            held = await caller.client.get(resource, name, namespace=namespace)
        except ApiError as error:
            if error.status.code != 404:
                raise
            break
        if asyncio.get_running_loop().time() > deadline:
            finalizers = ", ".join((held.metadata.finalizers if held.metadata else None) or [])
            raise errors.ConsoleError(
                503, "StillDeleting", f"BatchJob {name!r} is being deleted but was not gone"
                f" within {RERUN_WAIT_S:.0f}s (finalizers: {finalizers or 'none'}; the operator"
                " removes its own), so it was not created again: once it is gone, apply it"
                f" again (kubectl apply -f) to run it:\n{_manifest(body)}",
            )  # fmt: skip
        await asyncio.sleep(pause)
        pause = min(pause * 2, 1.0)
    try:
        await caller.client.create(resource.from_dict(body))
    except (ApiError, httpx2.HTTPError) as error:
        why = error.status.message if isinstance(error, ApiError) else type(error).__name__
        retrying = asyncio.create_task(_create_until(caller, body))
        _retrying.add(retrying)
        retrying.add_done_callback(_retrying.discard)
        raise errors.ConsoleError(
            503, "NotCreatedAgain", f"BatchJob {name!r} was deleted but creating it again failed"
            f" ({why}); the console retries for {RECREATE_RETRY_S:.0f}s: if it is not back by"
            f" then, apply it (kubectl apply -f) to run it:\n{_manifest(body)}",
        ) from None  # fmt: skip


RECREATE_RETRY_S = 300.0
"""How long the console retries creating a job that it deleted to run again."""
_retrying: set[asyncio.Task[None]] = set()
"""The background retries (a task not referenced may be collected before it ends)."""


async def _create_until(caller: identity.Caller, body: dict[str, Any]) -> None:
    """Creates the job until it is created, exists (someone applied it) or `RECREATE_RETRY_S`
    passed."""
    resource = objects.RESOURCES["batchjobs"]
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    deadline = asyncio.get_running_loop().time() + RECREATE_RETRY_S
    pause = 1.0
    while asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(pause)
        pause = min(pause * 2, 30.0)
        try:
            await caller.client.create(resource.from_dict(body))
            return
        except ApiError as error:
            if error.status.code == 409:
                return
        except httpx2.HTTPError:
            pass
    log.warning("BatchJob %s/%s was not created again within %.0fs", namespace, name,
                RECREATE_RETRY_S)  # fmt: skip


def _manifest(body: dict[str, Any]) -> str:
    return yaml.safe_dump(body, sort_keys=False)


@router.get("/{namespace}/{name}/results")
async def results(
    request: fastapi.Request,
    namespace: str,
    name: str,
    file: Annotated[str, fastapi.Query(pattern="^(output|errors)$")] = "output",
) -> fastapi.Response:
    """The run's results (`output`) or failed records (`errors`) as JSON lines, streamed."""
    _, obj = await _job(request, namespace, name)
    last_run = (obj.get("status") or {}).get("lastRun") or {}
    spec_output = (obj.get("spec") or {}).get("output") or {}
    uri = last_run.get("outputURI") or spec_output.get("uri")
    output = local_path(request, str(uri or ""), what="the run's output URI")
    outcome = "ok" if file == "output" else "error"
    form = str(spec_output.get("format", "jsonl"))
    try:
        found = await asyncio.to_thread(result_files.parts, output, form=form, outcome=outcome)
    except delta.Unreadable as error:
        raise errors.ConsoleError(409, "UnreadableTable", f"{uri}: {error}") from None
    if not found:
        raise errors.ConsoleError(404, "NotFound", f"no {file} under {uri} yet")
    return responses.StreamingResponse(
        _in_a_thread(result_files.json_lines(found)),
        media_type="application/x-ndjson",
        headers={"content-disposition": f'attachment; filename="{name}-{file}.jsonl"',
                 "cache-control": "no-store"},
    )  # fmt: skip


async def _in_a_thread(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Each chunk read off the event loop."""
    while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
        yield chunk
