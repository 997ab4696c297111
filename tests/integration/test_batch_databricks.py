"""`engine: databricks`: the operator submits each BatchJob's run through databricks-sdk to the
Databricks test server (`tiers.devenv.databricks`, a real HTTP server on 127.0.0.1), which runs
the submitted Spark Python task for real on local Spark, scoring the records against mockllm.
Status shows the run's progress, cost and its Databricks run; a lost cluster is retried, deleting
the BatchJob cancels its run, an operator killed mid-submit makes no second run (and a BatchJob
deleted then has that run cancelled), and a refused token is a condition."""

from __future__ import annotations

import decimal
import json
import os
import pathlib
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from conftest import LOOPBACK_ALLOWED, Kubectl, wait_for

from tiers import devenv
from tiers.devenv import azure, databricks, processes
from tiers.runtime import mockllm

RECORDS = 60
TOKEN = "dapi-test-token"
MODEL_KEY = "sk-model-key-for-databricks"


@pytest.fixture
def workspace() -> Iterator[databricks.Server]:
    with databricks.running(tokens={TOKEN}, pending_s=0.5, terminating_s=0.3) as server:
        yield server


@pytest.fixture
def mock() -> Iterator[str]:
    with mockllm.running() as url:
        yield url


def batch_job(
    server: databricks.Server, mock: str, data: pathlib.Path, *, name: str = "triage", **spec: Any
) -> str:
    obj = {
        "apiVersion": "tiers.dev/v1alpha1",
        "kind": "BatchJob",
        "metadata": {"name": name},
        "spec": {
            "engine": "databricks",
            "input": {"uri": f"file://{data}/tickets.jsonl"},
            "output": {"uri": f"file://{data}/out", "format": "jsonl"},
            "model": {
                "backend": {
                    "name": "mock", "provider": "openai-compatible", "baseURL": mock,
                    "model": "gpt-4o-mini", "apiKeySecretRef": {"name": "model", "key": "key"},
                },
                "prompt": "Classify this ticket: {text}",
                "maxTokens": 8,
            },
            "databricks": {
                "host": server.url,
                "tokenSecretRef": {"name": "databricks", "key": "token"},
                "newCluster": {"numWorkers": 0},
                "secretScope": "tiers-tests",
            },
            **spec,
        },
    }  # fmt: skip
    return yaml.safe_dump(obj)


def prepare(kubectl: Kubectl, namespace: str, tmp_path: pathlib.Path) -> pathlib.Path:
    data = tmp_path / "data"
    data.mkdir()
    with (data / "tickets.jsonl").open("w") as out:
        for i in range(RECORDS):
            out.write(json.dumps({"id": f"t{i}", "text": f"ticket {i} about billing"}) + "\n")
    kubectl.run("create", "secret", "generic", "databricks", "-n", namespace,
                f"--from-literal=token={TOKEN}")  # fmt: skip
    kubectl.run("create", "secret", "generic", "model", "-n", namespace,
                f"--from-literal=key={MODEL_KEY}")  # fmt: skip
    return data


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    found = [c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_]
    return found[0] if found else {}


def job(kubectl: Kubectl, namespace: str, name: str = "triage") -> dict[str, Any]:
    return kubectl.get("bjob", name, "-n", namespace)  # type: ignore[no-any-return]


def submits(server: databricks.Server) -> list[dict[str, Any]]:
    return [body for _, path, body in server.workspace.requests if path.endswith("/runs/submit")]


def diagnosis(kubectl: Kubectl, namespace: str, server: databricks.Server) -> str:
    """The BatchJob's status and each run's state and driver log's end, for a failure."""
    lines = [f"status: {json.dumps(job(kubectl, namespace).get('status'))}"]
    with server.workspace.lock:
        for run in server.workspace.runs.values():
            lines.append(f"run {run.run_id}: {run.life_cycle_state} {run.result_state} "
                         f"{run.termination}")  # fmt: skip
            if run.process is not None:
                lines.append(run.process.logs()[0][-2000:])
    return "\n".join(lines)


def scored(data: pathlib.Path) -> dict[str, dict[str, Any]]:
    lines = [
        json.loads(line)
        for part in (data / "out").glob("attempt=*/outcome=ok/part-*")
        for line in part.read_text().splitlines()
    ]
    return {line["id"]: line for line in lines}


def test_a_run_whose_cluster_is_lost_is_retried_and_scores_every_record_with_its_cost(
    kubectl: Kubectl, operator: str, namespace: str, workspace: databricks.Server, mock: str,
    tmp_path: pathlib.Path,
) -> None:  # fmt: skip
    data = prepare(kubectl, namespace, tmp_path)
    # The first attempt's cluster is lost as its task starts: the run fails, and the retry (a
    # new one-time run, resuming where the first stopped) scores everything.
    workspace.workspace.faults.lose_cluster_after_s.append(1.0)
    kubectl.apply(batch_job(workspace, mock, data, backoffLimit=1), namespace=namespace)
    try:
        done = wait_for(
            lambda: (obj := job(kubectl, namespace)).get("status", {}).get("state") ==
            "Succeeded" and obj.get("status", {}).get("progress") and obj,
            timeout_s=420, what="the retried Databricks run to succeed",
        )  # fmt: skip
    except AssertionError as error:
        raise AssertionError(f"{error}\n{diagnosis(kubectl, namespace, workspace)}") from None
    status = done["status"]
    assert condition(done, "Succeeded")["status"] == "True"
    assert condition(done, "Estimated")["status"] == "True"
    results = scored(data)
    assert len(results) == RECORDS
    assert status["progress"]["done"] == RECORDS and status["progress"]["percent"] == 100
    written = sum(decimal.Decimal(line["cost_usd"]) for line in results.values())
    assert decimal.Decimal(status["cost"]["totalUSD"]) == written

    first, second = sorted(workspace.workspace.runs.values(), key=lambda r: r.run_id)
    assert (first.result_state, first.termination and first.termination[0]) == (
        "FAILED", "CLUSTER_ERROR",
    )  # fmt: skip
    assert second.result_state == "SUCCESS"
    run = status["lastRun"]["databricks"]
    assert run["runId"] == second.run_id
    assert run["runPageURL"].startswith(workspace.url) and str(run["runId"]) in run["runPageURL"]
    assert (run["lifeCycleState"], run["resultState"], run["attempt"], run["failures"]) == (
        "TERMINATED", "SUCCESS", 1, 1,
    )  # fmt: skip
    # A token per attempt, derived from the object (64 hex characters): a reconcile that
    # submitted an attempt again (from a body read before its run id was written) got the same
    # run back. The model's key went to the secret scope, never into a request or status.
    requests = submits(workspace)
    assert len({r["idempotency_token"] for r in requests}) == 2
    assert all(len(r["idempotency_token"]) == 64 for r in requests)
    task = requests[-1]["tasks"][0]
    assert task["new_cluster"]["num_workers"] == 0
    assert task["spark_python_task"]["python_file"] == "/Shared/tiers/tiers_batch_launcher.py"
    key = f"{namespace}.triage.tiers_model_api_key"
    assert workspace.workspace.secrets["tiers-tests"][key] == MODEL_KEY.encode()
    assert f"--secret-env=TIERS_MODEL_API_KEY=tiers-tests/{key}" in task["spark_python_task"][
        "parameters"]  # fmt: skip
    assert MODEL_KEY not in json.dumps(requests) + json.dumps(done)
    assert TOKEN not in json.dumps(done)


def test_deleting_a_batch_job_cancels_its_running_databricks_run(
    kubectl: Kubectl, operator: str, namespace: str, workspace: databricks.Server, mock: str,
    tmp_path: pathlib.Path,
) -> None:  # fmt: skip
    data = prepare(kubectl, namespace, tmp_path)
    kubectl.apply(batch_job(workspace, mock, data), namespace=namespace)
    running = wait_for(
        lambda: (obj := job(kubectl, namespace)).get("status", {}).get("lastRun", {}).get(
            "databricks", {}).get("lifeCycleState") == "RUNNING" and obj,
        timeout_s=60, what="the Databricks run to be RUNNING",
    )  # fmt: skip
    assert "tiers.dev/finalizer" in running["metadata"]["finalizers"]
    kubectl.run("delete", "bjob", "triage", "-n", namespace, "--wait=true", "--timeout=60s")
    [run] = workspace.workspace.runs.values()
    wait_for(lambda: workspace.workspace.get_run(run.run_id)["state"].get("result_state") ==
             "CANCELED", timeout_s=10, what="the run to be cancelled")  # fmt: skip
    assert run.cancelled and run.process is not None and run.process.poll() is not None


@pytest.fixture
def own_operator(own_namespace: str) -> list[str]:
    """A command that starts an operator of this test's own, for its namespace of
    `own_cluster` only: there it is alone (the session's operator reconciles every namespace of
    `dev_cluster`, and would find a lost submit or write a condition in its stead)."""
    return [
        sys.executable, "-m", "tiers.operator", "--namespace", own_namespace,
        "--no-leader-election",
        "--health-port", str(processes.free_port()),
        "--metrics-port", str(processes.free_port()),
    ]  # fmt: skip


@pytest.fixture
def own_env(own_cluster: devenv.DevCluster, dev_cluster: devenv.DevCluster) -> dict[str, str]:
    """The environment of the test's own operator: `own_cluster`, with the session's Redis for
    stats (local mode)."""
    return {**os.environ, **own_cluster.env(), "TIERS_RECHECK_SECONDS": "2",
            "TIERS_STATS_REDIS_URL": dev_cluster.redis_url, **LOOPBACK_ALLOWED}  # fmt: skip


def killed_mid_submit(
    kubectl: Kubectl, namespace: str, workspace: databricks.Server, mock: str,
    tmp_path: pathlib.Path, own_operator: list[str], env: dict[str, str],
) -> None:  # fmt: skip
    """Applies the BatchJob and SIGKILLs its operator while the workspace holds back the
    submit's answer: the run exists, and status holds only its claim."""
    data = prepare(kubectl, namespace, tmp_path)
    workspace.workspace.pending_s = 3600  # the run stays PENDING: nothing runs
    workspace.workspace.faults.answer_delay_s["/api/2.2/jobs/runs/submit"] = 8.0
    first = processes.start("operator-1", own_operator, log_dir=tmp_path, env=env)
    try:
        kubectl.apply(batch_job(workspace, mock, data), namespace=namespace)
        wait_for(lambda: submits(workspace), timeout_s=60, what="the first submit")
    finally:
        os.killpg(first.pid, 9)
    processes.wait_until(lambda: not processes.is_alive(first.pid), what="SIGKILL", timeout_s=10)
    assert len(workspace.workspace.runs) == 1
    [claim] = [run["databricks"] for run in job(kubectl, namespace)["status"]["runs"]]
    assert claim == {"attempt": 0, "failures": 0, "stopped": False}, "claimed, no run id"
    workspace.workspace.faults.answer_delay_s.clear()


@pytest.mark.parametrize(
    "edit",
    # A spec edited while no operator ran: a new generation, whose idempotency token differs,
    # so only the claim (and the run's name) keeps the next operator from a second run.
    [None, {"spec": {"model": {"maxTokens": 16}}}],
    ids=["as-it-was", "spec-edited-meanwhile"],
)
def test_an_operator_killed_between_submit_and_status_makes_no_second_run(
    own_kubectl: Kubectl, own_namespace: str, workspace: databricks.Server, mock: str,
    tmp_path: pathlib.Path, own_operator: list[str], own_env: dict[str, str],
    edit: dict[str, Any] | None,
) -> None:  # fmt: skip
    kubectl, namespace, env = own_kubectl, own_namespace, own_env
    killed_mid_submit(kubectl, namespace, workspace, mock, tmp_path, own_operator, env)
    if edit is not None:
        kubectl.run("patch", "bjob", "triage", "-n", namespace, "--type=merge",
                    "-p", json.dumps(edit))  # fmt: skip
    second = processes.start("operator-2", own_operator, log_dir=tmp_path, env=env)
    try:
        recorded = wait_for(
            lambda: (obj := job(kubectl, namespace)).get("status", {}).get(
                "observedGeneration") == obj["metadata"]["generation"]
            and (found := obj["status"].get("lastRun", {}).get("databricks", {})).get(
                "runId") is not None and found,
            timeout_s=60, what="the run id in status, at the spec's generation",
        )  # fmt: skip
    finally:
        processes.stop(second.pid, grace_s=5)
    assert len(submits(workspace)) == 1, "found again by its name, not submitted again"
    [run_id] = workspace.workspace.runs
    assert recorded["runId"] == run_id


def test_a_batch_job_deleted_before_its_submit_was_answered_has_that_run_cancelled(
    own_kubectl: Kubectl, own_namespace: str, workspace: databricks.Server, mock: str,
    tmp_path: pathlib.Path, own_operator: list[str], own_env: dict[str, str],
) -> None:  # fmt: skip
    kubectl, namespace, env = own_kubectl, own_namespace, own_env
    killed_mid_submit(kubectl, namespace, workspace, mock, tmp_path, own_operator, env)
    kubectl.run("delete", "bjob", "triage", "-n", namespace, "--wait=false")
    second = processes.start("operator-2", own_operator, log_dir=tmp_path, env=env)
    try:
        kubectl.run("wait", "--for=delete", "bjob/triage", "-n", namespace, "--timeout=60s")
    finally:
        processes.stop(second.pid, grace_s=5)
    [run] = workspace.workspace.runs.values()
    assert run.cancelled, "the run the lost answer named is found by its name and cancelled"
    assert len(submits(workspace)) == 1


def test_a_refused_token_is_a_condition_and_the_run_goes_once_it_is_accepted(
    kubectl: Kubectl, operator: str, namespace: str, workspace: databricks.Server, mock: str,
    tmp_path: pathlib.Path,
) -> None:  # fmt: skip
    data = prepare(kubectl, namespace, tmp_path)
    workspace.workspace.pending_s = 3600
    workspace.workspace.refused[TOKEN] = 401
    kubectl.apply(batch_job(workspace, mock, data), namespace=namespace)
    refused = wait_for(
        lambda: (found := condition(job(kubectl, namespace), "Succeeded")).get("reason") ==
        "DatabricksAuthFailed" and found,
        timeout_s=30, what="the refused token's condition",
    )  # fmt: skip
    assert refused["status"] == "False" and "refused the token" in refused["message"]
    assert TOKEN not in refused["message"]
    assert not workspace.workspace.runs
    del workspace.workspace.refused[TOKEN]
    wait_for(
        lambda: (
            job(kubectl, namespace)
            .get("status", {})
            .get("lastRun", {})
            .get("databricks", {})
            .get("runId")
            is not None
        ),
        timeout_s=30,
        what="the run submitted once the token is accepted",
    )
    assert len(workspace.workspace.runs) == 1


def condition_of(kubectl: Kubectl, namespace: str, name: str, reason: str) -> dict[str, Any]:
    """The BatchJob's Succeeded condition once its reason is `reason`, else nothing."""
    found = condition(job(kubectl, namespace, name), "Succeeded")
    return found if found.get("reason") == reason else {}


def azure_identity_env(
    arm: azure.Server, client_id: str, token_file: pathlib.Path
) -> dict[str, str]:
    """An operator's workload identity `client_id` in the fake Azure `arm`, as Azure Workload
    Identity's webhook sets it in the environment, and where that Azure is."""
    return {"AZURE_TENANT_ID": arm.tenant, "AZURE_CLIENT_ID": client_id,
            "AZURE_FEDERATED_TOKEN_FILE": str(token_file), "AZURE_AUTHORITY_HOST": arm.url,
            "TIERS_AZURE_RESOURCE_MANAGER": arm.url, "TIERS_AZURE_CA_BUNDLE": str(arm.ca_cert)}  # fmt: skip


def test_a_workspace_named_by_azure_resource_id_gets_the_run_or_a_condition_saying_why_not(
    own_kubectl: Kubectl, own_namespace: str, workspace: databricks.Server, mock: str,
    tmp_path: pathlib.Path, own_operator: list[str], own_env: dict[str, str],
) -> None:  # fmt: skip
    kubectl, namespace = own_kubectl, own_namespace
    # The fake Azure Resource Manager (tiers.devenv.azure) knows one workspace, the test
    # workspace; the operator reads it as its own workload identity, or as a BatchJob's service
    # principal that has no access to it.
    data = prepare(kubectl, namespace, tmp_path)
    workspace.workspace.pending_s = 3600  # submitted is enough: nothing runs
    prefix = ("/subscriptions/0a1b2c3d-0000-4000-8000-00000000abcd/resourceGroups/data-rg"
              "/providers/Microsoft.Databricks/workspaces")  # fmt: skip
    operator_id, outsider = (f"11111111-2222-4333-8444-{n:012d}" for n in (7, 8))
    token_file = tmp_path / "federated-token"
    token_file.write_text("projected-service-account-token")
    kubectl.run("create", "secret", "generic", "outsider", "-n", namespace,
                "--from-literal=secret=outsider-secret")  # fmt: skip
    with azure.running(
        workspaces={f"{prefix}/ml-prod": workspace.url},
        clients={operator_id: "projected-service-account-token", outsider: "outsider-secret"},
        grants={outsider: set()},
    ) as arm:
        env = {**own_env, **azure_identity_env(arm, operator_id, token_file)}
        cluster = {"tokenSecretRef": {"name": "databricks", "key": "token"},
                   "newCluster": {"numWorkers": 0}, "secretScope": "tiers-tests"}  # fmt: skip
        cases = {
            "right": {"workspaceResourceId": f"{prefix}/ml-prod", **cluster},
            "wrong": {"workspaceResourceId": f"{prefix}/ml-gone", **cluster},
            "forbidden": {"workspaceResourceId": f"{prefix}/ml-prod", **cluster, "azure": {
                "tenantId": arm.tenant, "clientId": outsider,
                "clientSecretRef": {"name": "outsider", "key": "secret"}}},
        }  # fmt: skip
        started = processes.start("operator-azure", own_operator, log_dir=tmp_path, env=env)
        try:
            for name, settings in cases.items():
                kubectl.apply(batch_job(workspace, mock, data, name=name, databricks=settings),
                              namespace=namespace)  # fmt: skip
            recorded = wait_for(
                lambda: job(kubectl, namespace, "right").get("status", {}).get("lastRun", {})
                .get("databricks"),
                timeout_s=60, what="the run submitted to the workspace Azure named",
            )  # fmt: skip
            wrong = wait_for(
                lambda: condition_of(kubectl, namespace, "wrong", "WorkspaceNotFound"),
                timeout_s=60, what="the unknown ID's condition",
            )  # fmt: skip
            forbidden = wait_for(
                lambda: (found := condition_of(kubectl, namespace, "forbidden", "AzureAuthFailed"))
                and "AuthorizationFailed" in found["message"] and found,
                timeout_s=60, what="the condition of an ID its principal may not read",
            )  # fmt: skip
        finally:
            processes.stop(started.pid, grace_s=5)
    [run_id] = workspace.workspace.runs
    assert recorded["runId"] == run_id
    assert wrong["status"] == "False" and f"{prefix}/ml-gone" in wrong["message"]
    assert forbidden["status"] == "False" and f"{prefix}/ml-prod" in forbidden["message"]
    assert "outsider-secret" not in json.dumps([wrong, forbidden])
