"""OpenAI's Batch API objects and the BatchJob behind each batch: pure, no I/O and no clock.

`render_batch_job` is the BatchJob that `POST /v1/batches` creates; `batch_object` is the batch
object a client reads back, made from that BatchJob as the apiserver returns it (its labels and
annotations hold what the client sent, its status how the run goes). `batches` does the I/O.

How a BatchJob's status reads as a batch's `status`:

| BatchJob                                              | batch        | timestamp      |
|-------------------------------------------------------|--------------|----------------|
| no run started yet                                    | validating   | created_at     |
| a run going                                           | in_progress  | in_progress_at |
| Succeeded                                             | completed    | completed_at   |
| Failed, reason DeadlineExceeded (the 24 h window)     | expired      | expired_at     |
| Failed, any other reason                              | failed       | failed_at      |
| cancel asked, the run not stopped yet                 | cancelling   | cancelling_at  |
| cancel asked, the run stopped (Suspended)             | cancelled    | cancelled_at   |

A Databricks run goes on for a while after it was cancelled: its BatchJob is Suspended (and the
batch cancelled) once the operator has seen it end.

`request_counts` are the run's progress: total records (before the run has counted them, the
input file's lines as its upload counted them), those scored (`completed`) and those that
failed (error file lines).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from tiers.runtime.gateway import config, errors

API_VERSION = "tiers.dev/v1alpha1"
BATCH_LABEL = "tiers.dev/openai-batch"
"""On each BatchJob the gateway creates: the batch's id."""
ENDPOINT_LABEL = "tiers.dev/endpoint"
TENANT_LABEL = "tiers.dev/openai-batch-tenant"
"""Whose batch it is: the tenant of the key that created it (a digest prefix, never the key)."""
INPUT_FILE_ANNOTATION = "tiers.dev/openai-input-file"
ENDPOINT_ANNOTATION = "tiers.dev/openai-endpoint"
METADATA_ANNOTATION = "tiers.dev/openai-metadata"
CANCELLING_ANNOTATION = "tiers.dev/openai-cancelling-at"
REQUESTS_ANNOTATION = "tiers.dev/openai-requests"
"""The input file's requests (its non-blank lines), counted as it was uploaded: the batch's
`request_counts.total` before its run has counted them itself."""
COMPLETION_WINDOW = "24h"
ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
FILES_DIR = "files"
BATCHES_DIR = "batches"
OUTPUT_FILE = "output.jsonl"
ERRORS_FILE = "errors.jsonl"
"""The merged files an OpenAI batch's run writes under its output (`tiers.runtime.batch.layout`)."""
_ID_HEX = 24


def new_batch_id() -> str:
    return f"batch_{secrets.token_hex(_ID_HEX // 2)}"


def new_file_id() -> str:
    return f"file-{secrets.token_hex(_ID_HEX // 2)}"


def result_file_id(batch_id: str, name: str) -> str:
    """The id of a batch's output or error file: derived, so every replica names it alike."""
    return f"file-{hashlib.sha256(f'{batch_id}/{name}'.encode()).hexdigest()[:_ID_HEX]}"


def job_name(batch_id: str) -> str:
    """The BatchJob of a batch: `batch-<hex>` (a Kubernetes name has no underscore)."""
    return batch_id.replace("_", "-")


def output_dir_of(batch_id: str) -> str:
    """Where a batch's run writes, relative to the storage."""
    return f"{BATCHES_DIR}/{job_name(batch_id)}"


def valid_id(value: str, prefix: str) -> bool:
    """Whether a path's id is one this module makes (so it is safe in a file name or label)."""
    hex_part = value.removeprefix(prefix)
    return (
        value.startswith(prefix)
        and len(hex_part) == _ID_HEX
        and all(c in "0123456789abcdef" for c in hex_part)
    )


def checked_request(body: Any) -> tuple[str, str, dict[str, str]]:
    """(input_file_id, endpoint, metadata) of a `POST /v1/batches` body, or the 400 naming the
    field at fault."""
    if not isinstance(body, dict):
        raise errors.GatewayError(400, "The body must be a JSON object.")
    file_id = body.get("input_file_id")
    if not isinstance(file_id, str) or not file_id:
        raise errors.invalid(
            "input_file_id", "must be the id of a file uploaded with purpose batch"
        )
    endpoint = body.get("endpoint")
    if endpoint not in ENDPOINTS:
        raise errors.invalid("endpoint", f"must be one of {', '.join(ENDPOINTS)}")
    if body.get("completion_window") != COMPLETION_WINDOW:
        raise errors.invalid("completion_window", f'must be "{COMPLETION_WINDOW}"')
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict) or len(metadata) > MAX_METADATA_PAIRS:
        raise errors.invalid("metadata", f"must be an object of at most {MAX_METADATA_PAIRS} pairs")
    for key, value in metadata.items():
        if len(key) > MAX_METADATA_KEY or not isinstance(value, str):
            raise errors.invalid(
                "metadata", f"keys must be at most {MAX_METADATA_KEY} characters, values strings"
            )
        if len(value) > MAX_METADATA_VALUE:
            raise errors.invalid(
                "metadata", f"values must be at most {MAX_METADATA_VALUE} characters"
            )
    return file_id, endpoint, metadata


def render_batch_job(
    settings: config.BatchConfig,
    *,
    batch_id: str,
    input_file_id: str,
    input_uri: str,
    output_uri: str,
    endpoint: str,
    metadata: Mapping[str, str],
    tenant: str,
    requests: int | None = None,
) -> dict[str, Any]:
    """The BatchJob of a new batch: its OpenAI input file scored through this endpoint (so its
    requests meet the endpoint's model, cache, limits and budget), owned by the endpoint. Its
    engine is `settings.engine`: on spark its pods mount the storage's claim; on databricks it
    runs where `settings.databricks` says, reading and writing the volume's URIs."""
    spec: dict[str, Any] = {
        "engine": settings.engine,
        "input": {"uri": input_uri, "format": "openai", "idField": "custom_id"},
        "output": {"uri": output_uri, "format": "jsonl"},
        # Each line carries its own body; the prompt is not used for OpenAI files.
        "model": {"endpointRef": {"name": settings.endpoint_name}, "prompt": "{body}"},
        "backoffLimit": settings.backoff_limit,
        "activeDeadlineSeconds": settings.completion_window_s,
    }
    if settings.engine == "databricks":
        spec["databricks"] = dict(settings.databricks or {})
    else:
        spec["spark"] = dict(settings.spark)
        spec["volume"] = {"claimName": settings.claim_name, "mountPath": str(settings.storage_dir)}
    return {
        "apiVersion": API_VERSION,
        "kind": "BatchJob",
        "metadata": {
            "name": job_name(batch_id),
            "namespace": settings.namespace,
            "labels": {
                BATCH_LABEL: batch_id,
                ENDPOINT_LABEL: settings.endpoint_name,
                TENANT_LABEL: tenant,
            },
            "annotations": {
                INPUT_FILE_ANNOTATION: input_file_id,
                ENDPOINT_ANNOTATION: endpoint,
                METADATA_ANNOTATION: json.dumps(dict(metadata), separators=(",", ":")),
                **({} if requests is None else {REQUESTS_ANNOTATION: str(requests)}),
            },
            # Deleting the endpoint deletes its batches (garbage collection); not a controller
            # reference, and no blockOwnerDeletion, which would need rights on the endpoint.
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "RealtimeEndpoint",
                    "name": settings.endpoint_name,
                    "uid": settings.endpoint_uid,
                }
            ],
        },
        "spec": spec,
    }


def batch_object(
    job: Mapping[str, Any],
    *,
    output_file_id: str | None = None,
    error_file_id: str | None = None,
    completion_window_s: int = 24 * 3600,
) -> dict[str, Any]:
    """The batch object of a BatchJob (see the module's table)."""
    metadata = job.get("metadata") or {}
    labels = metadata.get("labels") or {}
    notes = metadata.get("annotations") or {}
    status = job.get("status") or {}
    created = _seconds(metadata.get("creationTimestamp")) or 0
    succeeded = _condition(status, "Succeeded")
    state = status.get("state")
    found: dict[str, Any] = {
        "id": labels.get(BATCH_LABEL),
        "object": "batch",
        "endpoint": notes.get(ENDPOINT_ANNOTATION),
        "errors": None,
        "input_file_id": notes.get(INPUT_FILE_ANNOTATION),
        "completion_window": COMPLETION_WINDOW,
        "status": "validating",
        "output_file_id": output_file_id,
        "error_file_id": error_file_id,
        "created_at": created,
        "in_progress_at": _seconds(status.get("startTime")),
        "expires_at": created + completion_window_s,
        "finalizing_at": None,
        "completed_at": None,
        "failed_at": None,
        "expired_at": None,
        "cancelling_at": _seconds(notes.get(CANCELLING_ANNOTATION)),
        "cancelled_at": None,
        "request_counts": _counts(status.get("progress") or {}, notes.get(REQUESTS_ANNOTATION)),
        "metadata": _metadata(notes.get(METADATA_ANNOTATION)),
    }
    ended = _seconds(status.get("completionTime")) or _seconds(
        (succeeded or {}).get("lastTransitionTime")
    )
    verdict = (succeeded or {}).get("status")
    if verdict == "True":
        found.update(status="completed", finalizing_at=ended, completed_at=ended)
    elif verdict == "False" and (succeeded or {}).get("reason") == "DeadlineExceeded":
        found.update(status="expired", expired_at=ended)
    elif verdict == "False":
        found.update(status="failed", failed_at=ended, errors=_errors(succeeded or {}))
    elif found["cancelling_at"] is not None:
        stopped = state == "Suspended"
        # When the operator saw the run stop: its Reconciling condition turned False then
        # (Succeeded stays Unknown from running to suspended, so its time tells nothing).
        rested = _seconds((_condition(status, "Reconciling") or {}).get("lastTransitionTime"))
        found.update(
            status="cancelled" if stopped else "cancelling",
            cancelled_at=max(rested or 0, found["cancelling_at"]) if stopped else None,
        )
    elif state in ("Running", "Estimating") or found["in_progress_at"] is not None:
        found["status"] = "in_progress"
        found["in_progress_at"] = found["in_progress_at"] or created
    return found


FINISHED = frozenset({"completed", "failed", "expired", "cancelled"})
"""Batch states that no longer change; only other batches can be cancelled."""


def page(objects: Sequence[dict[str, Any]], *, after: str | None, limit: int) -> dict[str, Any]:
    """One page of `GET /v1/batches`, newest first: the `limit` batches after the id `after`."""
    ordered = sorted(objects, key=lambda b: (b["created_at"], b["id"]), reverse=True)
    if after is not None:
        ids = [b["id"] for b in ordered]
        ordered = ordered[ids.index(after) + 1 :] if after in ids else []
    shown = ordered[:limit]
    return {
        "object": "list",
        "data": shown,
        "first_id": shown[0]["id"] if shown else None,
        "last_id": shown[-1]["id"] if shown else None,
        "has_more": len(ordered) > limit,
    }


def _counts(progress: Mapping[str, Any], uploaded: str | None) -> dict[str, int]:
    """OpenAI's counts: `total` is every request of the batch, as its run counted them or else
    as the upload did (a batch cancelled before its run counted still has them all)."""
    done, failed = int(progress.get("done") or 0), int(progress.get("failed") or 0)
    total = progress.get("total")
    if total is None and uploaded is not None and uploaded.isdigit():
        total = max(int(uploaded), done + failed)
    return {
        "total": int(total) if total is not None else done + failed,
        "completed": done,
        "failed": failed,
    }


def _errors(condition: Mapping[str, Any]) -> dict[str, Any]:
    error = {
        "code": str(condition.get("reason") or "Failed"),
        "message": str(condition.get("message") or "the batch's run failed"),
        "param": None,
        "line": None,
    }
    return {"object": "list", "data": [error]}


def _metadata(text: str | None) -> dict[str, str] | None:
    try:
        found = json.loads(text) if text else None
    except json.JSONDecodeError:
        return None
    return found if isinstance(found, dict) and found else None


def _condition(status: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for found in status.get("conditions") or []:
        if found.get("type") == type_:
            return found  # type: ignore[no-any-return]
    return None


def _seconds(stamp: str | None) -> int | None:
    """Unix seconds of an RFC 3339 time as Kubernetes writes it; None for none."""
    if not stamp:
        return None
    return int(datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())


def stamp(moment_s: float) -> str:
    """An RFC 3339 time as Kubernetes writes it, for the annotations set here."""
    return datetime.datetime.fromtimestamp(moment_s, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
