"""The Batch API's objects, pure: the BatchJob a batch becomes, and the batch object read back
from that BatchJob's status at each point of its life."""

from __future__ import annotations

import asyncio
import json
import pathlib
from typing import Any

import pytest

from tiers.api import batch
from tiers.runtime.gateway import batch_files, batch_objects, batch_storage, config, errors

SETTINGS = config.BatchConfig(
    namespace="prod",
    endpoint_name="chat",
    endpoint_uid="uid-1",
    storage_dir=pathlib.Path("/var/lib/tiers/batch"),
    claim_name="batches",
    spark={"executorCores": 2},
)
CREATED = "2026-11-30T01:00:00Z"
CREATED_S = 1796000400
BATCH_ID = "batch_" + "ab" * 12


ON_DATABRICKS = config.BatchConfig(
    namespace="prod",
    endpoint_name="chat",
    endpoint_uid="uid-1",
    storage_dir=pathlib.Path("/var/lib/tiers/batch"),
    volume=config.VolumeConfig(
        host="https://x.cloud.databricks.com", token_env="T", root="/Volumes/main/tiers/b/chat"
    ),
    engine="databricks",
    databricks={"host": "https://x.cloud.databricks.com", "newCluster": {"numWorkers": 1},
                "tokenSecretRef": {"name": "databricks", "key": "token"}},
)  # fmt: skip


def job(
    status: dict[str, Any] | None = None,
    *,
    settings: config.BatchConfig = SETTINGS,
    **annotations: str,
) -> dict[str, Any]:
    storage = batch_storage.of(settings)
    manifest = batch_objects.render_batch_job(
        settings, batch_id=BATCH_ID, input_file_id="file-" + "cd" * 12,
        input_uri=storage.uri("files/file-x.jsonl"),
        output_uri=storage.uri(batch_objects.output_dir_of(BATCH_ID)),
        endpoint="/v1/chat/completions", metadata={"purpose": "nightly eval"}, tenant="t1",
    )  # fmt: skip
    manifest["metadata"]["creationTimestamp"] = CREATED
    manifest["metadata"]["annotations"].update(annotations)
    if status is not None:
        manifest["status"] = status
    return manifest


def succeeded(status: str, reason: str, at: str = "2026-11-30T01:05:00Z") -> dict[str, Any]:
    return {"type": "Succeeded", "status": status, "reason": reason, "message": f"run: {reason}",
            "lastTransitionTime": at}  # fmt: skip


def reconciling(status: str, at: str) -> dict[str, Any]:
    return {"type": "Reconciling", "status": status, "reason": "Suspended", "message": "",
            "lastTransitionTime": at}  # fmt: skip


def test_the_batch_job_scores_the_uploaded_file_through_the_endpoint_on_the_shared_claim() -> None:
    manifest = job()
    spec = batch.BatchJobSpec.model_validate(manifest["spec"])  # the BatchJob API accepts it
    assert spec.input.uri == "file:///var/lib/tiers/batch/files/file-x.jsonl"
    assert spec.input.format == "openai" and spec.input.id_field == "custom_id"
    assert spec.output.uri == f"file:///var/lib/tiers/batch/batches/batch-{'ab' * 12}"
    assert spec.model.endpoint_ref is not None and spec.model.endpoint_ref.name == "chat"
    assert spec.volume is not None and spec.volume.claim_name == "batches"
    assert spec.active_deadline_seconds == 24 * 3600
    metadata = manifest["metadata"]
    assert metadata["name"] == f"batch-{'ab' * 12}"
    assert metadata["labels"][batch_objects.BATCH_LABEL] == BATCH_ID
    assert metadata["labels"][batch_objects.TENANT_LABEL] == "t1"
    (owner,) = metadata["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("RealtimeEndpoint", "chat", "uid-1")
    assert "blockOwnerDeletion" not in owner


def test_on_databricks_the_batch_job_reads_and_writes_the_volume_from_a_databricks_run() -> None:
    spec = batch.BatchJobSpec.model_validate(job(settings=ON_DATABRICKS)["spec"])
    assert spec.engine == "databricks" and spec.volume is None
    assert spec.input.uri == "dbfs:/Volumes/main/tiers/b/chat/files/file-x.jsonl"
    assert spec.output.uri == f"dbfs:/Volumes/main/tiers/b/chat/batches/batch-{'ab' * 12}"
    assert spec.databricks is not None and spec.databricks.host == "https://x.cloud.databricks.com"
    assert spec.databricks.token_secret_ref.name == "databricks"
    assert spec.model.endpoint_ref is not None and spec.model.endpoint_ref.name == "chat"


def test_a_new_batch_is_validating_with_what_its_client_sent() -> None:
    found = batch_objects.batch_object(job())
    assert found["id"] == BATCH_ID and found["object"] == "batch"
    assert found["status"] == "validating"
    assert found["endpoint"] == "/v1/chat/completions"
    assert found["input_file_id"] == "file-" + "cd" * 12
    assert found["completion_window"] == "24h"
    assert found["metadata"] == {"purpose": "nightly eval"}
    assert (found["created_at"], found["expires_at"]) == (CREATED_S, CREATED_S + 86400)
    assert found["request_counts"] == {"total": 0, "completed": 0, "failed": 0}


def test_a_running_batch_is_in_progress_with_its_runs_counts() -> None:
    status = {"state": "Running", "startTime": "2026-11-30T01:00:10Z",
              "progress": {"total": 100, "done": 40, "failed": 2, "percent": 42},
              "conditions": [succeeded("Unknown", "Running")]}  # fmt: skip
    found = batch_objects.batch_object(job(status))
    assert found["status"] == "in_progress"
    assert found["in_progress_at"] == CREATED_S + 10
    assert found["request_counts"] == {"total": 100, "completed": 40, "failed": 2}
    assert found["completed_at"] is None


def test_a_succeeded_run_is_a_completed_batch_with_the_files_given() -> None:
    status = {"state": "Succeeded", "startTime": "2026-11-30T01:00:10Z",
              "completionTime": "2026-11-30T01:02:00Z",
              "progress": {"total": 3, "done": 2, "failed": 1},
              "conditions": [succeeded("True", "Succeeded")]}  # fmt: skip
    found = batch_objects.batch_object(
        job(status), output_file_id="file-out", error_file_id="file-err"
    )
    assert found["status"] == "completed"
    assert found["completed_at"] == found["finalizing_at"] == CREATED_S + 120
    assert (found["output_file_id"], found["error_file_id"]) == ("file-out", "file-err")
    assert found["request_counts"] == {"total": 3, "completed": 2, "failed": 1}


def test_a_failed_run_is_a_failed_batch_that_says_why() -> None:
    status = {"state": "Failed", "conditions": [succeeded("False", "BackoffLimitExceeded")]}
    found = batch_objects.batch_object(job(status))
    assert found["status"] == "failed"
    assert found["failed_at"] == CREATED_S + 300
    assert found["errors"]["data"][0]["code"] == "BackoffLimitExceeded"
    assert "BackoffLimitExceeded" in found["errors"]["data"][0]["message"]


def test_a_run_past_its_completion_window_is_an_expired_batch() -> None:
    status = {"state": "Failed", "conditions": [succeeded("False", "DeadlineExceeded")]}
    found = batch_objects.batch_object(job(status))
    assert (found["status"], found["expired_at"]) == ("expired", CREATED_S + 300)


def test_a_cancel_is_cancelling_until_the_run_stops_then_cancelled() -> None:
    asked = {batch_objects.CANCELLING_ANNOTATION: "2026-11-30T01:01:00Z"}
    running = {"state": "Running", "startTime": "2026-11-30T01:00:10Z",
               "conditions": [succeeded("Unknown", "Running")]}  # fmt: skip
    found = batch_objects.batch_object(job(running, **asked))
    assert (found["status"], found["cancelling_at"]) == ("cancelling", CREATED_S + 60)
    # Succeeded stays Unknown from running to suspended; Reconciling turns False when the
    # operator sees the run stopped.
    stopped = {"state": "Suspended", "startTime": "2026-11-30T01:00:10Z",
               "conditions": [succeeded("Unknown", "Suspended", "2026-11-30T01:00:10Z"),
                              reconciling("False", "2026-11-30T01:01:05Z")]}  # fmt: skip
    found = batch_objects.batch_object(job(stopped, **asked))
    assert (found["status"], found["cancelled_at"]) == ("cancelled", CREATED_S + 65)
    assert found["in_progress_at"] == CREATED_S + 10


def test_before_its_run_counts_them_a_batch_has_every_request_its_upload_counted() -> None:
    # OpenAI's total is every request of the batch, also of one cancelled before its run began.
    asked = {batch_objects.CANCELLING_ANNOTATION: "2026-11-30T01:01:00Z",
             batch_objects.REQUESTS_ANNOTATION: "3"}  # fmt: skip
    found = batch_objects.batch_object(job({"state": "Suspended"}, **asked))
    assert found["request_counts"] == {"total": 3, "completed": 0, "failed": 0}
    counted = {"progress": {"total": 5, "done": 1, "failed": 0}}
    assert batch_objects.batch_object(job(counted, **asked))["request_counts"]["total"] == 5


def test_an_upload_counts_the_requests_of_its_file_across_the_pieces_it_arrives_in(
    tmp_path: pathlib.Path,
) -> None:
    lines = b'{"custom_id": "a"}\n\n  \n{"custom_id": "b"}\r\n{"custom_id": "c"}'
    boundary = b"x0x0x0"
    body = (b"--" + boundary + b'\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n'
            b"batch\r\n--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; '
            b'filename="r.jsonl"\r\n\r\n' + lines + b"\r\n--" + boundary + b"--\r\n")  # fmt: skip
    pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
    messages = [{"type": "http.request", "body": piece, "more_body": True} for piece in pieces]
    messages[-1]["more_body"] = False

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    store = batch_files.FileStore(
        batch_storage.Folder(tmp_path), max_file_bytes=1024, scratch_bytes=4096
    )
    store.prepare()
    content_type = b"multipart/form-data; boundary=" + boundary
    found = asyncio.run(store.upload(content_type, len(body), receive, tenant="t1"))
    assert found["bytes"] == len(lines) and "requests" not in found
    stored = json.loads((tmp_path / "files" / f"{found['id']}.json").read_text())
    assert stored["requests"] == 3


def test_a_batch_is_never_cancelled_before_its_cancel_was_asked() -> None:
    # A BatchJob that had stopped reconciling before (Stalled, say) and is suspended now.
    asked = {batch_objects.CANCELLING_ANNOTATION: "2026-11-30T01:01:00Z"}
    stopped = {"state": "Suspended",
               "conditions": [succeeded("Unknown", "Suspended", "2026-11-30T01:00:00Z"),
                              reconciling("False", "2026-11-30T01:00:30Z")]}  # fmt: skip
    found = batch_objects.batch_object(job(stopped, **asked))
    assert (found["status"], found["cancelled_at"]) == ("cancelled", CREATED_S + 60)


def test_a_run_that_finished_before_the_cancel_took_effect_stays_completed() -> None:
    asked = {batch_objects.CANCELLING_ANNOTATION: "2026-11-30T01:01:00Z"}
    status = {"state": "Succeeded", "conditions": [succeeded("True", "Succeeded")]}
    assert batch_objects.batch_object(job(status, **asked))["status"] == "completed"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"endpoint": "/v1/chat/completions", "completion_window": "24h"}, "input_file_id"),
        ({"input_file_id": "f", "endpoint": "/v1/responses", "completion_window": "24h"}, "endpoint"),
        ({"input_file_id": "f", "endpoint": "/v1/embeddings", "completion_window": "1h"}, "completion_window"),
        ({"input_file_id": "f", "endpoint": "/v1/embeddings", "completion_window": "24h",
          "metadata": {"k": 1}}, "metadata"),
    ],
)  # fmt: skip
def test_a_bad_create_request_names_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(errors.GatewayError) as raised:
        batch_objects.checked_request(body)
    assert (raised.value.status, raised.value.param) == (400, param)


def test_batches_are_listed_newest_first_a_page_at_a_time() -> None:
    objects = [{"id": f"batch_{i}", "created_at": i} for i in range(5)]
    first = batch_objects.page(objects, after=None, limit=2)
    assert [b["id"] for b in first["data"]] == ["batch_4", "batch_3"]
    assert (first["first_id"], first["last_id"], first["has_more"]) == ("batch_4", "batch_3", True)
    last = batch_objects.page(objects, after="batch_1", limit=2)
    assert [b["id"] for b in last["data"]] == ["batch_0"] and last["has_more"] is False


def test_result_file_ids_are_the_same_on_every_replica_and_differ_per_file() -> None:
    output = batch_objects.result_file_id(BATCH_ID, "output.jsonl")
    assert output == batch_objects.result_file_id(BATCH_ID, "output.jsonl")
    assert output != batch_objects.result_file_id(BATCH_ID, "errors.jsonl")
    assert batch_objects.valid_id(output, "file-")
    assert not batch_objects.valid_id("file-../../etc/passwd", "file-")
