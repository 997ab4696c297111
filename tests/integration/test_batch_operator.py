"""The operator turns a BatchJob into a Kubernetes Job per run on the local control plane (kwok
completes Job pods; the batch job itself runs here as a local process, from the config the
operator rendered, as `make demo` runs it) and reports its progress, cost and estimate from what
the real run published, with a completion Event and a signed webhook. A schedule makes runs."""

from __future__ import annotations

import datetime
import decimal
import http.server
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from conftest import Kubectl, child_events, wait_for

from tiers import devenv
from tiers.operator import notify
from tiers.runtime import mockllm

RECORDS = 300


class Hooks(http.server.ThreadingHTTPServer):
    """A webhook receiver on 127.0.0.1 that keeps what it was sent."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        hooks = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hooks.received.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                return

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/batch"


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    server = Hooks()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.fixture
def mock() -> Iterator[str]:
    # Billing as OpenAI's reasoning models are billed: a prompt's long prefix seen before is
    # cached input, and each reply spends hidden reasoning tokens.
    with mockllm.running(mockllm.MockConfig(prompt_cache=True, reasoning_tokens=16)) as url:
        yield url


# o3-mini's published prices, USD per million tokens: input, cached input, output (reasoning
# tokens are output). Written here, not read from tiers' price table, to check it.
O3_MINI = {
    "prompt": decimal.Decimal("1.10"),
    "cached": decimal.Decimal("0.55"),
    "completion": decimal.Decimal("4.40"),
}
# Instructions long enough (over 1,024 tokens) for the provider to cache them across records.
INSTRUCTIONS = "Classify the ticket as billing, access, bug or other. " * 90


def billed_usd(bill: dict[str, int], price: dict[str, decimal.Decimal]) -> decimal.Decimal:
    """What the provider's bill of tokens costs at `price`."""
    fresh = bill["prompt_tokens"] - bill["cached_tokens"]
    return (
        fresh * price["prompt"]
        + bill["cached_tokens"] * price["cached"]
        + bill["completion_tokens"] * price["completion"]
    ) / 10**6


def batch_job(mock: str, data: pathlib.Path, **spec: Any) -> str:
    obj = {
        "apiVersion": "tiers.dev/v1alpha1",
        "kind": "BatchJob",
        "metadata": {"name": "triage"},
        "spec": {
            "engine": "spark",
            "input": {"uri": f"file://{data}/tickets.jsonl"},
            "output": {"uri": f"file://{data}/out", "format": "jsonl"},
            "model": {
                "backend": {
                    "name": "mock", "provider": "openai-compatible", "baseURL": mock,
                    "model": "gpt-4o-mini",
                },
                "prompt": "Classify this ticket: {text}",
                "maxTokens": 8,
            },
            "spark": {"executorCores": 2, "executorMemory": "2Gi"},
            **spec,
        },
    }  # fmt: skip
    return yaml.safe_dump(obj)


def write_tickets(path: pathlib.Path) -> None:
    with path.open("w") as out:
        for i in range(RECORDS):
            out.write(json.dumps({"id": f"t{i}", "text": f"ticket {i} about billing"}) + "\n")


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for found in obj.get("status", {}).get("conditions", []):
        if found["type"] == type_:
            return found  # type: ignore[no-any-return]
    return None


def test_a_batch_job_runs_to_succeeded_with_the_progress_and_cost_of_its_real_run(
    kubectl: Kubectl,
    operator: str,
    namespace: str,
    dev_cluster: devenv.DevCluster,
    mock: str,
    hooks: Hooks,
) -> None:
    data = pathlib.Path(tempfile.mkdtemp(prefix="tiers-batch-"))
    write_tickets(data / "tickets.jsonl")
    kubectl.run("create", "secret", "generic", "hook", "-n", namespace,
                "--from-literal=key=s3cret-signing-key")  # fmt: skip
    notification = {"webhookURL": hooks.url, "signingSecretRef": {"name": "hook", "key": "key"}}
    # Suspended first: the operator renders the config and starts no Job, while the real run goes
    # here (kwok would complete the Job's pod at once, before any record was scored).
    model = {
        "backend": {"name": "mock", "provider": "openai-compatible", "baseURL": mock,
                    "model": "o3-mini"},
        "prompt": INSTRUCTIONS + "Ticket: {text}",
        "maxTokens": 8,
    }  # fmt: skip
    kubectl.apply(
        batch_job(mock, data, suspend=True, notification=notification, model=model),
        namespace=namespace,
    )
    suspended = wait_for(
        lambda: (obj := kubectl.get("bjob", "triage", "-n", namespace)).get("status", {}).get(
            "state") == "Suspended" and obj,
        timeout_s=30, what="the BatchJob to report Suspended",
    )  # fmt: skip
    assert not kubectl.get("jobs", "-n", namespace)["items"]
    assert suspended["status"]["observedGeneration"] == suspended["metadata"]["generation"]
    configmap = kubectl.get("configmap", "triage-batch", "-n", namespace)
    rendered = data / "batch.json"
    rendered.write_text(configmap["data"]["batch.json"])

    run = subprocess.run(
        [sys.executable, "-m", "tiers.runtime.batch", "run", "--config", str(rendered),
         "--run", "triage-run", "--output", f"file://{data}/out"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, **dev_cluster.env()},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["done"] == RECORDS

    kubectl.run("patch", "bjob", "triage", "-n", namespace, "--type=merge",
                "-p", '{"spec": {"suspend": false}}')  # fmt: skip
    done = wait_for(
        lambda: (obj := kubectl.get("bjob", "triage", "-n", namespace)).get("status", {}).get(
            "state") == "Succeeded" and obj.get("status", {}).get("progress") and obj,
        timeout_s=60, what="the BatchJob to succeed with progress",
    )  # fmt: skip

    status = done["status"]
    assert (condition(done, "Succeeded") or {}).get("status") == "True"
    assert (condition(done, "Submitted") or {}).get("reason") == "JobCreated"
    assert (condition(done, "Estimated") or {}).get("status") == "True"
    lines = [
        json.loads(line)
        for part in (data / "out").glob("attempt=*/outcome=*/part-*")
        for line in part.read_text().splitlines()
    ]
    written_cost = sum(decimal.Decimal(line["cost_usd"]) for line in lines)
    assert status["progress"]["done"] == len(lines) == RECORDS
    assert status["progress"]["percent"] == 100
    assert decimal.Decimal(status["cost"]["totalUSD"]) == written_cost
    # Status agrees with the provider: one call a record, and its bill at the published prices
    # (cached instructions at half price, reasoning as output) within 1%.
    provider = mockllm.control.stats(mock)
    assert provider["outcomes"] == {"200": RECORDS}
    bill = provider["billed"]["o3-mini"]
    assert (
        bill["cached_tokens"] >= 1024 * (RECORDS - 1) and bill["reasoning_tokens"] == 16 * RECORDS
    )
    paid = billed_usd(bill, O3_MINI)
    print(f"batch: {RECORDS} records; cost in status {status['cost']['totalUSD']}, billed {paid}")
    assert decimal.Decimal(status["cost"]["totalUSD"]) == pytest.approx(
        paid, rel=decimal.Decimal("0.01")
    )
    assert status["estimate"]["records"] == RECORDS
    assert status["lastRun"]["name"] == "triage-run"
    job = kubectl.get("job", "triage-run", "-n", namespace)
    assert job["metadata"]["ownerReferences"][0]["name"] == "triage"
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[3:] == ["run", "--config", "/etc/tiers/batch.json", "--run", "triage-run",
                           "--output", f"file://{data}/out"]  # fmt: skip

    # The completion notice: an Event and one signed webhook POST with the run's numbers.
    notified = wait_for(
        lambda: (condition(kubectl.get("bjob", "triage", "-n", namespace), "Notified") or {}).get(
            "status") == "True",
        timeout_s=30, what="the webhook to be delivered",
    )  # fmt: skip
    assert notified
    assert len(hooks.received) == 1
    headers, body = hooks.received[0]
    payload = json.loads(body)
    assert payload["run"] == "triage-run" and payload["state"] == "Succeeded"
    assert payload["records"] == RECORDS and payload["failed"] == 0
    assert decimal.Decimal(payload["costUSD"]) == written_cost
    assert notify.verify(
        b"s3cret-signing-key", headers["X-Tiers-Timestamp"], body,
        headers["X-Tiers-Signature"], now=float(headers["X-Tiers-Timestamp"]),
    )  # fmt: skip
    events = kubectl.get("events", "-n", namespace, "--field-selector",
                         "involvedObject.kind=BatchJob")["items"]  # fmt: skip
    assert any(event["reason"] == "RunSucceeded" for event in events)
    assert "s3cret-signing-key" not in json.dumps(done) + json.dumps(configmap)


def test_a_schedule_makes_the_run_it_missed_with_time_injected_through_status(
    kubectl: Kubectl, operator: str, namespace: str, mock: str
) -> None:
    data = pathlib.Path(tempfile.mkdtemp(prefix="tiers-batch-"))
    kubectl.apply(
        batch_job(mock, data, schedule="*/5 * * * *", timeZone="Europe/Berlin"),
        namespace=namespace,
    )
    scheduled = wait_for(
        lambda: (obj := kubectl.get("bjob", "triage", "-n", namespace)).get("status", {}).get(
            "nextRun") and obj,
        timeout_s=30, what="the next run to be planned",
    )  # fmt: skip
    assert (condition(scheduled, "Succeeded") or {}).get("reason") == "Scheduled"
    assert not kubectl.get("jobs", "-n", namespace)["items"]
    # Time is injected the way a CronJob controller reads it: the last schedule time recorded in
    # status. Ten minutes back, the most recent five-minute mark was missed: it runs now.
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=10)
    kubectl.run("patch", "bjob", "triage", "-n", namespace, "--subresource=status",
                "--type=merge", "-p", json.dumps(
                    {"status": {"lastScheduleTime": past.strftime("%Y-%m-%dT%H:%M:%SZ")}}))  # fmt: skip
    jobs = wait_for(
        lambda: kubectl.get("jobs", "-n", namespace)["items"],
        timeout_s=30, what="the missed run's Job",
    )  # fmt: skip
    name = jobs[0]["metadata"]["name"]
    minute = int(name.removeprefix("triage-"))
    assert minute % 5 == 0 and minute * 60 > past.timestamp()
    command = jobs[0]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[-1] == f"file://{data}/out/run=triage-{minute}"
    recorded = wait_for(
        lambda: (obj := kubectl.get("bjob", "triage", "-n", namespace)).get("status", {}).get(
            "lastScheduleTime", "") >= datetime.datetime.fromtimestamp(minute * 60, datetime.UTC)
        .strftime("%Y-%m-%dT%H:%M:%SZ") and obj,
        timeout_s=30, what="lastScheduleTime to record the run",
    )  # fmt: skip
    assert recorded["status"]["runs"][0]["name"] == name
    assert len(kubectl.get("jobs", "-n", namespace)["items"]) == 1, "one run per time"

    # Each child the operator made is in an Event on the BatchJob: its config, its run.
    expected = {("ChildCreated", "ConfigMap triage-batch"), ("ChildCreated", f"Job {name}")}
    wait_for(
        lambda: expected <= child_events(kubectl, namespace, "BatchJob"),
        timeout_s=60, what=f"events {expected}",
    )  # fmt: skip


def test_with_the_spark_operator_a_run_is_a_spark_application_whose_state_is_the_runs(
    kubectl: Kubectl, operator: str, namespace: str, mock: str, spark_operator_crd: None
) -> None:
    data = pathlib.Path(tempfile.mkdtemp(prefix="tiers-batch-"))
    spark = {"mode": "spark-operator", "executors": 3, "executorCores": 2, "executorMemory": "2Gi"}
    kubectl.apply(batch_job(mock, data, spark=spark), namespace=namespace)
    stored = wait_for(
        lambda: kubectl.run("get", "sparkapplication", "triage-run", "-n", namespace, "-o", "json",
                            "--ignore-not-found").stdout,
        timeout_s=30, what="the run's SparkApplication",
    )  # fmt: skip
    app = json.loads(stored)
    # The Spark Operator's schema kept what the operator set: nothing was pruned.
    assert app["spec"]["executor"]["instances"] == 3
    assert app["spec"]["arguments"][:1] == ["run"]
    assert app["spec"]["restartPolicy"]["type"] == "OnFailure"
    assert app["metadata"]["ownerReferences"][0]["kind"] == "BatchJob"
    assert not kubectl.get("jobs", "-n", namespace)["items"]

    def set_state(state: dict[str, str]) -> None:
        status = {"applicationState": state, "driverInfo": {"podName": "triage-run-driver"},
                  "lastSubmissionAttemptTime": "2026-11-29T12:00:00Z",
                  "terminationTime": "2026-11-29T12:01:00Z"}  # fmt: skip
        kubectl.run("patch", "sparkapplication", "triage-run", "-n", namespace,
                    "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": status}))  # fmt: skip

    set_state({"state": "RUNNING"})
    wait_for(
        lambda: kubectl.get("bjob", "triage", "-n", namespace).get("status", {}).get("state")
        == "Running",
        timeout_s=30, what="state Running",
    )  # fmt: skip
    set_state({"state": "FAILED", "errorMessage": "driver container OOMKilled"})
    failed = wait_for(
        lambda: (obj := kubectl.get("bjob", "triage", "-n", namespace)).get("status", {}).get(
            "state") == "Failed" and obj,
        timeout_s=30, what="state Failed",
    )  # fmt: skip
    verdict = condition(failed, "Succeeded") or {}
    assert verdict.get("status") == "False" and "driver container OOMKilled" in verdict["message"]
