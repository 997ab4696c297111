"""`engine: databricks`, pure: a Databricks run's state as the spark engine's run state, what to
do next with a run (retry, cancel, resume), the runs/submit request, and the task's arguments."""

from __future__ import annotations

import asyncio
import datetime
import decimal
import ipaddress
import json
from typing import Any

import kopf
import pytest

from tiers.api import batch
from tiers.operator import (
    batch_databricks,
    batch_handlers,
    databricks_requests,
    databricks_status,
)
from tiers.operator.manifests import batch_children, labels
from tiers.runtime.batch import databricks_task, progress

OWNER = labels.Owner("tiers.dev/v1alpha1", "BatchJob", "triage", "support", "uid-1")


def spec(**databricks: Any) -> batch.BatchJobSpec:
    return batch.BatchJobSpec.model_validate(
        {
            "engine": "databricks",
            "input": {"uri": "dbfs:/in"},
            "output": {"uri": "dbfs:/out"},
            "model": {
                "backend": {
                    "name": "openai",
                    "provider": "openai",
                    "model": "gpt-4o-mini",
                    "apiKeySecretRef": {"name": "openai", "key": "api-key"},
                },
                "prompt": "{text}",
            },
            "activeDeadlineSeconds": 3600,
            "databricks": {
                "host": "https://x.cloud.databricks.com",
                "tokenSecretRef": {"name": "databricks", "key": "token"},
                **(databricks or {"newCluster": {"numWorkers": 4}}),
            },
        }
    )


def run(life_cycle: str, result: str | None = None, **status: Any) -> dict[str, Any]:
    state: dict[str, Any] = {"life_cycle_state": life_cycle, "state_message": "In run"}
    if result is not None:
        state["result_state"] = result
    found: dict[str, Any] = {
        "run_id": 7, "state": state, "start_time": 1764417600000, "end_time": 1764417660000,
        "run_page_url": "https://x.cloud.databricks.com/#job/0/run/7",
        "tasks": [{"run_id": 8}],
    }  # fmt: skip
    if status:
        found["status"] = status
    return found


def view(found: dict[str, Any], **record: Any) -> Any:
    attempt = batch.DatabricksRun(run_id=7, attempt=0, **record)
    observed = databricks_status.observe(found)
    return databricks_status.run_view(
        "triage-run", attempt, observed, None, output_uri="dbfs:/out", dry_run=False
    )


@pytest.mark.parametrize(
    ("found", "state", "reason"),
    [
        (run("PENDING"), "Pending", "Pending"),
        (run("QUEUED"), "Pending", "Queued"),
        (run("RUNNING"), "Running", "Running"),
        (run("TERMINATING", "SUCCESS"), "Running", "Running"),
        (run("TERMINATED", "SUCCESS"), "Succeeded", "Succeeded"),
        (run("TERMINATED", "FAILED"), "Failed", "DatabricksFailed"),
        (run("TERMINATED", "TIMEDOUT"), "Failed", "DatabricksTimedout"),
        (run("INTERNAL_ERROR"), "Failed", "DatabricksInternalError"),
        (run("SKIPPED"), "Failed", "DatabricksSkipped"),
        # Jobs 2.2's status wins over the older state where both are present.
        (run("TERMINATED", "FAILED", state="TERMINATED",
             termination_details={"code": "CLUSTER_ERROR", "type": "CLOUD_FAILURE",
                                  "message": "The cluster's driver was lost."}),
         "Failed", "DatabricksClusterError"),
        (run("RUNNING", state="TERMINATED",
             termination_details={"code": "SUCCESS", "type": "SUCCESS", "message": ""}),
         "Succeeded", "Succeeded"),
        (run("PENDING", state="WAITING"), "Pending", "WaitingForRetry"),
    ],
)  # fmt: skip
def test_a_databricks_run_shows_as_the_run_state_the_spark_engine_reports(
    found: dict[str, Any], state: str, reason: str
) -> None:
    shown = view(found)
    assert (shown.state, shown.reason) == (state, reason)
    assert shown.databricks is not None and shown.databricks["runId"] == 7


def test_a_failed_run_says_why_in_the_words_of_its_termination_details() -> None:
    shown = view(run("TERMINATED", "FAILED", state="TERMINATED", termination_details={
        "code": "RUN_EXECUTION_ERROR", "type": "CLIENT_ERROR", "message": "Workload failed"}))  # fmt: skip
    assert shown.message == "Workload failed"
    assert shown.completion_time is not None and shown.start_time is not None


def test_a_pending_run_names_its_databricks_run_and_life_cycle_state() -> None:
    assert view(run("PENDING")).message == "the Databricks run 7 is PENDING: In run"


def test_a_run_cancelled_for_suspend_is_stopped_not_failed() -> None:
    shown = view(run("TERMINATED", "CANCELED"), stopped=True, life_cycle_state="TERMINATED")
    assert (shown.state, shown.reason, shown.finished) == ("Stopped", "Suspended", False)
    assert shown.start_time is not None and shown.completion_time is not None


def test_a_cancelled_run_is_cancelling_until_databricks_says_it_has_ended() -> None:
    # Databricks cancels asynchronously: the run's task may go on while it is TERMINATING.
    record = batch.DatabricksRun(run_id=7, attempt=0, stopped=True, life_cycle_state="RUNNING")
    assert databricks_status.stopping(record)
    shown = view(run("TERMINATING", "CANCELED"), stopped=True, life_cycle_state="TERMINATING")
    assert (shown.state, shown.reason) == ("Stopped", "Cancelling")
    assert "TERMINATING" in shown.message and shown.completion_time is None
    verdict = databricks_status.cancelling(record)
    assert (verdict.status, verdict.reason) == ("Unknown", "Cancelling")
    assert not databricks_status.stopping(
        record.model_copy(update={"life_cycle_state": "TERMINATED"})
    )
    assert not databricks_status.stopping(record.model_copy(update={"stopped": False}))


def step(found: dict[str, Any] | None, *, reason: str = "", suspend: bool = False,
         backoff_limit: int = 2, **record: Any) -> databricks_status.Step:  # fmt: skip
    attempt = None if record.get("none") else batch.DatabricksRun(**{"run_id": 7, **record})
    observed = None if found is None else databricks_status.observe(found)
    return databricks_status.next_step(
        attempt, observed, reason, suspend=suspend, backoff_limit=backoff_limit
    )


def test_the_first_attempt_is_submitted_unless_suspended() -> None:
    assert step(None, none=True) == databricks_status.Step(submit=0)
    assert step(None, none=True, suspend=True) == databricks_status.Step()


def test_a_failed_attempt_is_retried_until_the_backoff_limit() -> None:
    failed = run("TERMINATED", "FAILED")
    assert step(failed, attempt=0) == databricks_status.Step(submit=1, failures=1)
    assert step(failed, attempt=2, failures=1) == databricks_status.Step(submit=3, failures=2)
    assert step(failed, attempt=3, failures=2).submit is None
    assert step(failed, attempt=0, backoff_limit=0).submit is None


def test_a_run_that_stopped_itself_for_its_budget_is_not_retried() -> None:
    assert step(run("TERMINATED", "FAILED"), attempt=0, reason="OverBudget").submit is None


def test_a_running_or_finished_run_needs_nothing() -> None:
    assert step(run("RUNNING"), attempt=0) == databricks_status.Step()
    assert step(run("TERMINATED", "SUCCESS"), attempt=1, failures=1).submit is None


def test_suspend_cancels_a_going_attempt_and_unsuspend_resumes_with_the_next() -> None:
    assert step(run("RUNNING"), attempt=0, suspend=True).cancel
    assert not step(run("TERMINATED", "SUCCESS"), attempt=0, suspend=True).cancel
    assert not step(None, attempt=0, stopped=True, suspend=True).cancel
    assert step(None, attempt=0, failures=1, stopped=True) == databricks_status.Step(
        submit=1, failures=1
    )


def test_a_claimed_attempt_with_no_run_found_is_submitted_again_unless_suspended() -> None:
    assert step(None, run_id=None, attempt=2, failures=1) == databricks_status.Step(
        submit=2, failures=1
    )
    assert step(None, run_id=None, attempt=2, failures=1, suspend=True) == databricks_status.Step(
        failures=1
    )
    claimed = batch.DatabricksRun(attempt=2, failures=1)
    shown = databricks_status.run_view(
        "triage-run", claimed, None, None, output_uri="dbfs:/out", dry_run=False
    )
    assert (shown.state, shown.reason) == ("Pending", "Submitting")


def test_the_idempotency_token_is_the_same_for_the_same_attempt_only() -> None:
    token = databricks_requests.idempotency_token("uid-1", 3, "triage-run", 0)
    assert len(token) == 64
    assert token == databricks_requests.idempotency_token("uid-1", 3, "triage-run", 0)
    others = {
        databricks_requests.idempotency_token("uid-2", 3, "triage-run", 0),
        databricks_requests.idempotency_token("uid-1", 4, "triage-run", 0),
        databricks_requests.idempotency_token("uid-1", 3, "triage-run", 1),
    }
    assert token not in others and len(others) == 3


def request(job: batch.BatchJobSpec) -> dict[str, Any]:
    settings = batch_children.job_config(
        OWNER, job, stats_redis_url="redis://stats:6379/0", endpoint_model=None
    )
    env = batch_children.run_env(OWNER, job)
    return databricks_requests.submit_request(
        OWNER, job, settings, run="triage-run", attempt=1,
        arguments=["run", "--run", "triage-run", "--output", "dbfs:/out"],
        secrets=databricks_requests.secret_envs(OWNER, env), token="t" * 64,
    )  # fmt: skip


def test_the_submit_request_runs_the_launcher_on_a_new_job_cluster_with_no_secret_in_it() -> None:
    body = request(spec(newCluster={"numWorkers": 4}, wheel="/Volumes/main/t/tiers.whl"))
    [task] = body["tasks"]
    assert body["idempotency_token"] == "t" * 64 and body["timeout_seconds"] == 3600
    assert body["run_name"] == "support/triage triage-run attempt 1"
    assert task["spark_python_task"]["python_file"] == "/Shared/tiers/tiers_batch_launcher.py"
    assert task["new_cluster"]["num_workers"] == 4 and "existing_cluster_id" not in task
    assert task["libraries"] == [{"whl": "/Volumes/main/t/tiers.whl"}]
    parameters = task["spark_python_task"]["parameters"]
    assert "--secret-env=TIERS_MODEL_API_KEY=tiers/support.triage.tiers_model_api_key" in parameters
    assert (
        "--secret-env=TIERS_STATS_REDIS_PASSWORD=tiers/support.triage.tiers_stats_redis_password"
        in parameters
    )
    config = json.loads(next(p for p in parameters if p.startswith("--config-json="))
                        .removeprefix("--config-json="))  # fmt: skip
    assert config["master"] is None  # the cluster's own Spark
    assert config["model"]["target"]["api_key_env"] == "TIERS_MODEL_API_KEY"
    assert parameters[-6:] == ["--", "run", "--run", "triage-run", "--output", "dbfs:/out"]


def test_an_existing_cluster_is_named_and_no_cluster_is_made() -> None:
    [task] = request(spec(existingClusterId="0123-456789-abcdef"))["tasks"]
    assert task["existing_cluster_id"] == "0123-456789-abcdef"
    assert "new_cluster" not in task and "libraries" not in task


def test_the_task_reads_its_secret_references_config_and_job_arguments() -> None:
    [task] = request(spec())["tasks"]
    secrets, config_json, job = databricks_task.parse(task["spark_python_task"]["parameters"])
    assert secrets["TIERS_MODEL_API_KEY"] == ("tiers", "support.triage.tiers_model_api_key")
    assert json.loads(config_json)["job"] == "support/triage"
    assert job == ["run", "--run", "triage-run", "--output", "dbfs:/out"]


def test_a_runs_final_numbers_are_read_back_from_the_summary_line_of_its_output() -> None:
    final = progress.Progress(
        state="Succeeded", attempt=2, total=60, skipped=10, done=58, failed=2, tokens_in=900,
        tokens_out=120, cost_usd=decimal.Decimal("0.0004215"),
        skipped_cost_usd=decimal.Decimal("0.0001"), started_s=100.0, updated_s=112.5,
    )  # fmt: skip
    line = json.dumps(progress.summary(final, output_uri="dbfs:/out"))
    read = progress.from_summary(f"Spark says hello\n{line}\n[####] 100%\n")
    assert read is not None
    assert (read.state, read.total, read.done, read.failed, read.cost_usd) == (
        "Succeeded", 60, 58, 2, decimal.Decimal("0.0004215"),
    )  # fmt: skip
    assert read.percent == 100
    assert progress.from_summary("no summary here\n{}\n") is None


def test_a_schedule_on_databricks_is_a_not_supported_condition_before_any_call() -> None:
    scheduled = spec().model_copy(update={"schedule": "0 2 * * *"})
    body = kopf.Body({
        "apiVersion": "tiers.dev/v1alpha1", "kind": "BatchJob",
        "metadata": {"name": "triage", "namespace": "support", "uid": "uid-1", "generation": 2},
        "spec": {}, "status": {},
    })  # fmt: skip
    patch = kopf.Patch()
    now = datetime.datetime(2026, 11, 30, tzinfo=datetime.UTC)
    # No Secret, no workspace, no cluster here: any call would fail the test.
    asyncio.run(batch_handlers.reconcile_on_databricks(scheduled, body, patch, now=now))
    [succeeded] = [c for c in patch["status"]["conditions"] if c["type"] == "Succeeded"]
    assert (succeeded["status"], succeeded["reason"]) == ("False", "NotSupported")
    assert "spec.schedule with engine databricks" in succeeded["message"]


@pytest.mark.parametrize(
    ("host", "allowed", "refused"),
    [
        ("http://127.0.0.1:8080", (), True),
        ("https://169.254.169.254", (), True),
        ("https://10.0.0.7", (), True),
        ("https://10.0.0.7", (ipaddress.ip_network("10.0.0.0/24"),), False),
        ("http://127.0.0.1:8080", (ipaddress.ip_network("127.0.0.0/8"),), False),
    ],
    ids=["loopback", "metadata-service", "private", "private-allowed", "loopback-allowed"],
)
def test_a_databricks_host_off_the_public_internet_is_refused_unless_allowed(
    host: str, allowed: tuple[Any, ...], refused: bool
) -> None:
    settings = spec(host=host, newCluster={}).databricks
    assert settings is not None
    found = asyncio.run(batch_databricks.workspace_host(settings, "support", allowed=allowed))
    if not refused:
        assert found == host
        return
    assert not isinstance(found, str)
    assert (found.status, found.reason) == ("False", "HostNotAllowed")
    assert f"spec.databricks.host {host}" in found.message
    assert "notifications.allowedNetworks" in found.message


def test_an_endpoints_outside_url_is_its_expose_host_if_it_has_one() -> None:
    endpoint = {"model": "m", "backends": [{"name": "a", "provider": "openai", "model": "m"}]}
    assert batch_handlers._outside_url(endpoint) is None
    exposed = {**endpoint, "expose": {"host": "chat.example.com", "httpRoute": {
        "parentRefs": [{"name": "public"}]}}}  # fmt: skip
    assert batch_handlers._outside_url(exposed) == "https://chat.example.com/v1"
    assert batch_handlers._outside_url({**endpoint, "replicas": "many"}) is None  # not parsed
