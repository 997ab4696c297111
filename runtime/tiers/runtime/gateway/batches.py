"""OpenAI's Batch API on the gateway (`spec.batch`): `/v1/files` and `/v1/batches`.

    POST /v1/files                  upload a batch input file (multipart: purpose=batch, file)
    GET  /v1/files/{id}             its file object
    GET  /v1/files/{id}/content     its bytes (an input, output or error file)
    POST /v1/batches                {input_file_id, endpoint, completion_window: "24h", metadata}
    GET  /v1/batches?limit&after    the caller's batches, newest first
    GET  /v1/batches/{id}
    POST /v1/batches/{id}/cancel

Each batch is a BatchJob in the endpoint's namespace (`batch_objects.render_batch_job`), created
with the gateway's own ServiceAccount, whose Role allows get, list, create and patch on BatchJobs
there and nothing else. The batch object is read back from the BatchJob on every request: there
is no database, and every replica answers alike. Files and batches belong to the tenant of the
key that made them; another key gets 404. `app` routes here only paths under these prefixes, so
the model routes do no work for them.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from typing import Any

import lightkube
import orjson
from lightkube import generic_resource
from lightkube.types import PatchType

from tiers.runtime import asgi
from tiers.runtime.gateway import (
    asgi_io,
    batch_files,
    batch_objects,
    batch_storage,
    budget,
    callers,
    config,
    errors,
)

log = logging.getLogger(__name__)

PREFIXES = ("/v1/files", "/v1/batches")
FIELD_MANAGER = "tiers-gateway"
DEFAULT_PAGE = 20
MAX_PAGE = 100
OCTET_STREAM = b"application/octet-stream"
BatchJob = generic_resource.create_namespaced_resource(
    batch_objects.API_VERSION.split("/")[0], "v1alpha1", "BatchJob", "batchjobs"
)


class BatchAPI:
    """The handler of every path under `PREFIXES`, for one endpoint."""

    def __init__(
        self,
        settings: config.BatchConfig,
        *,
        auth: callers.Callers,
        spend: budget.Budget,
        max_body_bytes: int,
    ) -> None:
        self.settings = settings
        self.files = batch_files.FileStore(
            batch_storage.of(settings),
            max_file_bytes=settings.max_file_bytes,
            scratch_bytes=settings.upload_scratch_bytes,
        )
        self._callers = auth
        self._budget = spend
        self._max_body_bytes = max_body_bytes
        self._client: lightkube.AsyncClient | None = None

    def start(self) -> None:
        """Makes the storage folders and the Kubernetes client (the pod's ServiceAccount, or
        $KUBECONFIG outside a cluster)."""
        self.files.prepare()
        self._client = lightkube.AsyncClient(
            namespace=self.settings.namespace, field_manager=FIELD_MANAGER
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    async def __call__(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        try:
            tenant = await self._callers.tenant(asgi_io.header(scope, b"authorization"))
            await self._route(scope, receive, send, tenant)
        except errors.GatewayError as error:
            await asgi_io.send_error(send, error)
        except ConnectionResetError:
            return
        except lightkube.ApiError as error:
            # The apiserver's message names the object, never a key.
            log.warning("Batch API: the Kubernetes API answered %s", error.status.code)
            await asgi_io.send_error(
                send,
                errors.GatewayError(
                    502, f"The Kubernetes API refused: {error.status.message}", type="api_error"
                ),
            )

    async def _route(
        self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send, tenant: str
    ) -> None:
        method = scope["method"]
        parts = scope["path"].strip("/").split("/")[1:]  # after "v1"
        match method, parts:
            case "POST", ["files"]:
                length = asgi_io.header(scope, b"content-length")
                found = await self.files.upload(
                    asgi_io.header(scope, b"content-type"),
                    int(length) if length and length.isdigit() else None,
                    receive,
                    tenant=tenant,
                )
                await _send_json(send, found)
            case "GET", ["files", file_id]:
                stored = await self.files.find(file_id, tenant=tenant)
                await _send_json(send, batch_files.public(stored))
            case "GET", ["files", file_id, "content"]:
                await self._send_file(send, await self.files.find(file_id, tenant=tenant))
            case "POST", ["batches"]:
                body = await asgi_io.read_body(receive, limit=self._max_body_bytes)
                await _send_json(send, await self._create(body, tenant))
            case "GET", ["batches"]:
                await _send_json(send, await self._list(scope, tenant))
            case "GET", ["batches", batch_id]:
                await _send_json(send, await self._batch(await self._job(batch_id, tenant)))
            case "POST", ["batches", batch_id, "cancel"]:
                await _send_json(send, await self._cancel(batch_id, tenant))
            case _:
                path = scope["path"]
                raise errors.GatewayError(404, f"No route {method} {path}.", code="not_found")

    async def _create(self, raw: bytes, tenant: str) -> dict[str, Any]:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise errors.GatewayError(400, f"The body is not valid JSON: {error}") from None
        file_id, endpoint, metadata = batch_objects.checked_request(body)
        stored = await self.files.find(file_id, tenant=tenant)
        if stored.get("purpose") != batch_files.PURPOSE:
            raise errors.invalid("input_file_id", "must be a file uploaded with purpose batch")
        # A spent monthly budget refuses new batches as it refuses new calls.
        self._budget.check()
        batch_id = batch_objects.new_batch_id()
        storage = self.files.storage
        manifest = batch_objects.render_batch_job(
            self.settings, batch_id=batch_id, input_file_id=file_id,
            input_uri=storage.uri(stored["path"]),
            output_uri=storage.uri(batch_objects.output_dir_of(batch_id)),
            endpoint=endpoint, metadata=metadata, tenant=tenant,
            requests=stored.get("requests"),
        )  # fmt: skip
        created = await self._kube().create(BatchJob.from_dict(manifest))
        log.info("batch %s created as BatchJob %s", batch_id, batch_objects.job_name(batch_id))
        return await self._batch(_as_dict(created))

    async def _list(self, scope: asgi.Scope, tenant: str) -> dict[str, Any]:
        query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
        limit_text = (query.get("limit") or [str(DEFAULT_PAGE)])[0]
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_PAGE:
            raise errors.invalid("limit", f"must be an integer from 1 to {MAX_PAGE}")
        after = (query.get("after") or [None])[0]
        selector: dict[str, Any] = {
            batch_objects.ENDPOINT_LABEL: self.settings.endpoint_name,
            batch_objects.TENANT_LABEL: tenant,
        }
        listed: Any = self._kube().list(BatchJob, labels=selector)
        found = [_as_dict(job) async for job in listed]
        objects = [await self._batch(job) for job in found if _batch_id(job)]
        return batch_objects.page(objects, after=after, limit=int(limit_text))

    async def _cancel(self, batch_id: str, tenant: str) -> dict[str, Any]:
        current = await self._batch(await self._job(batch_id, tenant))
        if current["status"] in batch_objects.FINISHED:
            raise errors.GatewayError(
                409, f"Cannot cancel a batch with status {current['status']}.",
                code="batch_not_cancellable",
            )  # fmt: skip
        if current["status"] == "cancelling":
            return current
        # Suspending the BatchJob stops its run; what it scored stays in its output.
        patch = {
            "metadata": {
                "annotations": {
                    batch_objects.CANCELLING_ANNOTATION: batch_objects.stamp(time.time())
                }
            },
            "spec": {"suspend": True},
        }
        patched = await self._kube().patch(
            BatchJob, batch_objects.job_name(batch_id), patch, patch_type=PatchType.MERGE
        )
        return await self._batch(_as_dict(patched))

    async def _job(self, batch_id: str, tenant: str) -> dict[str, Any]:
        """The BatchJob of a tenant's batch; 404 for another tenant's or none."""
        missing = errors.GatewayError(
            404, f"No such Batch object: {batch_id}", param="batch_id", code="batch_not_found"
        )
        if not batch_objects.valid_id(batch_id, "batch_"):
            raise missing
        try:
            found = await self._kube().get(BatchJob, batch_objects.job_name(batch_id))
        except lightkube.ApiError as error:
            if error.status.code == 404:
                raise missing from None
            raise
        job = _as_dict(found)
        labels = job.get("metadata", {}).get("labels") or {}
        if labels.get(batch_objects.TENANT_LABEL) != tenant or _batch_id(job) != batch_id:
            raise missing
        return job

    async def _batch(self, job: dict[str, Any]) -> dict[str, Any]:
        """The batch object of a BatchJob, with its output and error files once it has ended."""
        found = batch_objects.batch_object(
            job, completion_window_s=self.settings.completion_window_s
        )
        if found["status"] in batch_objects.FINISHED:
            tenant = job["metadata"]["labels"][batch_objects.TENANT_LABEL]
            ended = found["completed_at"] or found["failed_at"] or found["created_at"]
            for field, name in (
                ("output_file_id", batch_objects.OUTPUT_FILE),
                ("error_file_id", batch_objects.ERRORS_FILE),
            ):
                found[field] = await self.files.result_file(
                    found["id"], name, tenant=tenant, created_at=ended
                )
        return found

    async def _send_file(self, send: asgi.Send, stored: dict[str, Any]) -> None:
        size = await self.files.size(stored)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", OCTET_STREAM),
                    (b"content-length", str(size).encode()),
                ],
            }
        )
        async for chunk in self.files.chunks(stored):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    def _kube(self) -> lightkube.AsyncClient:
        assert self._client is not None, "the ASGI lifespan startup did not run"
        return self._client


def _as_dict(obj: Any) -> dict[str, Any]:
    """A lightkube object as the plain JSON the apiserver sent."""
    found: dict[str, Any] = obj.to_dict()
    return found


def _batch_id(job: dict[str, Any]) -> str | None:
    labels = job.get("metadata", {}).get("labels") or {}
    found = labels.get(batch_objects.BATCH_LABEL)
    return found if isinstance(found, str) else None


async def _send_json(send: asgi.Send, body: dict[str, Any]) -> None:
    await asgi_io.send_bytes(send, 200, orjson.dumps(body))
